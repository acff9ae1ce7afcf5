"""URLconf of the example: the shop's API under ``/shop/``, the admin under ``/admin/``, its
OpenAPI schema at ``/api/schema/`` (with drf-spectacular), the debug toolbar in DEBUG."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from django.views.generic import RedirectView

urlpatterns: list[URLPattern | URLResolver] = [
    path("", RedirectView.as_view(url="/shop/", permanent=False)),
    path("shop/", include("shop.urls")),
    path("admin/", admin.site.urls),
]

if "drf_spectacular" in settings.INSTALLED_APPS:
    from drf_spectacular.views import SpectacularAPIView

    urlpatterns.append(path("api/schema/", SpectacularAPIView.as_view(), name="schema"))

if "debug_toolbar" in settings.INSTALLED_APPS:
    from debug_toolbar.toolbar import debug_toolbar_urls

    urlpatterns += debug_toolbar_urls()
