"""The shop's API. ``events/`` and ``naive-events/`` are the example's pair, ``customers/``
lists customers with aggregates of their events; the others are the benchmark's baselines,
browsable all the same."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path
from rest_framework.routers import DefaultRouter

from shop import activity, views

app_name = "shop"

router = DefaultRouter()
router.register("events", views.OrderEventViewSet, basename="event")
router.register("naive-events", views.NaiveOrderEventViewSet, basename="naive-event")
router.register(
    "per-page-dict-events", views.PerPageDictOrderEventViewSet, basename="per-page-dict-event"
)
router.register(
    "whole-table-dict-events",
    views.WholeTableDictOrderEventViewSet,
    basename="whole-table-dict-event",
)
router.register("joined-events", views.JoinedOrderEventViewSet, basename="joined-event")
router.register("cached-events", views.CachedOrderEventViewSet, basename="cached-event")
router.register("degrading-events", views.DegradingOrderEventViewSet, basename="degrading-event")
router.register(
    "slow-reference-events", views.SlowReferenceOrderEventViewSet, basename="slow-reference-event"
)
router.register("customers", activity.CustomerActivityViewSet, basename="customer")
router.register(
    "joined-customers", activity.JoinedCustomerActivityViewSet, basename="joined-customer"
)

router.register("tickets", views.SupportTicketViewSet, basename="ticket")
router.register(
    "prefetched-tickets", views.PrefetchedSupportTicketViewSet, basename="prefetched-ticket"
)
router.register(
    "only-prefetched-tickets",
    views.OnlyPrefetchedSupportTicketViewSet,
    basename="only-prefetched-ticket",
)

urlpatterns: list[URLPattern | URLResolver] = [
    path("async-events/", views.async_events, name="async-events"),
    *router.urls,
]
