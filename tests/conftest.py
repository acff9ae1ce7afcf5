from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from tests.testapp.models import Account, Customer, OrderEvent, Region

pytest_plugins = ["pytester", "tests.servers", "tests.browser"]

#: Set by CI: a database or cache server that cannot be reached fails the run instead of
#: skipping the tests that need it.
REQUIRE_SERVICES = os.environ.get("CROSSPREFETCH_REQUIRE_SERVICES") == "1"

ALL_DATABASES = ["default", "timeseries", "legacy"]
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


@dataclass
class Scenario:
    customers: list[Customer]
    events: list[OrderEvent]
    regions: list[Region]
    accounts: list[Account]


def _postgres_unreachable() -> str | None:
    """Why the configured PostgreSQL server cannot be used, or None if it can."""
    if settings.TEST_DB == "sqlite":
        return None
    import psycopg

    params = settings.POSTGRES
    try:
        psycopg.connect(
            host=params["HOST"],
            port=params["PORT"],
            user=params["USER"],
            password=params["PASSWORD"],
            dbname="postgres",
            connect_timeout=3,
        ).close()
    except psycopg.Error as exc:
        return (
            f"CROSSPREFETCH_TEST_DB={settings.TEST_DB} but PostgreSQL at "
            f"{params['HOST']}:{params['PORT']} is not reachable ({str(exc).strip()}); "
            "start it or run with CROSSPREFETCH_TEST_DB=sqlite"
        )
    return None


def _mysql_unreachable() -> str | None:
    """Why the configured MariaDB/MySQL server cannot be used, or None if it can."""
    if settings.TEST_DB != "mariadb":
        return None
    try:
        import MySQLdb
    except ImportError as exc:
        return (
            f"CROSSPREFETCH_TEST_DB=mariadb but mysqlclient is not installed ({exc}); "
            "pip install -e '.[mysql]' or run with CROSSPREFETCH_TEST_DB=sqlite"
        )
    params = settings.MYSQL
    try:
        MySQLdb.connect(
            host=params["HOST"],
            port=int(params["PORT"]),
            user=params["USER"],
            password=params["PASSWORD"],
            connect_timeout=3,
        ).close()
    except MySQLdb.Error as exc:
        return (
            f"CROSSPREFETCH_TEST_DB=mariadb but MariaDB at {params['HOST']}:{params['PORT']} "
            f"is not reachable ({exc}); start it or run with CROSSPREFETCH_TEST_DB=sqlite"
        )
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _postgres_unreachable() or _mysql_unreachable()
    if reason is None:
        return
    if REQUIRE_SERVICES:
        raise pytest.UsageError(reason)
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        item.add_marker(skip)


@pytest.fixture(autouse=True)
def _closed_breakers() -> Iterator[None]:
    """Circuit breakers are per process: no test inherits another's failures."""
    from crossprefetch._fetch import breaker, failure

    yield
    breaker.databases.reset()
    breaker.caches.reset()
    failure.reset()


@pytest.fixture
def server_timeout_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client's deadline 2 s after the server's timeout rather than 20 ms: for the tests
    of what the server's own cancel does, which a loaded machine could otherwise deliver
    after the deadline (the deadline's own tests are in ``test_failure_hung``)."""
    from crossprefetch._fetch import deadline

    monkeypatch.setattr(deadline, "GRACE", 2.0)


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
