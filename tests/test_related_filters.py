"""Filters and orderings by a relation into another database, with no spec declared."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from crossprefetch.checks import check_view_filters
from crossprefetch.testing import assert_num_queries
from tests.related_data import ALL_DATABASES, Tickets, make_tickets
from tests.testapp import related_views
from tests.testapp.models import SalesRegion, SupportAccount, Ticket

pytestmark = pytest.mark.django_db(databases=ALL_DATABASES)

URL = "/api/filtered-tickets/"


@pytest.fixture
def data() -> Tickets:
    return make_tickets()


def _ids(response: Any) -> list[int]:
    return [row["id"] for row in response.json()["results"]]


def test_filter_by_a_field_of_the_relation(data: Tickets, api: APIClient) -> None:
    gold = set(SupportAccount.objects.filter(tier="gold").values_list("id", flat=True))
    expected = [t.id for t in data.tickets if t.account_id in gold]
    # the gold accounts' keys (default), then count and page (timeseries); the page's
    # accounts, and the regions of tickets and of accounts
    with assert_num_queries(default=2, timeseries=2, legacy=2):
        response = api.get(f"{URL}?account_tier=gold&page_size=100")
    assert response.json()["count"] == len(expected)
    assert _ids(response) == expected
    assert {row["account_tier"] for row in response.json()["results"]} == {"gold"}


def test_filter_by_a_text_keyed_relation(data: Tickets, api: APIClient) -> None:
    codes = set(SalesRegion.objects.filter(label="Europe").values_list("code", flat=True))
    response = api.get(f"{URL}?region=Europe&page_size=100")
    assert _ids(response) == [t.id for t in data.tickets if t.region_id in codes]


@pytest.mark.parametrize("descending", [False, True])
def test_order_by_a_field_of_the_relation(data: Tickets, api: APIClient, descending: bool) -> None:
    names = {a.id: a.name for a in SupportAccount.objects.all()}
    with_account = [t for t in data.tickets if t.account_id in names]
    # ties keep the view's own order (ascending id), in both directions
    ordered = sorted(with_account, key=lambda t: names[t.account_id], reverse=descending)
    without = [t for t in data.tickets if t.account_id not in names]  # last, both ways
    sign = "-" if descending else ""
    response = api.get(f"{URL}?ordering={sign}account_name&page_size=100")
    assert _ids(response) == [t.id for t in [*ordered, *without]]


def test_a_relation_name_needs_no_spec() -> None:
    assert check_view_filters(related_views.FilteredTicketViewSet) == []


def test_a_relation_in_the_same_database_is_no_spec(data: Tickets, api: APIClient) -> None:
    from crossprefetch.related import relation_spec

    assert relation_spec(Ticket, "parent") is None
    assert relation_spec(Ticket, "account") is not None


def test_a_filterset_filter_by_a_relation(data: Tickets) -> None:
    django_filters = pytest.importorskip("django_filters")
    from django_filters.rest_framework import DjangoFilterBackend
    from rest_framework.test import APIRequestFactory

    from crossprefetch.filters import CrossDBFilterSetFilter

    class TicketFilterSet(django_filters.FilterSet):  # type: ignore[misc]
        account_tier = CrossDBFilterSetFilter("account", "tier")

        class Meta:
            model = Ticket
            fields = ["status"]

    class Tickets(related_views.TicketViewSet):
        filter_backends = [DjangoFilterBackend]
        filterset_class = TicketFilterSet

    gold = set(SupportAccount.objects.filter(tier="gold").values_list("id", flat=True))
    view = Tickets.as_view({"get": "list"})
    response = view(APIRequestFactory().get("/", {"account_tier": "gold", "status": "closed"}))
    response.render()
    expected = [t.id for t in data.tickets if t.account_id in gold and t.status == "closed"]
    assert expected
    assert [row["id"] for row in response.data["results"]] == expected
    assert response.data["count"] == len(expected)
