"""URLconf of the caching tests: the test app's endpoints, each cached in each cache.

``/cached/<cache alias>/<endpoint>/`` serves the same JSON as ``/api/<endpoint>/`` with its
lookups cached in ``CACHES[<cache alias>]``. The second process of the invalidation tests
runs with this URLconf too, so it finds the cached models the way a deployment does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import F, QuerySet, Value
from django.db.models.functions import Concat
from django.http import HttpRequest
from django.urls import include, path
from rest_framework.routers import SimpleRouter

from crossprefetch import CachePolicy, CrossDBPrefetch
from tests.testapp import views
from tests.testapp.models import Customer, OrderEvent

CACHE_ALIASES = ("default", "redis")


def tenant_of(request: HttpRequest | None) -> str:
    """The scope of the tenant endpoints: ``?tenant=``."""
    return "" if request is None else str(request.GET.get("tenant", ""))


def header_scope(request: HttpRequest | None) -> str:
    """A scope read from a header, for specs whose QuerySet does not depend on the request."""
    return "" if request is None else str(request.headers.get("X-Scope", ""))


def tenant_customers(request: HttpRequest | None) -> QuerySet[Customer]:
    return Customer.objects.filter(tenant=tenant_of(request))


def specs(alias: str) -> dict[str, dict[str, CrossDBPrefetch]]:
    policy = CachePolicy(300, alias=alias)
    return {
        "events": {
            "customers": CrossDBPrefetch(
                "testapp.Customer", key="customer_id", fields=("name", "tier"), cache=policy
            )
        },
        "nested": {
            "customers": CrossDBPrefetch("testapp.Customer", key="customer_id", cache=policy)
        },
        "annotated": {
            "customers": CrossDBPrefetch(
                Customer.objects.annotate(label=Concat(F("name"), Value("!"))).defer("email"),
                key="customer_id",
                cache=policy,
            )
        },
        "customers": {
            "events": CrossDBPrefetch(
                OrderEvent.objects.order_by("id"),
                key="id",
                to_field="customer_id",
                many=True,
                cache=policy,
            )
        },
        "accounts": {
            "accounts": CrossDBPrefetch(
                "testapp.Account",
                key=("account_tenant", "account_number"),
                to_field=("tenant_id", "number"),
                fields=("label",),
                cache=policy,
            )
        },
        "buyer-seller": {
            "buyers": CrossDBPrefetch(
                "testapp.Customer", key="customer_id", fields=("name",), cache=policy
            ),
            "sellers": CrossDBPrefetch(
                Customer, key="seller_id", fields=("name", "tier"), cache=policy
            ),
        },
        "tenant-events": {
            "customers": CrossDBPrefetch(
                tenant_customers,
                key="customer_id",
                fields=("name", "tier"),
                cache=CachePolicy(300, alias=alias, scope=tenant_of),
            )
        },
        "scoped-events": {
            "customers": CrossDBPrefetch(
                "testapp.Customer",
                key="customer_id",
                fields=("name", "tier"),
                cache=CachePolicy(300, alias=alias, scope=header_scope),
            )
        },
    }


#: The uncached view each cached endpoint derives from (and serves the same JSON as).
BASES: dict[str, type] = {
    "events": views.OrderEventViewSet,
    "nested": views.NestedCustomerViewSet,
    "annotated": views.NestedCustomerViewSet,
    "customers": views.CustomerViewSet,
    "accounts": views.AccountViewSet,
    "buyer-seller": views.BuyerSellerViewSet,
    "tenant-events": views.OrderEventViewSet,
    "scoped-events": views.OrderEventViewSet,
}


def _viewset(alias: str, endpoint: str, cross_db_fields: Mapping[str, CrossDBPrefetch]) -> type:
    name = "Cached" + "".join(p.title() for p in endpoint.split("-")) + alias.title()
    attrs = {"cross_db_fields": cross_db_fields, "__module__": __name__}
    return type(name, (BASES[endpoint],), attrs)


urlpatterns: list[Any] = [path("", include("tests.urls"))]
for _alias in CACHE_ALIASES:
    _router = SimpleRouter()
    for _endpoint, _specs in specs(_alias).items():
        _router.register(
            _endpoint, _viewset(_alias, _endpoint, _specs), basename=f"{_alias}-{_endpoint}"
        )
    urlpatterns.append(path(f"cached/{_alias}/", include(_router.urls)))
