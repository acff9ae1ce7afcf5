"""The bulkhead: at most ``MAX_CONCURRENT`` queries of degrading specs in flight per alias.

A slow or hung reference database holds every request that queries it for up to the
spec's ``timeout``. Without a bound, a burst of requests would park every worker thread
of the process on that one alias. The bulkhead counts, per alias and process, the
queries of ``on_error="degrade"`` specs that have been sent and not yet answered; a
query over the limit is not sent, and its requests degrade at once (resilience4j's
semaphore bulkhead, with no wait). ``"raise"`` specs are not limited: they have asked to
wait for their rows.

A query shared by coalesced requests takes one place, whatever the number of requests.
"""

from __future__ import annotations

import threading

from crossprefetch._fetch import errors
from crossprefetch.conf import max_concurrent


class Bulkhead:
    """Places for queries in flight, by alias; every method is thread-safe.

    Invariants (``_in_flight`` written only under ``_lock``): ``_in_flight[alias]`` is the
    number of :meth:`acquire` calls on ``alias`` that returned (did not raise) and whose
    :meth:`release` has not run; an alias with none has no entry. :meth:`acquire` never
    takes a place past the limit read at that moment (a limit lowered by the settings may
    leave more in flight until they end). Callers release in a ``finally``.
    """

    def __init__(self) -> None:
        self._in_flight: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, alias: str) -> None:
        """Take a place on ``alias``, or raise :exc:`~crossprefetch._fetch.errors.BulkheadFull`."""
        limit = max_concurrent(alias)
        with self._lock:
            in_flight = self._in_flight.get(alias, 0)
            if in_flight < limit:
                self._in_flight[alias] = in_flight + 1
                return
        raise errors.bulkhead_full(alias, in_flight)

    def release(self, alias: str) -> None:
        """Give back a place taken by :meth:`acquire`."""
        with self._lock:
            left = self._in_flight[alias] - 1
            if left:
                self._in_flight[alias] = left
            else:
                del self._in_flight[alias]

    def in_flight(self, alias: str) -> int:
        return self._in_flight.get(alias, 0)


databases = Bulkhead()
