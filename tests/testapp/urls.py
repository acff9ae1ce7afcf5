from __future__ import annotations

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from tests.testapp import aggregate_views, filter_views, related_pages, related_views, views

router = SimpleRouter()
router.register("events", views.OrderEventViewSet, basename="events")
router.register("writable-events", views.WritableEventViewSet, basename="writable-events")
router.register("events-limit", views.LimitOffsetEventViewSet, basename="events-limit")
router.register("events-cursor", views.CursorEventViewSet, basename="events-cursor")
router.register("events-all", views.UnpaginatedEventViewSet, basename="events-all")
router.register("buyer-seller", views.BuyerSellerViewSet, basename="buyer-seller")
router.register("two-databases", views.TwoDatabasesViewSet, basename="two-databases")
router.register("nested", views.NestedCustomerViewSet, basename="nested")
router.register("accounts", views.AccountViewSet, basename="accounts")
router.register("customers", views.CustomerViewSet, basename="customers")
router.register("oracle-events", views.OracleEventViewSet, basename="oracle-events")
router.register("naive-events", views.NaiveEventViewSet, basename="naive-events")
router.register("tenant-events", views.TenantEventViewSet, basename="tenant-events")
router.register("filtered-events", filter_views.FilteredEventViewSet, basename="filtered-events")
router.register(
    "tenant-filtered-events",
    filter_views.TenantFilteredEventViewSet,
    basename="tenant-filtered-events",
)
router.register("filterset-events", filter_views.FilterSetEventViewSet, basename="filterset-events")
router.register("tickets", related_views.TicketViewSet, basename="tickets")
router.register(
    "support-accounts", related_views.SupportAccountViewSet, basename="support-accounts"
)
router.register("method-tickets", related_views.MethodTicketViewSet, basename="method-tickets")
router.register(
    "filtered-tickets", related_views.FilteredTicketViewSet, basename="filtered-tickets"
)
router.register("parcels", filter_views.ParcelViewSet, basename="parcels")
router.register("joined-parcels", filter_views.JoinedParcelViewSet, basename="joined-parcels")
router.register(
    "cursor-shop-events", filter_views.CursorShopEventViewSet, basename="cursor-shop-events"
)
router.register("cursor-parcels", filter_views.CursorParcelViewSet, basename="cursor-parcels")

router.register("members", aggregate_views.MemberActivityViewSet, basename="members")
router.register(
    "legacy-members", aggregate_views.LegacyMemberActivityViewSet, basename="legacy-members"
)

urlpatterns = [
    path("", include(router.urls)),
    path("event-list/", views.EventListView.as_view(), name="event-list"),
    path("ticket-pages/", related_pages.TicketListView.as_view(), name="ticket-pages"),
    path(
        "account-pages/<int:pk>/",
        related_pages.AccountDetailView.as_view(),
        name="account-pages",
    ),
]
