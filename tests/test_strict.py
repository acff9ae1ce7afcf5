"""``CROSSPREFETCH["STRICT"]`` on query parameters: a misspelled filter or ordering term is
a 400 naming the closest valid name; with STRICT off, DRF's leniency (ignored, dropped).

STRICT is on in tests (``running_tests()``); the tables run each request both ways.
"""

from __future__ import annotations

from typing import Any

import django_filters
import pytest
from django.urls import path
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import viewsets
from rest_framework.test import APIClient

from crossprefetch import CrossDBPrefetchMixin
from crossprefetch.filters import CrossDBFilter, CrossDBFilterBackend, CrossDBOrderingFilter
from crossprefetch.testing import assert_num_queries
from tests.conftest import ALL_DATABASES, Scenario
from tests.testapp.models import OrderEvent
from tests.testapp.serializers import OrderEventSerializer
from tests.testapp.views import CUSTOMERS, PageNumber

pytestmark = [pytest.mark.django_db(databases=ALL_DATABASES), pytest.mark.urls(__name__)]


class EventFilterSet(django_filters.FilterSet):  # type: ignore[misc]
    #: one edit from the cross-database filter "event", and the FilterSet's own
    events = django_filters.CharFilter(field_name="event_type")

    class Meta:
        model = OrderEvent
        fields: list[str] = []


class StrictEventViewSet(CrossDBPrefetchMixin, viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
    queryset = OrderEvent.objects.all()
    serializer_class = OrderEventSerializer
    pagination_class = PageNumber
    filter_backends = [CrossDBFilterBackend, DjangoFilterBackend, CrossDBOrderingFilter]
    filterset_class = EventFilterSet
    cross_db_fields = {"customers": CUSTOMERS}
    cross_db_filters = {
        "customer_tier": CrossDBFilter("customers", "tier"),
        "customer_tier__in": CrossDBFilter("customers", "tier", lookup_expr="in"),
        "event": CrossDBFilter("customers", "name"),
    }
    ordering_fields = ["timestamp", "amount"]
    cross_db_ordering_fields = {"customer_name": ("customers", "name")}


urlpatterns = [path("events/", StrictEventViewSet.as_view({"get": "list"}))]

#: an unfiltered page: the customers of its events, then the count and the page
UNFILTERED = {"default": 1, "timeseries": 2, "legacy": 0}
#: a request refused before any query
REFUSED = {"default": 0, "timeseries": 0, "legacy": 0}

PARAMETERS: list[tuple[str, str, str | None]] = [
    # (query, parameter, STRICT's message; None: not refused)
    ("customer_teir=gold", "customer_teir", "did you mean 'customer_tier'?"),
    ("customer_tie=gold", "customer_tie", "did you mean 'customer_tier'?"),
    ("customer_tierr=gold", "customer_tierr", "did you mean 'customer_tier'?"),
    ("customer_tier_in=gold", "customer_tier_in", "did you mean 'customer_tier__in'?"),
    ("Customer_tier=gold", "Customer_tier", "did you mean 'customer_tier'?"),
    # far from every filter: another app's parameter, ignored
    ("utm_source=newsletter", "utm_source", None),
    ("tier=gold", "tier", None),
    # read by another part of the view: the paginator, the FilterSet, DRF's format
    ("page_size=3", "page_size", None),
    ("events=paid", "events", None),
    ("format=json", "format", None),
]


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lenient"])
@pytest.mark.parametrize(
    ("query", "parameter", "message"), PARAMETERS, ids=[p[0] for p in PARAMETERS]
)
def test_a_misspelled_filter(
    scenario: Scenario,
    api: APIClient,
    settings: Any,
    strict: bool,
    query: str,
    parameter: str,
    message: str | None,
) -> None:
    settings.CROSSPREFETCH = {"STRICT": strict}
    refused = strict and message is not None
    with assert_num_queries(REFUSED if refused else UNFILTERED):
        response = api.get(f"/events/?{query}")
    if refused:
        assert response.status_code == 400
        assert response.json() == {parameter: [f"Unknown filter {parameter!r}; {message}"]}
        return
    assert response.status_code == 200, response.content
    expected = OrderEvent.objects.all()
    if parameter == "events":  # the FilterSet's filter applies
        expected = expected.filter(event_type="paid")
    assert response.json()["count"] == expected.count()


def test_every_misspelled_filter_is_named_at_once(scenario: Scenario, api: APIClient) -> None:
    with assert_num_queries(REFUSED):
        response = api.get("/events/?customer_teir=gold&customer_tier_in=gold&utm_source=x")
    assert response.status_code == 400
    assert response.json() == {
        "customer_teir": ["Unknown filter 'customer_teir'; did you mean 'customer_tier'?"],
        "customer_tier_in": [
            "Unknown filter 'customer_tier_in'; did you mean 'customer_tier__in'?"
        ],
    }


def test_a_declared_filter_beside_a_misspelled_one_is_still_refused(
    scenario: Scenario, api: APIClient
) -> None:
    """The misspelled one would have narrowed the list too: answering with the other alone
    is the silent wrong answer STRICT exists to refuse."""
    with assert_num_queries(REFUSED):
        response = api.get("/events/?customer_tier=gold&customer_teir=basic")
    assert response.status_code == 400
    assert list(response.json()) == ["customer_teir"]


ORDERINGS: list[tuple[str, str | None]] = [
    # (?ordering=, STRICT's message; None: valid)
    ("custmer_name", "Unknown ordering term 'custmer_name'; did you mean 'customer_name'?"),
    ("-custmer_name", "Unknown ordering term '-custmer_name'; did you mean '-customer_name'?"),
    ("amount,timestmp", "Unknown ordering term 'timestmp'; did you mean 'timestamp'?"),
    ("--amount", "Unknown ordering term '--amount'; did you mean '-amount'?"),
    (
        "secret",
        "Unknown ordering term 'secret'; order by one of: timestamp, amount, customer_name "
        "(prefixed with '-' for descending).",
    ),
    ("-customer_name,amount", None),
    ("amount,", None),  # an empty term is no term, as DRF reads it
]


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lenient"])
@pytest.mark.parametrize(("ordering", "message"), ORDERINGS, ids=[o for o, _ in ORDERINGS])
def test_an_unknown_ordering_term(
    scenario: Scenario,
    api: APIClient,
    settings: Any,
    strict: bool,
    ordering: str,
    message: str | None,
) -> None:
    settings.CROSSPREFETCH = {"STRICT": strict}
    refused = strict and message is not None
    remote = "customer_name" in ordering and message is None  # ranks the customers
    expected = REFUSED if refused else {**UNFILTERED, "default": 1 + remote}
    with assert_num_queries(expected):
        response = api.get(f"/events/?ordering={ordering}")
    if refused:
        assert response.status_code == 400
        assert response.json() == {"ordering": [message]}
    else:  # DRF's answer: the valid terms only, the view's own order if none
        assert response.status_code == 200, response.content
        assert response.json()["count"] == OrderEvent.objects.count()


def test_the_ordering_parameter_is_named_as_drf_settings_name_it(
    scenario: Scenario, api: APIClient, settings: Any
) -> None:
    settings.REST_FRAMEWORK = {"ORDERING_PARAM": "sort"}
    response = api.get("/events/?sort=amout")
    assert response.status_code == 400
    assert response.json() == {"sort": ["Unknown ordering term 'amout'; did you mean 'amount'?"]}
