"""Serializers reading ForeignKeys across databases, written as for one database."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from tests.testapp.models import SalesRegion, SupportAccount, Ticket


class RegionSerializer(serializers.ModelSerializer[SalesRegion]):
    class Meta:
        model = SalesRegion
        fields = ["code", "label"]


class TicketSerializer(serializers.ModelSerializer[Ticket]):
    """Dotted sources, a nested serializer two hops away, related fields."""

    account_name = serializers.CharField(source="account.name", default=None)
    account_tier = serializers.ReadOnlyField(source="account.tier", default=None)
    account_region = RegionSerializer(source="account.region", read_only=True, default=None)
    region_label = serializers.SlugRelatedField(source="region", slug_field="label", read_only=True)
    account_pk = serializers.PrimaryKeyRelatedField(source="account", read_only=True)

    class Meta:
        model = Ticket
        fields = [
            "id",
            "subject",
            "status",
            "account_name",
            "account_tier",
            "account_region",
            "region_label",
            "account_pk",
        ]


class TicketBriefSerializer(serializers.ModelSerializer[Ticket]):
    class Meta:
        model = Ticket
        fields = ["id", "subject", "status"]


class AccountSerializer(serializers.ModelSerializer[SupportAccount]):
    """A reverse ``many=True`` serializer, reverse keys, a reverse one-to-one, a hop."""

    tickets = TicketBriefSerializer(many=True, read_only=True)
    ticket_ids = serializers.PrimaryKeyRelatedField(many=True, read_only=True, source="tickets")
    region_label = serializers.CharField(source="region.label", default=None)
    locale = serializers.CharField(source="settings.locale", default=None)

    class Meta:
        model = SupportAccount
        fields = ["id", "name", "tier", "tickets", "ticket_ids", "region_label", "locale"]


class MethodTicketSerializer(serializers.ModelSerializer[Ticket]):
    """Reads through the relation in code: inference cannot see it."""

    account_label = serializers.SerializerMethodField()

    class Meta:
        model = Ticket
        fields = ["id", "account_label"]

    def get_account_label(self, ticket: Ticket) -> Any:
        try:
            account = ticket.account
        except SupportAccount.DoesNotExist:  # read per row, a dangling key raises
            return None
        return None if account is None else account.display_name
