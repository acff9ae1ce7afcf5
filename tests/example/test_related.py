"""The example's support tickets: a real ForeignKey into the customers' database."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from crossprefetch.testing import assert_num_queries
from shop.models import Customer, SupportTicket
from shop.seeding import Dataset
from tests import admin_settings
from tests.example.conftest import SHOP_DATABASES

pytestmark = pytest.mark.django_db(databases=SHOP_DATABASES)


def test_the_seeded_tickets(shop_data: Dataset) -> None:
    assert SupportTicket.objects.count() == shop_data.tickets == shop_data.events // 5
    ids = set(Customer.objects.values_list("id", flat=True))
    keys = list(SupportTicket.objects.values_list("customer_id", flat=True))
    assert None in keys  # anonymous tickets
    assert any(key is not None and key not in ids for key in keys)  # deleted customers


def test_served_with_nothing_declared(shop_data: Dataset, api: APIClient) -> None:
    with assert_num_queries(default=1, timeseries=2):
        ours = api.get("/shop/tickets/?page_size=100").json()
    # Django's own prefetch_related("customer"), written by hand: the same JSON
    with assert_num_queries(default=1, timeseries=2):
        reference = api.get("/shop/prefetched-tickets/?page_size=100").json()
    assert ours["results"] == reference["results"]
    assert ours["count"] == shop_data.tickets
    first = ours["results"][0]
    assert set(first) == {
        "id",
        "opened_at",
        "subject",
        "status",
        "customer_id",
        "customer_name",
        "customer_tier",
    }
    orphans = [row for row in ours["results"] if row["customer_name"] is None]
    assert orphans  # null and dangling keys render null


@pytest.fixture
def admin_on(settings: Any) -> None:
    overrides = admin_settings.overrides(
        list(settings.INSTALLED_APPS), list(settings.MIDDLEWARE), list(settings.TEMPLATES)
    )
    for name, value in overrides.items():
        setattr(settings, name, value)
    settings.ROOT_URLCONF = "example.urls"  # the example's own: the shop and admin.site
    import shop.admin  # noqa: F401  (registers on admin.site: the test runs no autodiscovery)


def test_the_admin_changelist(admin_on: None, shop_data: Dataset) -> None:
    from shop.changelist import plain_admin, render_changelist, shop_admin

    plain = render_changelist(plain_admin())
    ours = render_changelist(shop_admin())
    assert ours.rows == plain.rows == min(100, shop_data.tickets)
    assert ours.count == plain.count == shop_data.tickets
    # the page's customers: one query each in a plain ModelAdmin, one in all with the mixin
    # (and the tier filter's choices)
    assert plain.queries["default"] > ours.rows // 2
    assert ours.queries == {"default": 2, "timeseries": plain.queries["timeseries"]}
    gold = render_changelist(shop_admin(), "customer__tier=gold")
    gold_ids = list(Customer.objects.filter(tier="gold").values_list("id", flat=True))
    assert gold.count == SupportTicket.objects.filter(customer_id__in=gold_ids).count()


def test_the_demo_shows_the_changelist_queries(admin_on: None, shop_data: Dataset) -> None:
    from io import StringIO

    from shop.management.commands.demo import Command

    out = StringIO()
    Command(stdout=out)._admin()
    table = out.getvalue().splitlines()[1:]
    assert table[0] == (
        f"admin changelist /admin/shop/supportticket/, {shop_data.tickets} of "
        f"{shop_data.tickets} tickets per page"
    )
    plain = next(line for line in table if "Django alone" in line).split()
    ours = next(line for line in table if line.strip().startswith("CrossDBPrefetch")).split()
    assert int(plain[-2]) > shop_data.tickets // 2
    assert ours[-2:] == ["2", plain[-1]]
    assert "gold customers' tickets:" in table[-1]


def test_the_benchmark(tmp_path: Any) -> None:
    import json
    from io import StringIO

    from django.core.management import call_command

    figures = tmp_path / "figures.json"
    out = StringIO()
    call_command(
        "benchmark_related",
        *("--customers", "40", "--events", "600", "--repeat", "2", "--json", str(figures)),
        stdout=out,
    )
    assert "### Page of 100: identical output: yes" in out.getvalue()
    (page,) = json.loads(figures.read_text())["pages"]
    assert page["variants"]["crossprefetch"]["queries"] == {"default": 1, "timeseries": 2}
    assert page["variants"]["prefetch_related"]["queries"] == {"default": 1, "timeseries": 2}
    assert page["variants"]["prefetch_related_only"]["queries"] == {"default": 1, "timeseries": 2}


def test_the_benchmark_of_the_changelist(admin_on: None, shop_data: Dataset) -> None:
    from io import StringIO

    from shop.management.commands.benchmark_related import Command

    figures = Command(stdout=StringIO())._admin(repeat=2)
    assert figures["CrossDBPrefetchAdminMixin"]["queries"]["default"] == 2
    assert figures["plain ModelAdmin"]["queries"]["default"] > shop_data.tickets // 2
