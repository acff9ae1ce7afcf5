"""URLconf of the failure tests: events whose customers live in the ``reference`` alias.

The tests point ``reference`` at a database of their own (a PostgreSQL server they kill, a
SQLite file they break) before requesting ``/reference/events/``; the cached variant
serves its hits from ``CACHES["default"]``.
"""

from __future__ import annotations

from typing import Any

from django.urls import path
from rest_framework import serializers, viewsets

from crossprefetch import CachePolicy, ContextLookupField, CrossDBPrefetch, CrossDBPrefetchMixin
from tests.testapp.models import OrderEvent

REFERENCE = "reference"


class ReferenceEventSerializer(serializers.ModelSerializer[OrderEvent]):
    customer_name = ContextLookupField("customers", "name", default="Unknown customer")
    customer_label = ContextLookupField(
        "customers", "name", fallback=lambda event: f"Customer #{event.customer_id}"
    )

    class Meta:
        model = OrderEvent
        fields = ["id", "customer_id", "customer_name", "customer_label"]


def customers(**options: Any) -> CrossDBPrefetch:
    options.setdefault("key", "customer_id")
    return CrossDBPrefetch(
        "testapp.Customer",
        fields=("name",),
        using=REFERENCE,
        on_error="degrade",
        **options,
    )


class ReferenceEventViewSet(CrossDBPrefetchMixin, viewsets.ReadOnlyModelViewSet[OrderEvent]):
    queryset = OrderEvent.objects.order_by("id")
    serializer_class = ReferenceEventSerializer
    cross_db_fields = {"customers": customers()}


class BuyerSellerSerializer(serializers.ModelSerializer[OrderEvent]):
    buyer = ContextLookupField("buyers", "name", default=None)
    seller = ContextLookupField("sellers", "name", default=None)

    class Meta:
        model = OrderEvent
        fields = ["id", "buyer", "seller"]


class BuyerSellerViewSet(CrossDBPrefetchMixin, viewsets.ReadOnlyModelViewSet[OrderEvent]):
    """Two lookups sharing one query: both degrade together."""

    queryset = OrderEvent.objects.order_by("id")
    serializer_class = BuyerSellerSerializer
    cross_db_fields = {"buyers": customers(), "sellers": customers(key="seller_id")}


class CachedReferenceEventViewSet(ReferenceEventViewSet):
    cross_db_fields = {"customers": customers(cache=CachePolicy(300, invalidate=False))}


urlpatterns = [
    path("reference/events/", ReferenceEventViewSet.as_view({"get": "list"})),
    path("reference/cached-events/", CachedReferenceEventViewSet.as_view({"get": "list"})),
    path("reference/buyer-seller/", BuyerSellerViewSet.as_view({"get": "list"})),
]
