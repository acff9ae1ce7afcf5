"""Members listed with aggregates of their entries in another database."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import Avg, Count, Max, Min, Q, Sum
from rest_framework import serializers, viewsets

from crossprefetch import ContextLookupField, CrossDBAggregate, CrossDBPrefetchMixin
from crossprefetch.filters import CrossDBFilter, CrossDBFilterBackend, CrossDBOrderingFilter
from tests.testapp.models import Member
from tests.testapp.views import PageNumber

#: Every kind of aggregate, each as the oracle (``annotate()`` through ``Member.entries``)
#: computes it too (see ``tests/test_aggregate_property.py``).
AGGREGATES: dict[str, Any] = {
    "entries": Count("id"),
    "paid": Count("id", filter=Q(kind="paid")),
    "kinds": Count("kind", distinct=True),
    "spent": Sum("amount"),
    "spent_or_zero": Sum("amount", default=Decimal("0")),
    "average": Avg("quantity"),
    "smallest": Min("quantity"),
    "largest": Max("quantity"),
    "last": Max("at"),
}
#: The lookups a filter on an aggregate takes, each declared for every aggregate.
LOOKUPS = ("exact", "gt", "gte", "lt", "lte", "isnull", "in")


def activity(using: str | None = None, **options: Any) -> CrossDBAggregate:
    return CrossDBAggregate(
        "testapp.Entry",
        key="id",
        to_field="member_id",
        aggregates=AGGREGATES,
        using=using,
        **options,
    )


class MemberActivitySerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    entries = ContextLookupField("activity", "entries", default=0)
    paid = ContextLookupField("activity", "paid", default=0)
    kinds = ContextLookupField("activity", "kinds", default=0)
    spent = ContextLookupField(
        "activity", "spent", output_field=serializers.DecimalField(12, 2), default=None
    )
    spent_or_zero = ContextLookupField(
        "activity",
        "spent_or_zero",
        output_field=serializers.DecimalField(12, 2),
        default="0.00",
    )
    average = ContextLookupField(
        "activity", "average", output_field=serializers.FloatField(), default=None
    )
    smallest = ContextLookupField("activity", "smallest", default=None)
    largest = ContextLookupField("activity", "largest", default=None)
    last = ContextLookupField(
        "activity", "last", output_field=serializers.DateTimeField(), default=None
    )

    class Meta:
        model = Member
        fields = ["id", "name", *AGGREGATES]


class MemberActivityViewSet(CrossDBPrefetchMixin, viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
    """Members with their entries' aggregates from ``timeseries``."""

    queryset = Member.objects.all()
    serializer_class = MemberActivitySerializer
    pagination_class = PageNumber
    cross_db_fields = {"activity": activity()}
    filter_backends = [CrossDBFilterBackend, CrossDBOrderingFilter]
    cross_db_filters = {
        **{
            f"{name}__{lookup}": CrossDBFilter("activity", name, lookup_expr=lookup)
            for name in AGGREGATES
            for lookup in LOOKUPS
        },
        **{name: CrossDBFilter("activity", name) for name in AGGREGATES},
        "inactive": CrossDBFilter("activity", lookup_expr="isnull"),
    }
    ordering_fields = ["name", "id"]
    cross_db_ordering_fields = {name: ("activity", name) for name in AGGREGATES}


class LegacyMemberActivityViewSet(MemberActivityViewSet):
    """The same, the entries read from ``legacy`` (MariaDB in the ``mariadb`` suite)."""

    cross_db_fields = {"activity": activity("legacy")}
