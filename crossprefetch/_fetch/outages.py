"""The outage layer of the fetch chain: the breaker's bookkeeping and the bulkhead, per query.

It sits under the coalescing layer, right above the database, so it sees each query
actually sent once, however many coalesced requests share it: one failed query is one
failure of the alias's circuit breaker (:mod:`crossprefetch._fetch.breaker`), one query
in flight takes one place of its bulkhead (:mod:`crossprefetch._fetch.bulkhead`). The
failure policy above it decides, for each request, what the outcome means to that request
(degrade or raise).

For a unit (a group with keys, a read) of a degrading spec:

1. the breaker gives a :class:`~crossprefetch._fetch.breaker.Permit`, or the query is not
   sent (:class:`~crossprefetch._fetch.errors.BreakerOpen`);
2. the bulkhead gives a place, or the query is not sent
   (:class:`~crossprefetch._fetch.errors.BulkheadFull`) and the permit is released;
3. the query's outcome is reported with the permit: a success; an outage
   (:func:`~crossprefetch._fetch.errors.kind`) is a failure; any other error, or an
   interruption, decides nothing. The place is given back in a ``finally``.

``"raise"`` specs pass through: they neither consult nor feed the breaker, and they are
not limited.
"""

from __future__ import annotations

from django.db import DatabaseError, connections

from crossprefetch._fetch import breaker, bulkhead, errors
from crossprefetch._fetch.base import Fetch, Fetched, Unit


class OutageLayer:
    """Count each query's outage once, and bound the queries in flight per alias."""

    def __init__(self, inner: Fetch) -> None:
        self.inner = inner

    def __call__(self, unit: Unit) -> Fetched:
        if unit.empty or unit.spec.error_policy() != "degrade":
            return self.inner(unit)
        alias = unit.alias
        breakers = breaker.databases
        permit = breakers.allow(alias)
        if permit is None:
            raise errors.breaker_open(alias)
        decided = False
        try:
            bulkhead.databases.acquire(alias)
            try:
                fetched = self.inner(unit)
            except DatabaseError as exc:
                if errors.kind(exc) == "outage":
                    decided = True
                    breakers.failure(permit)
                    _drop_if_broken(alias)
                raise
            finally:
                bulkhead.databases.release(alias)
            decided = True
            breakers.success(permit)
            return fetched
        finally:
            if not decided:
                breakers.release(permit)


def _drop_if_broken(alias: str) -> None:
    """Close this thread's connection if the failure left it unusable, so the next request
    connects afresh.

    Only a connection the failure happened on (Django marks it ``errors_occurred``): a query
    run on a deadline worker (:mod:`crossprefetch._fetch.workers`) leaves the request's own
    connection untouched, and asking that one would wait for the same dead server. Not
    inside an atomic block: the transaction's owner must see that it lost it.
    """
    connection = connections[alias]
    if (
        connection.connection is None
        or connection.in_atomic_block
        or not connection.errors_occurred
    ):
        return
    try:
        if connection.is_usable():
            connection.errors_occurred = False
        else:
            connection.close()
    except DatabaseError:
        pass
