"""Where the time of a page of customers with aggregates goes, phase by phase.

For ``manage.py benchmark_aggregates``: each variant's work is replayed outside the view on
the same page, one phase at a time, the variants interleaved, medians reported:

* ``filter``: building the filtered or ordered QuerySet: for crossprefetch, the remote
  grouped query of the filter (the keys whose aggregates pass or fail) or of the ordering
  (the ranks); nothing through the join, whose ``HAVING`` and ``ORDER BY`` run in the next
  two phases;
* ``count``: the paginator's ``COUNT(*)`` (through the join: of the grouped rows when a
  filter needs the aggregates);
* ``page``: the page's query and its model instances (through the join: grouped);
* ``lookups``: the page's aggregates: crossprefetch's one grouped query for the page's keys
  (none when the filter's query read them);
* ``serialize``: DRF's fields turning instances into primitives;
* ``render``: JSON rendering.
"""

from __future__ import annotations

from typing import Any

from django.test import RequestFactory
from rest_framework.request import Request

from crossprefetch import prefetch_cross_db
from crossprefetch.filters import CrossDBFilterBackend, CrossDBOrderingFilter
from crossprefetch.rest_framework._known import known_rows  # what the mixin passes on
from shop.activity import (
    CustomerActivitySerializer,
    CustomerActivityViewSet,
    JoinedCustomerActivitySerializer,
    joined_activity,
)
from shop.breakdown import Recipe, median_stages
from shop.comparison import Variant
from shop.models import Customer

PHASES = {
    "filter": "remote filter or ranks",
    "count": "paginator count",
    "page": "page query and model instances",
    "lookups": "aggregates of the page",
    "serialize": "serialization (DRF fields)",
    "render": "JSON rendering",
}


def across(query: str) -> Recipe:
    """``customers/?query``: crossprefetch's filter backends, then the page's aggregates."""

    def queryset() -> tuple[Any, Any]:
        view = CustomerActivityViewSet()
        view.request = Request(RequestFactory().get(f"/?{query}"))
        view.format_kwarg = None
        customers: Any = Customer.objects.order_by("id")
        for backend in (CrossDBFilterBackend, CrossDBOrderingFilter):
            customers = backend().filter_queryset(view.request, customers, view)
        return customers, known_rows(view, view.request, view.get_cross_db_fields())

    def lookups(page: list[Any], known: Any) -> dict[str, Any]:
        return dict(prefetch_cross_db(page, CustomerActivityViewSet.cross_db_fields, known=known))

    return queryset, lookups, CustomerActivitySerializer


def through_join(query: str) -> Recipe:
    """``joined-customers/?query``: ``annotate()`` through the join, in one database."""
    params = dict(part.split("=", 1) for part in query.split("&") if part)

    def queryset() -> tuple[Any, Any]:
        return joined_activity(Customer.objects.order_by("id"), params), None

    return queryset, lambda page, known: {}, JoinedCustomerActivitySerializer


def recipe(variant: Variant) -> Recipe:
    return (through_join if "joined" in variant.route else across)(variant.query)


def breakdown(
    variants: tuple[Variant, ...], page_size: int, repeat: int
) -> dict[str, dict[str, float]]:
    """``{variant key: {phase: median seconds}}`` for a page of ``page_size`` customers."""
    return median_stages({variant: recipe(variant) for variant in variants}, page_size, repeat)
