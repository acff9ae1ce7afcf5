"""Caching lookups' rows: the policy, the cache store, and invalidation.

* :mod:`.policy`: :class:`~crossprefetch.CachePolicy` (public as :mod:`crossprefetch.cache`);
* :mod:`.store`: key names, scopes, failures reported without failing;
* :mod:`.invalidation` and :mod:`.written_tables`: a write in any process is seen by all.

The cache layer of the fetch chain (:mod:`crossprefetch._fetch.caching`) reads and writes
through these; invalidation never imports the fetch chain, only the cache's circuit
breakers (:mod:`crossprefetch._fetch.breaker`, which import nothing of the chain).
"""
