from __future__ import annotations

from typing import Any

from rest_framework import serializers

from crossprefetch import ContextLookupField
from tests.testapp.models import Customer, OrderEvent, Supplier


class CustomerSerializer(serializers.ModelSerializer[Customer]):
    class Meta:
        model = Customer
        fields = ["id", "name", "tier"]


class CustomerRowSerializer(serializers.Serializer[Any]):
    """Renders projected rows (dicts) of customers."""

    name = serializers.CharField()
    tier = serializers.CharField()


class OrderEventSerializer(serializers.ModelSerializer[OrderEvent]):
    customer_name = ContextLookupField("customers", "name", default="Unknown customer")
    customer_tier = ContextLookupField("customers", "tier", default=None)
    customer_label = ContextLookupField(
        "customers",
        "name",
        fallback=lambda event: f"Unknown customer (ID {event.customer_id})",
    )

    class Meta:
        model = OrderEvent
        fields = [
            "id",
            "customer_id",
            "event_type",
            "amount",
            "customer_name",
            "customer_tier",
            "customer_label",
        ]


class BuyerSellerSerializer(serializers.ModelSerializer[OrderEvent]):
    buyer = ContextLookupField("buyers", "name")
    seller = ContextLookupField("sellers", "name")

    class Meta:
        model = OrderEvent
        fields = ["id", "buyer", "seller"]


class TwoDatabasesSerializer(serializers.ModelSerializer[OrderEvent]):
    customer_name = ContextLookupField("customers", "name")
    region_name = ContextLookupField("regions", "name", default="")

    class Meta:
        model = OrderEvent
        fields = ["id", "customer_name", "region_name"]


class NestedCustomerSerializer(serializers.ModelSerializer[OrderEvent]):
    customer = ContextLookupField("customers", serializer=CustomerSerializer)

    class Meta:
        model = OrderEvent
        fields = ["id", "customer"]


class EventRowSerializer(serializers.ModelSerializer[OrderEvent]):
    class Meta:
        model = OrderEvent
        fields = ["id", "event_type"]


class CustomerWithEventsSerializer(serializers.ModelSerializer[Customer]):
    events = ContextLookupField("events", serializer=EventRowSerializer)
    event_types = ContextLookupField("events", "event_type")

    class Meta:
        model = Customer
        fields = ["id", "name", "events", "event_types"]


class AccountSerializer(serializers.ModelSerializer[OrderEvent]):
    account = ContextLookupField("accounts", "label", default=None)

    class Meta:
        model = OrderEvent
        fields = ["id", "account"]


class WritableEventSerializer(serializers.ModelSerializer[OrderEvent]):
    customer_name = ContextLookupField("customers", "name", default=None)

    class Meta:
        model = OrderEvent
        fields = ["id", "timestamp", "customer_id", "event_type", "amount", "customer_name"]


class OracleEventSerializer(serializers.ModelSerializer[OrderEvent]):
    """crossprefetch side of the property test: int keys, string keys, whole rows."""

    customer_name = ContextLookupField("customers", "name", default="Unknown customer")
    customer_tier = ContextLookupField("customers", "tier")
    ref_name = ContextLookupField("refs", "name", fallback=lambda e: f"ref {e.customer_ref}?")
    seller = ContextLookupField("sellers")
    supplier_name = ContextLookupField("suppliers", "name", default=None)
    supplier_code = ContextLookupField("supplier_rows", "code", default=None)

    class Meta:
        model = OrderEvent
        fields = [
            "id",
            "customer_name",
            "customer_tier",
            "ref_name",
            "seller",
            "supplier_name",
            "supplier_code",
        ]


def _naive_customer(key: Any) -> Customer | None:
    """The per-row lookup a hand-written serializer does; bad keys reference nothing."""
    if key is None:
        return None
    try:
        return Customer.objects.filter(pk=key).first()
    except (ValueError, TypeError):
        return None


class NaiveEventSerializer(serializers.ModelSerializer[OrderEvent]):
    """The naive per-row implementation, the oracle crossprefetch must agree with."""

    customer_name = serializers.SerializerMethodField()
    customer_tier = serializers.SerializerMethodField()
    ref_name = serializers.SerializerMethodField()
    seller = serializers.SerializerMethodField()
    supplier_name = serializers.SerializerMethodField()
    supplier_code = serializers.SerializerMethodField()

    class Meta:
        model = OrderEvent
        fields = [
            "id",
            "customer_name",
            "customer_tier",
            "ref_name",
            "seller",
            "supplier_name",
            "supplier_code",
        ]

    def get_customer_name(self, event: OrderEvent) -> str:
        customer = _naive_customer(event.customer_id)
        return customer.name if customer else "Unknown customer"

    def get_customer_tier(self, event: OrderEvent) -> str | None:
        customer = _naive_customer(event.customer_id)
        return customer.tier if customer else None

    def get_ref_name(self, event: OrderEvent) -> str:
        customer = _naive_customer(event.customer_ref)
        return customer.name if customer else f"ref {event.customer_ref}?"

    def get_seller(self, event: OrderEvent) -> dict[str, str] | None:
        customer = _naive_customer(event.seller_id)
        return {"name": customer.name, "tier": customer.tier} if customer else None

    def get_supplier_name(self, event: OrderEvent) -> str | None:
        supplier = _naive_supplier(event.supplier_code)
        return supplier.name if supplier else None

    def get_supplier_code(self, event: OrderEvent) -> str | None:
        supplier = _naive_supplier(event.supplier_code)
        return supplier.code if supplier else None


def _naive_supplier(code: str | None) -> Supplier | None:
    """The row the database finds for ``code``, under the column's own collation."""
    return None if code is None else Supplier.objects.filter(code=code).first()
