"""URLconf of the tests of lookups, filters and orderings on a failing reference database.

Events filtered and ordered by their customer's name, the customers in the ``reference``
alias, which the tests point at a PostgreSQL server of their own (hung, killed, or a port
that hangs up). Each variant of the spec takes one layer of the fetch chain in turn: a
timeout, coalescing, a cache.
"""

from __future__ import annotations

from typing import Any

from django.urls import path
from rest_framework import viewsets

from crossprefetch import CachePolicy, CrossDBPrefetchMixin
from crossprefetch.filters import CrossDBFilter, CrossDBFilterBackend, CrossDBOrderingFilter
from tests.failure_urls import ReferenceEventSerializer, customers
from tests.testapp.models import OrderEvent

#: The spec's ``timeout``: the bound of a filter on a hung server.
TIMEOUT = 0.5


def _viewset(**options: Any) -> Any:
    class FilteredReferenceEvents(CrossDBPrefetchMixin, viewsets.ReadOnlyModelViewSet[OrderEvent]):
        queryset = OrderEvent.objects.order_by("id")
        serializer_class = ReferenceEventSerializer
        filter_backends = [CrossDBFilterBackend, CrossDBOrderingFilter]
        cross_db_fields = {"customers": customers(timeout=TIMEOUT, **options)}
        cross_db_filters = {
            "customer_name": CrossDBFilter("customers", "name", lookup_expr="icontains")
        }
        cross_db_ordering_fields = {"customer_name": ("customers", "name")}

    return FilteredReferenceEvents.as_view({"get": "list"})


class TimedReferenceEvents(CrossDBPrefetchMixin, viewsets.ReadOnlyModelViewSet[OrderEvent]):
    """Lookups only, under the timeout: what a hung server may cost a page."""

    queryset = OrderEvent.objects.order_by("id")
    serializer_class = ReferenceEventSerializer
    cross_db_fields = {"customers": customers(timeout=TIMEOUT)}


urlpatterns = [
    path("events/", TimedReferenceEvents.as_view({"get": "list"})),
    path("filtered/", _viewset()),
    path("filtered/coalesced/", _viewset(coalesce=0.5)),
    path("filtered/cached/", _viewset(cache=CachePolicy(300))),
]
