"""Warnings about a failing server, at most one per server per interval.

A database or cache that fails, fails for every request: one WARNING per alias per
interval says so, the repeats go to DEBUG, and the next WARNING counts them. Used by the
failure policy (databases) and the cache layer (caches).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger("crossprefetch")


class ThrottledWarning:
    """One WARNING per alias per ``interval()`` seconds about one kind of server.

    Invariants, under ``_lock``: ``_last[alias]`` is when the last WARNING about
    ``alias`` was given; ``_unreported[alias]`` counts the failures logged at DEBUG since.
    """

    def __init__(self, kind: str, interval: Callable[[], float]) -> None:
        #: "database", "cache": how the WARNING names the server
        self.kind = kind
        self.interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._unreported: dict[str, int] = {}

    def warn(self, alias: str, message: str, again: str) -> None:
        """Log ``message`` as a WARNING unless one about ``alias`` is recent, else ``again``
        at DEBUG. Both are whole sentences without their final period."""
        now = time.monotonic()
        interval = self.interval()
        with self._lock:
            last = self._last.get(alias)
            if last is not None and now - last < interval:
                self._unreported[alias] = self._unreported.get(alias, 0) + 1
                unreported = -1
            else:
                self._last[alias] = now
                unreported = self._unreported.pop(alias, 0)
        if unreported < 0:
            logger.debug("%s.", again)
            return
        logger.warning(
            "%s%s. Next warning about this %s in %g s at the earliest.",
            message,
            f" ({unreported} more failure(s) since the last warning)" if unreported else "",
            self.kind,
            interval,
        )

    def reset(self) -> None:
        """Forget the warnings already given (for tests)."""
        with self._lock:
            self._last.clear()
            self._unreported.clear()
