"""The failure policy of the fetch chain: a database that is out degrades its lookups.

For a group whose spec says ``on_error="degrade"``, an outage of its database reported by
the layers below (refused connection, lost server, cancelled statement, a deadline) does
not fail the request: the group's plans get no rows, so every key reads as missing and the
fields render their fallback or default. The plans are reported degraded
(:attr:`Fetched.degraded <crossprefetch._fetch.base.Fetched.degraded>`), which the cache
above never stores. An error that says the query is wrong (a missing table:
:func:`crossprefetch._fetch.errors.kind`) is raised even so.

The decision is per request: under the coalescing layer, the outage layer
(:mod:`crossprefetch._fetch.outages`) counts each query sent once against the alias's
circuit breaker and bulkhead. An open breaker is answered here before the request joins a
batch, so a dead database costs nothing per request until the trial after
``BREAKER_RESET``. ``"raise"`` groups pass through untouched: their error propagates as
it always has.

One WARNING per alias per ``DEGRADED_LOG_INTERVAL`` on the ``crossprefetch`` logger.
"""

from __future__ import annotations

from django.db import DatabaseError

from crossprefetch._fetch import breaker, errors
from crossprefetch._fetch.base import Fetch, Fetched
from crossprefetch._groups import Group
from crossprefetch._observe.throttle import ThrottledWarning
from crossprefetch.conf import conf


class FailureLayer:
    """Degrade a group whose database is out, or whose query was not sent."""

    def __init__(self, inner: Fetch) -> None:
        self.inner = inner

    def __call__(self, group: Group) -> Fetched:
        if not group.keys or group.spec.error_policy() != "degrade":
            return self.inner(group)
        alias = group.alias
        if breaker.databases.refuses(alias):
            return _degraded(group, str(errors.breaker_open(alias)), breaker_open=True)
        try:
            return self.inner(group)
        except errors.BreakerOpen as exc:
            return _degraded(group, str(exc), breaker_open=True)
        except errors.BulkheadFull as exc:
            _warn(group, str(exc), failed=False)
            return _degraded(group, str(exc))
        except DatabaseError as exc:
            if errors.kind(exc) == "bug":
                raise
            error = f"{type(exc).__name__}: {str(exc).strip()}"
            _warn(group, error)
            return _degraded(group, error)


def _degraded(group: Group, error: str, *, breaker_open: bool = False) -> Fetched:
    for plan in group.plans:
        stats = plan.stats
        if stats is not None:
            stats.breaker_open = breaker_open
            stats.error = error
    return Fetched(group.empty_rows(), 0, frozenset(p.name for p in group.plans))


_warnings = ThrottledWarning("database", lambda: conf.DEGRADED_LOG_INTERVAL)


def _warn(group: Group, error: str, *, failed: bool = True) -> None:
    """Log the failure (or the query not sent) at most once per ``DEGRADED_LOG_INTERVAL``
    per alias."""
    alias = group.alias
    names = ", ".join(repr(p.name) for p in group.plans)
    if not failed:
        _warnings.warn(
            alias,
            f"crossprefetch: lookups {names} are degraded without asking database {alias!r} "
            f'({error}; CROSSPREFETCH["MAX_CONCURRENT"]): their keys read as missing',
            f"lookups {names} degraded without asking database {alias!r}: {error}",
        )
        return
    opened = (
        f"; its circuit breaker is open for {conf.BREAKER_RESET:g} s"
        if breaker.databases.is_open(alias)
        else ""
    )
    _warnings.warn(
        alias,
        f"crossprefetch: database {alias!r} failed ({error}); lookups {names} are degraded: "
        f"their keys read as missing{opened}",
        f"database {alias!r} failed again, lookups {names} degraded: {error}",
    )


def reset() -> None:
    """Forget the warnings already given (for tests)."""
    _warnings.reset()
