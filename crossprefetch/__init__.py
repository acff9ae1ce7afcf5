"""crossprefetch: declarative cross-database prefetching for Django REST framework."""

from __future__ import annotations

from crossprefetch.cache import CachePolicy
from crossprefetch.engine import prefetch_cross_db
from crossprefetch.fields import ContextLookupField
from crossprefetch.lookup import Lookup, LookupStats
from crossprefetch.mixins import CrossDBPrefetchMixin
from crossprefetch.spec import CrossDBPrefetch

__version__ = "0.1.0"

__all__ = [
    "CachePolicy",
    "ContextLookupField",
    "CrossDBPrefetch",
    "CrossDBPrefetchMixin",
    "Lookup",
    "LookupStats",
    "prefetch_cross_db",
]
