"""The circuit-breaker primitive: consecutive failures open it, one trial after the reset,
and a report counts only in the period its permit was given in."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from crossprefetch._fetch.breaker import Breakers, Permit


def permit(breakers: Breakers, alias: str = "a") -> Permit:
    given = breakers.allow(alias)
    assert given is not None
    return given


def fail(breakers: Breakers, alias: str = "a") -> bool:
    return breakers.failure(permit(breakers, alias))


@pytest.fixture
def reset_passes(settings: Any) -> Any:
    """Set ``BREAKER_RESET`` to 0 (the trial is due) or back to an hour."""

    def set_(passed: bool) -> None:
        settings.CROSSPREFETCH = {"BREAKER_FAILURES": 1, "BREAKER_RESET": 0 if passed else 3600}

    return set_


def test_consecutive_failures_open_it(settings: Any) -> None:
    settings.CROSSPREFETCH = {"BREAKER_FAILURES": 3, "BREAKER_RESET": 3600}
    breakers = Breakers("database")
    assert [fail(breakers) for _ in range(3)] == [False, False, True]
    assert breakers.allow("a") is None
    assert breakers.is_open("a")
    assert breakers.refuses("a")
    assert breakers.allow("b") is not None  # per alias


def test_a_success_resets_the_count(settings: Any) -> None:
    settings.CROSSPREFETCH = {"BREAKER_FAILURES": 2, "BREAKER_RESET": 3600}
    breakers = Breakers("database")
    for _ in range(5):
        fail(breakers)
        breakers.success(permit(breakers))
    assert breakers.failures("a") == 0
    assert breakers.allow("a") is not None
    assert not breakers.is_open("a")


def test_one_trial_after_the_reset_time(reset_passes: Any) -> None:
    breakers = Breakers("database")
    reset_passes(True)
    fail(breakers)
    reset_passes(False)
    assert breakers.allow("a") is None
    reset_passes(True)
    trial = permit(breakers)  # the trial
    assert trial.trial
    assert breakers.failure(trial)  # failed: open again, for another reset time
    reset_passes(False)
    assert breakers.allow("a") is None
    reset_passes(True)
    trial = permit(breakers)
    breakers.success(trial)  # the trial succeeded: closed
    assert not breakers.is_open("a")


def test_only_the_trial_closes_an_open_breaker(reset_passes: Any) -> None:
    breakers = Breakers("database")
    reset_passes(True)
    early = permit(breakers)  # a request sent while closed, which answers late
    fail(breakers)  # another one's failure opens the breaker
    breakers.success(early)
    assert breakers.is_open("a")
    trial = permit(breakers)
    breakers.success(early)  # still not: it is not the trial
    assert breakers.is_open("a")
    breakers.success(trial)
    assert not breakers.is_open("a")


def test_a_late_failure_neither_reopens_nor_counts(settings: Any) -> None:
    settings.CROSSPREFETCH = {"BREAKER_FAILURES": 2, "BREAKER_RESET": 0}
    breakers = Breakers("database")
    late = [permit(breakers) for _ in range(3)]
    assert [breakers.failure(p) for p in late[:2]] == [False, True]
    assert not breakers.failure(late[2])  # sent before it opened: the outage is known
    trial = permit(breakers)
    breakers.success(trial)
    assert not breakers.failure(late[2])  # nor after the trial closed it
    assert breakers.failures("a") == 0


def test_a_trial_that_decided_nothing_passes_the_turn(reset_passes: Any) -> None:
    breakers = Breakers("database")
    reset_passes(True)
    fail(breakers)
    first = permit(breakers)
    breakers.release(first)  # its query was not sent, or said nothing about the server
    reset_passes(False)
    assert breakers.allow("a") is None  # the reset time counts from the opening again...
    breakers._states["a"].opened_at -= 3600  # ...which was long enough ago: a trial is due
    second = permit(breakers)
    assert second.trial
    assert second is not first
    breakers.success(first)  # a released trial decides nothing
    assert breakers.is_open("a")
    breakers.success(second)
    assert not breakers.is_open("a")


def test_concurrent_callers_get_a_single_trial(settings: Any) -> None:
    settings.CROSSPREFETCH = {"BREAKER_FAILURES": 1, "BREAKER_RESET": 0}
    breakers = Breakers("database")
    fail(breakers)
    settings.CROSSPREFETCH = {"BREAKER_FAILURES": 1, "BREAKER_RESET": 1}
    breakers._states["a"].opened_at = 0.0  # opened long ago: the reset time has passed
    start = threading.Barrier(16)
    allowed: list[Permit | None] = []

    def ask() -> None:
        start.wait()
        allowed.append(breakers.allow("a"))

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    trials = [p for p in allowed if p is not None]
    assert len(trials) == 1
    assert trials[0].trial
