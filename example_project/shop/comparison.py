"""Side-by-side measurement of endpoints that serve the same JSON, for ``demo`` and ``benchmark``.

Every variant is measured the same way, through the whole stack a client pays for: Django's
test client resolves the URL, runs the DRF view (pagination, serialization of the page) and
renders JSON. For each variant and page size:

1. one counted warm-up request gives the queries per alias and the output, compared across
   variants (the JSON must be identical);
2. timed requests follow, the variants interleaved (a different order each round) so that
   noise from the machine spreads over all of them; the median is reported;
3. optionally, one more request under ``tracemalloc`` gives the peak memory.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.test import Client
from django.urls import reverse

from shop.measuring import (
    QueryCounter,
    comparable_payload,
    median,
    peak_memory,
    simulated_latency,
    timed_get,
)


@dataclass(frozen=True)
class Variant:
    """One way of serving the events: a name for the tables and the list route serving it.

    ``primed`` variants get one extra, unmeasured request first: a warm cache must be warm
    before its queries are counted. ``query`` adds parameters (a filter, an ordering);
    variants of the same ``family`` serve the same JSON.
    """

    key: str
    label: str
    route: str
    primed: bool = False
    query: str = ""
    family: str = "list"

    def url(self, page_size: int) -> str:
        extra = f"&{self.query}" if self.query else ""
        return f"{reverse(self.route)}?page_size={page_size}{extra}"


NAIVE = Variant("naive", "naive per-row lookups", "shop:naive-event-list")
WHOLE_TABLE = Variant("whole_table_dict", "whole-table dict", "shop:whole-table-dict-event-list")
PER_PAGE = Variant("per_page_dict", "hand-written per-page dict", "shop:per-page-dict-event-list")
CROSSPREFETCH = Variant("crossprefetch", "crossprefetch", "shop:event-list")
JOINED = Variant("select_related", "one database, select_related", "shop:joined-event-list")
WARM_CACHE = Variant(
    "crossprefetch_warm_cache", "crossprefetch, warm cache", "shop:cached-event-list", primed=True
)
#: The filter of the article's "pagination accuracy" problem, across databases and joined.
FILTER_QUERY = "customer_tier=gold"
FILTERED = Variant(
    "crossprefetch_filtered",
    f"crossprefetch, ?{FILTER_QUERY}",
    "shop:event-list",
    query=FILTER_QUERY,
    family="filtered",
)
JOINED_FILTERED = Variant(
    "select_related_filtered",
    f"one database, ?{FILTER_QUERY} through the join",
    "shop:joined-event-list",
    query=FILTER_QUERY,
    family="filtered",
)
ORDER_QUERY = "ordering=customer_name"
ORDERED = Variant(
    "crossprefetch_ordered",
    f"crossprefetch, ?{ORDER_QUERY}",
    "shop:event-list",
    query=ORDER_QUERY,
    family="ordered",
)
JOINED_ORDERED = Variant(
    "select_related_ordered",
    f"one database, ?{ORDER_QUERY} through the join",
    "shop:joined-event-list",
    query=ORDER_QUERY,
    family="ordered",
)


@dataclass
class Measurement:
    variant: Variant
    page_size: int
    queries: dict[str, int]
    payload: Any = field(repr=False)
    times: list[float] = field(default_factory=list)
    peak_memory: int | None = None

    @property
    def median(self) -> float:
        return median(self.times)


@dataclass(frozen=True)
class Plan:
    """How hard to measure: ``repeat`` timed runs, fewer for variants that are slow anyway.

    A variant whose warm-up took longer than ``slow_seconds`` gets ``slow_repeat`` runs: at a
    second or more per request, a few runs already give a stable median.
    """

    repeat: int = 15
    slow_seconds: float = 1.0
    slow_repeat: int = 3
    latency_ms: float = 0.0
    memory: bool = True


def _runs(warm_up_seconds: float, queries: int, plan: Plan) -> int:
    """Timed runs for a variant, from its warm-up time plus the round trips it will pay."""
    if warm_up_seconds + queries * plan.latency_ms / 1000 > plan.slow_seconds:
        return max(1, min(plan.repeat, plan.slow_repeat))
    return plan.repeat


def compare(
    variants: Sequence[Variant],
    page_size: int,
    plan: Plan,
    *,
    client: Client | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Measurement]:
    """Measure ``variants`` side by side at one page size; see the module docstring."""
    client = client or Client()
    say = progress or (lambda message: None)
    urls = {variant: variant.url(page_size) for variant in variants}
    measurements: dict[Variant, Measurement] = {}
    runs: dict[Variant, int] = {}
    for variant in variants:
        if variant.primed:
            timed_get(client, urls[variant])
        counter = QueryCounter()
        with counter():
            elapsed, content = timed_get(client, urls[variant])
        measurements[variant] = Measurement(
            variant, page_size, dict(sorted(counter.counts.items())), comparable_payload(content)
        )
        runs[variant] = _runs(elapsed, sum(counter.counts.values()), plan)
    for round_ in range(max(runs.values(), default=0)):
        shift = round_ % len(variants)
        for variant in [*variants[shift:], *variants[:shift]]:
            measurement = measurements[variant]
            if len(measurement.times) >= runs[variant]:
                continue
            gc.collect()
            with simulated_latency(plan.latency_ms):
                elapsed, _ = timed_get(client, urls[variant])
            measurement.times.append(elapsed)
        say(".")
    if plan.memory:
        for variant in variants:
            measurements[variant].peak_memory = peak_memory(client, urls[variant])
    return [measurements[variant] for variant in variants]


def identical(measurements: Sequence[Measurement]) -> bool:
    """Tell whether the variants of each family served the same JSON."""
    first: dict[str, Any] = {}
    return all(first.setdefault(m.variant.family, m.payload) == m.payload for m in measurements)


def warm_cache_works(client: Client | None = None) -> bool:
    """Tell whether crossprefetch's per-key cache serves a repeated page without a query.

    The cached variant is measured only where caching is implemented: a ``cache`` argument
    that is accepted but not yet acted upon would make "warm cache" a mislabelled copy of the
    uncached figure.
    """
    client = client or Client()
    url = WARM_CACHE.url(10)
    timed_get(client, url)
    counter = QueryCounter()
    with counter():
        timed_get(client, url)
    return counter["default"] == 0
