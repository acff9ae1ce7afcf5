"""The form of a view's ``cross_db_filters`` in DRF's browsable API (its Filters dialog).

DRF shows a Filters button when a filter backend's ``to_html`` returns HTML, as
django-filter's ``DjangoFilterBackend`` does with its FilterSet's form:
:meth:`~crossprefetch.filters.CrossDBFilterBackend.to_html` renders this one. One input per
filter, named as its query parameter and holding the request's value: a select where the
values are few (``isnull``, a boolean, a field with ``choices``), a text input otherwise.
The other query parameters (``ordering``, ``page_size``...) are kept in hidden inputs, but
for the page's position: a new filter starts at the first page.

Rendering sends no query: the remote fields come from the models' metadata. The template,
``crossprefetch/rest_framework/filter_form.html``, may be overridden as any app template.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import models
from django.template import loader
from django.utils.translation import gettext_lazy as _

__all__ = ["TEMPLATE", "FilterInput", "render"]

TEMPLATE = "crossprefetch/rest_framework/filter_form.html"
#: The empty choice of a select: no filter.
_ANY = ("", "---------")
#: The paginators' parameters of the page's position (DRF's three paginators).
_POSITION_PARAMETERS = ("page_query_param", "offset_query_param", "cursor_query_param")
#: Lookups that compare a field to one value: a select can list the values.
_ONE_VALUE = frozenset({"exact", "iexact"})
#: The spellings of a boolean a filter accepts, any case, around spaces.
TRUE = frozenset({"true", "1", "yes", "on"})
FALSE = frozenset({"false", "0", "no", "off"})


def boolean(raw: str) -> bool | None:
    """``raw`` as a boolean filter takes it, or ``None`` when it is no boolean."""
    lowered = raw.strip().lower()
    return True if lowered in TRUE else False if lowered in FALSE else None


@dataclass(frozen=True)
class FilterInput:
    """One input of the form: a select when ``choices`` is not ``None``."""

    name: str
    value: str
    help_text: str
    choices: tuple[tuple[str, str], ...] | None


def _choices(
    lookup_expr: str, field: models.Field[Any, Any] | None, value: str
) -> tuple[tuple[tuple[str, str], ...], str] | None:
    """The options of a select for the filter, the request's value among them (a value the
    options do not hold is listed as it is, so the form shows what the URL says), and the
    option the value selects (``1`` selects ``true``)."""
    if lookup_expr == "isnull" or (
        lookup_expr in _ONE_VALUE and isinstance(field, models.BooleanField)
    ):
        options: list[tuple[str, str]] = [_ANY, ("true", str(_("Yes"))), ("false", str(_("No")))]
        meant = boolean(value)
        if meant is not None:  # ?active=1 selects Yes
            value = "true" if meant else "false"
    elif lookup_expr in _ONE_VALUE and field is not None and field.choices:
        options = [_ANY, *((str(key), str(label)) for key, label in field.flatchoices if key != "")]
    else:
        return None
    if value not in {key for key, _label in options}:
        options.append((value, value))
    return tuple(options), value


def inputs(
    request: Any, filters: Sequence[tuple[str, str, models.Field[Any, Any] | None, str]]
) -> list[FilterInput]:
    """One input per ``(parameter, lookup_expr, remote field or None, description)``."""
    params = request.query_params
    made = []
    for name, lookup_expr, field, description in filters:
        value = params.get(name, "")
        select = _choices(lookup_expr, field, value)
        choices = None
        if select is not None:
            choices, value = select
        made.append(FilterInput(name=name, value=value, help_text=description, choices=choices))
    return made


def kept_parameters(request: Any, view: Any, names: set[str]) -> list[tuple[str, str]]:
    """The request's other query parameters, to send again with the form, but for the
    page's position."""
    paginator = getattr(view, "paginator", None)
    position = {getattr(paginator, attr, None) for attr in _POSITION_PARAMETERS} - {None}
    return [
        (name, value)
        for name, values in request.query_params.lists()
        if name not in names and name not in position
        for value in values
    ]


def render(
    request: Any, view: Any, filters: Sequence[tuple[str, str, models.Field[Any, Any] | None, str]]
) -> str | None:
    """The form, or ``None`` for a view without filters (no Filters button then)."""
    if not filters:
        return None
    context = {
        "inputs": inputs(request, filters),
        "kept": kept_parameters(request, view, {name for name, *_rest in filters}),
    }
    return loader.get_template(TEMPLATE).render(context, request)
