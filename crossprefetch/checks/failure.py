"""System checks for the failure-policy settings: ``ON_ERROR``, ``TIMEOUT`` and the breaker.

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
    if failures is not _NOT_GIVEN and not (
        isinstance(failures, int) and not isinstance(failures, bool) and failures >= 1
    ):
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
    return messages


def _number(value: Any, *, minimum: float) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= minimum
