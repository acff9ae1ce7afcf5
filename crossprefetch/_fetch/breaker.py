"""Circuit breakers: stop asking a server that keeps failing, and ask again later.

One :class:`Breakers` registry per kind of server (databases, caches), one breaker per
alias, per process. ``BREAKER_FAILURES`` consecutive failures open a breaker; while it is
open, :meth:`Breakers.allow` refuses, so callers skip the server instead of waiting for it
to fail again. ``BREAKER_RESET`` seconds after it opened, one caller is let through as the
*trial* (half-open): its success closes the breaker, its failure opens it for another
``BREAKER_RESET`` seconds. The others keep skipping until the trial has answered.

A caller asks :meth:`~Breakers.allow` before it sends a request and reports how that
request ended with the :class:`Permit` it got: :meth:`~Breakers.success`,
:meth:`~Breakers.failure`, or :meth:`~Breakers.release` when the request decided nothing
(it was not sent, or failed in a way that says nothing about the server). A report counts
only in the *period* its permit was given in: a request that started before the breaker
opened cannot close it by succeeding late, nor re-open it by failing late; only the trial
closes an open breaker.

Settings are read on each call, so ``override_settings`` applies to breakers already open.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from crossprefetch.conf import conf


@dataclass(frozen=True, eq=False)
class Permit:
    """Leave to send one request to ``alias``; compared by identity."""

    alias: str
    #: the breaker's period when the permit was given (see :class:`_State`)
    generation: int
    #: the half-open trial: the one request whose answer decides an open breaker
    trial: bool = False


@dataclass
class _State:
    """One alias's breaker. Invariants (every field written under ``Breakers._lock``):

    - *closed* ⇔ ``opened_at is None``; then ``trial is None`` and ``failures`` counts the
      consecutive failures reported since the last success, ``< BREAKER_FAILURES`` (a
      setting lowered later may leave it above: the next failure opens it).
    - *open* ⇔ ``opened_at`` is set; ``trial`` is the one request let through to decide it
      (``None`` until ``BREAKER_RESET`` has passed, or after a trial that decided nothing),
      given at ``trial_at``. A trial that never reports expires ``BREAKER_RESET`` after it
      was given, and the next caller becomes the trial.
    - ``generation`` changes exactly when the breaker opens or closes; a permit counts only
      while its ``generation`` is the state's. Permits given while open are trials only.
    """

    failures: int = 0
    #: ``time.monotonic()`` when the breaker opened (or re-opened); ``None`` while closed
    opened_at: float | None = None
    trial: Permit | None = None
    trial_at: float = 0.0
    generation: int = 0


class Breakers:
    """The breakers of one kind of server, by alias; every method is thread-safe."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._states: dict[str, _State] = {}
        self._lock = threading.Lock()

    def allow(self, alias: str) -> Permit | None:
        """Leave to send a request to ``alias`` now, or ``None`` to skip it (open)."""
        with self._lock:
            state = self._states.get(alias)
            if state is None:
                return Permit(alias, 0)
            if state.opened_at is None:
                return Permit(alias, state.generation)
            now = time.monotonic()
            since = state.opened_at if state.trial is None else state.trial_at
            if now - since < conf.BREAKER_RESET:
                return None
            state.trial = Permit(alias, state.generation, trial=True)
            state.trial_at = now
            return state.trial

    def refuses(self, alias: str) -> bool:
        """Whether :meth:`allow` would refuse now; reads without the lock or changing anything.

        A fast answer for callers that would otherwise queue before asking: a stale read only
        sends them on to :meth:`allow`, which decides under the lock.
        """
        state = self._states.get(alias)
        if state is None or state.opened_at is None:
            return False
        since = state.opened_at if state.trial is None else state.trial_at
        return time.monotonic() - since < conf.BREAKER_RESET

    def success(self, permit: Permit) -> None:
        """The server answered: the count starts again; the trial's answer closes the breaker."""
        if permit.alias not in self._states:
            return  # the common case: this alias never failed (a dict read is atomic)
        with self._lock:
            state = self._states.get(permit.alias)
            if state is None or permit.generation != state.generation:
                return
            if state.opened_at is None:
                state.failures = 0
            elif state.trial is permit:
                state.failures = 0
                state.opened_at = None
                state.trial = None
                state.generation += 1

    def failure(self, permit: Permit) -> bool:
        """The server failed; returns whether this failure opened (or re-opened) the breaker."""
        with self._lock:
            state = self._states.setdefault(permit.alias, _State())
            if permit.generation != state.generation:
                return False  # sent before the breaker last opened or closed
            if state.opened_at is not None:
                if state.trial is not permit:
                    return False
                state.opened_at = time.monotonic()  # the trial failed: open again
                state.trial = None
                return True
            state.failures += 1
            if state.failures < conf.BREAKER_FAILURES:
                return False
            state.opened_at = time.monotonic()
            state.generation += 1
            return True

    def release(self, permit: Permit) -> None:
        """The request decided nothing; a trial's turn goes to the next caller at once."""
        if not permit.trial:
            return
        with self._lock:
            state = self._states.get(permit.alias)
            if state is not None and state.trial is permit:
                state.trial = None

    def is_open(self, alias: str) -> bool:
        state = self._states.get(alias)
        return state is not None and state.opened_at is not None

    def failures(self, alias: str) -> int:
        """Consecutive failures counted on ``alias`` since its last success."""
        state = self._states.get(alias)
        return 0 if state is None else state.failures

    def reset(self) -> None:
        """Close every breaker of this kind (for tests)."""
        with self._lock:
            self._states.clear()


databases = Breakers("database")
caches = Breakers("cache")
