"""The fetch chain, assembled: the layers a group passes through, outermost first.

A new layer (a failure policy, coalescing across requests) is a callable taking the next
:class:`~crossprefetch._fetch.base.Fetch` and returning one; it goes in :data:`LAYERS` at
the place it must wrap, and the engine does not change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crossprefetch._fetch.base import Fetch, Layer
from crossprefetch._fetch.caching import CacheLayer, ReadCacheLayer
from crossprefetch._fetch.coalescing import CoalesceLayer
from crossprefetch._fetch.database import query_database
from crossprefetch._fetch.failure import FailureLayer
from crossprefetch._fetch.known import KnownLayer
from crossprefetch._fetch.outages import OutageLayer
from crossprefetch._fetch.reads import Read, query_read

#: Outermost first: rows the caller already read (a filter's) answer their keys; the
#: cache answers what it holds and passes only its misses down; the failure policy below
#: it degrades only those misses when their database fails; below it, concurrent requests
#: share one query for them, and each applies its own policy; under them, each query sent
#: counts once against its alias's circuit breaker and takes one place of its bulkhead.
LAYERS: Sequence[Layer] = (KnownLayer, CacheLayer, FailureLayer, CoalesceLayer, OutageLayer)


#: A filter's or an ordering's read (:mod:`crossprefetch._fetch.reads`): the same layers
#: but those that read keys, the cache taking the whole answer as one entry.
READ_LAYERS: Sequence[Layer] = (ReadCacheLayer, FailureLayer, CoalesceLayer, OutageLayer)


def build(layers: Sequence[Layer], bottom: Fetch) -> Fetch:
    """Wrap ``bottom`` in ``layers``, the first of them outermost."""
    fetch = bottom
    for layer in reversed(layers):
        fetch = layer(fetch)
    return fetch


fetch: Fetch = build(LAYERS, query_database)

_read: Fetch = build(READ_LAYERS, query_read)


def read(unit: Read) -> list[tuple[Any, ...]]:
    """A read's rows, through :data:`READ_LAYERS`; raises
    :exc:`~crossprefetch._fetch.reads.Unavailable` when its degrading spec's database is out."""
    rows: list[tuple[Any, ...]] = _read(unit).rows
    return rows
