from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from tests.testapp.models import Account, Customer, OrderEvent, Region

pytest_plugins = ["pytester"]

ALL_DATABASES = ["default", "timeseries", "legacy"]
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


@dataclass
class Scenario:
    customers: list[Customer]
    events: list[OrderEvent]
    regions: list[Region]
    accounts: list[Account]


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def make_scenario(events: int = 100, customers: int = 30) -> Scenario:
    """Events referencing customers, regions and accounts, with nulls and dangling keys."""
    tiers = ["basic", "gold", "platinum"]
    people = Customer.objects.bulk_create(
        Customer(
            name=f"Customer {i}",
            email=f"c{i}@example.com",
            tier=tiers[i % 3],
            tenant="acme" if i % 2 else "globex",
            region_code=f"R{i % 4}",
        )
        for i in range(customers)
    )
    people = list(Customer.objects.order_by("id"))
    regions = Region.objects.bulk_create(Region(code=f"R{i}", name=f"Region {i}") for i in range(3))
    accounts = Account.objects.bulk_create(
        Account(tenant_id=t, number=n, label=f"Account {t}/{n}") for t in (1, 2) for n in range(5)
    )
    ids = [c.id for c in people]
    rows = []
    for i in range(events):
        if i % 10 == 7:
            customer_id: int | None = None
        elif i % 10 == 9:
            customer_id = 10_000_000 + i  # dangling reference
        else:
            customer_id = ids[i % len(ids)]
        rows.append(
            OrderEvent(
                timestamp=T0 + dt.timedelta(minutes=i),
                customer_id=customer_id,
                seller_id=ids[(i * 7) % len(ids)] if i % 5 else None,
                customer_ref=None if customer_id is None else str(customer_id),
                region_code=f"R{i % 4}" if i % 6 else None,
                account_tenant=1 + i % 3,
                account_number=i % 6,
                event_type=["created", "paid", "shipped"][i % 3],
                amount=Decimal(i) / 4,
            )
        )
    OrderEvent.objects.bulk_create(rows)
    return Scenario(
        customers=people,
        events=list(OrderEvent.objects.all()),
        regions=list(regions),
        accounts=list(accounts),
    )


@pytest.fixture
def scenario(db: None, django_db_blocker: object) -> Scenario:
    return make_scenario()
