"""Instruments shared by the ``demo`` and ``benchmark`` commands and the example's tests.

Queries are observed with connection execute-wrappers installed on every alias (the way
django-read-only watches all databases), so a count covers every database at once and
costs nothing when no wrapper is installed: timed runs carry no counting wrapper.
"""

from __future__ import annotations

import gc
import json
import statistics
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any
from urllib.parse import urlsplit

from django.db import connections
from django.test import Client

ExecuteWrapper = Callable[[Callable[..., Any], str, Any, bool, dict[str, Any]], Any]


@contextmanager
def _wrap_every_alias(make_wrapper: Callable[[str], ExecuteWrapper]) -> Iterator[None]:
    with ExitStack() as stack:
        for alias in connections:
            stack.enter_context(connections[alias].execute_wrapper(make_wrapper(alias)))
        yield


class QueryCounter:
    """Count the queries sent to each database alias while the context is active."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def __getitem__(self, alias: str) -> int:
        return self.counts[alias]

    @contextmanager
    def __call__(self) -> Iterator[QueryCounter]:
        def make_wrapper(alias: str) -> ExecuteWrapper:
            def count(
                execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
            ) -> Any:
                self.counts[alias] += 1
                return execute(sql, params, many, context)

            return count

        with _wrap_every_alias(make_wrapper):
            yield self


@contextmanager
def simulated_latency(milliseconds: float) -> Iterator[None]:
    """Delay every query of every alias by a fixed round trip, as a remote database would.

    Local databases answer in microseconds; real deployments pay a network round trip per
    query, which is what makes per-row lookups expensive. The delay is a sleep before the
    query is sent: simulated, and always labelled so in the output.
    """
    if milliseconds <= 0:
        yield
        return
    seconds = milliseconds / 1000

    def make_wrapper(alias: str) -> ExecuteWrapper:
        def delay(
            execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
        ) -> Any:
            time.sleep(seconds)
            return execute(sql, params, many, context)

        return delay

    with _wrap_every_alias(make_wrapper):
        yield


def comparable_payload(content: bytes) -> Any:
    """The parts of a paginated response that must be identical across endpoints.

    Key order is kept (pairs, not dicts), so two payloads compare equal only when their JSON
    is the same text. The ``next``/``previous`` links are reduced to their query strings:
    they necessarily name the endpoint they belong to.
    """
    pairs = json.loads(content, object_pairs_hook=lambda pairs: pairs)
    if not isinstance(pairs, list) or not all(isinstance(p, tuple) for p in pairs):
        return pairs
    return [
        (key, urlsplit(value).query if key in {"next", "previous"} and value else value)
        for key, value in pairs
    ]


def timed_get(client: Client, url: str) -> tuple[float, bytes]:
    """One GET through the whole stack (URL resolution, view, pagination, rendering)."""
    start = time.perf_counter()
    response = client.get(url)
    elapsed = time.perf_counter() - start
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} answered {response.status_code}: {response.content[:500]!r}")
    return elapsed, response.content


def peak_memory(client: Client, url: str) -> int:
    """Bytes allocated at the peak of one request, above what was allocated before it.

    Measured in a separate, untimed request: tracemalloc slows Python down several times.
    """
    gc.collect()
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        baseline, _ = tracemalloc.get_traced_memory()
        client.get(url)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return max(peak - baseline, 0)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def format_ms(seconds: float) -> str:
    milliseconds = seconds * 1000
    if milliseconds >= 100:
        return f"{milliseconds:,.0f} ms"
    if milliseconds >= 10:
        return f"{milliseconds:.1f} ms"
    return f"{milliseconds:.2f} ms"


def format_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:,.2f} GiB"
