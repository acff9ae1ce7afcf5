"""Aggregates through DRF: fields, filters with exact counts, orderings, bad input."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import django_filters
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.test import APIClient

from crossprefetch.filters import CrossDBFilterSetFilter
from crossprefetch.testing import assert_num_queries
from tests.conftest import ALL_DATABASES, T0
from tests.testapp.aggregate_views import MemberActivityViewSet
from tests.testapp.models import Entry, Member

pytestmark = pytest.mark.django_db(databases=ALL_DATABASES)

URL = "/api/members/"


@pytest.fixture
def members() -> dict[str, Member]:
    """a: three entries; b: one; c: none; d: two whose values are all null; e: one."""
    people = {name: Member.objects.create(name=name) for name in "abcde"}

    def entry(who: str, amount: str | None, quantity: int | None, minute: int | None, kind: str):
        return Entry(
            member_id=people[who].id,
            kind=kind,
            amount=None if amount is None else Decimal(amount),
            quantity=quantity,
            at=None if minute is None else T0 + dt.timedelta(minutes=minute),
        )

    Entry.objects.bulk_create(
        [
            entry("a", "2.00", 1, 0, "paid"),
            entry("a", "3.50", 4, 5, "paid"),
            entry("a", None, None, None, "refund"),
            entry("b", "5.00", 2, 1, "refund"),
            entry("d", None, None, None, "paid"),
            entry("d", None, None, None, "paid"),
            entry("e", "5.00", 3, 9, "paid"),
            Entry(member_id=None, amount=Decimal("1"), quantity=1),
            Entry(member_id=10_000_000, amount=Decimal("1"), quantity=1),
        ]
    )
    return people


def names(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["name"] for row in response.json()["results"]]


def test_each_member_renders_its_aggregates_or_the_defaults(
    api: APIClient, members: dict[str, Member]
) -> None:
    with assert_num_queries(default=2, timeseries=1, legacy=0):
        response = api.get(URL)
    rows = {row["name"]: row for row in response.json()["results"]}
    assert rows["a"] == {
        "id": members["a"].id,
        "name": "a",
        "entries": 3,
        "paid": 2,
        "kinds": 2,
        "spent": "5.50",
        "spent_or_zero": "5.50",
        "average": 2.5,
        "smallest": 1,
        "largest": 4,
        "last": "2026-01-01T00:05:00Z",
    }
    assert rows["c"] == {  # no rows: every field's default
        "id": members["c"].id,
        "name": "c",
        "entries": 0,
        "paid": 0,
        "kinds": 0,
        "spent": None,
        "spent_or_zero": "0.00",
        "average": None,
        "smallest": None,
        "largest": None,
        "last": None,
    }
    assert rows["d"]["entries"] == 2
    assert rows["d"]["spent"] is None
    assert rows["d"]["spent_or_zero"] == "0.00"


def test_a_single_member_costs_one_grouped_query(
    api: APIClient, members: dict[str, Member]
) -> None:
    with assert_num_queries(default=1, timeseries=1, legacy=0):
        response = api.get(f"{URL}{members['b'].id}/")
    assert response.json()["entries"] == 1
    assert response.json()["spent"] == "5.00"


FILTERS = [
    # counts: a member without rows counts 0, as through a LEFT JOIN
    ("entries__gte=2", ["a", "d"]),
    ("entries__gt=0", ["a", "b", "d", "e"]),
    ("entries__lte=1", ["b", "c", "e"]),
    ("entries__lte=0", ["c"]),
    ("entries__lt=2", ["b", "c", "e"]),
    ("entries=0", ["c"]),
    ("entries=3", ["a"]),
    ("entries__in=0,2", ["c", "d"]),
    ("entries__isnull=true", []),
    ("entries__isnull=false", ["a", "b", "c", "d", "e"]),
    ("paid=0", ["b", "c"]),  # b has rows, none paid; c has none
    ("paid__gte=1", ["a", "d", "e"]),
    ("kinds__gte=2", ["a"]),
    # sums, averages, minima, maxima: NULL without rows (or with only null values), which
    # matches nothing but isnull=true
    ("spent__gte=5", ["a", "b", "e"]),
    ("spent__lt=5.5", ["b", "e"]),
    ("spent=5", ["b", "e"]),
    ("spent__isnull=true", ["c", "d"]),
    ("spent__isnull=false", ["a", "b", "e"]),
    ("spent_or_zero__lte=0", ["c", "d"]),  # default=0: Coalesce, as through the join
    ("spent_or_zero__lt=5.01", ["b", "c", "d", "e"]),
    ("average__gt=2", ["a", "e"]),
    ("smallest__lte=1", ["a"]),
    ("largest__gte=3", ["a", "e"]),
    ("last__gte=2026-01-01T00:05:00Z", ["a", "e"]),
    ("last__isnull=true", ["c", "d"]),
    # several filters on the spec: AND, one remote query
    ("entries__gte=1&spent__isnull=true", ["d"]),
    ("entries__lte=1&spent_or_zero__lte=0", ["c"]),
    ("entries__lte=1&spent__lte=5", ["b", "e"]),
    # the existence of rows
    ("inactive=true", ["c"]),
    ("inactive=false", ["a", "b", "d", "e"]),
    ("inactive=true&entries=0", ["c"]),
    ("inactive=true&entries=1", []),
    ("inactive=false&entries__lte=1", ["b", "e"]),
]


@pytest.mark.parametrize(("query", "expected"), FILTERS)
def test_filters_keep_what_a_left_join_would(
    api: APIClient, members: dict[str, Member], query: str, expected: list[str]
) -> None:
    response = api.get(f"{URL}?{query}")
    assert names(response) == expected
    assert response.json()["count"] == len(expected)


@pytest.mark.parametrize(
    ("query", "local", "remote"),
    [
        # the filter's query (keys only), then the page's own grouped query
        ("entries__gte=2", 2, 2),  # the keys whose aggregates pass
        ("entries__lte=1", 2, 2),  # all but the keys that fail
        ("spent__isnull=true", 2, 2),
        ("inactive=true", 2, 2),
        ("entries__isnull=true", 0, 1),  # no key passes: nothing to count, no page
        ("inactive=true&entries=1", 0, 0),  # without rows, a count is 0: decided here
    ],
)
def test_each_filtered_spec_costs_one_remote_query_and_the_page_one(
    api: APIClient, members: dict[str, Member], query: str, local: int, remote: int
) -> None:
    with assert_num_queries(default=local, timeseries=remote, legacy=0):
        response = api.get(f"{URL}?{query}")
    assert response.status_code == 200


ORDERINGS = [
    # without rows (c) last in both directions; ties (b, e: 1 entry) by the view's order
    ("entries", ["b", "e", "d", "a", "c"]),
    ("-entries", ["a", "d", "b", "e", "c"]),
    ("paid", ["b", "e", "a", "d", "c"]),  # b has rows: its 0 is a value
    ("-paid", ["a", "d", "e", "b", "c"]),
    # a null aggregate (d: only null amounts) sorts with the members without rows
    ("spent", ["b", "e", "a", "c", "d"]),
    ("-spent", ["a", "b", "e", "c", "d"]),
    ("spent_or_zero", ["d", "b", "e", "a", "c"]),
    ("-last", ["e", "a", "b", "c", "d"]),
    ("average,-name", ["b", "a", "e", "d", "c"]),
    ("-spent,-name", ["a", "e", "b", "d", "c"]),
    ("name", ["a", "b", "c", "d", "e"]),
]


@pytest.mark.parametrize(("ordering", "expected"), ORDERINGS)
def test_orderings_put_members_without_rows_last(
    api: APIClient, members: dict[str, Member], ordering: str, expected: list[str]
) -> None:
    remote = 1 if ordering == "name" else 2  # the ranks, then the page's aggregates
    with assert_num_queries(default=2, timeseries=remote, legacy=0):
        response = api.get(f"{URL}?ordering={ordering}")
    assert names(response) == expected


def test_filtered_and_ordered_pages_are_exact(api: APIClient, members: dict[str, Member]) -> None:
    response = api.get(f"{URL}?entries__lte=2&ordering=-spent_or_zero&page_size=2&page=2")
    assert response.json()["count"] == 4
    assert names(response) == ["d", "c"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("entries__gte=many", "Filter 'entries__gte': 'many' is not a valid"),
        ("entries__gte=9999999999999999999999", "Filter 'entries__gte'"),
        ("spent__lt=cheap", "Filter 'spent__lt': 'cheap' is not a valid"),
        ("last__gte=yesterday", "Filter 'last__gte': 'yesterday' is not a valid"),
        ("spent__isnull=perhaps", "Filter 'spent__isnull': 'perhaps' is not a boolean"),
        ("entries__in=1,x", "Filter 'entries__in': 'x' is not a valid"),
        ("entries=%00", "Filter 'entries': contains a NUL character"),
    ],
)
def test_bad_values_are_a_400_naming_the_filter(
    api: APIClient, members: dict[str, Member], query: str, message: str
) -> None:
    with assert_num_queries(default=0, timeseries=0, legacy=0):
        response = api.get(f"{URL}?{query}")
    assert response.status_code == 400
    name = query.split("=", 1)[0]
    assert message in response.json()[name][0]


def test_too_many_matching_keys_is_a_400(
    api: APIClient, members: dict[str, Member], settings: Any
) -> None:
    settings.CROSSPREFETCH = {"MAX_FILTER_KEYS": 2}
    response = api.get(f"{URL}?entries__gte=1")
    assert response.status_code == 400
    assert "more than 2 remote rows" in response.json()["entries__gte"][0]
    assert names(api.get(f"{URL}?entries__gte=3")) == ["a"]


def test_an_unknown_aggregate_fails_naming_the_filter_and_the_fix(
    members: dict[str, Member],
) -> None:
    from crossprefetch.filters import CrossDBFilter

    class View(MemberActivityViewSet):
        cross_db_filters = {
            "visits__gte": CrossDBFilter("activity", "visits", lookup_expr="gte"),
            "spent__icontains": CrossDBFilter("activity", "spent", lookup_expr="icontains"),
        }

    for query, message in [
        ("visits__gte=1", "computes no aggregate 'visits'; filter on one of 'entries'"),
        ("spent__icontains=1", "the lookup 'icontains' does not apply to the aggregate"),
    ]:
        view = View.as_view({"get": "list"})
        with pytest.raises(ImproperlyConfigured, match=message) as raised:
            view(RequestFactory().get(f"/?{query}"))
        assert f"cross_db_filters[{query.split('=')[0]!r}]" in str(raised.value)


class _ActivityFilterSet(django_filters.FilterSet):  # type: ignore[misc]
    entries__gte = CrossDBFilterSetFilter("activity", "entries", lookup_expr="gte")
    entries__lte = CrossDBFilterSetFilter("activity", "entries", lookup_expr="lte")
    spent__isnull = CrossDBFilterSetFilter("activity", "spent", lookup_expr="isnull")

    class Meta:
        model = Member
        fields: list[str] = []


class _FilterSetView(MemberActivityViewSet):
    filter_backends = [DjangoFilterBackend]
    filterset_class = _ActivityFilterSet
    cross_db_filters: dict[str, Any] = {}
    cross_db_ordering_fields: dict[str, Any] = {}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("entries__gte=2", ["a", "d"]),
        ("entries__lte=1", ["b", "c", "e"]),
        ("spent__isnull=true", ["c", "d"]),
        ("entries__gte=1&entries__lte=1", ["b", "e"]),
    ],
)
def test_django_filter_filters_on_aggregates_alike(
    members: dict[str, Member], query: str, expected: list[str]
) -> None:
    view = _FilterSetView.as_view({"get": "list"})
    response = view(RequestFactory().get(f"/?{query}"))
    assert response.status_code == 200, response.data
    assert [row["name"] for row in response.data["results"]] == expected


def test_django_filter_reports_a_bad_value_naming_the_filter(members: dict[str, Member]) -> None:
    view = _FilterSetView.as_view({"get": "list"})
    response = view(RequestFactory().get("/?entries__gte=many"))
    assert response.status_code == 400
    assert "'many' is not a valid" in str(response.data["entries__gte"][0])
