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
from rest_framework.filters import BaseFilterBackend
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


# -- parameters other parts of the view read, short names, repeated filters ---------------


class ByCustomerIds(BaseFilterBackend):
    """A backend of the project's own reading ``?customers=`` (one edit from the filter
    ``customer``), declared for the schema as DRF asks."""

    def filter_queryset(self, request: Any, queryset: Any, view: Any) -> Any:
        ids = request.query_params.get("customers")
        return queryset.filter(customer_id__in=ids.split(",")) if ids else queryset

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [{"name": "customers", "required": False, "in": "query", "schema": {}}]


class ByCustomerIdsUndeclared(ByCustomerIds):
    """The same, declaring nothing: it may read any parameter."""

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return []


class _Base(CrossDBPrefetchMixin, viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
    queryset = OrderEvent.objects.all()
    serializer_class = OrderEventSerializer
    pagination_class = PageNumber
    cross_db_fields = {"customers": CUSTOMERS}


class DeclaringBackendView(_Base):
    filter_backends = [CrossDBFilterBackend, ByCustomerIds]
    cross_db_filters = {"customer": CrossDBFilter("customers", "name")}


class UndeclaringBackendView(_Base):
    filter_backends = [CrossDBFilterBackend, ByCustomerIdsUndeclared]
    cross_db_filters = {"customer": CrossDBFilter("customers", "name")}


class ShortNameView(_Base):
    filter_backends = [CrossDBFilterBackend]
    cross_db_filters = {
        "q": CrossDBFilter("customers", "name", lookup_expr="icontains"),
        "tier": CrossDBFilter("customers", "tier"),
        "customer_name": CrossDBFilter("customers", "name"),
    }


urlpatterns += [
    path("declaring/", DeclaringBackendView.as_view({"get": "list"})),
    path("undeclaring/", UndeclaringBackendView.as_view({"get": "list"})),
    path("short/", ShortNameView.as_view({"get": "list"})),
]


@pytest.mark.parametrize("url", ["/declaring/", "/undeclaring/"])
def test_a_parameter_a_backend_of_the_project_reads_is_not_a_typo(
    scenario: Scenario, api: APIClient, url: str
) -> None:
    """One edit from the filter ``customer``: read by a backend that declares it, or by one
    that declares nothing (which may read any parameter, so none is refused)."""
    some = sorted({event.customer_id for event in scenario.events if event.customer_id})[:2]
    response = api.get(f"{url}?customers={some[0]},{some[1]}")
    assert response.status_code == 200, response.content
    assert response.json()["count"] == OrderEvent.objects.filter(customer_id__in=some).count()


def test_a_typo_beside_a_declaring_backend_is_still_refused(
    scenario: Scenario, api: APIClient
) -> None:
    with assert_num_queries(REFUSED):
        response = api.get("/declaring/?custome=x")
    assert response.status_code == 400
    assert response.json() == {"custome": ["Unknown filter 'custome'; did you mean 'customer'?"]}


@pytest.mark.parametrize("query", ["_=1700000000", "p=2", "v=3", "=x", "qq=1", "tie=gold"])
def test_short_names_and_private_parameters_are_never_typos(
    scenario: Scenario, api: APIClient, query: str
) -> None:
    """One edit turns ``q`` into ``p`` and ``tier`` into ``tie``: too short to tell a typo
    from another parameter (jQuery's cache-buster ``_``, a page ``p``)."""
    with assert_num_queries(UNFILTERED):
        response = api.get(f"/short/?{query}")
    assert response.status_code == 200, response.content
    assert response.json()["count"] == OrderEvent.objects.count()


def test_a_long_name_beside_short_ones_is_still_judged(scenario: Scenario, api: APIClient) -> None:
    response = api.get("/short/?customer_nme=x")
    assert response.status_code == 400
    assert list(response.json()) == ["customer_nme"]


REPEATED: list[tuple[str, str]] = [
    (
        "customer_tier__in=basic&customer_tier__in=gold",
        "Filter 'customer_tier__in' is given 2 times; give the values once, separated by "
        "commas: customer_tier__in=basic,gold.",
    ),
    (
        "customer_tier=basic&customer_tier=gold&customer_tier=basic",
        "Filter 'customer_tier' is given 3 times; give it once.",
    ),
]


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lenient"])
@pytest.mark.parametrize(("query", "message"), REPEATED, ids=[q for q, _ in REPEATED])
def test_a_filter_given_twice_is_refused(
    scenario: Scenario, api: APIClient, settings: Any, strict: bool, query: str, message: str
) -> None:
    """DRF and django-filter read the last value of a repeated parameter: under STRICT the
    request is refused rather than answered with the last value alone."""
    settings.CROSSPREFETCH = {"STRICT": strict}
    with assert_num_queries(REFUSED if strict else UNFILTERED):
        response = api.get(f"/events/?{query}")
    if strict:
        assert response.status_code == 400
        name = query.split("=")[0]
        assert response.json() == {name: [message]}
        return
    assert response.status_code == 200  # the last value, as DRF reads it
    last = query.rsplit("=", 1)[1]
    customers = [c.pk for c in scenario.customers if c.tier == last]
    assert response.json()["count"] == OrderEvent.objects.filter(customer_id__in=customers).count()
