"""A misdeclared filter or remote ordering, met by a request: ``ImproperlyConfigured`` naming
the view, the parameter and the spec, before any query; never a bare ``FieldDoesNotExist``
nor a silently unfiltered list. The same declarations are system check errors
(tests/test_filter_checks.py), and a URLconf declaring them still imports: this module's
views are built at its import.
"""

from __future__ import annotations

from typing import Any

import django_filters
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.urls import path
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import viewsets
from rest_framework.test import APIClient

from crossprefetch import CrossDBPrefetchMixin
from crossprefetch.filters import (
    CrossDBFilter,
    CrossDBFilterBackend,
    CrossDBFilterSetFilter,
    CrossDBOrderingFilter,
)
from crossprefetch.testing import assert_num_queries, capture_queries
from tests.conftest import ALL_DATABASES, Scenario
from tests.testapp.models import OrderEvent
from tests.testapp.serializers import OrderEventSerializer
from tests.testapp.views import CUSTOMERS, PageNumber

pytestmark = [pytest.mark.django_db(databases=ALL_DATABASES), pytest.mark.urls(__name__)]


class BrokenFilterSet(django_filters.FilterSet):  # type: ignore[misc]
    set_tier = CrossDBFilterSetFilter("customers", "tier", lookup_expr="icontain")
    set_email = CrossDBFilterSetFilter("customers", "emial")
    set_buyer = CrossDBFilterSetFilter("customer", "tier")

    class Meta:
        model = OrderEvent
        fields: list[str] = []


class BrokenViewSet(CrossDBPrefetchMixin, viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
    queryset = OrderEvent.objects.all()
    serializer_class = OrderEventSerializer
    pagination_class = PageNumber
    filter_backends = [CrossDBFilterBackend, DjangoFilterBackend, CrossDBOrderingFilter]
    filterset_class = BrokenFilterSet
    cross_db_fields = {"customers": CUSTOMERS}
    cross_db_filters = {
        "tier_like": CrossDBFilter("customers", "tier", lookup_expr="icontain"),
        "no_field": CrossDBFilter("customers"),
        "email": CrossDBFilter("customers", "emial"),
        "buyer_tier": CrossDBFilter("customer", "tier"),
    }
    ordering_fields = ["amount"]
    cross_db_ordering_fields = {"customer_rank": ("customers", "nmae")}


urlpatterns = [path("broken/", BrokenViewSet.as_view({"get": "list"}))]

LABEL = f"{__name__}.BrokenViewSet"
FILTERS = f"{LABEL}.cross_db_filters"
FILTERSET = f"{LABEL}.filterset_class.base_filters"

ERRORS: list[tuple[str, list[str]]] = [
    # (query, what the error says)
    (
        "tier_like=go",
        [
            f"{FILTERS}['tier_like'] = CrossDBFilter('customers', 'tier', lookup_expr='icontain')",
            "lookup_expr 'icontain' is not a lookup crossprefetch filters with.",
            "Did you mean 'icontains'?",
        ],
    ),
    ("no_field=gold", [f"{FILTERS}['no_field']", "lookup_expr='isnull'"]),
    (
        "email=x",
        [
            f"{FILTERS}['email'] = CrossDBFilter('customers', 'emial', lookup_expr='exact')",
            "testapp.Customer (the rows of CrossDBPrefetch('testapp.Customer'",
            "has no field 'emial'",
            "Did you mean 'email'?",
        ],
    ),
    (
        "buyer_tier=gold",
        [
            f"{FILTERS}['buyer_tier'] uses the lookup 'customer', which {LABEL} does not declare",
            "Did you mean 'customers'?",
        ],
    ),
    (
        "ordering=customer_rank",
        [
            f"{LABEL}.cross_db_ordering_fields['customer_rank'] = ('customers', 'nmae')",
            "has no field 'nmae'",
            "Did you mean 'name'?",
        ],
    ),
    (
        "set_tier=go",
        [
            f"{FILTERSET}['set_tier'] = CrossDBFilterSetFilter('customers', 'tier', "
            "lookup_expr='icontain')",
            "Did you mean 'icontains'?",
        ],
    ),
    ("set_email=x", [f"{FILTERSET}['set_email']", "has no field 'emial'", "Did you mean 'email'?"]),
    (
        "set_buyer=gold",
        [f"{FILTERSET}['set_buyer']", "uses the lookup 'customer'", "Did you mean 'customers'?"],
    ),
]


@pytest.mark.parametrize(("query", "says"), ERRORS, ids=[q for q, _ in ERRORS])
def test_a_request_using_a_misdeclared_filter_names_it(
    scenario: Scenario, api: APIClient, query: str, says: list[str]
) -> None:
    with capture_queries() as captured, pytest.raises(ImproperlyConfigured) as raised:
        api.get(f"/broken/?{query}")
    message = str(raised.value)
    for part in says:
        assert part in message, message
    assert {alias: len(captured[alias]) for alias in ALL_DATABASES} == dict.fromkeys(
        ALL_DATABASES, 0
    )


def test_a_request_not_using_them_is_served(scenario: Scenario, api: APIClient) -> None:
    """The rest of the view works: one broken declaration fails the requests that use it."""
    with assert_num_queries(default=1, timeseries=2, legacy=0):
        response = api.get("/broken/?ordering=-amount")
    assert response.status_code == 200
    assert response.json()["count"] == OrderEvent.objects.count()


def test_a_filter_keeps_its_problem_through_pickling() -> None:
    import pickle

    broken = BrokenViewSet.cross_db_filters["tier_like"]
    copy: Any = pickle.loads(pickle.dumps(broken))
    assert copy == broken
    assert copy.problem == broken.problem


def test_the_schema_of_a_misdeclared_filter_names_it() -> None:
    """Documenting a filter that cannot filter would be a schema that lies."""
    with pytest.raises(ImproperlyConfigured) as raised:
        CrossDBFilterBackend().get_schema_operation_parameters(BrokenViewSet())
    assert str(raised.value).startswith(f"{FILTERS}['tier_like'] = CrossDBFilter(")
