"""System checks for the failure-policy settings: ``ON_ERROR``, ``TIMEOUT``, the breaker and
the bulkhead (``MAX_CONCURRENT``).

Registered by the app config; ids are listed in the docs and never reused.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from crossprefetch.spec import ON_ERROR_CHOICES

_NOT_GIVEN = object()


def check_failure_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Each failure-policy setting, if given, has a value crossprefetch can use."""
    given = getattr(settings, "CROSSPREFETCH", {})
    if not isinstance(given, dict):
        return []
    messages: list[checks.CheckMessage] = []

    def error(name: str, problem: str, hint: str, check_id: str) -> None:
        messages.append(
            checks.Error(
                f"CROSSPREFETCH[{name!r}] = {given[name]!r}: {problem}",
                hint=hint,
                id=check_id,
            )
        )

    on_error = given.get("ON_ERROR", _NOT_GIVEN)
    if on_error is not _NOT_GIVEN and on_error not in ON_ERROR_CHOICES:
        error(
            "ON_ERROR",
            "not a failure policy.",
            "Use 'raise' (a failing database fails the request) or 'degrade' (its lookups' "
            "keys read as missing).",
            "crossprefetch.E201",
        )
    timeout = given.get("TIMEOUT", _NOT_GIVEN)
    if timeout is not _NOT_GIVEN and timeout is not None and not _number(timeout, minimum=0):
        error(
            "TIMEOUT",
            "not a number of seconds.",
            "Use a positive number of seconds, such as 0.5, or None for no timeout.",
            "crossprefetch.E202",
        )
    failures = given.get("BREAKER_FAILURES", _NOT_GIVEN)
    if failures is not _NOT_GIVEN and not _positive(failures):
        error(
            "BREAKER_FAILURES",
            "not a positive whole number of failures.",
            "Use the number of consecutive failures that open a circuit breaker, such as 5.",
            "crossprefetch.E203",
        )
    reset = given.get("BREAKER_RESET", _NOT_GIVEN)
    if reset is not _NOT_GIVEN and not _number(reset, minimum=0):
        error(
            "BREAKER_RESET",
            "not a number of seconds.",
            "Use the seconds an open circuit breaker waits before its trial, such as 30.",
            "crossprefetch.E204",
        )
    concurrent = given.get("MAX_CONCURRENT", _NOT_GIVEN)
    if concurrent is not _NOT_GIVEN:
        problem = _max_concurrent_problem(concurrent)
        if problem:
            error(
                "MAX_CONCURRENT",
                problem,
                "Use the number of queries of degrading specs each process may have in flight "
                "on one database, such as 10, or a dict of database alias to number, such as "
                '{"reference": 4}.',
                "crossprefetch.E205",
            )
    return messages


def _max_concurrent_problem(value: Any) -> str:
    """What is wrong with a ``MAX_CONCURRENT`` value; ``""`` when nothing is."""
    if isinstance(value, dict):
        unknown = sorted(repr(alias) for alias in value if alias not in settings.DATABASES)
        if unknown:
            return f"names no database of settings.DATABASES: {', '.join(unknown)}."
        wrong = sorted(repr(alias) for alias, number in value.items() if not _positive(number))
        if wrong:
            return f"not a positive whole number for {', '.join(wrong)}."
        return ""
    if not _positive(value):
        return "not a positive whole number, nor a dict of database alias to one."
    return ""


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _number(value: Any, *, minimum: float) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= minimum
