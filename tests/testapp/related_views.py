"""Views over ForeignKeys across databases: served with nothing declared, and naive."""

from __future__ import annotations

from rest_framework import viewsets

from crossprefetch import CrossDBPrefetchMixin
from crossprefetch.filters import CrossDBFilter, CrossDBFilterBackend, CrossDBOrderingFilter
from tests.testapp import related_serializers as serializers
from tests.testapp.models import SupportAccount, Ticket
from tests.testapp.views import PageNumber


class TicketViewSet(CrossDBPrefetchMixin, viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
    """Nothing declared: the serializer's sources say it all."""

    queryset = Ticket.objects.all()
    serializer_class = serializers.TicketSerializer
    pagination_class = PageNumber


class NaiveTicketViewSet(viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
    """The oracle: Django follows each relation per row."""

    queryset = Ticket.objects.all()
    serializer_class = serializers.TicketSerializer
    pagination_class = PageNumber


class SupportAccountViewSet(CrossDBPrefetchMixin, viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
    queryset = SupportAccount.objects.all()
    serializer_class = serializers.AccountSerializer
    pagination_class = PageNumber


class NaiveSupportAccountViewSet(viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
    queryset = SupportAccount.objects.all()
    serializer_class = serializers.AccountSerializer
    pagination_class = PageNumber


class MethodTicketViewSet(CrossDBPrefetchMixin, viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
    """A SerializerMethodField follows the relation: named in cross_db_related."""

    queryset = Ticket.objects.all()
    serializer_class = serializers.MethodTicketSerializer
    pagination_class = PageNumber
    cross_db_related = ("account",)


class FilteredTicketViewSet(TicketViewSet):
    """Filters and an ordering by relations into other databases: no spec declared."""

    filter_backends = [CrossDBFilterBackend, CrossDBOrderingFilter]
    cross_db_filters = {
        "account_tier": CrossDBFilter("account", "tier"),
        "region": CrossDBFilter("region", "label"),
    }
    ordering_fields = ["id"]
    cross_db_ordering_fields = {"account_name": ("account", "name")}
