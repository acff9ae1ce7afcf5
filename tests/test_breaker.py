"""The circuit-breaker primitive: consecutive failures open it, one trial after the reset."""

from __future__ import annotations

import threading
from typing import Any

from crossprefetch._fetch.breaker import Breakers


def test_consecutive_failures_open_it(settings: Any) -> None:
    settings.CROSSPREFETCH = {"BREAKER_FAILURES": 3, "BREAKER_RESET": 3600}
    breakers = Breakers("database")
    assert [breakers.failure("a") for _ in range(3)] == [False, False, True]
    assert not breakers.allow("a")
    assert breakers.is_open("a")
    assert breakers.allow("b")  # per alias


def test_a_success_resets_the_count(settings: Any) -> None:
    settings.CROSSPREFETCH = {"BREAKER_FAILURES": 2, "BREAKER_RESET": 3600}
    breakers = Breakers("database")
    for _ in range(5):
        breakers.failure("a")
        breakers.success("a")
    assert breakers.allow("a")
    assert not breakers.is_open("a")


def test_one_trial_after_the_reset_time(settings: Any) -> None:
    settings.CROSSPREFETCH = {"BREAKER_FAILURES": 1, "BREAKER_RESET": 0}
    breakers = Breakers("database")
    breakers.failure("a")
    settings.CROSSPREFETCH = {"BREAKER_FAILURES": 1, "BREAKER_RESET": 3600}
    assert not breakers.allow("a")
    settings.CROSSPREFETCH = {"BREAKER_FAILURES": 1, "BREAKER_RESET": 0}
    assert breakers.allow("a")  # the trial
    assert breakers.failure("a")  # failed: open again, for another reset time
    settings.CROSSPREFETCH = {"BREAKER_FAILURES": 1, "BREAKER_RESET": 3600}
    assert not breakers.allow("a")
    settings.CROSSPREFETCH = {"BREAKER_FAILURES": 1, "BREAKER_RESET": 0}
    assert breakers.allow("a")
    breakers.success("a")  # the trial succeeded: closed
    assert not breakers.is_open("a")


def test_concurrent_callers_get_a_single_trial(settings: Any) -> None:
    settings.CROSSPREFETCH = {"BREAKER_FAILURES": 1, "BREAKER_RESET": 0}
    breakers = Breakers("database")
    breakers.failure("a")
    settings.CROSSPREFETCH = {"BREAKER_FAILURES": 1, "BREAKER_RESET": 1}
    breakers._states["a"].opened_at = 0.0  # opened long ago: the reset time has passed
    start = threading.Barrier(16)
    allowed: list[bool] = []

    def ask() -> None:
        start.wait()
        allowed.append(breakers.allow("a"))

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert allowed.count(True) == 1
