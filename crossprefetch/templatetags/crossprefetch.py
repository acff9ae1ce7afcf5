"""``{% load crossprefetch %}``: read a lookup of ``cross_db_fields`` in a template.

``{% cross_db event "customers" "name" default="Unknown customer" %}`` renders the
``name`` of the row ``event`` references through the view's ``customers`` lookup (see
:class:`~crossprefetch.views.CrossDBPrefetchViewMixin`); ``as customer`` keeps the value
(the whole row without an attribute) for the rest of the block.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import template

from crossprefetch.lookup import MISSING, NOT_PREFETCHED
from crossprefetch.views import LOOKUPS_CONTEXT_KEY

register = template.Library()


@register.simple_tag(takes_context=True)
def cross_db(
    context: template.Context, obj: Any, lookup: str, attr: str = "", default: Any = ""
) -> Any:
    """The row (or ``attr`` of it, a dotted path) ``obj`` references through ``lookup``."""
    lookups = context.get(LOOKUPS_CONTEXT_KEY) or {}
    found = lookups.get(lookup)
    if found is None:
        raise template.TemplateSyntaxError(
            f"{{% cross_db %}}: the view built no lookup {lookup!r} (it has: "
            f"{', '.join(map(repr, lookups)) or 'none'}); declare it in the view's "
            "cross_db_fields, on a view with CrossDBPrefetchViewMixin."
        )
    row = found.get_for(obj)
    if row is NOT_PREFETCHED:  # an object the view did not show: its key may be known
        row = found.find(obj)
    if row is MISSING:
        return default
    for part in attr.split(".") if attr else ():
        row = row.get(part) if isinstance(row, Mapping) else getattr(row, part, None)
        if row is None:
            return default
    return row
