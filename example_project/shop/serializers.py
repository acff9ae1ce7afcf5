"""One JSON shape, written four ways.

Every serializer here renders an order event as the same document, key for key::

    {"id", "timestamp", "customer_id", "event_type", "amount", "customer_name", "customer_tier"}

and differs only in how ``customer_name`` and ``customer_tier`` reach the customer, who lives
in another database. An event whose customer no longer exists reads as
``"Unknown customer"`` with a ``null`` tier, in every variant.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from crossprefetch import ContextLookupField
from shop.models import Customer, JoinedOrderEvent, OrderEvent, SupportTicket

UNKNOWN_CUSTOMER = "Unknown customer"
FIELDS = [
    "id",
    "timestamp",
    "customer_id",
    "event_type",
    "amount",
    "customer_name",
    "customer_tier",
]


class NaiveOrderEventSerializer(serializers.ModelSerializer[OrderEvent]):
    """The usual first version: one query per row and per field (1 + 2N for a page of N)."""

    customer_name = serializers.SerializerMethodField()
    customer_tier = serializers.SerializerMethodField()

    class Meta:
        model = OrderEvent
        fields = FIELDS

    def get_customer_name(self, event: OrderEvent) -> str:
        customer = Customer.objects.filter(pk=event.customer_id).first()
        return customer.name if customer else UNKNOWN_CUSTOMER

    def get_customer_tier(self, event: OrderEvent) -> str | None:
        customer = Customer.objects.filter(pk=event.customer_id).first()
        return customer.tier if customer else None


class OrderEventSerializer(serializers.ModelSerializer[OrderEvent]):
    """crossprefetch: the fields read the ``customers`` lookup its view prefetched per page."""

    customer_name = ContextLookupField("customers", "name", default=UNKNOWN_CUSTOMER)
    customer_tier = ContextLookupField("customers", "tier", default=None)

    class Meta:
        model = OrderEvent
        fields = FIELDS


class ContextDictOrderEventSerializer(serializers.ModelSerializer[OrderEvent]):
    """The hand-written cure: read ``{customer_id: {"name", "tier"}}`` from the context.

    The views that fill ``context["customers"]`` differ (the whole table, or the page's keys).
    """

    customer_name = serializers.SerializerMethodField()
    customer_tier = serializers.SerializerMethodField()

    class Meta:
        model = OrderEvent
        fields = FIELDS

    def get_customer_name(self, event: OrderEvent) -> str:
        customer: dict[str, Any] | None = self.context["customers"].get(event.customer_id)
        return customer["name"] if customer else UNKNOWN_CUSTOMER

    def get_customer_tier(self, event: OrderEvent) -> str | None:
        customer: dict[str, Any] | None = self.context["customers"].get(event.customer_id)
        return customer["tier"] if customer else None


class JoinedOrderEventSerializer(serializers.ModelSerializer[JoinedOrderEvent]):
    """The single-database baseline: the customer arrives through ``select_related``."""

    customer_id = serializers.IntegerField(read_only=True)
    customer_name = serializers.CharField(
        source="customer.name", default=UNKNOWN_CUSTOMER, read_only=True
    )
    customer_tier = serializers.CharField(
        source="customer.tier", default=None, allow_null=True, read_only=True
    )

    class Meta:
        model = JoinedOrderEvent
        fields = FIELDS


class SupportTicketSerializer(serializers.ModelSerializer[SupportTicket]):
    """Written as for one database: the customer's fields read through the ForeignKey.

    On a view with ``CrossDBPrefetchMixin`` the customers of the page are fetched in one
    query (only ``name`` and ``tier``); anywhere else, one query per ticket. A ticket
    without a customer, or whose customer was deleted, reads ``null``.
    """

    customer_name = serializers.CharField(source="customer.name", default=None, allow_null=True)
    customer_tier = serializers.CharField(source="customer.tier", default=None, allow_null=True)

    class Meta:
        model = SupportTicket
        fields = [
            "id",
            "opened_at",
            "subject",
            "status",
            "customer_id",
            "customer_name",
            "customer_tier",
        ]
