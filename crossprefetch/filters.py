"""Filtering and ordering lists by the rows they reference in another database.

The public path of the filter backends (implemented in
:mod:`crossprefetch.rest_framework.filters`), of the cursor paginator that walks their
orderings, and of the django-filter filter class, which is imported on first access so
that django-filter stays optional.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crossprefetch.rest_framework.filters import (
    LOOKUPS,
    CrossDBFilter,
    CrossDBFilterBackend,
    CrossDBOrderingFilter,
)
from crossprefetch.rest_framework.pagination import CrossDBCursorPagination

if TYPE_CHECKING:
    from crossprefetch.rest_framework.filterset import CrossDBFilterSetFilter

__all__ = [
    "LOOKUPS",
    "CrossDBCursorPagination",
    "CrossDBFilter",
    "CrossDBFilterBackend",
    "CrossDBFilterSetFilter",
    "CrossDBOrderingFilter",
]


def __getattr__(name: str) -> Any:
    if name == "CrossDBFilterSetFilter":
        from crossprefetch.rest_framework.filterset import CrossDBFilterSetFilter

        return CrossDBFilterSetFilter
    raise AttributeError(f"module 'crossprefetch.filters' has no attribute {name!r}")
