from __future__ import annotations

from collections.abc import Mapping

from rest_framework import generics, pagination, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from crossprefetch import CrossDBPrefetch, CrossDBPrefetchMixin
from tests.testapp import serializers
from tests.testapp.models import Customer, OrderEvent

CUSTOMERS = CrossDBPrefetch("testapp.Customer", key="customer_id", fields=("name", "tier"))


class PageNumber(pagination.PageNumberPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 100_000


class LimitOffset(pagination.LimitOffsetPagination):
    default_limit = 100


class Cursor(pagination.CursorPagination):
    page_size = 100
    ordering = "-timestamp"


class OrderEventViewSet(CrossDBPrefetchMixin, viewsets.ModelViewSet):  # type: ignore[type-arg]
    queryset = OrderEvent.objects.all()
    serializer_class = serializers.OrderEventSerializer
    pagination_class = PageNumber
    cross_db_fields = {"customers": CUSTOMERS}


class WritableEventViewSet(OrderEventViewSet):
    serializer_class = serializers.WritableEventSerializer  # type: ignore[assignment]

    @action(detail=True, methods=["post"])
    def reassign(self, request: Request, pk: str) -> Response:
        """Data passed positionally, as custom actions often do."""
        serializer = self.get_serializer(self.get_object(), request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response(serializer.data)

    @action(detail=True, methods=["post"])
    def bump(self, request: Request, pk: str) -> Response:
        """Serialize, change the key, save, serialize again."""
        event = self.get_object()
        before = self.get_serializer(event).data
        event.customer_id = int(request.data["customer_id"])
        event.save()
        return Response({"before": before, "after": self.get_serializer(event).data})

    @action(detail=False, methods=["post"])
    def check(self, request: Request) -> Response:
        """Validate only: nothing is saved, so there is no instance to read keys from."""
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(serializer.data)


class LimitOffsetEventViewSet(OrderEventViewSet):
    pagination_class = LimitOffset  # type: ignore[assignment]


class CursorEventViewSet(OrderEventViewSet):
    pagination_class = Cursor  # type: ignore[assignment]


class UnpaginatedEventViewSet(OrderEventViewSet):
    pagination_class = None


class BuyerSellerViewSet(OrderEventViewSet):
    serializer_class = serializers.BuyerSellerSerializer  # type: ignore[assignment]
    cross_db_fields = {
        "buyers": CrossDBPrefetch("testapp.Customer", key="customer_id", fields=("name",)),
        "sellers": CrossDBPrefetch(Customer, key="seller_id", fields=("name", "tier")),
    }


class TwoDatabasesViewSet(OrderEventViewSet):
    serializer_class = serializers.TwoDatabasesSerializer  # type: ignore[assignment]
    cross_db_fields = {
        "customers": CUSTOMERS,
        "regions": CrossDBPrefetch(
            "testapp.Region", key="region_code", to_field="code", fields=("name",)
        ),
    }


class NestedCustomerViewSet(OrderEventViewSet):
    serializer_class = serializers.NestedCustomerSerializer  # type: ignore[assignment]
    cross_db_fields = {"customers": CrossDBPrefetch("testapp.Customer", key="customer_id")}


class AccountViewSet(OrderEventViewSet):
    serializer_class = serializers.AccountSerializer  # type: ignore[assignment]
    cross_db_fields = {
        "accounts": CrossDBPrefetch(
            "testapp.Account",
            key=("account_tenant", "account_number"),
            to_field=("tenant_id", "number"),
            fields=("label",),
        )
    }


class CustomerViewSet(CrossDBPrefetchMixin, viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
    queryset = Customer.objects.all()
    serializer_class = serializers.CustomerWithEventsSerializer
    pagination_class = PageNumber
    cross_db_fields = {
        "events": CrossDBPrefetch(
            OrderEvent.objects.order_by("id"), key="id", to_field="customer_id", many=True
        )
    }


class TenantEventViewSet(OrderEventViewSet):
    """Customers of the requesting tenant only (``?tenant=``)."""

    def get_cross_db_fields(self) -> Mapping[str, CrossDBPrefetch]:
        return {
            "customers": CrossDBPrefetch(
                lambda request: Customer.objects.filter(tenant=request.GET.get("tenant", "")),
                key="customer_id",
                fields=("name", "tier"),
            )
        }


class EventListView(CrossDBPrefetchMixin, generics.ListAPIView):  # type: ignore[type-arg]
    queryset = OrderEvent.objects.all()
    serializer_class = serializers.OrderEventSerializer
    pagination_class = PageNumber
    cross_db_fields = {"customers": CUSTOMERS}


class OracleEventViewSet(OrderEventViewSet):
    serializer_class = serializers.OracleEventSerializer  # type: ignore[assignment]
    cross_db_fields = {
        "customers": CUSTOMERS,
        "refs": CrossDBPrefetch("testapp.Customer", key="customer_ref", fields=("name",)),
        "sellers": CrossDBPrefetch(Customer, key="seller_id", fields=("name", "tier")),
        # text keys, compared by the column's collation: a projection and whole rows
        "suppliers": CrossDBPrefetch(
            "testapp.Supplier", key="supplier_code", to_field="code", fields=("name",)
        ),
        "supplier_rows": CrossDBPrefetch("testapp.Supplier", key="supplier_code", to_field="code"),
    }


class NaiveEventViewSet(viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
    queryset = OrderEvent.objects.all()
    serializer_class = serializers.NaiveEventSerializer
    pagination_class = PageNumber
