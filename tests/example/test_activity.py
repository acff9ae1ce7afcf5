"""The example's ``customers/``: aggregates of the events, across databases, serve the same
JSON as ``joined-customers/``, the same list through a join in one database."""

from __future__ import annotations

import pytest
from django.test import Client

from crossprefetch.testing import assert_num_queries
from shop.seeding import Dataset
from tests.example.conftest import SHOP_DATABASES

pytestmark = [
    pytest.mark.django_db(databases=SHOP_DATABASES),
    pytest.mark.usefixtures("shop_data"),
]

QUERIES = [
    "",
    "page=2",
    "events__gte=4",
    "events__lte=0",
    "events__lte=2&spent__gte=100",
    "spent__lte=0",
    "spent__gte=250.5",
    "last_event__gte=2024-01-01T03:00:00Z",
    "last_event__lt=2024-01-01T02:00:00Z",
    "inactive=true",
    "inactive=false&events__lte=1",
    "ordering=events",
    "ordering=-events",
    "ordering=-spent",
    "ordering=last_event,-name",
    "ordering=-last_event&events__gte=2&page=2",
    "ordering=name",
]


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("page_size", [7, 30])
def test_the_same_json_as_annotate_through_the_join(
    client: Client, query: str, page_size: int
) -> None:
    url = f"customers/?page_size={page_size}&{query}"
    joined = client.get(f"/shop/joined-{url}")
    ours = client.get(f"/shop/{url}")
    assert ours.status_code == joined.status_code == 200, ours.content
    mine, theirs = ours.json(), joined.json()
    assert mine["count"] == theirs["count"]
    assert mine["results"] == theirs["results"]
    assert (mine["next"] is None) == (theirs["next"] is None)
    assert mine["results"] or "page=2" in query or "inactive=true" in query


@pytest.mark.parametrize(
    ("query", "remote"),
    [
        ("", 1),  # the page's aggregates, one grouped query
        ("events__gte=4", 2),  # the filter's keys, then the page's aggregates
        ("spent__lte=0", 2),  # customers without events kept: the same
        ("ordering=-spent", 2),  # the ranks, then the page's aggregates
    ],
)
def test_queries_per_alias(client: Client, query: str, remote: int) -> None:
    with assert_num_queries(default=2, timeseries=remote):
        response = client.get(f"/shop/customers/?page_size=100&{query}")
    assert response.status_code == 200


def test_customers_without_events_read_zero_and_sort_last(
    client: Client, shop_data: Dataset
) -> None:
    rows = client.get(f"/shop/customers/?page_size={shop_data.customers}&ordering=-events")
    results = rows.json()["results"]
    idle = [row for row in results if row["events"] == 0]
    assert idle  # the seeded data has customers without events
    assert results[-len(idle) :] == idle
    assert {(row["spent"], row["last_event"]) for row in idle} == {("0.00", None)}
    assert [row["id"] for row in idle] == sorted(row["id"] for row in idle)


def test_a_bad_value_is_a_400_naming_the_filter(client: Client) -> None:
    with assert_num_queries(default=0, timeseries=0):
        response = client.get("/shop/customers/?events__gte=lots")
    assert response.status_code == 400
    assert "Filter 'events__gte'" in response.json()["events__gte"][0]
