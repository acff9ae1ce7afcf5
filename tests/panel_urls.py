"""The test URLconf plus django-debug-toolbar's views, for the panel tests, and a page
whose panel holds every table at its widest."""

from __future__ import annotations

from types import SimpleNamespace

from django.db.models import Count, Sum
from django.http import HttpRequest, HttpResponse
from django.urls import include, path

from crossprefetch import CachePolicy, CrossDBAggregate, CrossDBPrefetch, prefetch_cross_db
from tests.testapp.models import Customer
from tests.urls import urlpatterns as base_urlpatterns

#: A lookup's name wider than the panel, with nowhere to break it.
LONG_NAME = "customers_" + "_".join(["named_at_length"] * 10)


def wide_panel(request: HttpRequest) -> HttpResponse:
    """Every table of the panel filled: an N+1, lookups in three calls (hence the call
    column), one with a long name and dangling keys, two sharing a query, an aggregate, an
    invalidation not delivered."""
    people = list(Customer.objects.order_by("id"))
    rows = [SimpleNamespace(customer_id=p.pk, member_id=p.pk) for p in people]
    rows += [SimpleNamespace(customer_id=10_000_000 + i, member_id=None) for i in range(7)]
    for person in people[:3]:
        Customer.objects.filter(pk=person.pk).first()  # once per row: an N+1
    customers = CrossDBPrefetch("testapp.Customer", key="customer_id", fields=("name",))
    prefetch_cross_db(
        rows, {LONG_NAME: customers, "buyers": customers, "sellers": customers}, request=request
    )
    activity = CrossDBAggregate(
        "testapp.Entry",
        key="member_id",
        to_field="member_id",
        aggregates={"entries": Count("id"), "spent": Sum("amount")},
    )
    prefetch_cross_db(rows, {"activity": activity}, request=request)
    # A cached lookup, then a write whose invalidation the cache "down" (which the test
    # points at a closed port) refuses.
    cached = CrossDBPrefetch(
        "testapp.Customer", key="customer_id", cache=CachePolicy(60, alias="down")
    )
    prefetch_cross_db(rows, {"cached": cached}, request=request)
    people[0].save()
    return HttpResponse("<html><body><h1>Every table of the panel</h1></body></html>")


# Not debug_toolbar_urls(): it reads DEBUG when this module is first imported.
urlpatterns = [
    *base_urlpatterns,
    path("wide-panel/", wide_panel),
    path("__debug__/", include("debug_toolbar.urls")),
]
