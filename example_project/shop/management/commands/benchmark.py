"""``manage.py benchmark``: every way of serving the example's events, side by side.

Not a test: a measurement. In one process, on the same seeded data, through the same stack
(see :mod:`shop.comparison`), it times

* naive per-row lookups,
* a whole-table dict built in ``get_serializer_context()``,
* the hand-written per-page dict (``id__in`` of the page's keys): the reference of every ratio,
* crossprefetch,
* the same data in one database through a real ForeignKey and ``select_related``,
* crossprefetch with a warm per-key cache, where caching is available,
* a page filtered by the customer (``?customer_tier=gold``) and one ordered by the
  customer's name (``?ordering=customer_name``), across the databases with crossprefetch's
  filter backends and through the join in one database, on customer tables of at most
  ``MAX_FILTER_KEYS`` rows (above, crossprefetch refuses such a request with a 400),

for each page size and each size of the customer table, and prints Markdown (``--json FILE``
also writes the figures for machines). The backend is whatever the example's settings point
at: SQLite files by default, PostgreSQL through ``EXAMPLE_DEFAULT_DB_URL`` and
``EXAMPLE_TIMESERIES_DB_URL``.
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
import time
from argparse import ArgumentParser
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from django.core.cache import caches
from django.core.management.base import CommandError
from django.test import Client

from crossprefetch.conf import conf
from shop.comparison import (
    CROSSPREFETCH,
    FILTERED,
    JOINED,
    JOINED_FILTERED,
    JOINED_ORDERED,
    NAIVE,
    ORDERED,
    PER_PAGE,
    WARM_CACHE,
    WHOLE_TABLE,
    Measurement,
    Plan,
    compare,
    identical,
    warm_cache_works,
)
from shop.management.commands._options import count, counts
from shop.management.commands._report import ReportCommand
from shop.measuring import format_bytes, format_ms
from shop.pagination import EventPagination
from shop.seeding import DANGLING_EVERY, Dataset, describe_backend, prepare_databases, seed

ALIASES = ("default", "timeseries")
TIMES = "\N{MULTIPLICATION SIGN}"
BREAKDOWN_PAGE_SIZES = (100, 1000)
FULL = {"page_sizes": [10, 100, 1000, 10_000], "reference_rows": [10_000, 1_000_000], "repeat": 15}
QUICK = {"page_sizes": [10, 100, 1000], "reference_rows": [10_000], "repeat": 5}


@dataclass
class Cell:
    """All variants measured at one page size on one customer table."""

    reference_rows: int
    page_size: int
    measurements: list[Measurement]
    identical: bool

    def get(self, key: str) -> Measurement | None:
        return next((m for m in self.measurements if m.variant.key == key), None)

    def ratio(self, key: str, to: str = PER_PAGE.key) -> float | None:
        measured, reference = self.get(key), self.get(to)
        if measured is None or reference is None:
            return None
        return measured.median / reference.median

    def memory_ratio(self, key: str, to: str = PER_PAGE.key) -> float | None:
        measured, reference = self.get(key), self.get(to)
        if not measured or not reference or not measured.peak_memory or not reference.peak_memory:
            return None
        return measured.peak_memory / reference.peak_memory


class Command(ReportCommand):
    help = (
        "Benchmark crossprefetch against naive per-row lookups, hand-written context dicts "
        "and a single-database select_related, side by side on the same data. Prints Markdown."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--page-sizes",
            type=counts,
            help="comma-separated (default: 10,100,1000,10000)",
        )
        parser.add_argument(
            "--reference-rows",
            type=counts,
            help="sizes of the customer table, comma-separated (default: 10000,1000000)",
        )
        parser.add_argument(
            "--events",
            type=count,
            default=20_000,
            help="order events to seed (default: 20000, at least the largest page)",
        )
        parser.add_argument("--repeat", type=count, help="timed requests per variant (default: 15)")
        parser.add_argument(
            "--latency-ms",
            type=float,
            default=0.0,
            help="simulated round trip added to every query, in milliseconds (default: 0)",
        )
        parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
        parser.add_argument(
            "--quick",
            action="store_true",
            help="defaults of pages 10,100,1000 on 10000 customers, 5 runs: a check, not a "
            "benchmark",
        )
        parser.add_argument(
            "--no-memory", action="store_true", help="skip the tracemalloc pass (faster)"
        )
        parser.add_argument(
            "--filters-only",
            action="store_true",
            help="measure only the filtered and ordered pages and their counterparts through "
            "the join",
        )
        parser.add_argument(
            "--breakdown",
            action="store_true",
            help="also time each phase (count, page, lookups, serialization, rendering) for "
            "the per-page dict, crossprefetch and select_related at pages of 100 and 1000",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        for name, default in (QUICK if options["quick"] else FULL).items():
            if options[name] is None:
                options[name] = default
        if max(options["page_sizes"]) > EventPagination.max_page_size:
            raise CommandError(f"--page-sizes: at most {EventPagination.max_page_size} per page.")
        if options["events"] < max(options["page_sizes"]):
            raise CommandError("--events must be at least the largest page size.")
        if options["latency_ms"] < 0:
            raise CommandError("--latency-ms cannot be negative.")
        self._report(options, render_markdown)

    def _run(self, options: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        prepare_databases(ALIASES)
        measured = environment()  # before measuring: the code loaded is the code measured
        plan = Plan(
            repeat=max(options["repeat"], 1),
            latency_ms=options["latency_ms"],
            memory=not options["no_memory"],
        )
        client = Client()
        cells: list[Cell] = []
        breakdowns: list[dict[str, Any]] = []
        cache_available: bool | None = None
        for reference_rows in sorted(options["reference_rows"]):
            self._progress(f"Seeding {reference_rows:,} customers…")
            seed_started = time.perf_counter()
            seed(Dataset(reference_rows, options["events"]))
            caches["default"].clear()
            self._progress(f" {time.perf_counter() - seed_started:.0f} s\n")
            if cache_available is None:
                cache_available = warm_cache_works(client)
            variants = [NAIVE, WHOLE_TABLE, PER_PAGE, CROSSPREFETCH, JOINED]
            if cache_available:
                variants.append(WARM_CACHE)
            if options["filters_only"]:
                variants = []
            if reference_rows <= conf.MAX_FILTER_KEYS:
                variants += [FILTERED, JOINED_FILTERED, ORDERED, JOINED_ORDERED]
            if not variants:
                raise CommandError(
                    f"--filters-only: {reference_rows:,} customers is more than "
                    'CROSSPREFETCH["MAX_FILTER_KEYS"]; filters would be refused.'
                )
            for page_size in sorted(options["page_sizes"]):
                self._progress(f"  page {page_size:,} ")
                measurements = compare(
                    variants, page_size, plan, client=client, progress=self._progress
                )
                cells.append(Cell(reference_rows, page_size, measurements, identical(measurements)))
                self._progress("\n")
                if options["breakdown"] and page_size in BREAKDOWN_PAGE_SIZES:
                    self._progress(f"  page {page_size:,}, phase by phase\n")
                    if cells[-1].get(PER_PAGE.key) is not None:
                        breakdowns.append(_breakdown_json(cells[-1], plan.repeat))
                    if cells[-1].get(FILTERED.key) is not None:
                        breakdowns.append(_breakdown_json(cells[-1], plan.repeat, filtered=True))
        if not all(cell.identical for cell in cells):
            self.stderr.write("Some variants served different JSON: see 'identical output'.")
        return {
            "command": command_line(),
            "environment": measured,
            "settings": {
                "events": options["events"],
                "repeat": plan.repeat,
                "slow_repeat": plan.slow_repeat,
                "slow_seconds": plan.slow_seconds,
                "simulated_latency_ms": plan.latency_ms,
                "dangling_every": DANGLING_EVERY,
                "warm_cache_measured": bool(cache_available),
            },
            "duration_seconds": round(time.perf_counter() - started, 1),
            "results": [_cell_json(cell) for cell in cells],
            "breakdowns": breakdowns,
            "summary": summary(cells, plan.latency_ms),
        }


def command_line() -> str:
    """The command as typed, with the environment variables that choose the databases."""
    env = [
        f"{name}={shlex.quote(os.environ[name])}"
        for name in ("EXAMPLE_DEFAULT_DB_URL", "EXAMPLE_TIMESERIES_DB_URL")
        if os.environ.get(name)
    ]
    argv = [Path(sys.executable).name, *sys.argv]
    return " ".join([*env, *map(shlex.quote, argv)])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    """The commit measured, marked when the package or the example differ from it."""
    here = Path(__file__).resolve().parent

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=here, capture_output=True, text=True)

    try:
        head = git("rev-parse", "--short", "HEAD")
        if head.returncode:
            return None
        top = git("rev-parse", "--show-toplevel").stdout.strip()
        dirty = git(
            "diff", "--quiet", "HEAD", "--", f"{top}/crossprefetch", f"{top}/example_project"
        )
    except OSError:
        return None
    return head.stdout.strip() + (" with uncommitted changes" if dirty.returncode else "")


def environment() -> dict[str, Any]:
    return {
        "commit": _git_commit(),
        "databases": {alias: describe_backend(alias) for alias in ALIASES},
        "python": platform.python_version(),
        "django": version("django"),
        "djangorestframework": version("djangorestframework"),
        "crossprefetch": version("crossprefetch"),
        "platform": platform.platform(terse=True),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
    }


def _cell_json(cell: Cell) -> dict[str, Any]:
    return {
        "reference_rows": cell.reference_rows,
        "page_size": cell.page_size,
        "identical_output": cell.identical,
        "variants": [
            {
                "variant": m.variant.key,
                "label": m.variant.label,
                "queries": m.queries,
                "median_ms": round(m.median * 1000, 4),
                "runs_ms": [round(t * 1000, 4) for t in m.times],
                "ratio_to_per_page_dict": _round(cell.ratio(m.variant.key)),
                "peak_memory_bytes": m.peak_memory,
            }
            for m in cell.measurements
        ],
    }


def _breakdown_json(cell: Cell, repeat: int, *, filtered: bool = False) -> dict[str, Any]:
    from shop.breakdown import FILTER_VARIANTS, VARIANTS, breakdown

    variants = FILTER_VARIANTS if filtered else VARIANTS
    phases = breakdown(cell.page_size, repeat, variants)
    return {
        "reference_rows": cell.reference_rows,
        "page_size": cell.page_size,
        "variants": [variant.key for variant in variants],
        "phases_ms": {
            key: {phase: round(seconds * 1000, 4) for phase, seconds in times.items()}
            for key, times in phases.items()
        },
        "request_ms": {
            key: round(m.median * 1000, 4) for key in phases if (m := cell.get(key)) is not None
        },
    }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def summary(cells: Sequence[Cell], latency_ms: float) -> list[dict[str, Any]]:
    """The figures the project sets targets for: one row per figure and page size, one value
    per size of the customer table (``unit``: ``"ratio"``, ``"speed-up"`` or ``"bytes"``)."""
    rows: list[dict[str, Any]] = []
    by_page: dict[int, dict[int, Cell]] = {}
    for cell in cells:
        by_page.setdefault(cell.page_size, {})[cell.reference_rows] = cell

    def add(figure: str, target: str, page_size: int, value: Any, unit: str = "ratio") -> None:
        values = {str(size): value(cell) for size, cell in by_page.get(page_size, {}).items()}
        if any(v is not None for v in values.values()):
            rows.append(
                {"figure": figure, "target": target, "page_size": page_size, "unit": unit}
                | {"values": values}
            )

    def peak(key: str) -> Any:
        return lambda c: (m := c.get(key)) and m.peak_memory

    for page_size in (100, 1000):
        add(
            "crossprefetch ÷ hand-written per-page dict, time",
            "≤ 1.05",
            page_size,
            lambda c: _round(c.ratio(CROSSPREFETCH.key), 2),
        )
    for page_size in (100, 1000):
        add(
            "crossprefetch ÷ one database with select_related, time",
            "≤ 0.80",
            page_size,
            lambda c: _round(c.ratio(CROSSPREFETCH.key, JOINED.key), 2),
        )
    add(
        "naive ÷ crossprefetch, time (speed-up)",
        "≥ 25" if latency_ms >= 1 else "≥ 10",
        100,
        lambda c: _round(c.ratio(NAIVE.key, CROSSPREFETCH.key), 1),
        "speed-up",
    )
    for page_size in (100, 1000):
        add(
            "crossprefetch ÷ hand-written per-page dict, peak memory",
            "≤ 1.10",
            page_size,
            lambda c: _round(c.memory_ratio(CROSSPREFETCH.key), 2),
        )
    add(
        "crossprefetch, peak memory",
        "flat as the table grows",
        1000,
        peak(CROSSPREFETCH.key),
        "bytes",
    )
    add("whole-table dict, peak memory", "(for contrast)", 1000, peak(WHOLE_TABLE.key), "bytes")
    add(
        "filtered page: crossprefetch ÷ one database filtered through the join, time",
        "≤ 1.00",
        100,
        lambda c: _round(c.ratio(FILTERED.key, JOINED_FILTERED.key), 2),
    )
    add(
        "ordered by the customer's name: crossprefetch ÷ one database ordered through the "
        "join, time",
        "≤ 1.50",
        100,
        lambda c: _round(c.ratio(ORDERED.key, JOINED_ORDERED.key), 2),
    )
    for page_size in (100, 1000):
        add(
            "crossprefetch, warm cache ÷ crossprefetch, time",
            "≤ 1.00",
            page_size,
            lambda c: _round(c.ratio(WARM_CACHE.key, CROSSPREFETCH.key), 2),
        )
    return rows


# --- Markdown ------------------------------------------------------------------------------


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}{TIMES}"


def render_markdown(report: dict[str, Any]) -> str:
    env, settings_ = report["environment"], report["settings"]
    latency = settings_["simulated_latency_ms"]
    dbs = env["databases"]
    lines = [
        f"```\n{report['command']}\n```",
        "",
        f"- Databases: `default` (customers) on {dbs['default']}, `timeseries` (order events) "
        f"on {dbs['timeseries']}; the select_related baseline lives in `default`.",
        f"- Python {env['python']}, Django {env['django']}, "
        f"Django REST framework {env['djangorestframework']}, "
        f"crossprefetch {env['crossprefetch']}"
        + (f" (commit {env['commit']})" if env.get("commit") else "")
        + f"; {env['platform']}, "
        f"{env['cpus']} CPUs ({env['cpu']}).",
        f"- Data: {settings_['events']:,} order events; each references a customer drawn "
        f"uniformly from the table, 1 in {settings_['dangling_every']} a deleted one.",
        f"- Each time is the median of {settings_['repeat']} requests "
        f"(of {settings_['slow_repeat']} for variants slower than "
        f"{settings_['slow_seconds']:g} s per request) to `GET …?page_size=N` through "
        "Django's test client: URL routing, the DRF view, pagination, serialization, JSON "
        "rendering. Variants are interleaved. Queries come from a separate counted request, "
        "peak memory from one more under tracemalloc (allocations above the level before "
        "the request).",
        (
            f"- **Simulated round trip: {latency:g} ms per query** (a sleep in a connection "
            "execute-wrapper on every alias, not a network)."
            if latency
            else "- No simulated round trip: local databases."
        ),
        "- Ratios are to the hand-written per-page dict (`get_serializer_context()` + "
        "`id__in` of the page's keys).",
        "- The filtered (`?customer_tier=gold`) and ordered (`?ordering=customer_name`) "
        "variants serve other pages than the plain list: *identical output* compares each "
        "with its counterpart through the join, and the summary gives their ratio to it.",
    ]
    if not settings_["warm_cache_measured"]:
        lines.append(
            "- *crossprefetch, warm cache*: not measured; caching is not available in this "
            "version (a repeated page still queried the database)."
        )
    lines += ["", f"Total run time: {report['duration_seconds']:.0f} s.", ""]
    lines += _render_summary(report["summary"])
    current_rows = None
    for cell in report["results"]:
        if cell["reference_rows"] != current_rows:
            current_rows = cell["reference_rows"]
            lines += ["", f"### {current_rows:,} customers", ""]
        same = "yes" if cell["identical_output"] else "**NO**"
        lines += [
            f"**Page of {cell['page_size']:,}** — identical output: {same}",
            "",
            f"| variant | queries default | queries timeseries | median | {TIMES} per-page dict "
            "| peak memory | runs |",
            "|---|--:|--:|--:|--:|--:|--:|",
        ]
        for v in cell["variants"]:
            memory = v["peak_memory_bytes"]
            lines.append(
                f"| {v['label']} | {v['queries'].get('default', 0):,} "
                f"| {v['queries'].get('timeseries', 0):,} "
                f"| {format_ms(v['median_ms'] / 1000)} | {_ratio(v['ratio_to_per_page_dict'])} "
                f"| {'—' if memory is None else format_bytes(memory)} | {len(v['runs_ms'])} |"
            )
        lines.append("")
    if report["breakdowns"]:
        lines += _render_breakdowns(report["breakdowns"])
    return "\n".join(lines)


def _render_breakdowns(breakdowns: list[dict[str, Any]]) -> list[str]:
    from shop.breakdown import FILTER_VARIANTS, PHASES, VARIANTS

    known = {variant.key: variant for variant in (*VARIANTS, *FILTER_VARIANTS)}

    lines = [
        "",
        "### Where the time goes",
        "",
        "Each variant's work replayed phase by phase outside the view, on the same page "
        "(medians, no simulated round trip). The rest of the request is the whole request's "
        "median minus the phases: URL routing, the view, the paginator, the response.",
    ]
    for item in breakdowns:
        phases, request = item["phases_ms"], item["request_ms"]
        variants = [known[key] for key in item.get("variants", [v.key for v in VARIANTS])]
        labels = " | ".join(variant.label for variant in variants)
        lines += [
            "",
            f"**{item['reference_rows']:,} customers, page of {item['page_size']:,}**",
            "",
            f"| phase | {labels} |",
            "|---|" + "--:|" * len(variants),
        ]
        for phase, label in PHASES.items():
            cells = " | ".join(format_ms(phases[v.key].get(phase, 0.0) / 1000) for v in variants)
            lines.append(f"| {label} | {cells} |")
        totals = {v.key: sum(phases[v.key].values()) for v in variants}
        rest = " | ".join(
            format_ms((request[v.key] - totals[v.key]) / 1000) if v.key in request else "—"
            for v in variants
        )
        whole = " | ".join(
            f"**{format_ms(request[v.key] / 1000)}**" if v.key in request else "—" for v in variants
        )
        lines.append(f"| rest of the request | {rest} |")
        lines.append(f"| **whole request** | {whole} |")
    return lines


def _render_summary(rows: list[dict[str, Any]]) -> list[str]:
    sizes = sorted({int(size) for row in rows for size in row["values"]})
    if not sizes:
        return []
    header = " | ".join(f"{size:,} customers" for size in sizes)
    lines = [
        "### Summary",
        "",
        f"| figure | page | target | {header} |",
        "|---|--:|---|" + "--:|" * len(sizes),
    ]
    for row in rows:
        cells = []
        for size in sizes:
            value = row["values"].get(str(size))
            if value is None:
                cells.append("—")
            elif row["unit"] == "bytes":
                cells.append(format_bytes(value))
            elif row["unit"] == "speed-up":
                cells.append(f"{value:.1f}{TIMES}")
            else:
                cells.append(f"{value:.2f}{TIMES}")
        lines.append(
            f"| {row['figure']} | {row['page_size']:,} | {row['target']} | {' | '.join(cells)} |"
        )
    return lines
