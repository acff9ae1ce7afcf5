"""Cursor pagination over orderings by remote rows, against the single-database join.

``CrossDBCursorPagination`` on the example's ``events/`` (``cursor-shop-events/``) and on
parcels keyed by text longer than their column (``cursor-parcels/``): walked forward
with the ``next`` links, then back from the last page with the ``previous`` links, the
pages hold every row once, in the order of the same query in one database
(``JoinedOrderEvent``, ``JoinedParcel``): the remote value, rows without a remote row
last, then the view's own ordering.
"""

from __future__ import annotations

from base64 import b64encode
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core import checks
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework import pagination
from rest_framework.test import APIClient

from crossprefetch.checks import check_view_filters
from crossprefetch.testing import assert_max_num_queries
from shop.joined import joined_filter
from shop.models import JoinedOrderEvent
from tests.conftest import ALL_DATABASES
from tests.test_filter_property import ORDERINGS, TIERS, _load, datasets
from tests.testapp import filter_views
from tests.testapp.models import JoinedParcel, Parcel, Vendor

pytestmark = pytest.mark.django_db(databases=ALL_DATABASES)

EVENTS = "/api/cursor-shop-events/"


def walk(api: APIClient, url: str, **queries: int) -> tuple[list[list[int]], list[list[int]]]:
    """The pages' ids following ``next`` from ``url``, then ``previous`` from the last page
    (each page in its own order). Each page costs at most ``queries`` per alias."""
    forward: list[list[int]] = []
    next_url: str | None = url
    last = url
    while next_url:
        if queries:
            with assert_max_num_queries(**queries):
                response = api.get(next_url)
        else:
            response = api.get(next_url)
        assert response.status_code == 200, response.content
        forward.append([row["id"] for row in response.json()["results"]])
        last, next_url = next_url, response.json()["next"]
        assert len(forward) < 200, "the walk does not end"
    backward: list[list[int]] = []
    previous: str | None = last
    while previous:
        response = api.get(previous)
        assert response.status_code == 200, response.content
        backward.append([row["id"] for row in response.json()["results"]])
        previous = response.json()["previous"]
        assert len(backward) < 200, "the walk back does not end"
    return forward, backward


def joined_events(params: dict[str, str]) -> list[int]:
    return list(joined_filter(JoinedOrderEvent.objects.all(), params).values_list("id", flat=True))


def assert_walks_as_the_join(
    forward: list[list[int]], backward: list[list[int]], expected: list[int]
) -> None:
    assert [i for page in forward for i in page] == expected
    assert [i for page in reversed(backward) for i in page] == expected


@pytest.fixture
def events() -> None:
    """30 events of 9 customers (3 per tier, sharing 3 names), some dangling."""
    customers = [
        {
            "id": i,
            "name": ["Ada", "Bob", "Cy"][i % 3],
            "email": "",
            "tier": TIERS[i % 3],
            "is_active": True,
        }
        for i in range(1, 10)
    ]
    events = [
        {"customer_id": (i % 13) + 1, "minute": i % 5, "amount": Decimal(i % 4)} for i in range(30)
    ]
    _load(customers, events)


@pytest.mark.parametrize(
    "params",
    [
        {"ordering": "customer_tier"},
        {"ordering": "-customer_tier"},
        {"ordering": "customer_name"},
        {"ordering": "-customer_name,amount"},
        {"ordering": "amount,customer_tier"},
        {"ordering": "customer_tier,-customer_name,-timestamp"},
        {"ordering": "customer_name", "customer_tier__in": "gold,silver"},
        {"ordering": "-customer_tier", "customer_missing": "false"},
        {"ordering": "customer_tier", "customer_name": "zz"},
    ],
    ids=lambda p: urlencode(p),
)
@pytest.mark.parametrize("page_size", [1, 4, 7, 100])
def test_every_row_once_forward_and_back(
    events: None, params: dict[str, str], page_size: int
) -> None:
    query = urlencode({**params, "page_size": page_size})
    # per page: the remote ranks (and a filter's query), the page's names; the page itself
    forward, backward = walk(APIClient(), f"{EVENTS}?{query}", default=3, timeseries=1)
    assert_walks_as_the_join(forward, backward, joined_events(params))
    assert all(len(page) <= page_size for page in forward)


@pytest.mark.parametrize("ordering", ["-amount", "amount,timestamp", ""])
def test_local_orderings_too_give_every_row_once(events: None, ordering: str) -> None:
    """DRF's own cursor (a value and an offset) repeats or skips rows sharing a value
    (here: with ``page_size=4``, six events per timestamp); the keyset cursor does not,
    for the request's ordering and for the paginator's own (``-timestamp, -id``)."""
    query = urlencode({"ordering": ordering, "page_size": 4})
    forward, backward = walk(APIClient(), f"{EVENTS}?{query}", timeseries=1)
    assert_walks_as_the_join(forward, backward, joined_events({"ordering": ordering}))


def test_a_cursor_of_another_ordering_or_a_forged_one_is_404(events: None) -> None:
    api = APIClient()
    first = api.get(f"{EVENTS}?ordering=customer_name&page_size=4").json()
    cursor = first["next"].split("cursor=")[1].split("&")[0]
    other = api.get(f"{EVENTS}?ordering=customer_tier&page_size=4&cursor={cursor}")
    assert other.status_code == 404
    assert other.json() == {"detail": "Invalid cursor"}
    forged = ["p=not json", "p=[1]", "o=3&p={}", 'p={"o":["customer_name"],"k":["x",1,2,3]}']
    for text in forged:
        cursor = b64encode(text.encode()).decode()
        response = api.get(f"{EVENTS}?ordering=customer_name&cursor={cursor}")
        assert response.status_code == 404, (text, response.content)


def test_pages_of_text_keys_longer_than_the_column() -> None:
    Vendor.objects.bulk_create(
        [
            Vendor(code="ABCDEFGHIJ", name="Gold Ltd", tier="gold"),
            Vendor(code="ABCDEFGH", name="Silver Ltd", tier="silver"),
            Vendor(code="ZZ", name="Gold Ltd", tier="gold"),
        ]
    )
    codes = ["ABCDEFGH", None, "ZZ", "QQ", "ABCDEFGH", "ZZ", None, "ABCDEFGH"]
    for i, code in enumerate(codes, start=1):
        Parcel.objects.create(id=i, vendor_code=code, weight=i % 3)
        JoinedParcel.objects.create(id=i, vendor_code=code, weight=i % 3)
    api = APIClient()
    for ordering in ["vendor_name", "-vendor_name", "vendor_tier,-weight", "-weight,vendor_name"]:
        joined = api.get(f"/api/joined-parcels/?ordering={ordering}&page_size=100").json()
        expected = [row["id"] for row in joined["results"]]
        forward, backward = walk(api, f"/api/cursor-parcels/?ordering={ordering}&page_size=3")
        assert_walks_as_the_join(forward, backward, expected)


def test_drf_cursor_pagination_with_remote_orderings_is_a_check_error() -> None:
    class DrfCursor(pagination.CursorPagination):
        ordering = "-timestamp"

    class View(filter_views.CursorShopEventViewSet):
        pagination_class = DrfCursor

    errors = [e for e in check_view_filters(View) if e.level >= checks.ERROR]
    assert [e.id for e in errors] == ["crossprefetch.E407"]
    assert "CrossDBCursorPagination" in (errors[0].hint or "")
    assert "DrfCursor" in errors[0].msg
    assert [e.id for e in check_view_filters(filter_views.CursorShopEventViewSet)] == []


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    data=datasets(),
    names=st.lists(st.sampled_from(ORDERINGS), unique=True, min_size=1, max_size=3),
    descending=st.lists(st.booleans(), min_size=3, max_size=3),
    tier=st.sampled_from(["", *TIERS]),
    page_size=st.integers(1, 6),
)
def test_walks_as_the_join_on_random_data(
    data: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    names: list[str],
    descending: list[bool],
    tier: str,
    page_size: int,
) -> None:
    _load(*data)
    params = {
        "ordering": ",".join(
            f"{'-' if d else ''}{n}" for n, d in zip(names, descending, strict=False)
        )
    }
    if tier:
        params["customer_tier"] = tier
    query = urlencode({**params, "page_size": page_size})
    forward, backward = walk(APIClient(), f"{EVENTS}?{query}")
    assert_walks_as_the_join(forward, backward, joined_events(params))
