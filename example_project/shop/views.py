"""The order-event endpoints: crossprefetch, the naive version, and the benchmark's baselines.

All of them list the same events with the same pagination and serve the same JSON.

* ``OrderEventViewSet`` — crossprefetch: one query for the customers of the page.
* ``NaiveOrderEventViewSet`` — per-row lookups: two queries per event.
* ``PerPageDictOrderEventViewSet`` — the hand-written cure: ``get_serializer_context()``
  fetches the page's customers with ``id__in``. The benchmark's reference.
* ``WholeTableDictOrderEventViewSet`` — the hand-written shortcut: the whole customer table
  in the context, on every request.
* ``JoinedOrderEventViewSet`` — the same data in one database, joined with
  ``select_related``: what the two-database design is compared against.
* ``CachedOrderEventViewSet`` — crossprefetch with per-key caching of the customers.
* ``DegradingOrderEventViewSet`` — crossprefetch with ``on_error="degrade"`` and a
  timeout: the page is served, customers unknown, when their database fails or is slow.
* ``SlowReferenceOrderEventViewSet`` — the same, reading customers through a query slower
  than the timeout: what ``manage.py benchmark_degraded`` measures the timeout with.
* ``async_events`` — crossprefetch in an async view, through ``aprefetch_cross_db``.

``events/`` and ``joined-events/`` also filter and order by the customer
(``?customer_tier=gold``, ``?customer_name=ada``, ``?ordering=-customer_name``): the first
across the two databases, the second through the join, with the same results and counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from django.db import connections
from django.db.models import QuerySet
from django.http import HttpRequest, JsonResponse
from rest_framework import viewsets
from rest_framework.request import Request

from crossprefetch import CrossDBPrefetch, CrossDBPrefetchMixin
from crossprefetch.filters import CrossDBFilter, CrossDBFilterBackend, CrossDBOrderingFilter
from crossprefetch.loaders import aprefetch_cross_db
from shop.joined import joined_filter
from shop.models import Customer, JoinedOrderEvent, OrderEvent
from shop.pagination import EventPagination
from shop.serializers import (
    ContextDictOrderEventSerializer,
    JoinedOrderEventSerializer,
    NaiveOrderEventSerializer,
    OrderEventSerializer,
)

_Row = TypeVar("_Row")

CUSTOMER_FIELDS = ("name", "tier")
#: Seconds a customer stays cached in the ``cached-events`` endpoint.
CACHE_TIMEOUT = 300
#: Seconds the customers' database has to answer in the ``degrading-events`` endpoints.
DEGRADE_TIMEOUT = 0.1


class OrderEventViewSet(CrossDBPrefetchMixin, viewsets.ReadOnlyModelViewSet[OrderEvent]):
    """crossprefetch: the customers of the serialized events, fetched once per page."""

    queryset = OrderEvent.objects.all()
    serializer_class = OrderEventSerializer
    pagination_class = EventPagination
    cross_db_fields = {
        "customers": CrossDBPrefetch("shop.Customer", key="customer_id", fields=CUSTOMER_FIELDS),
    }
    filter_backends = [CrossDBFilterBackend, CrossDBOrderingFilter]
    cross_db_filters = {
        "customer_tier": CrossDBFilter("customers", "tier"),
        "customer_tier__in": CrossDBFilter("customers", "tier", lookup_expr="in"),
        "customer_name": CrossDBFilter("customers", "name", lookup_expr="icontains"),
        "customer_active": CrossDBFilter("customers", "is_active"),
        "customer_id__gte": CrossDBFilter("customers", "id", lookup_expr="gte"),
        "customer_missing": CrossDBFilter("customers", lookup_expr="isnull"),
    }
    ordering_fields = ["timestamp", "amount"]
    cross_db_ordering_fields = {
        "customer_name": ("customers", "name"),
        "customer_tier": ("customers", "tier"),
    }


class CachedOrderEventViewSet(OrderEventViewSet):
    """crossprefetch with each customer cached for ``CACHE_TIMEOUT`` seconds."""

    cross_db_fields = {
        "customers": CrossDBPrefetch(
            "shop.Customer", key="customer_id", fields=CUSTOMER_FIELDS, cache=CACHE_TIMEOUT
        ),
    }


class DegradingOrderEventViewSet(OrderEventViewSet):
    """crossprefetch that serves the page even when the customers' database fails.

    Without the remote filters and orderings: a list cannot be filtered by rows it cannot
    read (such a request would answer 503).
    """

    filter_backends = [CrossDBOrderingFilter]
    cross_db_filters = {}
    cross_db_ordering_fields = {}

    cross_db_fields = {
        "customers": CrossDBPrefetch(
            "shop.Customer",
            key="customer_id",
            fields=CUSTOMER_FIELDS,
            on_error="degrade",
            timeout=DEGRADE_TIMEOUT,
        ),
    }


def slow_customers(request: HttpRequest | None) -> QuerySet[Customer]:
    """Customers behind a condition the database takes seconds to evaluate."""
    queryset = Customer.objects.all()
    vendor = connections[queryset.db].vendor
    if vendor == "postgresql":
        return queryset.extra(where=["pg_sleep(2) IS NOT NULL"])
    return queryset.extra(
        where=[
            "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
            "WHERE x < 500000000) SELECT count(*) FROM c) > 0"
        ]
    )


class SlowReferenceOrderEventViewSet(DegradingOrderEventViewSet):
    """``DegradingOrderEventViewSet`` over a customers' query slower than its timeout."""

    cross_db_fields = {
        "customers": CrossDBPrefetch(
            slow_customers,
            key="customer_id",
            fields=CUSTOMER_FIELDS,
            on_error="degrade",
            timeout=DEGRADE_TIMEOUT,
        ),
    }


class NaiveOrderEventViewSet(viewsets.ReadOnlyModelViewSet[OrderEvent]):
    """Per-row ``SerializerMethodField`` lookups: 1 + 2N queries for a page of N events."""

    queryset = OrderEvent.objects.all()
    serializer_class = NaiveOrderEventSerializer
    pagination_class = EventPagination


class PerPageDictOrderEventViewSet(viewsets.ReadOnlyModelViewSet[OrderEvent]):
    """The careful hand-written version: a dict of the page's customers in the context."""

    queryset = OrderEvent.objects.all()
    serializer_class = ContextDictOrderEventSerializer
    pagination_class = EventPagination
    _events: Sequence[Any] | None = None

    def paginate_queryset(
        self, queryset: QuerySet[OrderEvent, _Row] | Sequence[_Row]
    ) -> list[_Row] | None:
        page = super().paginate_queryset(queryset)
        self._events = page
        return page

    def get_object(self) -> OrderEvent:
        event = super().get_object()
        self._events = [event]
        return event

    def get_serializer_context(self) -> dict[str, Any]:
        ids = {event.customer_id for event in self._events or ()}
        customers = Customer.objects.filter(id__in=ids).values("id", *CUSTOMER_FIELDS)
        by_id = {customer["id"]: customer for customer in customers} if ids else {}
        return {**super().get_serializer_context(), "customers": by_id}


class WholeTableDictOrderEventViewSet(viewsets.ReadOnlyModelViewSet[OrderEvent]):
    """The hand-written shortcut: every customer, on every request."""

    queryset = OrderEvent.objects.all()
    serializer_class = ContextDictOrderEventSerializer
    pagination_class = EventPagination

    def get_serializer_context(self) -> dict[str, Any]:
        customers = Customer.objects.values("id", *CUSTOMER_FIELDS)
        by_id = {customer["id"]: customer for customer in customers}
        return {**super().get_serializer_context(), "customers": by_id}


class JoinedOrderEventViewSet(viewsets.ReadOnlyModelViewSet[JoinedOrderEvent]):
    """The same events in the customers' database, joined to them in the same query."""

    queryset = JoinedOrderEvent.objects.select_related("customer")
    serializer_class = JoinedOrderEventSerializer
    pagination_class = EventPagination
    request: Request

    def get_queryset(self) -> QuerySet[JoinedOrderEvent]:
        """The filters and orderings of ``events/``, written as joins (see :mod:`shop.joined`)."""
        return joined_filter(super().get_queryset(), self.request.query_params)


async def async_events(request: HttpRequest) -> JsonResponse:
    """A page of events with their customers' names and tiers, from an async view.

    ``?page=`` and ``?page_size=`` as in the API (without its links and count).
    """
    try:
        page = max(1, int(request.GET.get("page", "1")))
        size = min(max(1, int(request.GET.get("page_size", "10"))), EventPagination.max_page_size)
    except ValueError:
        return JsonResponse({"detail": "page and page_size are whole numbers."}, status=400)
    events = [e async for e in OrderEvent.objects.all()[(page - 1) * size : page * size]]
    customers = (await aprefetch_cross_db(events, OrderEventViewSet.cross_db_fields))["customers"]
    results = []
    for event in events:
        customer = customers.get(event.customer_id)
        results.append(
            {
                "id": event.pk,
                "customer_id": event.customer_id,
                "event_type": event.event_type,
                "customer_name": customer["name"] if customer else "Unknown customer",
                "customer_tier": customer["tier"] if customer else None,
            }
        )
    return JsonResponse({"results": results})
