"""``CrossDBAggregate`` through the engine: one grouped query per page, every aggregate
kind, sources, the fetch chain (cache, degrade, coalescing, huge key sets), text keys."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import connections
from django.db.models import Count, Sum
from django.test.utils import CaptureQueriesContext

from crossprefetch import CachePolicy, CrossDBAggregate, CrossDBPrefetch, prefetch_cross_db
from crossprefetch._fetch import caching as cache_layer
from crossprefetch.loaders import ModelLoader, aprefetch_cross_db
from crossprefetch.lookup import MISSING
from crossprefetch.testing import assert_num_queries
from tests.conftest import ALL_DATABASES, T0
from tests.testapp.aggregate_views import activity
from tests.testapp.models import CodedEntry, Entry, Member

pytestmark = pytest.mark.django_db(databases=ALL_DATABASES)


@pytest.fixture
def members() -> list[Member]:
    """Four members: several entries, one entry, none, entries whose values are all null;
    and entries of no member (null and dangling references)."""
    people = [Member.objects.create(name=name, code=name.upper()) for name in "abcd"]
    a, b, _, d = people
    Entry.objects.bulk_create(
        [
            Entry(member_id=a.id, kind="paid", amount=Decimal("2.00"), quantity=1, at=T0),
            Entry(
                member_id=a.id,
                kind="paid",
                amount=Decimal("3.50"),
                quantity=4,
                at=T0 + dt.timedelta(minutes=5),
            ),
            Entry(member_id=a.id, kind="refund", amount=None, quantity=None, at=None),
            Entry(
                member_id=b.id,
                kind="refund",
                amount=Decimal("5.00"),
                quantity=2,
                at=T0 + dt.timedelta(minutes=1),
            ),
            Entry(member_id=d.id, kind="paid"),
            Entry(member_id=d.id, kind="paid"),
            Entry(member_id=None, kind="paid", amount=Decimal("100"), quantity=100),
            Entry(member_id=999_999, kind="paid", amount=Decimal("100"), quantity=100),
        ]
    )
    return people


def test_every_kind_of_aggregate_in_one_grouped_query(members: list[Member]) -> None:
    a, b, c, d = members
    with (
        CaptureQueriesContext(connections["timeseries"]) as remote,
        assert_num_queries(default=0, timeseries=1, legacy=0),
    ):
        lookup = prefetch_cross_db(members, {"activity": activity()})["activity"]
    (query,) = remote.captured_queries
    assert "GROUP BY" in query["sql"]
    assert "999999" not in query["sql"]  # only the page's keys
    assert lookup[a.id] == {
        "entries": 3,
        "paid": 2,
        "kinds": 2,
        "spent": Decimal("5.50"),
        "spent_or_zero": Decimal("5.50"),
        "average": pytest.approx(2.5),
        "smallest": 1,
        "largest": 4,
        "last": T0 + dt.timedelta(minutes=5),
    }
    assert lookup[b.id]["entries"] == 1
    assert lookup[b.id]["paid"] == 0  # rows, none of them paid: 0, not missing
    assert lookup[b.id]["spent"] == Decimal("5.00")
    assert lookup[d.id] == {
        "entries": 2,
        "paid": 2,
        "kinds": 1,
        "spent": None,  # rows whose values are all null: SQL's NULL
        "spent_or_zero": Decimal("0"),  # default=: Coalesce
        "average": None,
        "smallest": None,
        "largest": None,
        "last": None,
    }
    assert c.id not in lookup  # no rows: missing, the field renders its default
    assert lookup.get_for(c) is MISSING
    assert lookup.stats.keys_asked == 4
    assert lookup.stats.keys_found == 3


def test_objects_without_keys_or_rows_cost_no_query() -> None:
    spec = activity()
    with assert_num_queries(default=0, timeseries=0, legacy=0):
        assert len(prefetch_cross_db([], {"activity": spec})["activity"]) == 0
        lookup = prefetch_cross_db([SimpleNamespace(id=None)], {"activity": spec})["activity"]
    assert lookup.get_for(SimpleNamespace(id=None)) is MISSING


def test_the_source_queryset_filters_and_its_ordering_is_dropped(members: list[Member]) -> None:
    a, b, _, d = members
    paid = CrossDBAggregate(
        Entry.objects.filter(kind="paid").order_by("-at", "amount"),
        key="id",
        to_field="member_id",
        aggregates={"entries": Count("id"), "spent": Sum("amount")},
    )
    with assert_num_queries(timeseries=1):
        lookup = prefetch_cross_db(members, {"paid": paid})["paid"]
    # an ORDER BY a column would be grouped by too: a's two paid rows would be two groups
    assert lookup[a.id] == {"entries": 2, "spent": Decimal("5.50")}
    assert b.id not in lookup
    assert lookup[d.id] == {"entries": 2, "spent": None}


def test_a_callable_source_scopes_per_request(members: list[Member]) -> None:
    a, b, _, _ = members

    def of_kind(request: Any) -> Any:
        return Entry.objects.filter(kind=request.GET["kind"])

    spec = CrossDBAggregate(of_kind, key="id", to_field="member_id", aggregates={"n": Count("id")})
    for kind, expected in [("paid", {a.id: 2}), ("refund", {a.id: 1, b.id: 1})]:
        request = SimpleNamespace(GET={"kind": kind})
        lookup = prefetch_cross_db(members[:2], {"n": spec}, request=request)["n"]  # type: ignore[arg-type]
        assert {key: row["n"] for key, row in lookup.items()} == expected


def test_using_reads_another_database(members: list[Member]) -> None:
    a = members[0]
    Entry.objects.using("legacy").create(member_id=a.id, amount=Decimal("7"))
    with assert_num_queries(default=0, timeseries=0, legacy=1):
        lookup = prefetch_cross_db(members, {"activity": activity("legacy")})["activity"]
    assert lookup[a.id]["entries"] == 1
    assert lookup[a.id]["spent"] == Decimal("7")
    assert len(lookup) == 1


def test_a_grouped_spec_never_shares_a_query_with_a_plain_one(members: list[Member]) -> None:
    a = members[0]
    rows = CrossDBPrefetch(
        "testapp.Entry", key="id", to_field="member_id", many=True, fields=("amount",)
    )
    with assert_num_queries(timeseries=2):
        lookups = prefetch_cross_db(members, {"activity": activity(), "rows": rows})
    assert lookups["activity"][a.id]["entries"] == 3
    assert sorted(map(str, (r["amount"] for r in lookups["rows"][a.id]))) == [
        "2.00",
        "3.50",
        "None",
    ]


def test_keys_are_normalised_like_any_spec(members: list[Member]) -> None:
    a = members[0]
    items = [SimpleNamespace(id=str(a.id)), SimpleNamespace(id="abc"), SimpleNamespace(id=a.id)]
    with assert_num_queries(timeseries=1):
        lookup = prefetch_cross_db(items, {"activity": activity()})["activity"]
    assert lookup.get_for(items[0])["entries"] == 3
    assert lookup.get_for(items[1]) is MISSING
    assert lookup.stats.keys_invalid == 1


def test_text_keys_are_grouped_by_the_columns_collation() -> None:
    """Under a case-insensitive collation ``"abc"`` matches ``"ABC"`` and ``"Abc"``: the
    aggregate counts them all, as a join in that database would."""
    CodedEntry.objects.bulk_create(
        CodedEntry(member_code=code, amount=Decimal(amount))
        for code, amount in [("ABC", "1"), ("abc", "2"), ("Abc", "4"), ("xyz", "8")]
    )
    spec = CrossDBAggregate(
        "testapp.CodedEntry",
        key="code",
        to_field="member_code",
        aggregates={"n": Count("id"), "total": Sum("amount")},
    )
    items = [SimpleNamespace(code="abc"), SimpleNamespace(code="XYZ"), SimpleNamespace(code="q")]
    with assert_num_queries(legacy=1):
        lookup = prefetch_cross_db(items, {"coded": spec})["coded"]
    assert [lookup.get_for(item) for item in items] == [
        {"n": 3, "total": Decimal("7")},
        {"n": 1, "total": Decimal("8")},
        MISSING,
    ]


def test_a_huge_key_set_is_still_grouped_correctly() -> None:
    """50,000 keys: split where the backend's parameter limit forces it, each key's rows in
    the part that asks for it, so every group is whole."""
    Entry.objects.bulk_create(
        Entry(member_id=key, amount=Decimal(1)) for key in (1, 1, 25_000, 49_999, 49_999, 49_999)
    )
    items = [SimpleNamespace(id=key) for key in range(1, 50_001)]
    remote = connections["timeseries"]
    with CaptureQueriesContext(remote) as captured:
        lookup = prefetch_cross_db(items, {"activity": activity()})["activity"]
    assert {key: row["entries"] for key, row in lookup.items()} == {1: 2, 25_000: 1, 49_999: 3}
    if remote.vendor == "postgresql":
        assert len(captured.captured_queries) == 1  # one array parameter


def test_cached_aggregates_are_served_without_a_query_and_invalidated(
    members: list[Member],
) -> None:
    cache_layer.clear_local()
    a = members[0]
    spec = activity(cache=CachePolicy(60))
    with assert_num_queries(timeseries=1):
        first = prefetch_cross_db(members, {"activity": spec})["activity"]
    with assert_num_queries(timeseries=0):
        second = prefetch_cross_db(members, {"activity": spec})["activity"]
    assert dict(second.items()) == dict(first.items())
    assert second.stats.cache_hits == 4  # three rows and one missing key
    Entry.objects.create(member_id=a.id, amount=Decimal("1"), kind="paid")
    with assert_num_queries(timeseries=1):
        third = prefetch_cross_db(members, {"activity": spec})["activity"]
    assert third[a.id]["entries"] == 4
    assert third[a.id]["spent"] == Decimal("6.50")


def test_aprefetch_cross_db_takes_aggregate_specs(members: list[Member]) -> None:
    a = members[0]

    async def main() -> Any:
        return await aprefetch_cross_db(members, {"activity": activity()})

    with assert_num_queries(default=0, timeseries=1):
        lookup = async_to_sync(main)()["activity"]
    assert lookup[a.id]["entries"] == 3
    assert members[2].id not in lookup


def test_a_model_loader_loads_the_aggregates_of_each_key(members: list[Member]) -> None:
    a, b, c, _ = members
    loader = ModelLoader(
        "testapp.Entry",
        to_field="member_id",
        aggregates={"entries": Count("id"), "spent": Sum("amount")},
    )
    assert repr(loader) == (
        "ModelLoader('testapp.Entry', to_field='member_id', "
        "aggregates={'entries': Count(F(id)), 'spent': Sum(F(amount))})"
    )

    async def main() -> list[Any]:
        return await loader.load_many([a.id, str(b.id), c.id, a.id])

    with assert_num_queries(default=0, timeseries=1):
        loaded = async_to_sync(main)()
    assert loaded == [
        {"entries": 3, "spent": Decimal("5.50")},
        {"entries": 1, "spent": Decimal("5.00")},
        None,
        {"entries": 3, "spent": Decimal("5.50")},
    ]


def test_a_model_loader_takes_aggregates_or_rows_not_both() -> None:
    for options in ({"fields": ("amount",)}, {"many": True}):
        with pytest.raises(TypeError, match="takes neither fields= nor many=True"):
            ModelLoader(Entry, to_field="member_id", aggregates={"n": Count("id")}, **options)
