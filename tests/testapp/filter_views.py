"""Views filtering and ordering the test events by their rows in other databases."""

from __future__ import annotations

from collections.abc import Mapping

import django_filters
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import viewsets

from crossprefetch import CrossDBPrefetch, CrossDBPrefetchMixin
from crossprefetch.filters import (
    CrossDBFilter,
    CrossDBFilterBackend,
    CrossDBFilterSetFilter,
    CrossDBOrderingFilter,
)
from tests.testapp import serializers
from tests.testapp.models import Customer, OrderEvent
from tests.testapp.views import CUSTOMERS, PageNumber

REGIONS = CrossDBPrefetch("testapp.Region", key="region_code", to_field="code", fields=("name",))


class FilteredEventViewSet(CrossDBPrefetchMixin, viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
    queryset = OrderEvent.objects.all()
    serializer_class = serializers.OrderEventSerializer
    pagination_class = PageNumber
    filter_backends = [CrossDBFilterBackend, CrossDBOrderingFilter]
    cross_db_fields = {"customers": CUSTOMERS, "regions": REGIONS}
    cross_db_filters = {
        "customer_tier": CrossDBFilter("customers", "tier"),
        "customer_tier__iexact": CrossDBFilter("customers", "tier", lookup="iexact"),
        "customer_tier__in": CrossDBFilter("customers", "tier", lookup="in"),
        "customer_name": CrossDBFilter("customers", "name", lookup="icontains"),
        "customer_name__contains": CrossDBFilter("customers", "name", lookup="contains"),
        "customer_name__startswith": CrossDBFilter("customers", "name", lookup="startswith"),
        "customer_name__istartswith": CrossDBFilter("customers", "name", lookup="istartswith"),
        "customer_active": CrossDBFilter("customers", "is_active"),
        "customer_id__gt": CrossDBFilter("customers", "id", lookup="gt"),
        "customer_id__gte": CrossDBFilter("customers", "id", lookup="gte"),
        "customer_id__lt": CrossDBFilter("customers", "id", lookup="lt"),
        "customer_id__lte": CrossDBFilter("customers", "id", lookup="lte"),
        "customer_id__in": CrossDBFilter("customers", "id", lookup="in"),
        "customer_uuid": CrossDBFilter("customers", "external_id"),
        "customer_email__isnull": CrossDBFilter("customers", "email", lookup="isnull"),
        "no_customer": CrossDBFilter("customers", lookup="isnull"),
        "no_customer__again": CrossDBFilter("customers", lookup="isnull"),
        "region_name": CrossDBFilter("regions", "name"),
    }
    ordering_fields = ["timestamp", "amount"]
    cross_db_ordering_fields = {
        "customer_name": ("customers", "name"),
        "customer_tier": ("customers", "tier"),
        "region_name": ("regions", "name"),
    }


class TenantFilteredEventViewSet(FilteredEventViewSet):
    """Customers of the requesting tenant only (``?tenant=``): filters see no other."""

    def get_cross_db_fields(self) -> Mapping[str, CrossDBPrefetch]:
        return {
            "customers": CrossDBPrefetch(
                lambda request: Customer.objects.filter(tenant=request.GET.get("tenant", "")),
                key="customer_id",
                fields=("name", "tier"),
            ),
            "regions": REGIONS,
        }


class EventFilterSet(django_filters.FilterSet):  # type: ignore[misc]
    customer_tier = CrossDBFilterSetFilter("customers", "tier")
    customer_tier__in = CrossDBFilterSetFilter("customers", "tier", lookup_expr="in")
    customer_id__gte = CrossDBFilterSetFilter("customers", "id", lookup_expr="gte")
    no_customer = CrossDBFilterSetFilter("customers", lookup_expr="isnull")
    region = CrossDBFilterSetFilter(REGIONS, "name")

    class Meta:
        model = OrderEvent
        fields = ["event_type"]


class FilterSetEventViewSet(CrossDBPrefetchMixin, viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
    queryset = OrderEvent.objects.all()
    serializer_class = serializers.OrderEventSerializer
    pagination_class = PageNumber
    filter_backends = [DjangoFilterBackend]
    filterset_class = EventFilterSet
    cross_db_fields = {"customers": CUSTOMERS}
