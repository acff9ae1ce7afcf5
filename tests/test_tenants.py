"""Tenants apart on the connection: a schema per tenant, as django-tenants does it.

Two real PostgreSQL schemas hold the same ``testapp_customer`` table with different rows
under the same primary keys. Each thread's connection to ``default`` gets its tenant's
``search_path`` and, as django-tenants sets them, ``connection.schema_name`` and
``connection.tenant``; the SQL of every tenant's lookup is then identical, and only the
connection says whose rows it reads. Concurrent requests of two tenants, started together
(a barrier), with coalescing and a cache, must each see only their own tenant's rows.

PostgreSQL only (``CROSSPREFETCH_TEST_DB=postgres``): schemas are what is tested.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.cache import caches
from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.test import override_settings
from rest_framework.test import APIClient

from crossprefetch import CrossDBPrefetch, Lookup, prefetch_cross_db
from crossprefetch._fetch import caching, coalescing
from crossprefetch.loaders import aprefetch_cross_db
from tests.conftest import ALL_DATABASES, T0
from tests.testapp.models import OrderEvent

T = TypeVar("T")
WINDOW = 0.5
TENANTS = ("cp_tenant_1", "cp_tenant_2")
PKS = range(1, 7)

pytestmark = [
    pytest.mark.skipif(
        settings.TEST_DB != "postgres",
        reason="schemas per tenant need 'default' on PostgreSQL: CROSSPREFETCH_TEST_DB=postgres",
    ),
    pytest.mark.django_db(databases=ALL_DATABASES, transaction=True),
]


class Tenant:
    """django-tenants' ``FakeTenant``: what ``connection.tenant`` holds, with its schema."""

    def __init__(self, schema_name: str) -> None:
        self.schema_name = schema_name


def name(tenant: str | None, pk: int) -> str:
    return f"{tenant}-customer-{pk}"


@pytest.fixture
def schemas() -> Iterator[None]:
    """Each tenant's copy of the customer table, committed (threads read it); dropped after."""
    with connections["default"].cursor() as cursor:
        for tenant in TENANTS:
            cursor.execute(f"CREATE SCHEMA {tenant}")
            cursor.execute(
                f"CREATE TABLE {tenant}.testapp_customer "
                "(LIKE public.testapp_customer INCLUDING ALL)"
            )
            for pk in PKS:
                cursor.execute(
                    f"INSERT INTO {tenant}.testapp_customer "
                    "(id, name, email, tier, is_active, tenant, region_code, external_id) "
                    "VALUES (%s, %s, '', 'basic', true, %s, '', gen_random_uuid())",
                    [pk, name(tenant, pk), tenant],
                )
    caching.clear_local()
    try:
        yield
    finally:
        caching.clear_local()
        caches["default"].clear()
        with connections["default"].cursor() as cursor:
            for tenant in TENANTS:
                cursor.execute(f"DROP SCHEMA IF EXISTS {tenant} CASCADE")


def activate(tenant: str | None, *, mark: str = "schema") -> None:
    """Point this thread's connection to ``default`` at ``tenant``'s schema, as
    django-tenants' ``connection.set_tenant()`` does (``mark="schema"``), or only set the
    ``search_path`` and an attribute of the project's own (``mark="own"``)."""
    connection = connections["default"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('search_path', %s, false)", [tenant or "public"])
    if mark == "schema":
        connection.schema_name = tenant or "public"  # type: ignore[attr-defined]
        connection.tenant = Tenant(tenant or "public")  # type: ignore[attr-defined]
    else:
        connection.own_tenant = tenant  # type: ignore[attr-defined]


def concurrently(n: int, work: Callable[[int], T]) -> list[T | BaseException]:
    """``work(i)`` in ``n`` threads released together by a barrier; results or errors."""
    barrier = threading.Barrier(n)
    results: list[T | BaseException] = [RuntimeError("not run")] * n

    def run(i: int) -> None:
        try:
            barrier.wait(10)
            results[i] = work(i)
        except BaseException as exc:
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    return results


class Key:
    def __init__(self, customer_id: int) -> None:
        self.customer_id = customer_id


def lookup_of(result: Any) -> Lookup:
    assert isinstance(result, dict), result
    (lookup,) = result.values()
    assert isinstance(lookup, Lookup)
    return lookup


def assert_own_rows(tenant: str | None, lookup: Lookup) -> None:
    assert {pk: row["name"] for pk, row in lookup.items()} == {pk: name(tenant, pk) for pk in PKS}


def lookups_of_tenant(spec: CrossDBPrefetch, *, mark: str = "schema") -> Callable[[int], Any]:
    def work(i: int) -> dict[str, Lookup]:
        activate(TENANTS[i % 2], mark=mark)
        return prefetch_cross_db([Key(pk) for pk in PKS], {"customers": spec})

    return work


def test_concurrent_tenants_never_share_a_coalesced_query(schemas: None) -> None:
    spec = CrossDBPrefetch("testapp.Customer", key="customer_id", fields=("name",), coalesce=WINDOW)
    results = concurrently(8, lookups_of_tenant(spec))
    lookups = [lookup_of(r) for r in results]
    for i, lookup in enumerate(lookups):
        assert_own_rows(TENANTS[i % 2], lookup)
    assert any(lookup.stats.coalesced_with for lookup in lookups)  # they did share, within one
    assert max(lookup.stats.coalesced_with for lookup in lookups) <= 3  # tenant: 4 requests each
    assert coalescing._open == {}


def test_a_cache_without_scope_keeps_tenants_apart(schemas: None) -> None:
    spec = CrossDBPrefetch("testapp.Customer", key="customer_id", fields=("name",), cache=60)

    def lookup_as(tenant: str) -> Lookup:
        """A lookup in a new thread, on a new connection of ``tenant``."""

        def work(i: int) -> dict[str, Lookup]:
            activate(tenant)
            return prefetch_cross_db([Key(pk) for pk in PKS], {"customers": spec})

        (result,) = concurrently(1, work)
        return lookup_of(result)

    first, second = TENANTS
    warmed = lookup_as(first)
    assert (warmed.stats.cache_hits, warmed.stats.queries) == (0, 1)
    other = lookup_as(second)  # another thread, another connection: t1's entries exist
    assert_own_rows(second, other)
    assert (other.stats.cache_hits, other.stats.queries) == (0, 1)
    again = lookup_as(first)
    assert_own_rows(first, again)
    assert (again.stats.cache_hits, again.stats.queries) == (len(PKS), 0)


def test_concurrent_tenants_with_cache_and_coalescing(schemas: None) -> None:
    spec = CrossDBPrefetch(
        "testapp.Customer", key="customer_id", fields=("name",), cache=60, coalesce=WINDOW
    )
    for _ in range(2):  # cold, then from the cache
        results = concurrently(8, lookups_of_tenant(spec))
        for i, result in enumerate(results):
            assert_own_rows(TENANTS[i % 2], lookup_of(result))


def own_tenant(connection: Any) -> Any:
    return getattr(connection, "own_tenant", None)


def test_connection_scope_setting_keeps_tenants_apart(schemas: None) -> None:
    """A project that sets the ``search_path`` itself says so with CONNECTION_SCOPE."""
    spec = CrossDBPrefetch(
        "testapp.Customer", key="customer_id", fields=("name",), cache=60, coalesce=WINDOW
    )
    with override_settings(CROSSPREFETCH={"CONNECTION_SCOPE": own_tenant}):
        for _ in range(2):
            results = concurrently(8, lookups_of_tenant(spec, mark="own"))
            for i, result in enumerate(results):
                assert_own_rows(TENANTS[i % 2], lookup_of(result))


def test_async_lookups_of_a_tenant_stay_on_its_connection(schemas: None) -> None:
    """With coalescing, ``aprefetch_cross_db`` would run in crossprefetch's own threads,
    whose connections have no tenant: a connection with one keeps the lookups."""
    spec = CrossDBPrefetch("testapp.Customer", key="customer_id", fields=("name",), coalesce=0.01)

    def work(i: int) -> dict[str, Lookup]:
        activate(TENANTS[i % 2])
        return async_to_sync(aprefetch_cross_db)([Key(pk) for pk in PKS], {"customers": spec})

    for i, result in enumerate(concurrently(4, work)):
        assert_own_rows(TENANTS[i % 2], lookup_of(result))


class TenantMiddleware:
    """The tenant of a request from its ``X-Tenant`` header, set on the connection."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        activate(request.headers.get("X-Tenant"))
        return self.get_response(request)


def test_concurrent_requests_of_two_tenants_through_drf(schemas: None) -> None:
    for pk in PKS:
        OrderEvent.objects.create(timestamp=T0, customer_id=pk)

    def request(i: int) -> Any:
        tenant = TENANTS[i % 2]
        response = APIClient().get("/api/events/?page_size=10", HTTP_X_TENANT=tenant)
        assert response.status_code == 200, response.content
        return tenant, response.json()["results"]

    middleware = [*settings.MIDDLEWARE, "tests.test_tenants.TenantMiddleware"]
    with override_settings(MIDDLEWARE=middleware, CROSSPREFETCH={"COALESCE": WINDOW}):
        results = concurrently(6, request)
    for result in results:
        assert isinstance(result, tuple), result
        tenant, rows = result
        assert len(rows) == len(PKS)
        assert {row["customer_name"] for row in rows} == {name(tenant, pk) for pk in PKS}


def test_concurrent_tenants_filtering_by_remote_rows_share_nothing(schemas: None) -> None:
    """A filter's remote read is coalesced and cached like a lookup (its identity carries
    the connection's tenant): the same filter in two tenants reads each tenant's rows."""
    from rest_framework import serializers, viewsets
    from rest_framework.test import APIRequestFactory

    from crossprefetch import ContextLookupField, CrossDBPrefetchMixin
    from crossprefetch.filters import CrossDBFilter, CrossDBFilterBackend

    for pk in PKS:
        OrderEvent.objects.create(timestamp=T0, customer_id=pk)

    class Events(serializers.ModelSerializer[OrderEvent]):
        customer_name = ContextLookupField("customers", "name", default=None)

        class Meta:
            model = OrderEvent
            fields = ["id", "customer_name"]

    class View(CrossDBPrefetchMixin, viewsets.ReadOnlyModelViewSet[OrderEvent]):
        queryset = OrderEvent.objects.order_by("id")
        serializer_class = Events
        filter_backends = [CrossDBFilterBackend]
        cross_db_fields = {
            "customers": CrossDBPrefetch(
                "testapp.Customer",
                key="customer_id",
                fields=("name",),
                coalesce=WINDOW,
                cache=60,
                timeout=5,
            )
        }
        cross_db_filters = {
            "customer_name": CrossDBFilter("customers", "name", lookup_expr="icontains")
        }

    view = View.as_view({"get": "list"})

    def request(i: int) -> tuple[str, list[Any]]:
        tenant = TENANTS[i % 2]
        activate(tenant)
        # the same filter, the same SQL, in every tenant: only the connection differs
        response = view(APIRequestFactory().get("/?customer_name=customer"))
        assert response.status_code == 200, response.data
        return tenant, list(response.data)

    for _ in range(2):  # cold, then from the cache
        for result in concurrently(6, request):
            assert isinstance(result, tuple), result
            tenant, rows = result
            assert {row["customer_name"] for row in rows} == {name(tenant, pk) for pk in PKS}
