"""URLconf whose one cached view is slow to read: the discovery waits for the test's gate.

Reading ``GatedView.cross_db_fields`` sets ``READING`` and blocks until the test sets
``GATE`` (at most 30 s), so a test can act while another thread's discovery is under way.
With ``WRITE`` set, it first sends a write statement itself, as code run by the discovery
(compiling a QuerySet, importing a module) may.
"""

from __future__ import annotations

import threading
from typing import Any

from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views import View

from crossprefetch import CachePolicy, CrossDBPrefetch

READING = threading.Event()
GATE = threading.Event()
WRITE = threading.Event()


class _GatedSpecs:
    def __get__(self, instance: Any, owner: type) -> dict[str, CrossDBPrefetch]:
        READING.set()
        if WRITE.is_set():
            with connections["default"].cursor() as cursor:
                cursor.execute("UPDATE testapp_customer SET name = name WHERE id = -1")
        if not GATE.wait(30):
            raise RuntimeError("the test never opened the gate")
        policy = CachePolicy(300, alias="default")
        return {
            "customers": CrossDBPrefetch(
                "testapp.Customer", key="customer_id", fields=("name",), cache=policy
            )
        }


class GatedView(View):
    cross_db_fields = _GatedSpecs()

    def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("")


urlpatterns = [path("gated/", GatedView.as_view())]
