"""The admin of the shop: support tickets, whose customers live in the other database.

``CrossDBPrefetchAdminMixin`` serves the changelist as written: the customer column and
``customer__tier`` are fetched for the page in one query on ``default``, the tier filter
and the customer-name search narrow the tickets through a semi-join (exact counts), and no
join into the other database is ever sent.
"""

from __future__ import annotations

from django.contrib import admin

from crossprefetch.admin import CrossDBPrefetchAdminMixin
from shop.models import SupportTicket


@admin.register(SupportTicket)
class SupportTicketAdmin(CrossDBPrefetchAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("subject", "status", "opened_at", "customer", "customer__tier")
    list_filter = ("status", "customer__tier")
    search_fields = ("subject", "customer__name")
    list_per_page = 100
