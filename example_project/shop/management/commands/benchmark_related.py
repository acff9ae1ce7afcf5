"""``manage.py benchmark_related``: a ForeignKey across databases, served with nothing declared.

Not a test: a measurement. On the example's support tickets (a real ForeignKey whose
customers live in the other database), in one process, on the same seeded data, through
the same stack (see :mod:`shop.comparison`), it times

* ``/shop/tickets/``: ``CrossDBPrefetchMixin`` and nothing declared (the serializer's
  ``customer.name`` and ``customer.tier`` say what to fetch);
* ``/shop/prefetched-tickets/``: the same serializer with Django's ``prefetch_related
  ("customer")`` written by hand: the reference of the ratio (target: at most 1.05 times its time);
* ``/shop/only-prefetched-tickets/``: the same, with the columns the serializer reads
  named by hand (``Prefetch("customer", queryset=Customer.objects.only(...))``), which is
  what crossprefetch infers;

then renders the admin's changelist of the tickets with a plain ``ModelAdmin`` and with
``CrossDBPrefetchAdminMixin``, counting each one's queries per database and timing them
side by side. Prints Markdown; ``--json FILE`` also writes the figures.
"""

from __future__ import annotations

import gc
import json
import time
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.test.utils import override_settings

from shop.changelist import CHANGELIST, plain_admin, render_changelist, shop_admin
from shop.comparison import Measurement, Plan, Variant, compare, identical
from shop.management.commands._options import count, counts
from shop.management.commands.benchmark import command_line, environment
from shop.measuring import format_ms, median
from shop.seeding import Dataset, prepare_databases, seed

TIMES = "\N{MULTIPLICATION SIGN}"
PREFETCH_RELATED = Variant(
    "prefetch_related",
    'hand-written prefetch_related("customer")',
    "shop:prefetched-ticket-list",
    family="tickets",
)
ONLY_PREFETCH_RELATED = Variant(
    "prefetch_related_only",
    'hand-written Prefetch("customer", Customer.objects.only("name", "tier"))',
    "shop:only-prefetched-ticket-list",
    family="tickets",
)
NOTHING_DECLARED = Variant(
    "crossprefetch", "crossprefetch, nothing declared", "shop:ticket-list", family="tickets"
)


class Command(BaseCommand):
    help = (
        "Benchmark a ForeignKey across databases served by CrossDBPrefetchMixin with nothing "
        "declared against Django's hand-written prefetch_related(), and the admin's "
        "changelist with and without CrossDBPrefetchAdminMixin. Prints Markdown."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--customers", type=count, default=10_000, help="default: 10000")
        parser.add_argument(
            "--events", type=count, default=20_000, help="default: 20000 (a ticket per 5)"
        )
        parser.add_argument("--page-sizes", type=counts, default=[100], help="default: 100")
        parser.add_argument("--repeat", type=count, default=51, help="default: 51")
        parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        with override_settings(DEBUG=False):
            figures = self._run(options)
        figures["seconds"] = round(time.perf_counter() - started, 1)
        self.stdout.write(f"\nTotal run time: {figures['seconds']:.0f} s.")
        if options["json"]:
            Path(options["json"]).write_text(json.dumps(figures, indent=2) + "\n")

    def _run(self, options: dict[str, Any]) -> dict[str, Any]:
        write = self.stdout.write
        prepare_databases()
        dataset = Dataset(options["customers"], options["events"])
        seed(dataset)
        env = environment()
        write("```")
        write(command_line())
        write("```")
        write("")
        write(
            f"- Databases: `default` (customers) on {env['databases']['default']}, "
            f"`timeseries` (support tickets) on {env['databases']['timeseries']}."
        )
        write(
            f"- Python {env['python']}, Django {env['django']}, Django REST framework "
            f"{env['djangorestframework']}, crossprefetch {env['crossprefetch']}"
            + (f" (commit {env['commit']})" if env.get("commit") else "")
            + f"; {env['platform']}, {env['cpus']} CPUs ({env['cpu']})."
        )
        write(
            f"- Data: {dataset.tickets:,} support tickets, {dataset.customers:,} customers; "
            "a ticket names a customer drawn uniformly, or none (1 in 20), or a deleted one."
        )
        write(
            f"- Each time is the median of {options['repeat']} requests through Django's test "
            "client, the variants interleaved."
        )
        plan = Plan(repeat=options["repeat"], memory=False)
        pages = []
        for page_size in options["page_sizes"]:
            variants = [PREFETCH_RELATED, ONLY_PREFETCH_RELATED, NOTHING_DECLARED]
            measurements = compare(variants, page_size, plan)
            if not identical(measurements):
                raise CommandError("The two ticket endpoints served different JSON.")
            pages.append(self._page(page_size, measurements))
        admin = self._admin(options["repeat"]) if apps.is_installed("django.contrib.admin") else {}
        return {"environment": env, "pages": pages, "admin": admin}

    def _page(self, page_size: int, measurements: list[Measurement]) -> dict[str, Any]:
        write = self.stdout.write
        reference, _, ours = measurements
        ratio = ours.median / reference.median
        write("")
        write(f"### Page of {page_size:,}: identical output: yes")
        write("")
        write("| variant | queries on `default` | queries on `timeseries` | median | ratio |")
        write("|---|--:|--:|--:|--:|")
        for m in measurements:
            write(
                f"| {m.variant.label} | {m.queries.get('default', 0)} | "
                f"{m.queries.get('timeseries', 0)} | {format_ms(m.median)} | "
                f"{m.median / reference.median:.2f}{TIMES} |"
            )
        write("")
        write(
            f"crossprefetch ÷ `prefetch_related()`: **{ratio:.2f}{TIMES}** (target ≤ 1.05{TIMES})"
        )
        return {
            "page_size": page_size,
            "ratio": round(ratio, 4),
            "variants": {
                m.variant.key: {"queries": m.queries, "median_ms": round(m.median * 1000, 3)}
                for m in measurements
            },
        }

    def _admin(self, repeat: int) -> dict[str, Any]:
        write = self.stdout.write
        variants = {"plain ModelAdmin": plain_admin(), "CrossDBPrefetchAdminMixin": shop_admin()}
        counted = {label: render_changelist(model_admin) for label, model_admin in variants.items()}
        times: dict[str, list[float]] = {label: [] for label in variants}
        labels = list(variants)
        for round_ in range(repeat):
            for label in labels[round_ % 2 :] + labels[: round_ % 2]:
                gc.collect()
                started = time.perf_counter()
                render_changelist(variants[label])
                times[label].append(time.perf_counter() - started)
        plain = median(times["plain ModelAdmin"])
        first = counted["CrossDBPrefetchAdminMixin"]
        write("")
        write(f"### Admin changelist `{CHANGELIST}`, {first.rows} of {first.count:,} tickets")
        write("")
        write("| `ModelAdmin` | queries on `default` | queries on `timeseries` | median | ratio |")
        write("|---|--:|--:|--:|--:|")
        for label, measured in counted.items():
            write(
                f"| {label} | {measured.queries.get('default', 0)} | "
                f"{measured.queries.get('timeseries', 0)} | {format_ms(median(times[label]))} | "
                f"{median(times[label]) / plain:.2f}{TIMES} |"
            )
        return {
            label: {
                "queries": measured.queries,
                "rows": measured.rows,
                "median_ms": round(median(times[label]) * 1000, 3),
            }
            for label, measured in counted.items()
        }
