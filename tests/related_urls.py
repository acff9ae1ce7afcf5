"""The test URLconf plus the naive twins of the relation endpoints, for the oracle tests.

Kept out of ``tests.urls``: the naive views read across databases one query per row,
which the system checks of the project's URLconf rightly warn about.
"""

from __future__ import annotations

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from tests.testapp import related_views
from tests.urls import urlpatterns as base_urlpatterns

router = SimpleRouter()
router.register("naive-tickets", related_views.NaiveTicketViewSet, basename="naive-tickets")
router.register(
    "naive-support-accounts",
    related_views.NaiveSupportAccountViewSet,
    basename="naive-support-accounts",
)

urlpatterns = [*base_urlpatterns, path("api/", include(router.urls))]
