"""Opt-in caching of lookup rows through Django's cache framework.

A spec with ``cache=`` keeps one cache entry per remote key, so a shared Redis or
Memcached serves every app server: the engine reads all the page's keys with one
``get_many``, queries the database for the misses only and writes them back with one
``set_many``. :func:`invalidate` is the manual counterpart of the automatic invalidation,
for writes crossprefetch cannot see.
"""

from __future__ import annotations

from django.db import models

from crossprefetch._cache import invalidation
from crossprefetch._cache.policy import CachePolicy, ScopeFunc

__all__ = ["CachePolicy", "ScopeFunc", "failed_invalidations", "invalidate"]


def invalidate(model: type[models.Model] | str, *, using: str | None = None) -> None:
    """Make every process miss the cached rows of ``model`` from its next request on.

    Call it after writes crossprefetch cannot see: SQL sent outside Django's connections
    (another service, ``psql``, a database trigger or cascade), or a process that writes
    the model without knowing it is cached. Writes through Django in a process that knows
    the model is cached invalidate on their own (see the how-to on caching).

    Inside a transaction, the invalidation happens when the transaction on ``using`` (the
    model's write database by default) commits, and is dropped if it rolls back.
    """
    invalidation.invalidate(model, using=using)


def failed_invalidations() -> dict[str, int]:
    """How many invalidations this process could not write, per cache alias, since it started.

    A write to a cached model replaces the model's generation in the cache; when the cache
    refuses it (Redis down during ``save()``), the write still succeeds, but processes
    sharing the cache may serve the old rows until their entries expire. Each such failure
    is logged at ERROR on the ``crossprefetch`` logger, sent as
    :data:`crossprefetch.signals.invalidation_failed`, shown by the debug-toolbar panel and
    counted here, for a health check or a metrics exporter.
    """
    from crossprefetch._cache import invalidation

    return invalidation.failed_invalidations()
