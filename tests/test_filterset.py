"""django-filter: ``CrossDBFilterSetFilter`` in a ``FilterSet`` behind DRF's backend."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from crossprefetch.testing import assert_num_queries
from tests.conftest import ALL_DATABASES, Scenario
from tests.testapp.models import Customer, OrderEvent, Region

pytestmark = pytest.mark.django_db(databases=ALL_DATABASES)

URL = "/api/filterset-events/"


def ids(api: APIClient, query: str) -> tuple[list[int], int]:
    response = api.get(f"{URL}?page_size=1000&{query}")
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]], response.json()["count"]


def expected(scenario: Scenario, keep: object) -> list[int]:
    customers = {c.id: c for c in Customer.objects.all()}
    events = OrderEvent.objects.order_by("-timestamp", "-id")
    return [e.id for e in events if keep(customers.get(e.customer_id))]  # type: ignore[operator]


def test_exact_and_in(scenario: Scenario, api: APIClient) -> None:
    gold = expected(scenario, lambda c: c is not None and c.tier == "gold")
    with assert_num_queries(default=2, timeseries=2, legacy=0):
        assert ids(api, "customer_tier=gold") == (gold, len(gold))
    both = expected(scenario, lambda c: c is not None and c.tier in {"gold", "basic"})
    assert ids(api, "customer_tier__in=gold,basic") == (both, len(both))


def test_isnull_on_the_spec_and_local_filters_combine(scenario: Scenario, api: APIClient) -> None:
    missing = [
        e.id
        for e in OrderEvent.objects.order_by("-timestamp", "-id")
        if e.event_type == "paid" and not Customer.objects.filter(id=e.customer_id or 0).exists()
    ]
    assert ids(api, "no_customer=true&event_type=paid") == (missing, len(missing))


def test_a_spec_given_directly(scenario: Scenario, api: APIClient) -> None:
    Region.objects.filter(code="R1").update(name="North")
    north = [
        e.id for e in OrderEvent.objects.order_by("-timestamp", "-id") if e.region_code == "R1"
    ]
    assert ids(api, "region=North") == (north, len(north))


def test_empty_values_are_ignored_and_invalid_ones_are_400(
    scenario: Scenario, api: APIClient
) -> None:
    assert ids(api, "customer_tier=")[1] == len(scenario.events)
    response = api.get(f"{URL}?customer_id__gte=abc")
    assert response.status_code == 400
    assert "Filter 'customer_id__gte'" in response.json()["customer_id__gte"][0]


def test_outside_a_view_the_spec_must_be_given() -> None:
    from django.core.exceptions import ImproperlyConfigured

    from tests.testapp.filter_views import EventFilterSet

    filterset = EventFilterSet({"customer_tier": "gold"}, queryset=OrderEvent.objects.all())
    with pytest.raises(ImproperlyConfigured, match="cross_db_fields"):
        list(filterset.qs)
