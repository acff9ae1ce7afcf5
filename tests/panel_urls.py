"""The test URLconf plus django-debug-toolbar's views, for the panel tests."""

from __future__ import annotations

from django.urls import include, path

from tests.urls import urlpatterns as base_urlpatterns

# Not debug_toolbar_urls(): it reads DEBUG when this module is first imported.
urlpatterns = [*base_urlpatterns, path("__debug__/", include("debug_toolbar.urls"))]
