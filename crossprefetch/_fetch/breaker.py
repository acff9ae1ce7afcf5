"""Circuit breakers: stop asking a server that keeps failing, and ask again later.

One :class:`Breakers` registry per kind of server (databases, caches), one breaker per
alias, per process. ``BREAKER_FAILURES`` consecutive failures open a breaker; while it is
open, :meth:`Breakers.allow` says no, so callers skip the server instead of waiting for it
to fail again. ``BREAKER_RESET`` seconds after it opened, one caller is let through as a
trial (*half-open*): its success closes the breaker, its failure opens it for another
``BREAKER_RESET`` seconds. The others keep skipping until the trial has answered.

Settings are read on each call, so ``override_settings`` applies to breakers already open.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from crossprefetch.conf import conf


@dataclass
class _State:
    failures: int = 0
    #: ``time.monotonic()`` when the breaker opened; ``None`` while it is closed
    opened_at: float | None = None
    #: ``time.monotonic()`` when the trial was let through, if one is under way
    trial_at: float | None = None


class Breakers:
    """The breakers of one kind of server, by alias; every method is thread-safe."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._states: dict[str, _State] = {}
        self._lock = threading.Lock()

    def allow(self, alias: str) -> bool:
        """Whether to send a request to ``alias`` now; a ``True`` while open is the trial."""
        with self._lock:
            state = self._states.get(alias)
            if state is None or state.opened_at is None:
                return True
            now = time.monotonic()
            # a trial that never reported (its caller raised something else) expires too
            since = state.opened_at if state.trial_at is None else state.trial_at
            if now - since < conf.BREAKER_RESET:
                return False
            state.trial_at = now
            return True

    def success(self, alias: str) -> None:
        """The server answered: close the breaker and forget earlier failures."""
        state = self._states.get(alias)
        if state is None or (state.failures == 0 and state.opened_at is None):
            return  # the common case, without the lock
        with self._lock:
            self._states.pop(alias, None)

    def failure(self, alias: str) -> bool:
        """The server failed; returns whether this failure opened (or re-opened) the breaker."""
        with self._lock:
            state = self._states.setdefault(alias, _State())
            state.failures += 1
            if state.opened_at is not None:  # the trial failed
                state.opened_at = time.monotonic()
                state.trial_at = None
                return True
            if state.failures >= conf.BREAKER_FAILURES:
                state.opened_at = time.monotonic()
                return True
            return False

    def is_open(self, alias: str) -> bool:
        state = self._states.get(alias)
        return state is not None and state.opened_at is not None

    def reset(self) -> None:
        """Close every breaker of this kind (for tests)."""
        with self._lock:
            self._states.clear()


databases = Breakers("database")
caches = Breakers("cache")
