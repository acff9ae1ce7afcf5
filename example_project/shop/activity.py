"""Customers with their event counts, totals and last event: the aggregates of another database.

* ``CustomerActivityViewSet`` (``customers/``) — crossprefetch: the events live in the
  ``timeseries`` database, so each page of customers costs one grouped query there
  (``CrossDBAggregate``). ``?events__gte=3``, ``?spent__lte=0`` and ``?ordering=-spent``
  filter and order by the aggregates with exact counts.
* ``JoinedCustomerActivityViewSet`` (``joined-customers/``) — the same list from the same
  data in one database: ``annotate()`` through the ``JoinedOrderEvent`` join, the same
  filters and orderings as ``HAVING`` and ``ORDER BY``. It serves the same JSON; the
  benchmark (``manage.py benchmark_aggregates``) and the tests compare the two.

A customer without events has no row in the grouped query: its ``events`` renders 0, its
``spent`` 0.00 (the aggregate's ``default=``, which the filters compare it as, as through
the join) and its ``last_event`` null; it sorts after the customers with events in both
directions.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.db.models import Case, Count, F, Max, QuerySet, Sum, Value, When
from rest_framework import exceptions, serializers, viewsets
from rest_framework.request import Request

from crossprefetch import ContextLookupField, CrossDBAggregate, CrossDBPrefetchMixin
from crossprefetch.filters import CrossDBFilter, CrossDBFilterBackend, CrossDBOrderingFilter
from shop.models import Customer
from shop.pagination import EventPagination

#: Per customer: how many events, how much spent, when last seen.
ACTIVITY = CrossDBAggregate(
    "shop.OrderEvent",
    key="id",
    to_field="customer_id",
    aggregates={
        "events": Count("id"),
        "spent": Sum("amount", default=Decimal("0")),
        "last_event": Max("timestamp"),
    },
)
#: The same aggregates through the join, for ``joined-customers/``.
JOINED = {
    "events": Count("joined_events"),
    "spent": Sum("joined_events__amount", default=Decimal("0")),
    "last_event": Max("joined_events__timestamp"),
}
#: ``?parameter`` -> the lookup on the aggregate (the same on both endpoints).
FILTERS = {
    "events__gte": ("events", "gte"),
    "events__lte": ("events", "lte"),
    "spent__gte": ("spent", "gte"),
    "spent__lte": ("spent", "lte"),
    "last_event__gte": ("last_event", "gte"),
    "last_event__lt": ("last_event", "lt"),
}
ORDERINGS = ("events", "spent", "last_event")


class CustomerActivitySerializer(serializers.ModelSerializer[Customer]):
    events = ContextLookupField("activity", "events", default=0)
    spent = ContextLookupField(
        "activity", "spent", output_field=serializers.DecimalField(14, 2), default="0.00"
    )
    last_event = ContextLookupField(
        "activity", "last_event", output_field=serializers.DateTimeField(), default=None
    )

    class Meta:
        model = Customer
        fields = ["id", "name", "tier", "events", "spent", "last_event"]


class CustomerActivityViewSet(CrossDBPrefetchMixin, viewsets.ReadOnlyModelViewSet[Customer]):
    """Customers with aggregates of their events, which live in another database."""

    queryset = Customer.objects.order_by("id")
    serializer_class = CustomerActivitySerializer
    pagination_class = EventPagination
    cross_db_fields = {"activity": ACTIVITY}
    filter_backends = [CrossDBFilterBackend, CrossDBOrderingFilter]
    cross_db_filters = {
        **{
            name: CrossDBFilter("activity", aggregate, lookup_expr=lookup)
            for name, (aggregate, lookup) in FILTERS.items()
        },
        "inactive": CrossDBFilter("activity", lookup_expr="isnull"),
    }
    ordering_fields = ["id", "name"]
    cross_db_ordering_fields = {name: ("activity", name) for name in ORDERINGS}


class JoinedCustomerActivitySerializer(serializers.ModelSerializer[Customer]):
    events = serializers.IntegerField(read_only=True)
    spent = serializers.DecimalField(14, 2, read_only=True)
    last_event = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta:
        model = Customer
        fields = ["id", "name", "tier", "events", "spent", "last_event"]


class JoinedCustomerActivityViewSet(viewsets.ReadOnlyModelViewSet[Customer]):
    """The same list in one database: ``annotate()`` through the join."""

    queryset = Customer.objects.order_by("id")
    serializer_class = JoinedCustomerActivitySerializer
    pagination_class = EventPagination
    request: Request

    def get_queryset(self) -> QuerySet[Customer]:
        return joined_activity(super().get_queryset(), self.request.query_params)


_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}
_VALUES = {
    "events": serializers.IntegerField(),
    "spent": serializers.DecimalField(14, 2),
    "last_event": serializers.DateTimeField(),
}


def joined_activity(queryset: QuerySet[Customer], params: Mapping[str, Any]) -> QuerySet[Customer]:
    """``customers/``'s parameters applied through the join: the benchmark's baseline and the
    tests' oracle. Without events a customer counts 0 and has spent 0 (``LEFT JOIN``)."""
    queryset = queryset.annotate(**JOINED)
    for name, (aggregate, lookup) in FILTERS.items():
        if name in params:
            try:
                value = _VALUES[aggregate].to_internal_value(params[name])
            except exceptions.ValidationError as exc:
                raise exceptions.ValidationError({name: exc.detail}) from exc
            queryset = queryset.filter(**{f"{aggregate}__{lookup}": value})
    if "inactive" in params:
        inactive = _BOOLEANS.get(params["inactive"].lower())
        if inactive is None:
            raise exceptions.ValidationError({"inactive": ["Use true or false."]})
        queryset = queryset.filter(events=0) if inactive else queryset.filter(events__gt=0)
    ordering = params.get("ordering")
    if ordering:
        terms: list[Any] = []
        for term in ordering.split(","):
            name = term.lstrip("-")
            if name in ORDERINGS:
                # without events: after the others, in both directions
                terms.append(Case(When(events=0, then=Value(1)), default=Value(0)).asc())
                field = F(name)
                terms.append(field.desc() if term.startswith("-") else field.asc())
            else:
                terms.append(term)
        queryset = queryset.order_by(*terms, "id")
    return queryset
