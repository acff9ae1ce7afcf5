"""The example's endpoints: the same JSON from every variant, and the queries each one costs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from crossprefetch.testing import assert_num_queries
from shop.models import OrderEvent
from shop.seeding import Dataset, seed
from shop.serializers import UNKNOWN_CUSTOMER
from tests.example.conftest import DATASET, SHOP_DATABASES

pytestmark = pytest.mark.django_db(databases=SHOP_DATABASES)

#: Every list endpoint and the queries it costs per alias for a page of ``n`` events
#: (each two-database variant also counts the page's events on ``timeseries``).
QUERIES: dict[str, Any] = {
    "event": lambda n: {"default": 1, "timeseries": 2},
    "naive-event": lambda n: {"default": 2 * n, "timeseries": 2},
    "per-page-dict-event": lambda n: {"default": 1, "timeseries": 2},
    "whole-table-dict-event": lambda n: {"default": 1, "timeseries": 2},
    "joined-event": lambda n: {"default": 2, "timeseries": 0},
}


def list_url(basename: str, page_size: int, page: int = 1) -> str:
    return f"{reverse(f'shop:{basename}-list')}?page={page}&page_size={page_size}"


def get(client: Client, url: str) -> bytes:
    response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    return response.content


@pytest.mark.usefixtures("shop_data")
@pytest.mark.parametrize("page_size", [10, 100])
def test_naive_and_crossprefetch_serve_the_same_bytes(client: Client, page_size: int) -> None:
    for page in (1, 2):
        naive = get(client, list_url("naive-event", page_size, page))
        crossprefetch = get(client, list_url("event", page_size, page))
        # Only the pagination links differ: they name their own endpoint.
        assert naive.replace(b"/naive-events/", b"/events/") == crossprefetch
        assert len(json.loads(crossprefetch)["results"]) == page_size


@pytest.mark.usefixtures("shop_data")
@pytest.mark.parametrize("page_size", [10, 100])
@pytest.mark.parametrize("basename", [b for b in QUERIES if b != "naive-event"])
def test_every_variant_serves_the_naive_json(client: Client, basename: str, page_size: int) -> None:
    naive = json.loads(get(client, list_url("naive-event", page_size)))
    other = json.loads(get(client, list_url(basename, page_size)))
    assert other["count"] == naive["count"] == DATASET.events
    assert json.dumps(other["results"]) == json.dumps(naive["results"])


@pytest.mark.usefixtures("shop_data")
@pytest.mark.parametrize("page_size", [10, 100])
@pytest.mark.parametrize("basename", list(QUERIES))
def test_queries_per_alias(client: Client, basename: str, page_size: int) -> None:
    expected = QUERIES[basename](page_size)
    with assert_num_queries(expected, total=sum(expected.values())):
        get(client, list_url(basename, page_size))


@pytest.mark.usefixtures("shop_data")
@pytest.mark.parametrize(
    ("basename", "expected"),
    [
        ("event", {"default": 1, "timeseries": 1}),
        ("naive-event", {"default": 2, "timeseries": 1}),
        ("per-page-dict-event", {"default": 1, "timeseries": 1}),
    ],
)
def test_retrieve(client: Client, basename: str, expected: dict[str, int]) -> None:
    event = OrderEvent.objects.order_by("pk").last()
    assert event is not None
    url = reverse(f"shop:{basename}-detail", args=[event.pk])
    with assert_num_queries(expected, total=sum(expected.values())):
        body = get(client, url)
    naive = get(client, reverse("shop:naive-event-detail", args=[event.pk]))
    assert body == naive


@pytest.mark.usefixtures("shop_data")
def test_dangling_references_read_as_unknown_customer(client: Client) -> None:
    results = json.loads(get(client, list_url("event", DATASET.events)))["results"]
    dangling = [r for r in results if r["customer_id"] > DATASET.customers]
    known = [r for r in results if r["customer_id"] <= DATASET.customers]
    assert dangling, "the dataset is meant to hold references to deleted customers"
    assert all(r["customer_name"] == UNKNOWN_CUSTOMER for r in dangling)
    assert all(r["customer_tier"] is None for r in dangling)
    assert all(r["customer_name"] != UNKNOWN_CUSTOMER and r["customer_tier"] for r in known)


@pytest.mark.parametrize("basename", ["event", "per-page-dict-event"])
def test_no_events_no_customer_query(client: Client, basename: str) -> None:
    seed(Dataset(customers=5, events=0), force=True)
    with assert_num_queries(default=0, timeseries=1):
        body = json.loads(get(client, list_url(basename, 10)))
    assert body == {"count": 0, "next": None, "previous": None, "results": []}


@pytest.mark.usefixtures("shop_data")
def test_page_size_is_capped_at_ten_thousand(client: Client) -> None:
    body = json.loads(get(client, list_url("event", 50_000)))
    assert len(body["results"]) == DATASET.events  # capped at 10,000, above the 260 seeded
    assert body["next"] is None


@pytest.mark.usefixtures("shop_data")
def test_async_view_serves_the_api_names_and_tiers(client: Client) -> None:
    api = json.loads(get(client, list_url("event", 20, 2)))["results"]
    with assert_num_queries(default=1, timeseries=1):
        body = json.loads(get(client, f"{reverse('shop:async-events')}?page=2&page_size=20"))
    keys = ("id", "customer_id", "event_type", "customer_name", "customer_tier")
    assert body["results"] == [{k: event[k] for k in keys} for event in api]


def test_async_view_refuses_a_page_that_is_not_a_number(client: Client) -> None:
    response = client.get(f"{reverse('shop:async-events')}?page=x")
    assert response.status_code == 400
