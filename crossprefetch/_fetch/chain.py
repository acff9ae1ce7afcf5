"""The fetch chain, assembled: the layers a group passes through, outermost first.

A new layer (a failure policy, coalescing across requests) is a callable taking the next
:class:`~crossprefetch._fetch.base.Fetch` and returning one; it goes in :data:`LAYERS` at
the place it must wrap, and the engine does not change.
"""

from __future__ import annotations

from collections.abc import Sequence

from crossprefetch._fetch.base import Fetch, Layer
from crossprefetch._fetch.caching import CacheLayer
from crossprefetch._fetch.coalescing import CoalesceLayer
from crossprefetch._fetch.database import query_database
from crossprefetch._fetch.failure import FailureLayer
from crossprefetch._fetch.known import KnownLayer
from crossprefetch._fetch.outages import OutageLayer

#: Outermost first: rows the caller already read (a filter's) answer their keys; the
#: cache answers what it holds and passes only its misses down; the failure policy below
#: it degrades only those misses when their database fails; below it, concurrent requests
#: share one query for them, and each applies its own policy; under them, each query sent
#: counts once against its alias's circuit breaker and takes one place of its bulkhead.
LAYERS: Sequence[Layer] = (KnownLayer, CacheLayer, FailureLayer, CoalesceLayer, OutageLayer)


def build(layers: Sequence[Layer], bottom: Fetch) -> Fetch:
    """Wrap ``bottom`` in ``layers``, the first of them outermost."""
    fetch = bottom
    for layer in reversed(layers):
        fetch = layer(fetch)
    return fetch


fetch: Fetch = build(LAYERS, query_database)
