"""The panel tests' URLconf plus the naive twins of the relation endpoints."""

from __future__ import annotations

from django.urls import include, path

from tests.panel_urls import urlpatterns as panel_urlpatterns
from tests.related_urls import router

urlpatterns = [*panel_urlpatterns, path("naive/", include(router.urls))]
