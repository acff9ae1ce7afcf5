"""The test URLconf plus the admin sites of the admin tests."""

from __future__ import annotations

from django.urls import path

from tests.testapp.admin import naive_site, site
from tests.urls import urlpatterns as base_urlpatterns

urlpatterns = [
    *base_urlpatterns,
    path("admin/", site.urls),
    path("naive-admin/", naive_site.urls),
]
