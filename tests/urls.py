from __future__ import annotations

from django.urls import include, path

urlpatterns = [
    path("api/", include("tests.testapp.urls")),
    path("shop/", include("shop.urls")),
]
