"""``manage.py benchmark_aggregates``: customers with aggregates of their events, two ways.

Not a test: a measurement. In one process, on the same seeded data, through the same stack
(see :mod:`shop.comparison`: the test client, the DRF view, pagination, serialization,
rendering), it times a page of customers with their event counts, totals and last event

* across the databases: ``customers/``, the events aggregated in ``timeseries`` by
  ``CrossDBAggregate``, one grouped query for the page's keys;
* in one database: ``joined-customers/``, ``annotate()`` through the ``JoinedOrderEvent``
  join (a ``LEFT JOIN … GROUP BY``): what the two-database design is compared against;

plain, filtered by an aggregate (``?events__gte=…``, which keeps the keys whose aggregate
passes, and ``?events__lte=…``, which keeps the customers without events too), and ordered
by one (``?ordering=-spent``). Prints Markdown: each variant's queries per database, its
median, and its ratio to the join; with ``--breakdown`` (the default) where the time goes,
phase by phase (see :mod:`shop.aggregate_breakdown`). ``--json FILE`` also writes the
figures. The backend is whatever the example's settings point at.
"""

from __future__ import annotations

import time
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import CommandError
from django.test import Client

from crossprefetch.conf import conf
from shop.comparison import Measurement, Plan, Variant, compare, identical
from shop.management.commands._options import count
from shop.management.commands._report import ReportCommand
from shop.management.commands.benchmark import command_line, environment
from shop.measuring import format_ms
from shop.pagination import EventPagination
from shop.seeding import Dataset, prepare_databases, seed

ALIASES = ("default", "timeseries")
TIMES = "\N{MULTIPLICATION SIGN}"


def _pair(key: str, query: str = "") -> tuple[Variant, Variant]:
    """crossprefetch's variant and the join's, serving the same JSON."""
    family = key or "plain"
    ours = Variant(
        f"aggregates{'_' + key if key else ''}",
        f"crossprefetch{', ?' + query if query else ''}",
        "shop:customer-list",
        query=query,
        family=family,
    )
    theirs = Variant(
        f"annotate_join{'_' + key if key else ''}",
        f"one database, annotate() through the join{', ?' + query if query else ''}",
        "shop:joined-customer-list",
        query=query,
        family=family,
    )
    return ours, theirs


#: (label, target ratio, crossprefetch's variant, the join's)
PAIRS: list[tuple[str, float, Variant, Variant]] = [
    ("page of customers with their aggregates", 1.50, *_pair("")),
    ("filtered: keys whose aggregate passes", 2.00, *_pair("filtered", "events__gte=12")),
    ("filtered: customers without events kept", 2.00, *_pair("kept", "events__lte=5")),
    ("ordered by an aggregate", 2.00, *_pair("ordered", "ordering=-spent")),
]


class Command(ReportCommand):
    help = (
        "Benchmark a page of customers with aggregates of their events in another database "
        "(CrossDBAggregate) against annotate() through a join in one database. Prints Markdown."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--customers", type=count, default=10_000, help="customers (default: 10000)"
        )
        parser.add_argument(
            "--events", type=count, default=100_000, help="order events (default: 100000)"
        )
        parser.add_argument("--page-size", type=count, default=100, help="default: 100")
        parser.add_argument("--repeat", type=count, default=15, help="timed runs (default: 15)")
        parser.add_argument(
            "--no-breakdown", action="store_true", help="skip the phase-by-phase replay"
        )
        parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        if not 0 < options["page_size"] <= EventPagination.max_page_size:
            raise CommandError(f"--page-size: 1 to {EventPagination.max_page_size}.")
        if options["customers"] > conf.MAX_FILTER_KEYS:
            raise CommandError(
                f"--customers: at most {conf.MAX_FILTER_KEYS:,} "
                '(CROSSPREFETCH["MAX_FILTER_KEYS"]): more would be refused with a 400.'
            )
        self._report(options, render_markdown)

    def _run(self, options: dict[str, Any]) -> dict[str, Any]:
        from shop.aggregate_breakdown import breakdown

        started = time.perf_counter()
        prepare_databases(ALIASES)
        measured = environment()
        dataset = Dataset(options["customers"], options["events"])
        self._progress(f"Seeding {dataset.customers:,} customers, {dataset.events:,} events…")
        seed(dataset)
        self._progress("\n")
        plan = Plan(repeat=max(options["repeat"], 1), memory=False)
        variants = [variant for _, _, ours, theirs in PAIRS for variant in (ours, theirs)]
        page_size = options["page_size"]
        self._progress(f"Page of {page_size:,} ")
        measurements = compare(variants, page_size, plan, client=Client(), progress=self._progress)
        self._progress("\n")
        by_key = {m.variant.key: m for m in measurements}
        breakdowns = []
        if not options["no_breakdown"]:
            for label, _, ours, theirs in PAIRS:
                self._progress(f"Phase by phase: {label}\n")
                phases = breakdown((ours, theirs), page_size, plan.repeat)
                breakdowns.append(
                    {
                        "figure": label,
                        "phases_ms": {
                            key: {phase: round(s * 1000, 4) for phase, s in times.items()}
                            for key, times in phases.items()
                        },
                        "request_ms": {key: round(by_key[key].median * 1000, 4) for key in phases},
                    }
                )
        return {
            "command": command_line(),
            "environment": measured,
            "settings": {
                "customers": dataset.customers,
                "events": dataset.events,
                "page_size": page_size,
                "repeat": plan.repeat,
            },
            "duration_seconds": round(time.perf_counter() - started, 1),
            "identical_output": identical(measurements),
            "pairs": [
                _pair_json(label, target, by_key[o.key], by_key[t.key])
                for label, target, o, t in PAIRS
            ],
            "breakdowns": breakdowns,
        }


def _variant_json(measurement: Measurement) -> dict[str, Any]:
    return {
        "variant": measurement.variant.key,
        "label": measurement.variant.label,
        "url": measurement.variant.query,
        "queries": measurement.queries,
        "median_ms": round(measurement.median * 1000, 4),
        "runs_ms": [round(t * 1000, 4) for t in measurement.times],
    }


def _pair_json(label: str, target: float, ours: Measurement, theirs: Measurement) -> dict[str, Any]:
    ratio = ours.median / theirs.median
    return {
        "figure": label,
        "target": target,
        "ratio": round(ratio, 3),
        "met": ratio <= target,
        "crossprefetch": _variant_json(ours),
        "join": _variant_json(theirs),
    }


def _queries(queries: dict[str, int]) -> str:
    return ", ".join(f"{n} on `{alias}`" for alias, n in queries.items() if n) or "none"


def render_markdown(report: dict[str, Any]) -> str:
    from shop.aggregate_breakdown import PHASES

    env = report["environment"]
    settings = report["settings"]
    lines = [
        "# crossprefetch aggregates benchmark",
        "",
        f"`{report['command']}`",
        "",
        f"Commit {env['commit']}; {', '.join(f'`{a}`: {d}' for a, d in env['databases'].items())}; "
        f"Python {env['python']}, Django {env['django']}, DRF {env['djangorestframework']}; "
        f"{env['cpu']} ({env['cpus']} CPUs). {settings['customers']:,} customers, "
        f"{settings['events']:,} events, pages of {settings['page_size']:,}, "
        f"median of {settings['repeat']} runs; {report['duration_seconds']} s.",
        "",
        "| figure | target | crossprefetch | one database, `annotate()` through the join | ratio |",
        "|---|--:|---|---|--:|",
    ]
    for pair in report["pairs"]:
        ours, theirs = pair["crossprefetch"], pair["join"]
        query = f" `?{ours['url']}`" if ours["url"] else ""
        lines.append(
            f"| {pair['figure']}{query} | ≤ {pair['target']:.2f}{TIMES} "
            f"| {format_ms(ours['median_ms'] / 1000)} ({_queries(ours['queries'])}) "
            f"| {format_ms(theirs['median_ms'] / 1000)} ({_queries(theirs['queries'])}) "
            f"| **{pair['ratio']:.2f}{TIMES}**{'' if pair['met'] else ' (missed)'} |"
        )
    lines += [
        "",
        f"Identical output (the same JSON from both endpoints, per figure): "
        f"{'yes' if report['identical_output'] else '**no**'}.",
    ]
    for item in report["breakdowns"]:
        keys = list(item["phases_ms"])
        lines += [
            "",
            f"**{item['figure']}**, phase by phase (ms):",
            "",
            "| phase | crossprefetch | through the join |",
            "|---|--:|--:|",
        ]
        for phase, label in PHASES.items():
            cells = " | ".join(f"{item['phases_ms'][key][phase]:.2f}" for key in keys)
            lines.append(f"| {label} | {cells} |")
        replayed = [sum(item["phases_ms"][key].values()) for key in keys]
        rest = " | ".join(
            f"{item['request_ms'][key] - total:.2f}"
            for key, total in zip(keys, replayed, strict=True)
        )
        lines.append(f"| rest of the request | {rest} |")
        whole = " | ".join(f"**{item['request_ms'][key]:.2f}**" for key in keys)
        lines.append(f"| **whole request** | {whole} |")
    return "\n".join(lines) + "\n"
