"""System checks for relations across databases: paths, routers, views and admins."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.db import models
from django.db.models import Prefetch
from django.views.generic import ListView
from rest_framework import viewsets

from crossprefetch import CrossDBPrefetchMixin
from crossprefetch.admin import CrossDBPrefetchAdminMixin
from crossprefetch.checks import check_view_related
from crossprefetch.checks.related import _check_admin, check_paths
from crossprefetch.views import CrossDBPrefetchViewMixin
from tests.testapp import related_serializers, related_views
from tests.testapp.models import SupportAccount, Ticket


def _view(related: Any, base: type = viewsets.ReadOnlyModelViewSet) -> type:
    mixin = CrossDBPrefetchViewMixin if base is ListView else CrossDBPrefetchMixin
    return type(
        "Tickets",
        (mixin, base),
        {
            "__module__": "shop.views",
            "queryset": Ticket.objects.all(),
            "serializer_class": related_serializers.TicketBriefSerializer,
            "cross_db_related": related,
        },
    )


def _found(messages: list[Any]) -> list[tuple[str, str, str]]:
    return [(m.id, m.msg, m.hint or "") for m in messages]


PATHS = [
    # (cross_db_related, id, in the message, in the hint)
    (("account", "account__region", "tickets__x"), "E702", "no relation 'tickets'", ""),
    (("acount",), "E702", "Tickets.cross_db_related: 'acount'", "Did you mean 'account'?"),
    (("account__regoin",), "E702", "no relation 'regoin'", "Did you mean 'account__region'?"),
    (("subject",), "E702", "Ticket.subject is not a relation", ""),
    (("parent",), "E703", "'parent' stays in the database 'timeseries'", "select_related"),
    (("parent__parent",), "E703", "stays in the database", "prefetch_related('parent__parent')"),
    ("account", "E701", "is 'account', not a list", ""),
    ((42,), "E701", "holds 42", "Prefetch"),
]


@pytest.mark.parametrize(("related", "code", "message", "hint"), PATHS)
@pytest.mark.parametrize("base", [viewsets.ReadOnlyModelViewSet, ListView])
def test_a_bad_path(related: Any, code: str, message: str, hint: str, base: type) -> None:
    ((found_id, found_message, found_hint),) = _found(check_view_related(_view(related, base)))
    assert found_id == f"crossprefetch.{code}"
    assert "shop.views.Tickets.cross_db_related" in found_message
    assert message in found_message
    assert hint in found_hint


def test_good_paths() -> None:
    related = (
        "account",
        "account__region",
        "region",
        "parent__account",
        Prefetch("account__tickets", Ticket.objects.filter(status="open"), to_attr="open"),
    )
    assert check_view_related(_view(related)) == []
    assert check_view_related(_view(related, ListView)) == []
    assert check_view_related(related_views.TicketViewSet) == []


class _NamesTicketsOnly:
    """A router that names the tickets' database, and leaves every other model to Django."""

    def db_for_read(self, model: type[models.Model], **hints: Any) -> str | None:
        return "timeseries" if model is Ticket else None


class _SendsNowhere:
    def db_for_read(self, model: type[models.Model], **hints: Any) -> str | None:
        return "nowhere" if model is SupportAccount else None


def test_a_database_the_router_cannot_name(settings: Any) -> None:
    settings.DATABASE_ROUTERS = [_NamesTicketsOnly()]
    ((code, message, hint),) = _found(check_view_related(_view(("account",))))
    assert code == "crossprefetch.E704"
    assert "no database router names a database" in message
    assert "testapp.SupportAccount" in hint
    settings.DATABASE_ROUTERS = [_SendsNowhere(), "tests.testapp.routers.TestRouter"]
    ((code, message, hint),) = _found(check_view_related(_view(("account",))))
    assert code == "crossprefetch.E704"
    assert "'nowhere', which is not in DATABASES" in message


def test_a_serializer_crossing_a_database_without_the_mixin() -> None:
    ((code, message, hint),) = _found(check_view_related(related_views.NaiveTicketViewSet))
    assert code == "crossprefetch.W701"
    assert "TicketSerializer reads 'account__region', 'region' across databases" in message
    assert "CrossDBPrefetchMixin" in hint
    assert check_view_related(related_views.NaiveSupportAccountViewSet) != []
    # a serializer that stays in one database is left alone

    class Prefetched(related_views.NaiveTicketViewSet):
        queryset = Ticket.objects.prefetch_related("account__region", Prefetch("region"))

    assert check_view_related(Prefetched) == []

    class Local(viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
        queryset = Ticket.objects.all()
        serializer_class = related_serializers.TicketBriefSerializer

    assert check_view_related(Local) == []


def test_cross_db_related_without_a_mixin() -> None:
    class Plain(viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
        queryset = Ticket.objects.all()
        serializer_class = related_serializers.TicketBriefSerializer
        cross_db_related = ("account",)

    ((code, _, hint),) = _found(check_view_related(Plain))
    assert code == "crossprefetch.E705"
    assert "CrossDBPrefetchViewMixin" in hint


@pytest.mark.urls("tests.related_urls")
def test_the_routed_views_are_checked() -> None:
    from crossprefetch.checks.related import check_related

    found = {(m.obj, m.id) for m in check_related()}
    assert (related_views.NaiveTicketViewSet, "crossprefetch.W701") in found
    assert not any(obj is related_views.TicketViewSet for obj, _ in found)


# --- the admin ------------------------------------------------------------------------


def test_an_admin_without_the_mixin() -> None:
    class Joins(admin.ModelAdmin):  # type: ignore[type-arg]
        list_display = ("subject", "account__name", "parent")
        list_select_related = ("account", "parent")
        list_filter = ("status", "account__tier")
        search_fields = ("subject", "=account__name")

    error, warning = _check_admin(Ticket, Joins(Ticket, admin.AdminSite()))
    assert error.id == "crossprefetch.E706"
    assert "list_select_related 'account', list_filter 'account__tier', search_fields " in (
        error.msg
    )
    assert "'=account__name' join a table of another database" in error.msg
    assert warning.id == "crossprefetch.W702"
    assert "list_display 'account__name' read another database" in warning.msg


def test_the_admin_mixin_checks_its_paths(settings: Any) -> None:
    from crossprefetch.checks.related import _check_admins

    settings.INSTALLED_APPS = [
        *settings.INSTALLED_APPS,
        "django.contrib.admin.apps.SimpleAdminConfig",
    ]

    class Misspelled(CrossDBPrefetchAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
        cross_db_related = ("acount",)

    site = admin.AdminSite(name="misspelled")
    site.register(Ticket, Misspelled)
    found = [m for m in _check_admins() if m.obj is Misspelled]
    ((code, message, hint),) = _found(found)
    assert code == "crossprefetch.E702"
    assert "Misspelled.cross_db_related" in message
    assert hint == "Did you mean 'account'?"


def test_check_paths_of_prefetch_objects() -> None:
    found = check_paths(None, "where", Ticket, [Prefetch("acount")])
    assert [m.id for m in found] == ["crossprefetch.E702"]
