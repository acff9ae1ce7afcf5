"""The failure policy of the fetch chain: a failing database degrades its lookups.

For a group whose spec says ``on_error="degrade"``, a :class:`django.db.DatabaseError`
from the layers below (refused connection, lost server, cancelled statement) does not
fail the request: the group's plans get no rows, so every key reads as missing and the
fields render their fallback or default. The plans are reported degraded
(:attr:`Fetched.degraded <crossprefetch._fetch.base.Fetched.degraded>`), which the cache
above never stores.

A circuit breaker per database alias (:mod:`crossprefetch._fetch.breaker`) counts consecutive
failures; once open, degrade-mode groups on that alias skip the query, so a dead database
costs nothing per request until the trial after ``BREAKER_RESET``. ``"raise"`` groups
pass through untouched: their error propagates as it always has.

One WARNING per alias per ``DEGRADED_LOG_INTERVAL`` on the ``crossprefetch`` logger.
"""

from __future__ import annotations

import logging
import threading
import time

from django.db import DatabaseError, connections

from crossprefetch._fetch import breaker
from crossprefetch._fetch.base import Fetch, Fetched
from crossprefetch._groups import Group
from crossprefetch.conf import conf

logger = logging.getLogger("crossprefetch")


class FailureLayer:
    """Degrade a group whose database fails, and stop asking one that keeps failing."""

    def __init__(self, inner: Fetch) -> None:
        self.inner = inner

    def __call__(self, group: Group) -> Fetched:
        if not group.keys or group.spec.error_policy() != "degrade":
            return self.inner(group)
        alias = group.alias
        breakers = breaker.databases
        if not breakers.allow(alias):
            return _degraded(group, "circuit breaker open", breaker_open=True)
        try:
            fetched = self.inner(group)
        except DatabaseError as exc:
            opened = breakers.failure(alias)
            _drop_if_broken(alias)
            error = f"{type(exc).__name__}: {str(exc).strip()}"
            _warn(group, error, opened)
            return _degraded(group, error)
        breakers.success(alias)
        return fetched


def _degraded(group: Group, error: str, *, breaker_open: bool = False) -> Fetched:
    for plan in group.plans:
        stats = plan.stats
        if stats is not None:
            stats.breaker_open = breaker_open
            stats.error = error
    return Fetched(group.empty_rows(), 0, frozenset(p.name for p in group.plans))


def _drop_if_broken(alias: str) -> None:
    """Close a connection the failure left unusable, so the next request connects afresh.

    Not inside an atomic block: the transaction's owner must see that it lost it.
    """
    connection = connections[alias]
    if connection.connection is None or connection.in_atomic_block:
        return
    try:
        if not connection.is_usable():
            connection.close()
    except DatabaseError:
        pass


_log_lock = threading.Lock()
_last_warning: dict[str, float] = {}
_unreported: dict[str, int] = {}


def _warn(group: Group, error: str, opened: bool) -> None:
    """Log the failure at most once per ``DEGRADED_LOG_INTERVAL`` per alias."""
    alias = group.alias
    now = time.monotonic()
    interval = conf.DEGRADED_LOG_INTERVAL
    names = ", ".join(repr(p.name) for p in group.plans)
    with _log_lock:
        last = _last_warning.get(alias)
        if last is not None and now - last < interval:
            _unreported[alias] = _unreported.get(alias, 0) + 1
            logger.debug("database %r failed again, lookups %s degraded: %s", alias, names, error)
            return
        _last_warning[alias] = now
        unreported = _unreported.pop(alias, 0)
    logger.warning(
        "crossprefetch: database %r failed (%s); lookups %s are degraded: their keys read as "
        "missing%s%s. Next warning about this database in %g s at the earliest.",
        alias,
        error,
        names,
        f" ({unreported} more failure(s) since the last warning)" if unreported else "",
        f"; its circuit breaker is open for {conf.BREAKER_RESET:g} s" if opened else "",
        interval,
    )


def reset() -> None:
    """Forget the warnings already given (for tests)."""
    with _log_lock:
        _last_warning.clear()
        _unreported.clear()
