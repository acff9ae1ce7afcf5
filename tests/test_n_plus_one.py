"""``detect_n_plus_one``: real queries on every alias, the report's every part asserted."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from rest_framework.test import APIClient

from crossprefetch import CrossDBPrefetch, prefetch_cross_db
from crossprefetch._observe.repeats import shape
from crossprefetch.testing import NPlusOneError, detect_n_plus_one
from shop import serializers
from shop.models import Customer as ShopCustomer
from shop.models import OrderEvent as ShopOrderEvent
from tests.conftest import ALL_DATABASES, T0
from tests.testapp.models import Customer, OrderEvent, Region

pytestmark = pytest.mark.django_db(databases=ALL_DATABASES)


def make_shop(events: int = 12, customers: int = 4) -> None:
    people = [
        ShopCustomer.objects.create(name=f"Customer {i}", email=f"c{i}@example.com", tier="gold")
        for i in range(customers)
    ]
    ShopOrderEvent.objects.bulk_create(
        ShopOrderEvent(
            timestamp=T0 + dt.timedelta(minutes=i),
            customer_id=people[i % customers].pk,
            event_type="created",
            amount=i,
        )
        for i in range(events)
    )


SHAPES = [
    ("SELECT a FROM t WHERE id = %s", "SELECT a FROM t WHERE id = %s"),
    ("SELECT a FROM t WHERE id = 42 LIMIT 1", "SELECT a FROM t WHERE id = ? LIMIT ?"),
    ("SELECT a FROM t WHERE name = 'O''Brien'", "SELECT a FROM t WHERE name = ?"),
    ("SELECT a FROM t WHERE id IN (%s, %s, %s)", "SELECT a FROM t WHERE id IN (...)"),
    ("SELECT a FROM t WHERE id IN (%s)", "SELECT a FROM t WHERE id IN (...)"),
    ('SELECT "t1"."c2" FROM "t1"', 'SELECT "t1"."c2" FROM "t1"'),
    ("SELECT a\n  FROM t", "SELECT a FROM t"),
    (
        "SELECT `t1`.`a` FROM `t1` WHERE `t1`.`id` = %s LIMIT 21",
        ("SELECT `t1`.`a` FROM `t1` WHERE `t1`.`id` = %s LIMIT ?"),
    ),
    (
        'SELECT "t"."a" FROM "t" WHERE "t"."id" = ANY(%s)',
        'SELECT "t"."a" FROM "t" WHERE "t"."id" = ANY(...)',
    ),
]


@pytest.mark.parametrize(("sql", "expected"), SHAPES)
def test_shape_strips_parameters_only(sql: str, expected: str) -> None:
    assert shape(sql) == expected


def test_naive_endpoint_fails_with_every_part_of_the_report() -> None:
    make_shop()
    with pytest.raises(NPlusOneError) as excinfo, detect_n_plus_one():
        APIClient().get("/shop/naive-events/")
    message = str(excinfo.value)
    [repeat] = excinfo.value.repeats
    assert (repeat.alias, repeat.table, repeat.model, repeat.count) == (
        "default",
        "shop_customer",
        "shop.Customer",
        20,
    )
    path = os.path.relpath(serializers.__file__)
    for method in ("get_customer_name", "get_customer_tier"):
        field = method.removeprefix("get_")
        assert (
            f"10 x NaiveOrderEventSerializer.{method} (serializer field "
            f"NaiveOrderEventSerializer.{field}, SerializerMethodField) at {path}:"
        ) in message
    assert "20 queries on 'default', table 'shop_customer' (shop.Customer)" in message
    assert (
        "cross_db_fields = {'customers': CrossDBPrefetch('shop.Customer', key='customer_id', "
        "fields=('name', 'tier'))}"
    ) in message


def test_crossprefetch_endpoint_passes() -> None:
    make_shop(events=40)
    with detect_n_plus_one() as captured:
        response = APIClient().get("/shop/events/", {"page_size": 40})
    assert len(response.json()["results"]) == 40
    assert captured.counts == {"default": 1, "timeseries": 2, "legacy": 0}


def _per_row(events: list[OrderEvent]) -> list[str]:
    return [
        Customer.objects.get(pk=event.customer_id).name for event in events if event.customer_id
    ]


def _events(count: int) -> list[OrderEvent]:
    customer = Customer.objects.create(name="A", email="a@example.com", tier="gold")
    OrderEvent.objects.bulk_create(
        OrderEvent(timestamp=T0, customer_id=customer.pk, event_type="paid", amount=1)
        for _ in range(count)
    )
    return list(OrderEvent.objects.all())


@pytest.mark.parametrize(
    ("rows", "threshold", "fails"),
    [(2, None, False), (3, None, True), (3, 3, False), (4, 3, True), (1, 1, False)],
)
def test_threshold(rows: int, threshold: int | None, fails: bool) -> None:
    events = _events(rows)
    if fails:
        with (
            pytest.raises(NPlusOneError, match=f"{rows} queries on 'default'"),
            detect_n_plus_one(threshold),
        ):
            _per_row(events)
    else:
        with detect_n_plus_one(threshold):
            _per_row(events)


def test_threshold_setting(settings: Any) -> None:
    events = _events(3)
    settings.CROSSPREFETCH = {"N_PLUS_ONE_THRESHOLD": 3}
    with detect_n_plus_one():
        _per_row(events)


def test_origin_outside_a_serializer_and_the_key_it_guesses() -> None:
    events = _events(3)
    with pytest.raises(NPlusOneError) as excinfo, detect_n_plus_one():
        _per_row(events)
    [repeat] = excinfo.value.repeats
    [(origin, count)] = repeat.origins
    assert (origin.function, origin.field, count) == ("_per_row", None, 3)
    assert origin.line is not None
    assert "Customer.objects.get(pk=event.customer_id)" in origin.line
    assert repeat.suggestion == "CrossDBPrefetch('testapp.Customer', key='customer_id')"


def test_every_alias_at_once_and_aliases_filter() -> None:
    regions = [Region.objects.create(code=f"R{i}", name=f"Region {i}") for i in range(3)]
    events = _events(3)

    def both() -> None:
        _per_row(events)
        for region in regions:
            Region.objects.filter(code=region.code).first()

    with pytest.raises(NPlusOneError) as excinfo, detect_n_plus_one():
        both()
    assert [(r.alias, r.count) for r in excinfo.value.repeats] == [("default", 3), ("legacy", 3)]
    legacy = excinfo.value.repeats[1]
    assert legacy.suggestion == "CrossDBPrefetch('testapp.Region', key=..., to_field='code')"

    with pytest.raises(NPlusOneError) as excinfo, detect_n_plus_one(aliases=["legacy"]):
        both()
    assert [r.alias for r in excinfo.value.repeats] == ["legacy"]
    with pytest.raises(ValueError, match="unknown database alias 'legacyy'"):
        detect_n_plus_one(aliases=["legacyy"])
    with pytest.raises(ValueError, match="an int of at least 1"):
        detect_n_plus_one(0)


def test_key_chunks_of_a_lookup_are_not_an_n_plus_one(settings: Any) -> None:
    """A lookup's key set split into several queries repeats one shape by design."""
    events = _events(1)
    many = [OrderEvent(customer_id=events[0].customer_id + i) for i in range(2_500)]
    spec = {"customers": CrossDBPrefetch("testapp.Customer", key="customer_id")}
    with detect_n_plus_one(1) as captured:
        prefetch_cross_db(many, spec)
    assert captured.count("default") >= 1


@detect_n_plus_one()
def _decorated(events: list[OrderEvent]) -> list[str]:
    return _per_row(events)


def test_decorator() -> None:
    _decorated(_events(2))
    with pytest.raises(NPlusOneError):
        _decorated(_events(2))  # now four events


def test_async_decorator() -> None:
    events = _events(3)

    @detect_n_plus_one()
    async def per_row() -> None:
        for event in events:
            await Customer.objects.filter(pk=event.customer_id).afirst()

    with pytest.raises(NPlusOneError, match="3 queries on 'default'"):
        async_to_sync(per_row)()


def test_fixture(crossprefetch_detect_n_plus_one: Any) -> None:
    events = _events(3)
    with pytest.raises(NPlusOneError), crossprefetch_detect_n_plus_one():
        _per_row(events)
    with crossprefetch_detect_n_plus_one(threshold=3):
        _per_row(events)
