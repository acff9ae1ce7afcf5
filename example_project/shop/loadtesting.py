"""A bounded HTTP load: how a served example behaves under many concurrent clients.

``manage.py loadurl`` drives it. Each of ``concurrency`` clients sends its next GET as soon
as its previous one answered, until ``requests`` were sent or ``max_seconds`` passed; every
non-200 answer and every failed request counts as an error. Latencies are measured per
request, so p50/p99 include the time a request waited for the server under that load.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx


@dataclass
class LoadResult:
    """What the load measured: answers by status, errors, throughput and latency."""

    url: str
    concurrency: int
    sent: int = 0
    seconds: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    #: the first failure of each kind: seconds into the load, and what happened
    first_failures: dict[str, str] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return self.sent - self.statuses["200"]

    @property
    def requests_per_second(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def percentile(self, p: int) -> float:
        """The ``p``-th percentile latency in ms (0 without requests)."""
        if len(self.latencies_ms) < 2:
            return self.latencies_ms[0] if self.latencies_ms else 0.0
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[p - 1]

    def report(self) -> str:
        statuses = ", ".join(f"{status}: {n}" for status, n in sorted(self.statuses.items()))
        return (
            f"{self.url}: {self.sent} requests from {self.concurrency} clients in "
            f"{self.seconds:.1f} s\n"
            f"errors: {self.errors} ({statuses})\n"
            f"requests/s: {self.requests_per_second:.1f}\n"
            f"latency p50: {self.percentile(50):.1f} ms, p99: {self.percentile(99):.1f} ms"
            + "".join(f"\nfirst {k}: {v}" for k, v in sorted(self.first_failures.items()))
        )


async def load(
    url: str, *, requests: int, concurrency: int, max_seconds: float, timeout: float
) -> LoadResult:
    """Send up to ``requests`` GETs to ``url`` from ``concurrency`` clients at once."""
    result = LoadResult(url, concurrency)
    remaining = requests
    started = time.perf_counter()
    deadline = started + max_seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:

        async def client_loop() -> None:
            nonlocal remaining
            while remaining > 0 and time.perf_counter() < deadline:
                remaining -= 1
                sent = time.perf_counter()
                try:
                    response = await client.get(url)
                    status = str(response.status_code)
                    failure = "" if status == "200" else " ".join(response.text.split())[:200]
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                    failure = repr(exc.__cause__ or exc)
                if failure and status not in result.first_failures:
                    at = time.perf_counter() - started
                    result.first_failures[status] = f"after {at:.1f} s: {failure}"
                result.latencies_ms.append((time.perf_counter() - sent) * 1000)
                result.statuses[status] += 1
                result.sent += 1

        await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result
