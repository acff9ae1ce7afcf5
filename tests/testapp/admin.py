"""Admin sites over ForeignKeys across databases: served by the mixin, and as Django does.

Registered on sites of their own (the tests install the admin with ``SimpleAdminConfig``,
which discovers nothing), so that the same model has both changelists.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin

from crossprefetch.admin import CrossDBPrefetchAdminMixin
from tests.testapp.models import SupportAccount, Ticket


class _OpenSite(admin.AdminSite):
    """Any active user may view: the tests log in without staff permissions tables."""

    def has_permission(self, request: Any) -> bool:
        return bool(request.user.is_active)


site = _OpenSite(name="crossprefetch-admin")
naive_site = _OpenSite(name="naive-admin")


class _ViewOnly:
    def has_view_permission(self, request: Any, obj: Any = None) -> bool:
        return True

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


class NaiveTicketAdmin(_ViewOnly, admin.ModelAdmin):  # type: ignore[type-arg]
    """What Django does alone, once nothing joins across databases: a query per row."""

    list_display = (
        "subject",
        "status",
        "account",
        "account__name",
        "account__region__label",
        "region_label",
        "parent",
    )
    list_select_related = ("parent",)
    list_per_page = 20

    @admin.display(ordering="region__label", description="Ticket region")
    def region_label(self, ticket: Ticket) -> str | None:
        return None if ticket.region is None else ticket.region.label


class TicketAdmin(CrossDBPrefetchAdminMixin, NaiveTicketAdmin):
    # "account" crosses to another database: the mixin drops it from the join
    list_select_related = ("parent", "account")
    list_filter = ("status", "account__tier", "account__region")
    search_fields = ("subject", "account__name", "=account__region__label")


class SupportAccountAdmin(CrossDBPrefetchAdminMixin, _ViewOnly, admin.ModelAdmin):  # type: ignore[type-arg]
    """A callable without ordering: its relation is named in cross_db_related."""

    list_display = ("name", "tier", "region", "ticket_count")
    cross_db_related = ("tickets",)

    @admin.display(description="Tickets")
    def ticket_count(self, account: SupportAccount) -> int:
        return len(account.tickets.all())


site.register(Ticket, TicketAdmin)
site.register(SupportAccount, SupportAccountAdmin)
naive_site.register(Ticket, NaiveTicketAdmin)
