"""Concurrent requests share one query: real threads, real connections, committed rows.

Each thread observes its own block; a query a batch's leader sends counts in every
member's block (``shared`` in the others), so a test sums what each thread sent itself.
Windows are long (half a second) so that the threads of a loaded machine still meet in
them; nothing here asserts on time.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from asgiref.sync import async_to_sync
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connections, transaction
from django.db.backends.signals import connection_created
from django.test import RequestFactory, override_settings

from crossprefetch import CrossDBPrefetch, Lookup, prefetch_cross_db
from crossprefetch.conf import conf
from crossprefetch.loaders import aprefetch_cross_db
from crossprefetch.testing import capture_queries
from tests.conftest import ALL_DATABASES
from tests.testapp.models import Customer

T = TypeVar("T")
WINDOW = 0.5
pytestmark = pytest.mark.django_db(databases=ALL_DATABASES, transaction=True)


@pytest.fixture
def customers() -> list[Customer]:
    return [
        Customer.objects.create(name=f"c{i}", tier="gold" if i % 2 else "basic", tenant=tenant)
        for i in range(20)
        for tenant in ["acme" if i < 10 else "globex"]
    ]


class Key:
    def __init__(self, customer_id: int | None) -> None:
        self.customer_id = customer_id


def concurrently(n: int, work: Callable[[int], T]) -> tuple[list[T | BaseException], int]:
    """Run ``work(i)`` in ``n`` threads started together; results (or errors) and the
    queries sent to ``default`` by all of them."""
    barrier = threading.Barrier(n)
    results: list[T | BaseException] = [RuntimeError("not run")] * n
    counts = [0] * n

    def run(i: int) -> None:
        try:
            with capture_queries() as captured:
                barrier.wait()
                try:
                    results[i] = work(i)
                except BaseException as exc:
                    results[i] = exc
            counts[i] = sum(not query.shared for query in captured["default"])
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, sum(counts)


def lookup_of(result: Any) -> Lookup:
    assert isinstance(result, dict), result
    (lookup,) = result.values()
    assert isinstance(lookup, Lookup)
    return lookup


def test_ten_concurrent_requests_share_one_query(customers: list[Customer]) -> None:
    spec = CrossDBPrefetch(Customer, key="customer_id", fields=("name",), coalesce=WINDOW)
    own_keys = [{customers[i].pk, customers[(i + 3) % 20].pk} for i in range(10)]

    def request(i: int) -> dict[str, Lookup]:
        return prefetch_cross_db([Key(pk) for pk in own_keys[i]], {"customers": spec})

    results, queries = concurrently(10, request)
    assert queries <= 3
    names = {c.pk: c.name for c in customers}
    shared = 0
    for keys, result in zip(own_keys, results, strict=True):
        lookup = lookup_of(result)
        assert dict(lookup) == {pk: {"name": names[pk]} for pk in keys}  # only its own keys
        assert lookup.stats.keys_asked == lookup.stats.keys_found == len(keys)
        shared += lookup.stats.coalesced_with > 0
    assert shared >= 8
    assert sum(lookup_of(r).stats.queries for r in results) == queries


def test_without_a_window_every_request_queries(customers: list[Customer]) -> None:
    spec = CrossDBPrefetch(Customer, key="customer_id", fields=("name",))
    results, queries = concurrently(
        4, lambda i: prefetch_cross_db([Key(customers[i].pk)], {"customers": spec})
    )
    assert queries == 4
    assert all(lookup_of(r).stats.coalesced_with == 0 for r in results)


def test_tenants_never_share_a_query(customers: list[Customer]) -> None:
    factory = RequestFactory()
    spec = CrossDBPrefetch(
        lambda request: Customer.objects.filter(tenant=getattr(request, "tenant", None)),
        key="customer_id",
        fields=("name", "tenant"),
        coalesce=WINDOW,
    )
    every_pk = [c.pk for c in customers]

    def request(i: int) -> dict[str, Lookup]:
        req = factory.get("/")
        req.tenant = "acme" if i % 2 else "globex"  # type: ignore[attr-defined]
        return prefetch_cross_db([Key(pk) for pk in every_pk], {"customers": spec}, request=req)

    results, queries = concurrently(10, request)
    assert 2 <= queries <= 6
    for i, result in enumerate(results):
        tenant = "acme" if i % 2 else "globex"
        rows = lookup_of(result)
        assert rows
        assert {row["tenant"] for row in rows.values()} == {tenant}
        assert set(rows) == {c.pk for c in customers if c.tenant == tenant}


def test_different_filters_or_aliases_never_share(customers: list[Customer]) -> None:
    specs = [
        CrossDBPrefetch(Customer.objects.filter(tier="gold"), key="customer_id", fields=("name",)),
        CrossDBPrefetch(Customer.objects.filter(tier="basic"), key="customer_id", fields=("name",)),
        CrossDBPrefetch(Customer, key="customer_id", fields=("name",), using="legacy"),
    ]
    every_pk = [c.pk for c in customers]

    with override_settings(CROSSPREFETCH={"COALESCE": WINDOW}):
        results, queries = concurrently(
            6, lambda i: prefetch_cross_db([Key(pk) for pk in every_pk], {"c": specs[i % 3]})
        )
    assert 2 <= queries <= 6  # gold and basic on default; legacy queries its own alias
    for i, result in enumerate(results):
        rows = lookup_of(result)
        if i % 3 == 2:
            assert rows == {}  # the legacy copy is empty
        else:
            tier = "gold" if i % 3 == 0 else "basic"
            assert set(rows) == {c.pk for c in customers if c.tier == tier}


def test_an_error_reaches_every_request_of_the_batch(customers: list[Customer]) -> None:
    broken = Customer.objects.extra(where=["no_such_column = 1"])
    spec = CrossDBPrefetch(broken, key="customer_id", fields=("name",), coalesce=WINDOW)
    results, queries = concurrently(
        10, lambda i: prefetch_cross_db([Key(customers[i].pk)], {"customers": spec})
    )
    assert queries <= 3
    assert all(isinstance(r, DatabaseError) for r in results), results


def test_each_request_of_a_failed_batch_applies_its_own_on_error(
    customers: list[Customer],
) -> None:
    broken = Customer.objects.extra(where=["no_such_column = 1"])
    degrading = CrossDBPrefetch(
        broken, key="customer_id", fields=("name",), coalesce=WINDOW, on_error="degrade"
    )
    raising = CrossDBPrefetch(broken, key="customer_id", fields=("name",), coalesce=WINDOW)

    def request(i: int) -> dict[str, Lookup]:
        spec = degrading if i % 2 else raising
        return prefetch_cross_db([Key(customers[i].pk)], {"customers": spec})

    results, queries = concurrently(6, request)
    assert queries <= 4  # one batch per failure policy, or a few more on a slow machine
    for i, result in enumerate(results):
        if i % 2:
            lookup = lookup_of(result)
            assert lookup.degraded
            assert dict(lookup) == {}
        else:
            assert isinstance(result, DatabaseError)


def test_a_request_that_wrote_in_its_transaction_queries_alone(customers: list[Customer]) -> None:
    spec = CrossDBPrefetch(Customer, key="customer_id", fields=("name",), coalesce=WINDOW)
    written: list[int] = []

    def request(i: int) -> dict[str, Lookup]:
        if i:
            return prefetch_cross_db([Key(customers[i].pk)], {"customers": spec})
        with transaction.atomic(using="default"):
            new = Customer.objects.create(name="uncommitted")
            written.append(new.pk)
            lookups = prefetch_cross_db([Key(new.pk), Key(customers[0].pk)], {"customers": spec})
            transaction.set_rollback(True, using="default")
        return lookups

    results, _ = concurrently(6, request)
    mine = lookup_of(results[0])
    assert mine[written[0]] == {"name": "uncommitted"}  # its own write, seen
    assert mine.stats.coalesced_with == 0
    for result in results[1:]:
        assert written[0] not in lookup_of(result)
        assert lookup_of(result).stats.coalesced_with in range(5)


def test_instances_are_never_shared_between_requests(customers: list[Customer]) -> None:
    spec = CrossDBPrefetch(Customer, key="customer_id", coalesce=WINDOW)
    results, queries = concurrently(
        5, lambda i: prefetch_cross_db([Key(customers[0].pk)], {"customers": spec})
    )
    assert queries <= 2
    rows = [lookup_of(r)[customers[0].pk] for r in results]
    assert len({id(row) for row in rows}) == 5
    assert {row.name for row in rows} == {customers[0].name}


def test_the_shared_query_asks_only_for_cache_misses(customers: list[Customer]) -> None:
    from crossprefetch._fetch.caching import clear_local

    clear_local()
    spec = CrossDBPrefetch(Customer, key="customer_id", fields=("name",), cache=60, coalesce=WINDOW)
    warm = [c.pk for c in customers[:5]]
    prefetch_cross_db([Key(pk) for pk in warm], {"customers": spec})
    connections.close_all()

    def request(i: int) -> dict[str, Lookup]:
        keys = [Key(pk) for pk in (*warm, customers[10 + i].pk)]
        return prefetch_cross_db(keys, {"customers": spec})

    results, queries = concurrently(8, request)
    assert queries <= 3
    for i, result in enumerate(results):
        lookup = lookup_of(result)
        assert set(lookup) == {*warm, customers[10 + i].pk}
        assert (lookup.stats.cache_hits, lookup.stats.cache_misses) == (5, 1)


def test_ten_concurrent_async_calls_share_one_query(customers: list[Customer]) -> None:
    spec = CrossDBPrefetch(Customer, key="customer_id", fields=("name",), coalesce=WINDOW)
    sent: list[str] = []
    watched: list[Any] = []

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if context["connection"].alias == "default" and sql.lstrip().upper().startswith("SELECT"):
            sent.append(sql)
        return execute(sql, params, many, context)

    def watch(sender: Any, connection: Any, **kwargs: Any) -> None:
        if count not in connection.execute_wrappers:
            connection.execute_wrappers.append(count)
            watched.append(connection)

    async def main() -> list[dict[str, Lookup]]:
        return await asyncio.gather(
            *(aprefetch_cross_db([Key(customers[i].pk)], {"customers": spec}) for i in range(10))
        )

    connection_created.connect(watch)
    try:
        results = async_to_sync(main)()
    finally:
        connection_created.disconnect(watch)
        for connection in watched:
            connection.execute_wrappers.remove(count)
    assert 1 <= len(sent) <= 3
    for i, result in enumerate(results):
        assert dict(lookup_of(result)) == {customers[i].pk: {"name": customers[i].name}}
    assert sum(lookup_of(r).stats.queries for r in results) == len(sent)


def test_async_calls_in_a_transaction_stay_in_its_thread(customers: list[Customer]) -> None:
    spec = CrossDBPrefetch(Customer, key="customer_id", fields=("name",), coalesce=WINDOW)

    async def main(pk: int) -> dict[str, Lookup]:
        return await aprefetch_cross_db([Key(pk)], {"customers": spec})

    with transaction.atomic(using="default"):
        new = Customer.objects.create(name="uncommitted")
        lookups = async_to_sync(main)(new.pk)
        transaction.set_rollback(True, using="default")
    assert lookup_of(lookups)[new.pk] == {"name": "uncommitted"}


@pytest.mark.parametrize(
    ("value", "error"),
    [(-1, ValueError), ("0.1", TypeError), (True, TypeError), (float("inf"), ValueError)],
)
def test_a_bad_window_is_refused(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match=r"coalesce=.*number of seconds"):
        CrossDBPrefetch(Customer, key="customer_id", coalesce=value)
    with (
        override_settings(CROSSPREFETCH={"COALESCE": value}),
        pytest.raises(ImproperlyConfigured, match=r'CROSSPREFETCH\["COALESCE"\]'),
    ):
        _ = conf.COALESCE


def test_a_bad_setting_is_a_system_check_error() -> None:
    with override_settings(CROSSPREFETCH={"COALESCE": "5ms"}):
        messages = checks.run_checks(tags=["crossprefetch"])
    assert [m.id for m in messages] == ["crossprefetch.E301"]
    assert "'5ms'" in messages[0].msg
    with override_settings(CROSSPREFETCH={"COALESCE": 0.005}):
        assert checks.run_checks(tags=["crossprefetch"]) == []


def test_the_window_is_in_the_spec_repr() -> None:
    assert "coalesce=0.005" in repr(CrossDBPrefetch(Customer, key="customer_id", coalesce=0.005))
