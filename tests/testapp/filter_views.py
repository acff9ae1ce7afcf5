"""Views filtering and ordering the test events by their rows in other databases."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import django_filters
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Subquery
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import serializers as drf_serializers
from rest_framework import viewsets

from crossprefetch import ContextLookupField, CrossDBPrefetch, CrossDBPrefetchMixin
from crossprefetch.filters import (
    CrossDBCursorPagination,
    CrossDBFilter,
    CrossDBFilterBackend,
    CrossDBFilterSetFilter,
    CrossDBOrderingFilter,
)
from shop.views import OrderEventViewSet as ShopEventViewSet
from tests.testapp import serializers
from tests.testapp.models import Customer, JoinedParcel, OrderEvent, Parcel, Vendor
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
        "customer_tier__iexact": CrossDBFilter("customers", "tier", lookup_expr="iexact"),
        "customer_tier__in": CrossDBFilter("customers", "tier", lookup_expr="in"),
        "customer_name": CrossDBFilter("customers", "name", lookup_expr="icontains"),
        "customer_name__contains": CrossDBFilter("customers", "name", lookup_expr="contains"),
        "customer_name__startswith": CrossDBFilter("customers", "name", lookup_expr="startswith"),
        "customer_name__istartswith": CrossDBFilter("customers", "name", lookup_expr="istartswith"),
        "customer_active": CrossDBFilter("customers", "is_active"),
        "customer_id__gt": CrossDBFilter("customers", "id", lookup_expr="gt"),
        "customer_id__gte": CrossDBFilter("customers", "id", lookup_expr="gte"),
        "customer_id__lt": CrossDBFilter("customers", "id", lookup_expr="lt"),
        "customer_id__lte": CrossDBFilter("customers", "id", lookup_expr="lte"),
        "customer_id__in": CrossDBFilter("customers", "id", lookup_expr="in"),
        "customer_uuid": CrossDBFilter("customers", "external_id"),
        "customer_email__isnull": CrossDBFilter("customers", "email", lookup_expr="isnull"),
        "no_customer": CrossDBFilter("customers", lookup_expr="isnull"),
        "no_customer__again": CrossDBFilter("customers", lookup_expr="isnull"),
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


# --- text keys longer than the local column: parcels and their vendors ------------------

VENDORS = CrossDBPrefetch(
    "testapp.Vendor", key="vendor_code", to_field="code", fields=("name", "tier")
)


class ParcelSerializer(drf_serializers.Serializer[Any]):
    id = drf_serializers.IntegerField()
    vendor_code = drf_serializers.CharField(allow_null=True)
    weight = drf_serializers.IntegerField()
    vendor_name = ContextLookupField("vendors", "name", default=None)


class ParcelViewSet(CrossDBPrefetchMixin, viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
    """Parcels (``legacy``) filtered and ordered by their vendor (``default``)."""

    queryset = Parcel.objects.all()
    serializer_class = ParcelSerializer
    pagination_class = PageNumber
    filter_backends = [CrossDBFilterBackend, CrossDBOrderingFilter]
    cross_db_fields = {"vendors": VENDORS}
    cross_db_filters = {
        "vendor_tier": CrossDBFilter("vendors", "tier"),
        "vendor_tier__in": CrossDBFilter("vendors", "tier", lookup_expr="in"),
        "vendor_name": CrossDBFilter("vendors", "name", lookup_expr="icontains"),
        "vendor_code__startswith": CrossDBFilter("vendors", "code", lookup_expr="startswith"),
        "vendor_notes": CrossDBFilter("vendors", "notes", lookup_expr="icontains"),
        "no_vendor": CrossDBFilter("vendors", lookup_expr="isnull"),
    }
    ordering_fields = ["weight"]
    cross_db_ordering_fields = {
        "vendor_name": ("vendors", "name"),
        "vendor_tier": ("vendors", "tier"),
    }


class JoinedParcelSerializer(drf_serializers.Serializer[Any]):
    id = drf_serializers.IntegerField()
    vendor_code = drf_serializers.CharField(allow_null=True)
    weight = drf_serializers.IntegerField()
    vendor_name = drf_serializers.CharField(allow_null=True)


#: ``?parameter`` of ``parcels/`` -> the condition on the vendor, in the oracle's database.
JOINED_PARCEL_FILTERS = {
    "vendor_tier": "tier",
    "vendor_tier__in": "tier__in",
    "vendor_name": "name__icontains",
    "vendor_code__startswith": "code__startswith",
    "vendor_notes": "notes__icontains",
}
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


class JoinedParcelViewSet(viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
    """``parcels/``'s query parameters applied in ONE database: the oracle.

    The parcels are stored beside the vendors and compared with them by that database
    (``vendor_code IN (SELECT code ...)``), with the column's own type and collation.
    """

    serializer_class = JoinedParcelSerializer
    pagination_class = PageNumber

    def get_queryset(self) -> QuerySet[JoinedParcel]:
        vendor = Vendor.objects.filter(code=OuterRef("vendor_code"))
        queryset = JoinedParcel.objects.annotate(
            vendor_name=Subquery(vendor.values("name")[:1]),
            vendor_tier=Subquery(vendor.values("tier")[:1]),
        )
        params = self.request.query_params
        for name, condition in JOINED_PARCEL_FILTERS.items():
            if name not in params:
                continue
            value: Any = params[name]
            if condition.endswith("__in"):
                if value == "":
                    continue
                value = value.split(",")
            queryset = queryset.filter(Exists(vendor.filter(**{condition: value})))
        if "no_vendor" in params:
            has_vendor = Q(Exists(vendor))
            missing = _BOOLEANS[params["no_vendor"].lower()]
            queryset = queryset.filter(~has_vendor if missing else has_vendor)
        terms: list[Any] = []
        for term in filter(None, params.get("ordering", "").split(",")):
            name = term.lstrip("-")
            expression = F(name)
            descending = term.startswith("-")
            if name.startswith("vendor_"):
                terms.append(
                    expression.desc(nulls_last=True)
                    if descending
                    else expression.asc(nulls_last=True)
                )
            else:
                terms.append(term)
        return queryset.order_by(*terms, "id")


# --- cursor pagination over remote orderings ------------------------------------------------


class EventCursor(CrossDBCursorPagination):
    page_size = 4
    page_size_query_param = "page_size"
    ordering = ("-timestamp", "-id")


class CursorShopEventViewSet(ShopEventViewSet):
    """The example's ``events/`` (oracle: ``JoinedOrderEvent``), paginated by cursor."""

    pagination_class = EventCursor


class ParcelCursor(CrossDBCursorPagination):
    page_size = 3
    page_size_query_param = "page_size"
    ordering = ("id",)


class CursorParcelViewSet(ParcelViewSet):
    """Parcels by text keys longer than their column, paginated by cursor."""

    pagination_class = ParcelCursor
