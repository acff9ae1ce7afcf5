"""The admin's changelist of support tickets, measured: queries per database, per page.

The same columns served two ways: by Django alone (a plain ``ModelAdmin``: a query per
ticket for its customer, since the customers live in another database and cannot be
joined), and by the shop's admin with ``CrossDBPrefetchAdminMixin`` (the page's customers
in one query). Used by ``manage.py demo`` and ``manage.py benchmark_related``.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import RequestFactory

from shop.measuring import QueryCounter
from shop.models import SupportTicket

CHANGELIST = "/admin/shop/supportticket/"


@dataclass(frozen=True)
class ChangelistQueries:
    """What one rendering of the changelist cost and showed."""

    queries: dict[str, int]
    rows: int
    count: int


def _user() -> object:
    """A superuser that exists only in memory: rendering reads it, never saves it."""
    return get_user_model()(username="demo", is_staff=True, is_superuser=True, is_active=True)


def plain_admin() -> admin.ModelAdmin:  # type: ignore[type-arg]
    """The shop's columns in a plain ``ModelAdmin``: what Django does alone. (Its filters
    without the customer's tier, and no search: Django would join the customers' table,
    which is not there; and no join of the customers, which Django 6.1 would make for a
    ForeignKey in ``list_display``.)"""
    shop_admin = admin.site.get_model_admin(SupportTicket)

    class PlainSupportTicketAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
        list_display = shop_admin.list_display
        list_filter = ("status",)
        list_per_page = shop_admin.list_per_page
        # Django 6.1 joins every ForeignKey of list_display, across databases too
        list_select_related = ()

    return PlainSupportTicketAdmin(SupportTicket, admin.AdminSite(name="plain"))


def render_changelist(model_admin: admin.ModelAdmin, query: str = "") -> ChangelistQueries:  # type: ignore[type-arg]
    """Render ``model_admin``'s changelist once; count its queries per database."""
    request = RequestFactory().get(f"{CHANGELIST}?{query}" if query else CHANGELIST)
    request.user = _user()  # type: ignore[assignment]
    counter = QueryCounter()
    with counter():
        response = model_admin.changelist_view(request)
        response.render()  # type: ignore[attr-defined]
    if response.status_code != 200:
        raise RuntimeError(f"the changelist answered {response.status_code}")
    changelist = response.context_data["cl"]  # type: ignore[attr-defined]
    return ChangelistQueries(
        dict(sorted(counter.counts.items())),
        len(changelist.result_list),
        changelist.result_count,
    )


def shop_admin() -> admin.ModelAdmin:  # type: ignore[type-arg]
    return admin.site.get_model_admin(SupportTicket)
