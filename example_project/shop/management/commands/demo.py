"""``manage.py demo``: the README's first command.

On a fresh clone it creates the two SQLite databases, seeds them, then calls the naive and
the crossprefetch endpoint through the full DRF stack at a few page sizes and prints, per
page size, the queries each endpoint sent to each database, the median time, the speed-up
and whether both served the same JSON. Then it filters by a field of the other database
(``?customer_tier=gold``) both ways: after serializing, as the naive endpoint must (the page
shrinks and the count is the unfiltered one), and before paginating, as crossprefetch's
filter backend does (a full page and an exact count, the same as a join in one database).
Last, the admin's changelist of support tickets, whose ForeignKey reaches the customers'
database: the queries Django sends alone, and with ``CrossDBPrefetchAdminMixin``. It takes
well under a minute on a small machine.
"""

from __future__ import annotations

import time
from argparse import ArgumentParser
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.test import Client
from django.test.utils import override_settings
from django.urls import reverse

from shop.changelist import CHANGELIST, plain_admin, render_changelist, shop_admin
from shop.comparison import CROSSPREFETCH, NAIVE, Measurement, Plan, compare, identical
from shop.management.commands._options import count, counts
from shop.measuring import format_ms
from shop.models import Customer, SupportTicket
from shop.seeding import Dataset, describe_backend, prepare_databases, seed

#: The page size of the filtered comparison.
FILTER_PAGE_SIZE = 100


class Command(BaseCommand):
    help = (
        "Seed the example databases if needed, then compare the naive and the crossprefetch "
        "endpoint side by side: queries per database, median time, identical output."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--customers", type=count, default=10_000, help="default: 10000")
        parser.add_argument("--events", type=count, default=5_000, help="default: 5000")
        parser.add_argument(
            "--page-sizes", type=counts, default=[10, 100, 1000], help="default: 10,100,1000"
        )
        parser.add_argument(
            "--repeat", type=count, default=9, help="timed requests per endpoint (default: 9)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        with override_settings(DEBUG=False):
            self._run(options)
        self.stdout.write(f"Done in {time.perf_counter() - started:.1f} s.")

    def _run(self, options: dict[str, Any]) -> None:
        write = self.stdout.write
        aliases = ("default", "timeseries")
        migrated = prepare_databases(aliases)
        if migrated:
            write(f"Created the tables in: {', '.join(migrated)}.")
        dataset = Dataset(options["customers"], options["events"])
        seed(dataset, log=write)
        backends = {alias: describe_backend(alias) for alias in aliases}
        write("")
        write(
            f"{dataset.events:,} order events in 'timeseries' ({backends['timeseries']}), "
            f"{dataset.customers:,} customers in 'default' ({backends['default']})."
        )
        write(
            f"GET {NAIVE.url(0).split('?')[0]} (per-row lookups) vs "
            f"{CROSSPREFETCH.url(0).split('?')[0]} (crossprefetch), "
            "through the full DRF stack."
        )
        plan = Plan(
            repeat=max(options["repeat"], 1), slow_seconds=0.25, slow_repeat=3, memory=False
        )
        all_identical = True
        for page_size in options["page_sizes"]:
            if page_size > 10_000:
                raise CommandError("--page-sizes: the endpoints serve at most 10000 per page.")
            measurements = compare([NAIVE, CROSSPREFETCH], page_size, plan)
            same = identical(measurements)
            all_identical = all_identical and same
            self._table(page_size, measurements, same)
        if not all_identical:
            raise CommandError("The two endpoints served different JSON.")
        self._filtered(FILTER_PAGE_SIZE)
        self._admin()

    def _filtered(self, page_size: int) -> None:
        """The article's "pagination accuracy" problem, and its answer."""
        write = self.stdout.write
        client = Client()
        query = f"page_size={page_size}&customer_tier=gold"
        naive = client.get(f"{reverse('shop:naive-event-list')}?page_size={page_size}").json()
        kept = [row for row in naive["results"] if row["customer_tier"] == "gold"]
        ours = client.get(f"{reverse('shop:event-list')}?{query}").json()
        joined = client.get(f"{reverse('shop:joined-event-list')}?{query}").json()
        write("")
        write(f"?customer_tier=gold, page size {page_size:,}")
        write(f"  {'way':<44} {'rows on the page':>17} {'count says':>11}")
        write(f"  {'naive: filter after serializing':<44} {len(kept):>17,} {naive['count']:>11,}")
        write(
            f"  {'crossprefetch: CrossDBFilterBackend':<44} {len(ours['results']):>17,} "
            f"{ours['count']:>11,}"
        )
        write(
            f"  {'one database: filter through the join':<44} {len(joined['results']):>17,} "
            f"{joined['count']:>11,}"
        )
        same = ours["count"] == joined["count"] and ours["results"] == joined["results"]
        write(f"  crossprefetch equals the join: {'yes' if same else 'NO'}")
        if not same:
            raise CommandError("The filtered endpoint disagrees with the join.")

    def _admin(self) -> None:
        """The admin's changelist of support tickets (a ForeignKey into the customers'
        database): Django alone, then with CrossDBPrefetchAdminMixin."""
        write = self.stdout.write
        if not apps.is_installed("django.contrib.admin"):
            write("")
            write("(django.contrib.admin is not installed: no changelist to show.)")
            return
        plain = render_changelist(plain_admin())
        ours = render_changelist(shop_admin())
        gold = render_changelist(shop_admin(), "customer__tier=gold")
        gold_ids = list(Customer.objects.filter(tier="gold").values_list("id", flat=True))
        expected = SupportTicket.objects.filter(customer_id__in=gold_ids).count()
        write("")
        write(f"admin changelist {CHANGELIST}, {ours.rows} of {ours.count:,} tickets per page")
        write(f"  {'way':<40} {'queries on default':>19} {'queries on timeseries':>22}")
        for label, measured in (
            ("Django alone (a plain ModelAdmin)", plain),
            ("CrossDBPrefetchAdminMixin", ours),
            ("the same, ?customer__tier=gold", gold),
        ):
            write(
                f"  {label:<40} {measured.queries.get('default', 0):>19,} "
                f"{measured.queries.get('timeseries', 0):>22,}"
            )
        write(f"  gold customers' tickets: {gold.count:,} (expected {expected:,})")
        if gold.count != expected:
            raise CommandError("The admin's filter by the customer's tier miscounted.")

    def _table(self, page_size: int, measurements: list[Measurement], same: bool) -> None:
        write = self.stdout.write
        naive, crossprefetch = measurements
        write("")
        write(f"page size {page_size:,}")
        write(
            f"  {'endpoint':<14} {'queries on default':>19} {'queries on timeseries':>22} "
            f"{'median time':>12}"
        )
        for m in measurements:
            write(
                f"  {m.variant.key:<14} {m.queries.get('default', 0):>19,} "
                f"{m.queries.get('timeseries', 0):>22,} {format_ms(m.median):>12}"
            )
        write(
            f"  speed-up: {naive.median / crossprefetch.median:.1f}x, "
            f"identical output: {'yes' if same else 'NO'}"
        )
