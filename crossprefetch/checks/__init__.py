"""crossprefetch's system checks, one module per concern, registered in one place.

Every check runs under the ``crossprefetch`` tag (``manage.py check --tag crossprefetch``);
each id is listed in :doc:`/reference/checks` and never reused. :func:`check_view`,
:func:`check_view_filters`, :func:`check_view_related` and :func:`check_view_aggregates`
run the checks of one view class, for views outside the URLconf.
The names are imported on first access, as in :mod:`crossprefetch`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crossprefetch.checks.aggregate import check_view_aggregates
    from crossprefetch.checks.filters import check_view_filters
    from crossprefetch.checks.registry import register
    from crossprefetch.checks.related import check_view_related
    from crossprefetch.checks.views import check_view

_EXPORTS = {
    "check_view_aggregates": "crossprefetch.checks.aggregate",
    "check_view": "crossprefetch.checks.views",
    "check_view_filters": "crossprefetch.checks.filters",
    "check_view_related": "crossprefetch.checks.related",
    "register": "crossprefetch.checks.registry",
}

__all__ = [
    "check_view",
    "check_view_aggregates",
    "check_view_filters",
    "check_view_related",
    "register",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'crossprefetch.checks' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
