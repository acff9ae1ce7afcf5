"""The failure policy of the fetch chain: a database that is out degrades its lookups.

For a group whose spec says ``on_error="degrade"``, an outage of its database reported by
the layers below (refused connection, lost server, cancelled statement, a deadline) does
not fail the request: the group's plans get no rows, so every key reads as missing and the
fields render their fallback or default. The plans are reported degraded
(:attr:`Fetched.degraded <crossprefetch._fetch.base.Fetched.degraded>`), which the cache
above never stores. A read of a filter or an ordering cannot degrade that way (a list
filtered without its filter is a wrong answer): its
:meth:`~crossprefetch._fetch.reads.Read.degraded` raises, and the filter answers 503. An
error that says the query is wrong (a missing table: :func:`crossprefetch._fetch.errors.kind`)
is raised even so.

The decision is per request: under the coalescing layer, the outage layer
(:mod:`crossprefetch._fetch.outages`) counts each query sent once against the alias's
circuit breaker and bulkhead. An open breaker is answered here before the request joins a
batch, so a dead database costs nothing per request until the trial after
``BREAKER_RESET``. ``"raise"`` specs pass through untouched: their error propagates as
it always has.

One WARNING per alias per ``DEGRADED_LOG_INTERVAL`` on the ``crossprefetch`` logger.
"""

from __future__ import annotations

from django.db import DatabaseError

from crossprefetch._fetch import breaker, errors
from crossprefetch._fetch.base import Fetch, Fetched, Unit
from crossprefetch._observe.throttle import ThrottledWarning
from crossprefetch.conf import conf


class FailureLayer:
    """Degrade a unit whose database is out, or whose query was not sent."""

    def __init__(self, inner: Fetch) -> None:
        self.inner = inner

    def __call__(self, unit: Unit) -> Fetched:
        if unit.empty or unit.spec.error_policy() != "degrade":
            return self.inner(unit)
        alias = unit.alias
        if breaker.databases.refuses(alias):
            return unit.degraded(errors.Failure.of(errors.breaker_open(alias), breaker_open=True))
        try:
            return self.inner(unit)
        except errors.BreakerOpen as exc:
            return unit.degraded(errors.Failure.of(exc, breaker_open=True))
        except errors.BulkheadFull as exc:
            failure = errors.Failure.of(exc)
            _warn(unit, failure, failed=False)
            return unit.degraded(failure)
        except DatabaseError as exc:
            if errors.kind(exc) == "bug":
                raise
            failure = errors.Failure.of(exc)
            _warn(unit, failure)
            return unit.degraded(failure)


_warnings = ThrottledWarning("database", lambda: conf.DEGRADED_LOG_INTERVAL)


def _warn(unit: Unit, error: errors.Failure, *, failed: bool = True) -> None:
    """Log the failure (or the query not sent) at most once per ``DEGRADED_LOG_INTERVAL``
    per alias."""
    alias = unit.alias
    names = ", ".join(map(repr, unit.names))
    if not failed:
        _warnings.warn(
            alias,
            f"crossprefetch: {unit.kind} {names} are degraded without asking database "
            f'{alias!r} ({error}; CROSSPREFETCH["MAX_CONCURRENT"]): {unit.outcome}',
            f"{unit.kind} {names} degraded without asking database {alias!r}: {error}",
        )
        return
    opened = (
        f"; its circuit breaker is open for {conf.BREAKER_RESET:g} s"
        if breaker.databases.is_open(alias)
        else ""
    )
    _warnings.warn(
        alias,
        f"crossprefetch: database {alias!r} failed ({error}); {unit.kind} {names} are "
        f"degraded: {unit.outcome}{opened}",
        f"database {alias!r} failed again, {unit.kind} {names} degraded: {error}",
    )


def reset() -> None:
    """Forget the warnings already given (for tests)."""
    _warnings.reset()
