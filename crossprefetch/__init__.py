"""crossprefetch: declarative cross-database prefetching for Django REST framework.

The public names are imported on first access, so that importing a submodule (the
pytest plugin, loaded in every pytest run through its entry point, or the engine in a
project without DRF views) does not import Django REST framework.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crossprefetch.aggregate import CrossDBAggregate
    from crossprefetch.cache import CachePolicy
    from crossprefetch.engine import prefetch_cross_db
    from crossprefetch.loaders import aprefetch_cross_db
    from crossprefetch.lookup import Lookup, LookupStats
    from crossprefetch.related import prefetch_related_objects
    from crossprefetch.rest_framework.fields import ContextLookupField
    from crossprefetch.rest_framework.mixins import CrossDBPrefetchMixin
    from crossprefetch.spec import CrossDBPrefetch

__version__ = "0.1.0"

_EXPORTS = {
    "CachePolicy": "crossprefetch.cache",
    "ContextLookupField": "crossprefetch.rest_framework.fields",
    "CrossDBAggregate": "crossprefetch.aggregate",
    "CrossDBPrefetch": "crossprefetch.spec",
    "CrossDBPrefetchMixin": "crossprefetch.rest_framework.mixins",
    "Lookup": "crossprefetch.lookup",
    "LookupStats": "crossprefetch.lookup",
    "aprefetch_cross_db": "crossprefetch.loaders",
    "prefetch_cross_db": "crossprefetch.engine",
    "prefetch_related_objects": "crossprefetch.related",
}

__all__ = [
    "CachePolicy",
    "ContextLookupField",
    "CrossDBAggregate",
    "CrossDBPrefetch",
    "CrossDBPrefetchMixin",
    "Lookup",
    "LookupStats",
    "aprefetch_cross_db",
    "prefetch_cross_db",
    "prefetch_related_objects",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'crossprefetch' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
