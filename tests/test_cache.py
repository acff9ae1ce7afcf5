"""Caching of lookup rows: on LocMem and on a real Redis, queries counted per alias.

Redis tests skip when no server answers at ``CROSSPREFETCH_REDIS_URL``, and fail instead
when ``CROSSPREFETCH_REQUIRE_SERVICES=1`` (CI). Every test gets its own key prefix, so
runs sharing a Redis never see each other's entries, and nothing is flushed.

The tests are transactional: rows are committed, as in production, so a write bumps the
generation of its model at once and a second process sees the rows.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core import checks
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, transaction
from django.db.models.functions import Upper
from django.test import override_settings
from rest_framework.test import APIClient

from crossprefetch import CachePolicy, CrossDBPrefetch, prefetch_cross_db, signals
from crossprefetch._cache import invalidation as _invalidation
from crossprefetch._cache import store as _cachestore
from crossprefetch._fetch import caching as cache_layer
from crossprefetch.cache import failed_invalidations, invalidate
from crossprefetch.checks.cache import (
    check_cache_deploy,
    check_process_local_caches,
    check_spec_cache,
)
from crossprefetch.lookup import Lookup, LookupStats
from crossprefetch.testing import assert_num_queries, capture_queries
from tests import settings as test_settings
from tests.cache_backends import FlakyCache, RecordingCache
from tests.cache_urls import tenant_customers
from tests.conftest import ALL_DATABASES, REQUIRE_SERVICES, Scenario, make_scenario
from tests.testapp.models import Account, Customer, OrderEvent

pytestmark = [
    pytest.mark.django_db(databases=ALL_DATABASES, transaction=True),
    pytest.mark.urls("tests.cache_urls"),
]

ROOT = Path(__file__).resolve().parent.parent
#: Caches of their own (a LocMemCache's memory is shared by every alias with its LOCATION).
FLAKY = {"BACKEND": "tests.cache_backends.FlakyCache", "LOCATION": "flaky"}
RECORDING = {"BACKEND": "tests.cache_backends.RecordingCache", "LOCATION": "recording"}


def _redis_unreachable() -> str | None:
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        return f"Redis at {settings.REDIS_URL} is not reachable ({exc}); start redis-server"
    return None


def require_redis() -> None:
    reason = _redis_unreachable()
    if reason is None:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"CROSSPREFETCH_REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _isolated_cache(settings: Any) -> Iterator[str]:
    """A key prefix of the test's own; what the process watches is restored after it."""
    prefix = f"cp-test-{uuid.uuid4().hex[:12]}"
    settings.CROSSPREFETCH = {"CACHE_PREFIX": prefix}
    watched = (_invalidation._state, _invalidation._discovered)
    _invalidation.reset()
    _invalidation._discovered = True  # models are watched from their first use in the test
    _cachestore.reset_warnings()
    cache_layer.clear_local()
    yield prefix
    _invalidation.reset()
    _invalidation._state, _invalidation._discovered = watched
    caches["default"].clear()  # LocMem: this process's memory only
    if _redis_unreachable() is None:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        keys = list(client.scan_iter(match=f"*{prefix}*", count=1000))
        if keys:
            client.delete(*keys)


@pytest.fixture(params=["default", pytest.param("redis", marks=pytest.mark.redis)])
def cache_alias(request: pytest.FixtureRequest) -> str:
    """Each test runs on LocMem ("default") and on Redis ("redis")."""
    alias: str = request.param
    if alias == "redis":
        require_redis()
    return alias


@pytest.fixture
def redis_alias() -> str:
    require_redis()
    return "redis"


@pytest.fixture
def data() -> Scenario:
    return make_scenario()


@pytest.fixture
def stats() -> Iterator[list[dict[str, LookupStats]]]:
    """The ``LookupStats`` of every lookup built during the test, per call."""
    seen: list[dict[str, LookupStats]] = []

    def receiver(lookups: dict[str, Lookup], **kwargs: Any) -> None:
        seen.append({name: lookup.stats for name, lookup in lookups.items()})

    signals.lookups_prefetched.connect(receiver, dispatch_uid="test_cache.stats")
    yield seen
    signals.lookups_prefetched.disconnect(dispatch_uid="test_cache.stats")


def _get(api: APIClient, url: str, **headers: str) -> Any:
    response = api.get(url, headers=headers)
    assert response.status_code == 200, response.content
    return response.json()


def _names(payload: Any) -> dict[int, str]:
    return {row["id"]: row["customer_name"] for row in payload["results"]}


def _linked_customer(data: Scenario) -> Customer:
    """A customer referenced by the first page of events."""
    on_page = {e.customer_id for e in OrderEvent.objects.all()[:100]}
    return next(c for c in data.customers if c.pk in on_page)


def _spec(alias: str, **kwargs: Any) -> CrossDBPrefetch:
    policy = kwargs.pop("policy", None) or CachePolicy(300, alias=alias)
    kwargs.setdefault("fields", ("name", "tier"))
    return CrossDBPrefetch("testapp.Customer", key="customer_id", cache=policy, **kwargs)


def _flat_params(params: Any) -> set[int]:
    """The keys a lookup query sent: an IN list, or one PostgreSQL array.

    Other parameters (Django 6.1 compares the ``IN`` condition ``= True``) are left out.
    """
    found: set[int] = set()
    for param in params:
        for value in param if isinstance(param, list | tuple) else [param]:
            if type(value) is int:
                found.add(value)
    return found


# Cold, warm, partly warm -----------------------------------------------------------------

# (endpoint, uncached twin, queries of the cold request, of the warm one, query string)
ENDPOINTS = [
    ("events", "events", {"timeseries": 2, "default": 1, "legacy": 0}, {"default": 0}, ""),
    ("nested", "nested", {"timeseries": 2, "default": 1, "legacy": 0}, {"default": 0}, ""),
    ("annotated", "nested", {"timeseries": 2, "default": 1, "legacy": 0}, {"default": 0}, ""),
    ("customers", "customers", {"timeseries": 1, "default": 2, "legacy": 0}, {"timeseries": 0}, ""),
    ("accounts", "accounts", {"timeseries": 2, "default": 0, "legacy": 1}, {"legacy": 0}, ""),
    ("buyer-seller", "buyer-seller", {"timeseries": 2, "default": 1, "legacy": 0},
     {"default": 0}, ""),
    ("tenant-events", "tenant-events", {"timeseries": 2, "default": 1, "legacy": 0}, {"default": 0},
     "?tenant=acme"),
    ("scoped-events", "events", {"timeseries": 2, "default": 1, "legacy": 0}, {"default": 0}, ""),
]  # fmt: skip


@pytest.mark.parametrize(
    ("endpoint", "twin", "cold", "warm", "query"), ENDPOINTS, ids=[e[0] for e in ENDPOINTS]
)
def test_cold_request_queries_once_warm_request_not_at_all(
    cache_alias: str,
    data: Scenario,
    api: APIClient,
    endpoint: str,
    twin: str,
    cold: dict[str, int],
    warm: dict[str, int],
    query: str,
) -> None:
    url = f"/cached/{cache_alias}/{endpoint}/{query}"
    expected = _get(api, f"/api/{twin}/{query}")
    with assert_num_queries(cold):
        assert _get(api, url) == expected
    with assert_num_queries({**cold, **warm}):
        assert _get(api, url) == expected


def test_partly_warm_queries_exactly_the_missing_keys(
    cache_alias: str, data: Scenario, api: APIClient
) -> None:
    url = f"/cached/{cache_alias}/events/"
    first = _get(api, url + "?page_size=10")
    events = list(OrderEvent.objects.all()[:100])
    cached = {e.customer_id for e in events[:10]} - {None}
    missing = {e.customer_id for e in events} - {None} - cached
    assert cached
    assert missing

    with capture_queries() as captured:
        page = _get(api, url + "?page_size=100")
    assert captured.count("default") == 1
    assert _flat_params(captured["default"][0].params) == missing
    assert page["results"][:10] == first["results"]
    assert page == _get(api, "/api/events/?page_size=100")


def test_dangling_references_are_cached_briefly(
    cache_alias: str, data: Scenario, api: APIClient, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    url = f"/cached/{cache_alias}/events/"
    dangling = (
        {e.customer_id for e in OrderEvent.objects.all()[:100]}
        - {c.pk for c in data.customers}
        - {None}
    )
    assert dangling
    _get(api, url)
    with assert_num_queries(default=0):
        _get(api, url)

    later = cache_layer._now() + settings.CROSSPREFETCH.get("CACHE_NEGATIVE_TIMEOUT", 30) + 1
    monkeypatch.setattr(cache_layer, "_now", lambda: later)
    with capture_queries() as captured:
        _get(api, url)
    assert captured.count("default") == 1
    assert _flat_params(captured["default"][0].params) == dangling


def test_negative_caching_can_be_disabled(
    cache_alias: str, data: Scenario, api: APIClient, settings: Any
) -> None:
    settings.CROSSPREFETCH = {**settings.CROSSPREFETCH, "CACHE_NEGATIVE_TIMEOUT": 0}
    url = f"/cached/{cache_alias}/events/"
    _get(api, url)
    with capture_queries() as captured:
        _get(api, url)
    dangling = (
        {e.customer_id for e in OrderEvent.objects.all()[:100]}
        - {c.pk for c in data.customers}
        - {None}
    )
    assert _flat_params(captured["default"][0].params) == dangling


def test_stats_count_hits_and_misses(
    cache_alias: str, data: Scenario, stats: list[dict[str, LookupStats]]
) -> None:
    events = list(OrderEvent.objects.all()[:100])
    specs = {"customers": _spec(cache_alias)}
    prefetch_cross_db(events[:10], specs)
    prefetch_cross_db(events, specs)
    cold, partly_warm = stats[0]["customers"], stats[1]["customers"]
    assert (cold.cache_hits, cold.cache_misses, cold.queries) == (0, cold.keys_asked, 1)
    keys_on_first = len({e.customer_id for e in events[:10]} - {None})
    assert partly_warm.cache_hits == keys_on_first
    assert partly_warm.cache_misses == partly_warm.keys_asked - keys_on_first
    assert partly_warm.cache_errors == 0
    assert partly_warm.queries == 1
    existing = {c.pk for c in data.customers}
    assert partly_warm.keys_found == len({e.customer_id for e in events} & existing)


def test_warm_requests_read_only_the_generations_from_the_shared_cache(
    data: Scenario, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.CACHES = {**settings.CACHES, "rec": RECORDING}
    reads: list[list[str]] = []
    original = RecordingCache.get_many

    def get_many(self: RecordingCache, keys: Any, version: Any = None) -> Any:
        reads.append(list(keys))
        return original(self, keys, version)

    monkeypatch.setattr(RecordingCache, "get_many", get_many)
    spec = _spec("rec", policy=CachePolicy(60, alias="rec"))
    prefetch_cross_db(data.events, {"c": spec})
    with assert_num_queries(default=0):
        prefetch_cross_db(data.events, {"c": spec})
    assert len(reads[-1]) == 1
    assert reads[-1][0].endswith(":gen:testapp.customer")

    settings.CROSSPREFETCH = {**settings.CROSSPREFETCH, "CACHE_LOCAL_MAX_ENTRIES": 0}
    cache_layer.clear_local()
    with assert_num_queries(default=0):
        prefetch_cross_db(data.events, {"c": spec})
    assert len(reads[-1]) == 1 + len({e.customer_id for e in data.events} - {None})


def test_the_local_layer_is_bounded(data: Scenario, settings: Any) -> None:
    settings.CROSSPREFETCH = {**settings.CROSSPREFETCH, "CACHE_LOCAL_MAX_ENTRIES": 5}
    prefetch_cross_db(data.events, {"c": _spec("default")})
    assert len(cache_layer._local) == 5


def test_rows_handed_out_are_copies(data: Scenario) -> None:
    spec = _spec("default")
    prefetch_cross_db(data.events, {"c": spec})
    first = prefetch_cross_db(data.events, {"c": spec})["c"]
    key = next(iter(first))
    first[key]["name"] = "Changed by a caller"
    assert prefetch_cross_db(data.events, {"c": spec})["c"][key]["name"] != "Changed by a caller"


# Scope --------------------------------------------------------------------------------------


def test_tenants_never_read_each_others_entries(
    cache_alias: str, data: Scenario, api: APIClient
) -> None:
    url = f"/cached/{cache_alias}/tenant-events/?tenant="
    acme = _get(api, url + "acme")
    with assert_num_queries(default=1):
        globex = _get(api, url + "globex")
    with assert_num_queries(default=0):
        assert _get(api, url + "acme") == acme
    tenant = {c.pk: c.tenant for c in data.customers}
    for payload, name in ((acme, "acme"), (globex, "globex")):
        for row in payload["results"]:
            shown = row["customer_tier"] is not None
            assert shown == (tenant.get(row["customer_id"]) == name), row


def test_equal_keys_in_two_scopes_are_two_entries(
    cache_alias: str, data: Scenario, api: APIClient
) -> None:
    url = f"/cached/{cache_alias}/scoped-events/"
    with assert_num_queries(default=1):
        first = _get(api, url, **{"X-Scope": "a"})
    with assert_num_queries(default=1):
        assert _get(api, url, **{"X-Scope": "b"}) == first
    with assert_num_queries(default=0):
        _get(api, url, **{"X-Scope": "a"})
        _get(api, url, **{"X-Scope": "b"})


def test_request_dependent_queryset_without_scope_is_refused(
    cache_alias: str, data: Scenario
) -> None:
    spec = CrossDBPrefetch(
        tenant_customers,
        key="customer_id",
        fields=("name",),
        cache=CachePolicy(60, alias=cache_alias),
    )
    with pytest.raises(ImproperlyConfigured, match="no scope"):
        prefetch_cross_db(data.events, {"customers": spec})


def test_scope_must_be_plain(data: Scenario) -> None:
    spec = _spec("default", policy=CachePolicy(60, scope=lambda request: object()))
    with pytest.raises(TypeError, match="a scope must be a str"):
        prefetch_cross_db(data.events, {"customers": spec})


# Model instances ----------------------------------------------------------------------------


def test_instances_are_rebuilt_from_plain_values(cache_alias: str, data: Scenario) -> None:
    queryset = Customer.objects.defer("email").annotate(shout=Upper("name"))
    spec = CrossDBPrefetch(queryset, key="customer_id", cache=CachePolicy(60, alias=cache_alias))
    cold = prefetch_cross_db(data.events, {"c": spec})["c"]
    with assert_num_queries(default=0):
        warm = prefetch_cross_db(data.events, {"c": spec})["c"]
    assert set(cold) == set(warm)
    assert len(warm) > 0
    for key, fresh in cold.items():
        cached = warm[key]
        assert type(cached) is Customer
        assert cached is not fresh
        assert cached._state.db == "default"
        assert not cached._state.adding
        assert cached.get_deferred_fields() == {"email"}
        loaded = {k: v for k, v in fresh.__dict__.items() if k != "_state"}
        assert {k: v for k, v in cached.__dict__.items() if k != "_state"} == loaded
        assert cached.shout == fresh.name.upper()


@pytest.mark.parametrize("method", ["select_related", "prefetch_related"])
def test_instances_of_a_queryset_loading_related_objects_are_refused(method: str) -> None:
    from django.contrib.auth.models import Permission

    queryset = getattr(Permission.objects, method)("content_type")
    spec = CrossDBPrefetch(queryset, key="permission_id", cache=60)
    with pytest.raises(ImproperlyConfigured, match="select_related"):
        prefetch_cross_db([{"permission_id": 1}], {"permissions": spec})


def test_many_rows_keep_their_order(cache_alias: str, data: Scenario) -> None:
    spec = CrossDBPrefetch(
        OrderEvent.objects.order_by("-amount", "id"),
        key="id",
        to_field="customer_id",
        fields=("id", "amount"),
        many=True,
        cache=CachePolicy(60, alias=cache_alias),
    )
    cold = dict(prefetch_cross_db(data.customers, {"events": spec})["events"])
    with assert_num_queries(timeseries=0):
        warm = dict(prefetch_cross_db(data.customers, {"events": spec})["events"])
    assert warm == cold
    assert any(len(rows) > 1 for rows in warm.values())


# Invalidation, one process ------------------------------------------------------------------


def _warm(api: APIClient, url: str) -> None:
    _get(api, url)
    with assert_num_queries(default=0):
        _get(api, url)


def test_save_is_seen_on_the_next_request(cache_alias: str, data: Scenario, api: APIClient) -> None:
    url = f"/cached/{cache_alias}/events/"
    _warm(api, url)
    customer = _linked_customer(data)
    customer.name = "Renamed by save()"
    customer.save()
    with assert_num_queries(default=1):
        payload = _get(api, url)
    assert "Renamed by save()" in _names(payload).values()
    with assert_num_queries(default=0):
        assert _get(api, url) == payload


@pytest.mark.parametrize(
    "write",
    ["update", "bulk_update", "delete", "queryset_delete", "raw_sql", "create_dangling"],
)
def test_writes_through_django_are_seen(
    cache_alias: str, data: Scenario, api: APIClient, write: str
) -> None:
    url = f"/cached/{cache_alias}/events/?page_size=100"
    _warm(api, url)
    customer = _linked_customer(data)
    dangling = next(
        e.customer_id
        for e in OrderEvent.objects.all()[:100]
        if e.customer_id and e.customer_id > 1_000_000
    )
    if write == "update":
        Customer.objects.filter(pk=customer.pk).update(name="Changed")
    elif write == "bulk_update":
        customer.name = "Changed"
        Customer.objects.bulk_update([customer], ["name"])
    elif write == "delete":
        customer.delete()
    elif write == "queryset_delete":
        Customer.objects.filter(pk=customer.pk).delete()
    elif write == "raw_sql":
        with connections["default"].cursor() as cursor:
            cursor.execute(
                "UPDATE testapp_customer SET name = %s WHERE id = %s", ["Changed", customer.pk]
            )
    elif write == "create_dangling":
        Customer.objects.create(pk=dangling, name="Changed")
    payload = _get(api, url)
    assert payload == _get(api, "/api/events/?page_size=100")
    names = _names(payload).values()
    if write.endswith("delete"):
        assert customer.name not in names
    else:
        assert "Changed" in names


# How raw SQL may spell a write: {table} is the table, quoted or not; {schema} its schema.
RAW_WRITES = {
    "lower": "update {table} set name = %s where id = %s",
    "upper": "UPDATE {TABLE} SET NAME = %s WHERE ID = %s",
    "mixed": "Update {Table} Set name = %s Where id = %s",
    "quoted": "UPDATE {quoted} SET name = %s WHERE id = %s",
    "schema": "UPDATE {schema}.{table} SET name = %s WHERE id = %s",
    "schema_quoted": "UPDATE {qschema}.{quoted} SET name = %s WHERE id = %s",
    "block_comment": "/* renamed */ UPDATE {table} SET name = %s WHERE id = %s",
    "line_comment": "-- renamed\n  UPDATE {table} SET name = %s WHERE id = %s",
    "with": "WITH n AS (SELECT 1 AS one) UPDATE {table} SET name = %s WHERE id = %s",
    "executemany": "UPDATE {table} SET name = %s WHERE id = %s",
    "composed": "",
}


def _spell(sql: str, connection: Any) -> str:
    table = Customer._meta.db_table
    schema = "public" if connection.vendor == "postgresql" else "main"
    if connection.vendor == "mysql":
        schema = connection.settings_dict["NAME"]
    return sql.format(
        table=table,
        TABLE=table.upper(),
        Table=table.title(),
        quoted=connection.ops.quote_name(table),
        schema=schema,
        qschema=connection.ops.quote_name(schema),
    )


@pytest.mark.parametrize("spelling", list(RAW_WRITES))
def test_raw_writes_are_seen_however_spelled(
    cache_alias: str, data: Scenario, spelling: str
) -> None:
    connection = connections["default"]
    if connection.vendor == "mysql" and spelling in {"upper", "mixed", "with"}:
        pytest.skip("MariaDB on Linux keeps table names' case and has no WITH ... UPDATE")
    spec = _spec(cache_alias)
    prefetch_cross_db(data.events, {"c": spec})
    customer = _linked_customer(data)
    with connection.cursor() as cursor:
        if spelling == "composed":
            if connection.vendor != "postgresql":
                pytest.skip("psycopg's sql.Composed is PostgreSQL's")
            from psycopg import sql

            statement = sql.SQL("UPDATE {} SET name = %s WHERE id = %s").format(
                sql.Identifier(Customer._meta.db_table)
            )
            cursor.execute(statement, ["Changed", customer.pk])
        elif spelling == "executemany":
            cursor.executemany(
                _spell(RAW_WRITES[spelling], connection),
                [("Changed", customer.pk), ("Changed too", data.customers[-1].pk)],
            )
        else:
            cursor.execute(_spell(RAW_WRITES[spelling], connection), ["Changed", customer.pk])
    with assert_num_queries(default=1):
        rows = prefetch_cross_db(data.events, {"c": spec})["c"]
    assert rows[customer.pk]["name"] == "Changed"


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {archive} SET name = %s WHERE id = %s",
        "UPDATE {table}_archive SET name = %s WHERE id = %s",
        "INSERT INTO {archive} (id, name) VALUES (%s + 1000, %s || ' {table}')",
        "UPDATE {archive} SET name = '{table}' || %s WHERE id = %s",
        "/* UPDATE {table} is not this */ SELECT %s, %s FROM {table}",
    ],
    ids=["near_miss_quoted", "near_miss", "name_in_a_literal_concat", "name_in_a_literal",
         "commented_select"],
)  # fmt: skip
def test_statements_that_do_not_write_a_cached_table_keep_the_cache(
    cache_alias: str, data: Scenario, statement: str
) -> None:
    connection = connections["default"]
    table = Customer._meta.db_table
    archive = connection.ops.quote_name(f"{table}_archive")
    spec = _spec(cache_alias)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {archive} (id integer PRIMARY KEY, name varchar(100))")
        cursor.execute(f"INSERT INTO {archive} (id, name) VALUES (1, 'kept')")
    try:
        before = dict(prefetch_cross_db(data.events, {"c": spec})["c"])
        first, second = ("x", 1) if statement.startswith("UPDATE") else (1, "x")
        if "'{table}' ||" in statement:
            first, second = "x", 1
        with connection.cursor() as cursor:
            if connection.vendor == "mysql":  # || is OR there
                statement = statement.replace("%s || ' {table}'", "CONCAT(%s, ' {table}')")
                statement = statement.replace("'{table}' || %s", "CONCAT('{table}', %s)")
            cursor.execute(statement.format(archive=archive, table=table), [first, second])
        with assert_num_queries(default=0):
            assert dict(prefetch_cross_db(data.events, {"c": spec})["c"]) == before
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {archive}")


def test_writes_outside_django_need_invalidate(
    cache_alias: str, data: Scenario, api: APIClient
) -> None:
    url = f"/cached/{cache_alias}/events/"
    _warm(api, url)
    customer = _linked_customer(data)
    wrapper = connections["default"]
    raw = wrapper.get_new_connection(wrapper.get_connection_params())  # not seen by Django
    try:
        cursor = raw.cursor()
        cursor.execute(f"UPDATE testapp_customer SET name = 'Outside' WHERE id = {customer.pk}")
        raw.commit()
    finally:
        raw.close()
    with assert_num_queries(default=0):
        assert "Outside" not in _names(_get(api, url)).values()  # the documented limit
    invalidate(Customer)
    with assert_num_queries(default=1):
        assert "Outside" in _names(_get(api, url)).values()


def test_invalidate_false_serves_until_timeout(cache_alias: str, data: Scenario) -> None:
    spec = _spec(cache_alias, policy=CachePolicy(60, alias=cache_alias, invalidate=False))
    before = dict(prefetch_cross_db(data.events, {"c": spec})["c"])
    Customer.objects.update(name="Changed")
    with assert_num_queries(default=0):
        assert dict(prefetch_cross_db(data.events, {"c": spec})["c"]) == before


def test_a_transaction_reads_its_own_writes_and_caches_nothing_on_rollback(
    cache_alias: str, data: Scenario
) -> None:
    specs = {"c": _spec(cache_alias)}
    customer = _linked_customer(data)
    prefetch_cross_db(data.events, specs)

    class Rollback(Exception):
        pass

    def write_then_read() -> None:
        with transaction.atomic():
            Customer.objects.filter(pk=customer.pk).update(name="Uncommitted")
            for _ in range(2):  # the cache is bypassed, read and write, until the commit
                with assert_num_queries(default=1):
                    rows = prefetch_cross_db(data.events, specs)["c"]
                assert rows[customer.pk]["name"] == "Uncommitted"
            raise Rollback

    with pytest.raises(Rollback):
        write_then_read()
    with assert_num_queries(default=0):
        assert prefetch_cross_db(data.events, specs)["c"][customer.pk]["name"] == customer.name

    with transaction.atomic():
        Customer.objects.filter(pk=customer.pk).update(name="Committed")
    with assert_num_queries(default=1):
        assert prefetch_cross_db(data.events, specs)["c"][customer.pk]["name"] == "Committed"


def test_composite_key_model_is_watched(cache_alias: str, data: Scenario) -> None:
    spec = CrossDBPrefetch(
        Account, key=("account_tenant", "account_number"), to_field=("tenant_id", "number"),
        fields=("label",), cache=CachePolicy(60, alias=cache_alias),
    )  # fmt: skip
    prefetch_cross_db(data.events, {"a": spec})
    assert "testapp.account" in _invalidation.tracked().aliases
    Account.objects.update(label="Relabelled")
    with assert_num_queries(legacy=1):
        rows = prefetch_cross_db(data.events, {"a": spec})["a"]
    assert {row["label"] for row in rows.values()} == {"Relabelled"}


def test_dependencies_follow_projected_relations() -> None:
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType

    queryset = Permission.objects.filter(codename="x")
    assert _invalidation.dependencies(queryset, []) == {Permission}
    assert _invalidation.dependencies(queryset, ["content_type__app_label"]) == {
        Permission,
        ContentType,
    }
    joined = Permission.objects.filter(content_type__app_label="testapp")
    joined.query.get_compiler(using="default").as_sql()
    assert _invalidation.dependencies(joined, []) == {Permission, ContentType}


@pytest.mark.django_db(databases=ALL_DATABASES)  # a TestCase: one transaction, never committed
def test_in_a_test_case_writes_count_as_committed(cache_alias: str, api: APIClient) -> None:
    data = make_scenario()
    url = f"/cached/{cache_alias}/events/"
    _warm(api, url)
    customer = _linked_customer(data)
    customer.name = "Renamed in a TestCase"
    customer.save()
    with assert_num_queries(default=1):
        assert "Renamed in a TestCase" in _names(_get(api, url)).values()
    with assert_num_queries(default=0):
        _get(api, url)


# Invalidation across processes ---------------------------------------------------------------


def _second_process(prefix: str, *argv: str) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.cache_settings",
        "CROSSPREFETCH_TEST_SUFFIX": test_settings._SUFFIX,
        "CROSSPREFETCH_TEST_CACHE_PREFIX": prefix,
    }
    result = subprocess.run(
        [sys.executable, "-m", "tests.cache_writer", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.redis
@pytest.mark.parametrize("action", ["save", "update", "delete"])
def test_a_write_in_another_process_is_seen(
    redis_alias: str, data: Scenario, api: APIClient, settings: Any, action: str
) -> None:
    url = f"/cached/{redis_alias}/events/"
    _warm(api, url)
    customer = _linked_customer(data)
    prefix = settings.CROSSPREFETCH["CACHE_PREFIX"]
    _second_process(prefix, action, str(customer.pk), "Renamed elsewhere")
    with assert_num_queries(default=1):
        names = _names(_get(api, url)).values()
    if action == "delete":
        assert customer.name not in names
    else:
        assert "Renamed elsewhere" in names


# A failing cache ------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_redis_down_serves_from_the_database(
    data: Scenario,
    api: APIClient,
    caplog: pytest.LogCaptureFixture,
    stats: list[dict[str, LookupStats]],
) -> None:
    expected = _get(api, "/api/events/")
    down = {
        **settings.CACHES,
        "redis": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{_closed_port()}/0",
        },
    }
    _cachestore.reset_warnings()
    with override_settings(CACHES=down), caplog.at_level(logging.WARNING, "crossprefetch"):
        for _ in range(3):
            with assert_num_queries(default=1):
                assert _get(api, "/cached/redis/events/") == expected
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "'redis' failed during get_many" in warnings[0].getMessage()
    assert [s["customers"].cache_errors for s in stats[-3:]] == [1, 1, 1]
    assert [s["customers"].cache_hits for s in stats[-3:]] == [0, 0, 0]


@pytest.mark.parametrize("failing", ["get_many", "set_many", "add"])
def test_any_failing_operation_falls_back(
    data: Scenario, api: APIClient, stats: list[dict[str, LookupStats]], failing: str, settings: Any
) -> None:
    settings.CACHES = {**settings.CACHES, "flaky": FLAKY}
    settings.CROSSPREFETCH = {
        **settings.CROSSPREFETCH,
        "CACHE_ERROR_LOG_INTERVAL": 0,
        "CACHE_LOCAL_MAX_ENTRIES": 0,  # the shared cache alone
    }
    spec = _spec("flaky", policy=CachePolicy(60, alias="flaky"))
    uncached = CrossDBPrefetch("testapp.Customer", key="customer_id", fields=("name", "tier"))
    expected = dict(prefetch_cross_db(data.events, {"c": uncached})["c"])
    FlakyCache.failing = {failing}
    try:
        for _ in range(2):
            with assert_num_queries(default=1):
                assert dict(prefetch_cross_db(data.events, {"c": spec})["c"]) == expected
    finally:
        FlakyCache.failing = set()
    assert all(s["c"].cache_errors == 1 for s in stats[-2:])
    with assert_num_queries(default=1):
        prefetch_cross_db(data.events, {"c": spec})  # healthy again: fills the cache
    with assert_num_queries(default=0):
        assert dict(prefetch_cross_db(data.events, {"c": spec})["c"]) == expected


def test_errors_are_logged_once_per_interval(
    data: Scenario, caplog: pytest.LogCaptureFixture, settings: Any
) -> None:
    settings.CACHES = {**settings.CACHES, "flaky": FLAKY}
    settings.CROSSPREFETCH = {**settings.CROSSPREFETCH, "CACHE_ERROR_LOG_INTERVAL": 3600}
    spec = _spec("flaky", policy=CachePolicy(60, alias="flaky"))
    FlakyCache.failing = {"get_many"}
    try:
        with caplog.at_level(logging.WARNING, "crossprefetch"):
            for _ in range(3):
                prefetch_cross_db(data.events, {"c": spec})
            assert len(caplog.records) == 1
            settings.CROSSPREFETCH = {**settings.CROSSPREFETCH, "CACHE_ERROR_LOG_INTERVAL": 0}
            prefetch_cross_db(data.events, {"c": spec})
    finally:
        FlakyCache.failing = set()
    assert len(caplog.records) == 2
    assert "(2 more failure(s) since the last warning)" in caplog.records[1].getMessage()


def test_a_write_while_the_cache_is_down_does_not_fail(
    data: Scenario, caplog: pytest.LogCaptureFixture, settings: Any
) -> None:
    settings.CACHES = {**settings.CACHES, "flaky": FLAKY}
    settings.CROSSPREFETCH = {**settings.CROSSPREFETCH, "CACHE_ERROR_LOG_INTERVAL": 0}
    prefetch_cross_db(data.events, {"c": _spec("flaky", policy=CachePolicy(60, alias="flaky"))})
    FlakyCache.failing = {"set_many"}
    try:
        with caplog.at_level(logging.WARNING, "crossprefetch"):
            Customer.objects.update(name="Saved anyway")
    finally:
        FlakyCache.failing = set()
    assert set(Customer.objects.values_list("name", flat=True)) == {"Saved anyway"}
    assert any("could not be written to cache 'flaky'" in r.getMessage() for r in caplog.records)


def test_every_failed_invalidation_is_logged_counted_and_signalled(
    data: Scenario, caplog: pytest.LogCaptureFixture, settings: Any
) -> None:
    """Read failures are rate-limited; a lost invalidation, which leaves other processes
    serving old rows, is an ERROR each time, even right after a read failure's warning."""
    settings.CACHES = {**settings.CACHES, "flaky": FLAKY}
    settings.CROSSPREFETCH = {**settings.CROSSPREFETCH, "CACHE_ERROR_LOG_INTERVAL": 3600}
    spec = _spec("flaky", policy=CachePolicy(60, alias="flaky"))
    prefetch_cross_db(data.events, {"c": spec})
    received: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        received.append(kwargs)

    signals.invalidation_failed.connect(receiver)
    before = failed_invalidations().get("flaky", 0)
    FlakyCache.failing = {"get_many", "set_many"}
    try:
        with caplog.at_level(logging.WARNING, "crossprefetch"):
            prefetch_cross_db(data.events, {"c": spec})  # a read failure: one WARNING
            for name in ("First", "Second", "Third"):
                Customer.objects.filter(pk=data.customers[0].pk).update(name=name)
    finally:
        FlakyCache.failing = set()
        signals.invalidation_failed.disconnect(receiver)
    levels = [(r.levelname, r.getMessage()[:60]) for r in caplog.records]
    assert [level for level, _ in levels] == ["WARNING", "ERROR", "ERROR", "ERROR"], levels
    assert all("testapp.customer" in r.getMessage() for r in caplog.records[1:])
    assert failed_invalidations()["flaky"] == before + 3
    assert [(r["alias"], r["models"]) for r in received] == [("flaky", ["testapp.customer"])] * 3
    assert all(isinstance(r["error"], Exception) for r in received)


# Keys, timeouts, policy -----------------------------------------------------------------------

SAFE_KEY = re.compile(r"[!-~]{1,250}")


@pytest.mark.parametrize(
    "key", [1, -(2**63), "x" * 10_000, "naïve key with spaces\n", ("a", 1), uuid.uuid4()]
)
def test_keys_are_short_and_memcached_safe(key: Any) -> None:
    head = _cachestore.key_head("p" * 64, "v" * 32, ("testapp.Customer", "default", "SQL"))
    cache_key = head + _cachestore.key_suffix(key)
    assert SAFE_KEY.fullmatch(cache_key)
    assert len(cache_key) <= 180  # room for the cache's own KEY_PREFIX and version
    assert cache_key == head + _cachestore.key_suffix(key)
    long_label = "app." + "m" * 300
    assert SAFE_KEY.fullmatch(_invalidation.generation_key(long_label))


def test_key_suffixes_never_collide_across_types() -> None:
    suffixes = [_cachestore.key_suffix(k) for k in (42, "42", "i42", (42,), uuid.UUID(int=42))]
    assert len(set(suffixes)) == len(suffixes)
    assert _cachestore.key_suffix(42) == "i42"
    assert _cachestore.key_suffix("R1") == "sR1"


def test_keys_carry_the_spec_identity_and_scope() -> None:
    def key(*identity: Any, version: int | str = 1) -> str:
        return _cachestore.key_head("p", version, identity) + _cachestore.key_suffix(42)

    base = ("testapp.Customer", "default", "SQL", ("id",), ("unscoped",), ("name",), False)
    variants = [
        ("testapp.Region", *base[1:]),
        (base[0], "legacy", *base[2:]),
        (*base[:2], "SQL WHERE tenant = 'acme'", *base[3:]),
        (*base[:3], ("external_id",), *base[4:]),
        (*base[:4], ("scope", "acme"), *base[5:]),
        (*base[:5], ("name", "tier"), base[6]),
        (*base[:6], True),
    ]
    keys = {key(*base), key(*base, version=2), *(key(*v) for v in variants)}
    assert len(keys) == 2 + len(variants)
    assert key(*base).startswith("p:1:")
    assert key(*base, version=2).startswith("p:2:")


def test_bad_prefix_is_refused(data: Scenario, settings: Any) -> None:
    settings.CROSSPREFETCH = {"CACHE_PREFIX": "has spaces"}
    with pytest.raises(ImproperlyConfigured, match="CACHE_PREFIX"):
        prefetch_cross_db(data.events, {"c": _spec("default")})


def test_timeouts_jitter_and_negative_expiry(data: Scenario, settings: Any) -> None:
    settings.CACHES = {**settings.CACHES, "rec": RECORDING}
    RecordingCache.writes.clear()
    policy = CachePolicy(1000, alias="rec", jitter=0.5, negative_timeout=7)
    for prefix in range(20):  # a new prefix: every round writes
        settings.CROSSPREFETCH = {"CACHE_PREFIX": f"jitter-{prefix}"}
        _invalidation.reset()
        prefetch_cross_db(data.events, {"c": _spec("rec", policy=policy)})
    entry_writes = [(t, d) for t, d in RecordingCache.writes if t is not None]
    timeouts = {t for t, _ in entry_writes}
    assert all(500 <= t <= 1500 for t in timeouts)
    assert len(timeouts) > 1
    now = cache_layer._now()
    negatives = [v for _, d in entry_writes for v in d.values() if v[1] is None]
    assert negatives
    assert all(now < v[2] <= now + 7 for v in negatives)
    positives = [(t, v) for t, d in entry_writes for v in d.values() if v[1] is not None]
    assert positives
    assert all(now < v[2] <= now + t and set(v[1]) == {"name", "tier"} for t, v in positives)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"timeout": 0}, ValueError, "more than 0"),
        ({"timeout": float("inf")}, ValueError, "finite"),
        ({"timeout": 10, "negative_timeout": -1}, ValueError, "0 disables it"),
        ({"timeout": 10, "negative_timeout": "1"}, TypeError, "number of seconds"),
        ({"timeout": 10, "jitter": 1}, ValueError, "jitter is a fraction"),
        ({"timeout": 10, "version": "a b"}, ValueError, "version must be"),
        ({"timeout": 10, "invalidate": "yes"}, TypeError, "True or False"),
    ],
)
def test_bad_policy(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        CachePolicy(**kwargs)


def test_policy_options_after_timeout_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        CachePolicy(10, "default")  # type: ignore[misc]
    assert CachePolicy(10, negative_timeout=0, jitter=0.1, version="v2").version == "v2"


# Checks ---------------------------------------------------------------------------------------


def _ids(messages: list[checks.CheckMessage]) -> list[str | None]:
    return [m.id for m in messages]


def test_check_spec_cache() -> None:
    view = "app.views.EventViewSet"
    good = _spec("default")
    assert check_spec_cache(view, "customers", good) == []
    assert check_spec_cache(view, "customers", CrossDBPrefetch(Customer, key="x")) == []
    assert _ids(check_spec_cache(view, "c", _spec("nope"))) == ["crossprefetch.E101"]
    unscoped = CrossDBPrefetch(tenant_customers, key="customer_id", cache=60)
    [warning] = check_spec_cache(view, "c", unscoped)
    assert warning.id == "crossprefetch.W101"
    assert isinstance(warning, checks.Warning)
    assert "scope=" in (warning.hint or "")
    scoped = CrossDBPrefetch(
        tenant_customers, key="customer_id", cache=CachePolicy(60, scope=lambda r: "t")
    )
    assert check_spec_cache(view, "c", scoped) == []
    from django.contrib.auth.models import Permission

    joined = Permission.objects.select_related("content_type")
    related = CrossDBPrefetch(joined, key="permission_id", cache=60)
    assert _ids(check_spec_cache(view, "c", related)) == ["crossprefetch.E102"]
    projected = CrossDBPrefetch(joined, key="permission_id", fields=("name",), cache=60)
    assert check_spec_cache(view, "c", projected) == []


def test_check_spec_cache_is_run_by_the_view_checks() -> None:
    from django.contrib.auth.models import Permission
    from rest_framework import generics

    from crossprefetch import CrossDBPrefetchMixin
    from crossprefetch.checks import check_view

    class View(CrossDBPrefetchMixin, generics.ListAPIView):  # type: ignore[type-arg]
        cross_db_fields = {
            "c": CrossDBPrefetch(
                Permission.objects.select_related("content_type"), key="permission_id", cache=60
            )
        }

    assert "crossprefetch.E102" in _ids(check_view(View))


def test_deploy_check_warns_about_per_process_caches(settings: Any) -> None:
    settings.DEBUG = True
    messages = check_cache_deploy()
    flagged = {m.obj for m in messages}
    assert {m.id for m in messages} == {"crossprefetch.W102"}
    assert any("CachedEventsDefault" in str(obj) for obj in flagged)
    assert not any("Redis" in str(obj) for obj in flagged)
    settings.DEBUG = False
    assert check_cache_deploy() == []  # W103 says it, once


def test_per_process_caches_are_not_reported_in_a_test_run() -> None:
    assert not settings.DEBUG  # as every test run sets it
    assert check_process_local_caches() == []


CHECK = """
import django
from django.conf import settings
from django.core.management import call_command

django.setup()
settings.DEBUG = {debug}
call_command("check", tags=["crossprefetch"], deploy={deploy})
"""


@pytest.mark.parametrize(
    ("debug", "deploy", "reported"),
    [
        (False, False, "crossprefetch.W103"),
        (False, True, "crossprefetch.W103"),
        (True, True, "crossprefetch.W102"),
        (True, False, None),
    ],
)
def test_per_process_caches_are_reported_once_outside_tests(
    debug: bool, deploy: bool, reported: str | None
) -> None:
    """``manage.py check`` in a process of its own, as a deployment runs it: W103 whenever
    DEBUG is False, W102 under ``--deploy`` otherwise; one warning per spec either way."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.cache_settings"}
    result = subprocess.run(
        [sys.executable, "-c", CHECK.format(debug=debug, deploy=deploy)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    found = re.findall(r"\(crossprefetch\.(W10[23])\) (\S+): cache '(\w+)'", output)
    if reported is None:
        assert found == [], output
        return
    assert {f"crossprefetch.{code}" for code, _, _ in found} == {reported}
    where = [spec for _, spec, _ in found]
    assert len(set(where)) == len(where)  # once per spec
    assert {alias for _, _, alias in found} == {"default"}  # LocMem; Redis is shared
    assert any("CachedEventsDefault" in spec for spec in where)
    if reported.endswith("W103"):
        assert "SILENCED_SYSTEM_CHECKS" in output


# Which models each process watches ------------------------------------------------------------


def test_discovery_finds_the_cached_models_of_the_urlconf() -> None:
    _invalidation.reset()
    _invalidation.discover()
    aliases = _invalidation.tracked().aliases
    assert aliases["testapp.customer"] == {"default", "redis"}
    assert aliases["testapp.account"] == {"default", "redis"}
    assert aliases["testapp.orderevent"] == {"default", "redis"}
    assert "testapp_customer" in _invalidation.tracked().tables


def test_cache_invalidate_models_setting(settings: Any, caplog: pytest.LogCaptureFixture) -> None:
    settings.ROOT_URLCONF = "tests.urls"
    settings.CROSSPREFETCH = {
        **settings.CROSSPREFETCH,
        "CACHE_INVALIDATE_MODELS": ["testapp.Region", "testapp.Nope"],
    }
    _invalidation.reset()
    with caplog.at_level(logging.WARNING, "crossprefetch"):
        _invalidation.discover()
    assert _invalidation.tracked().aliases["testapp.region"] == set(settings.CACHES)
    assert "'testapp.Nope'" in caplog.text


def test_the_watcher_leaves_other_wrappers_in_place(data: Scenario) -> None:
    connection = connections["default"]

    def other(execute: Any, *args: Any) -> Any:
        return execute(*args)

    with connection.execute_wrapper(other):
        connection.close()
        connection.ensure_connection()  # a new connection inside the block: watched once
        prefetch_cross_db(data.events, {"c": _spec("default")})  # watches its model, inside
        assert connection.execute_wrappers[-1] is other
        assert connection.execute_wrappers.count(_invalidation._WATCHER) == 1
    assert other not in connection.execute_wrappers
    assert _invalidation._WATCHER in connection.execute_wrappers
