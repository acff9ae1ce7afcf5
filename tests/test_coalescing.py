"""Concurrent requests share one query: real threads, real connections, committed rows.

Each thread observes its own block; a query a batch's leader sends counts in every
member's block (``shared`` in the others), so a test sums what each thread sent itself.
Windows are long (half a second) so that the threads of a loaded machine still meet in
them; nothing here asserts on time.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from asgiref.sync import async_to_sync
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connections, transaction
from django.db.backends.signals import connection_created
from django.test import RequestFactory, override_settings

from crossprefetch import CrossDBPrefetch, Lookup, prefetch_cross_db
from crossprefetch._fetch import breaker, coalescing
from crossprefetch.conf import conf
from crossprefetch.loaders import aprefetch_cross_db
from crossprefetch.testing import capture_queries
from tests.conftest import ALL_DATABASES
from tests.failure_urls import REFERENCE
from tests.servers import PostgresServer, database_alias
from tests.testapp.models import Customer

if TYPE_CHECKING:
    from pytest_django.plugin import DjangoDbBlocker

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
    from tests.test_failure import slow_where

    cancelled = Customer.objects.extra(where=[slow_where("default")])  # an outage: a timeout
    degrading = CrossDBPrefetch(
        cancelled,
        key="customer_id",
        fields=("name",),
        coalesce=WINDOW,
        on_error="degrade",
        timeout=0.2,
    )
    raising = CrossDBPrefetch(
        cancelled, key="customer_id", fields=("name",), coalesce=WINDOW, timeout=0.2
    )

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


def test_a_bug_of_the_shared_query_is_raised_even_by_degrading_requests(
    customers: list[Customer],
) -> None:
    broken = Customer.objects.extra(where=["no_such_column = 1"])
    spec = CrossDBPrefetch(
        broken, key="customer_id", fields=("name",), coalesce=WINDOW, on_error="degrade"
    )
    results, queries = concurrently(
        4, lambda i: prefetch_cross_db([Key(customers[i].pk)], {"customers": spec})
    )
    assert queries <= 3
    assert all(isinstance(r, DatabaseError) for r in results), results
    assert breaker.databases.failures("default") == 0


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


# No batch that hangs ----------------------------------------------------------------------------


class RequestTimeout(Exception):
    """What a server's request timeout raises in the worker's thread, from a signal handler."""


def open_batch(timeout: float = 10.0) -> Any:
    """The batch a leader has registered, once it has."""
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        with coalescing._lock:
            if coalescing._open:
                (batch,) = coalescing._open.values()
                return batch
        time.sleep(0.005)
    raise AssertionError("no leader registered a batch")


def in_thread(work: Callable[[], T]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run ``work`` in a thread of its own (with its own connections); its result, error and
    when it finished are in the dict."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            outcome["finished"] = time.monotonic()
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


@pytest.mark.parametrize("where", ["window", "query"])
def test_a_leader_interrupted_by_a_signal_closes_its_batch_and_its_member_queries_alone(
    customers: list[Customer], where: str
) -> None:
    """A real SIGALRM, whose handler raises in the main thread while it leads a batch: in its
    window, or while its query runs. The member is woken at once and queries alone."""
    window = 30.0 if where == "window" else 0.3
    spec = CrossDBPrefetch(Customer, key="customer_id", fields=("name",), coalesce=window)
    mine, theirs = customers[0], customers[1]
    querying = threading.Event()
    release = threading.Event()
    joined: list[Any] = []

    def on_alarm(signum: int, frame: Any) -> None:
        batch = joined[0] if joined else None
        if batch is None or len(batch.members) < 2:
            return  # the member has not joined yet: the next tick
        if where == "query" and not querying.is_set():
            return
        raise RequestTimeout

    def stuck_query(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if where == "query" and "testapp_customer" in sql:
            querying.set()
            release.wait(30)  # the alarm's exception arrives here
        return execute(sql, params, many, context)

    def member() -> dict[str, Lookup]:
        joined.append(open_batch())
        return prefetch_cross_db([Key(theirs.pk)], {"customers": spec})

    previous = signal.signal(signal.SIGALRM, on_alarm)
    thread, outcome = in_thread(member)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)
        with connections["default"].execute_wrapper(stuck_query), pytest.raises(RequestTimeout):
            prefetch_cross_db([Key(mine.pk)], {"customers": spec})
        interrupted = time.monotonic()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        release.set()
    thread.join(30)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome
    assert outcome["finished"] - interrupted < 5
    lookup = lookup_of(outcome["result"])
    assert dict(lookup) == {theirs.pk: {"name": theirs.name}}
    assert (lookup.stats.queries, lookup.stats.coalesced_with) == (1, 0)  # alone
    assert len(joined[0].members) == 2
    assert coalescing._open == {}
    # the next request of the same identity leads a batch of its own, and is answered
    quick = CrossDBPrefetch(Customer, key="customer_id", fields=("name",), coalesce=0.01)
    assert dict(prefetch_cross_db([Key(mine.pk)], {"c": quick})["c"]) == {
        mine.pk: {"name": mine.name}
    }


def test_a_member_whose_leader_is_stuck_gives_up_at_its_deadline(
    customers: list[Customer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The leader is stuck before its query answers (in code of its own, where neither the
    statement timeout nor the client's deadline reaches: the deadline is held off here);
    the member waits its window plus its spec's timeout, then queries alone."""
    from crossprefetch._fetch import deadline

    monkeypatch.setattr(deadline, "GRACE", 30.0)
    spec = CrossDBPrefetch(Customer, key="customer_id", fields=("name",), coalesce=0.2, timeout=0.5)
    mine, theirs = customers[0], customers[1]
    release = threading.Event()
    querying = threading.Event()

    def hung(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if "testapp_customer" in sql and not querying.is_set():  # the first: the leader's
            querying.set()
            release.wait(30)
        return execute(sql, params, many, context)

    # on whichever thread runs the query: the leader's own, or a worker of the deadline's
    wrapped: list[Any] = []

    def wrap(sender: Any, connection: Any, **kwargs: Any) -> None:
        connection.execute_wrappers.append(hung)
        wrapped.append(connection)

    def leader() -> dict[str, Lookup]:
        with connections["default"].execute_wrapper(hung):
            return prefetch_cross_db([Key(mine.pk)], {"customers": spec})

    connection_created.connect(wrap)
    lead, led = in_thread(leader)
    try:
        batch = open_batch()
        started = time.monotonic()
        member, outcome = in_thread(
            lambda: prefetch_cross_db([Key(theirs.pk)], {"customers": spec})
        )
        member.join(10)
        assert not member.is_alive()
        assert querying.is_set()
        assert lead.is_alive()
    finally:
        release.set()
        lead.join(30)
        connection_created.disconnect(wrap)
        for connection in wrapped:
            while hung in connection.execute_wrappers:
                connection.execute_wrappers.remove(hung)
    assert "error" not in outcome, outcome
    waited = outcome["finished"] - started
    assert 0.5 <= waited < 5  # at least its timeout; its window and the query on top
    lookup = lookup_of(outcome["result"])
    assert dict(lookup) == {theirs.pk: {"name": theirs.name}}
    assert (lookup.stats.queries, lookup.stats.coalesced_with) == (1, 0)
    assert len(batch.members) == 2
    # the leader, released, answers its own keys (and the member's, for nobody)
    assert dict(lookup_of(led["result"])) == {mine.pk: {"name": mine.name}}
    assert coalescing._open == {}


def test_a_member_without_a_timeout_waits_at_most_the_cap(
    customers: list[Customer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(coalescing, "MAX_WAIT", 0.3)
    spec = CrossDBPrefetch(Customer, key="customer_id", fields=("name",), coalesce=0.2)
    release = threading.Event()

    def hung(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if "testapp_customer" in sql:
            release.wait(30)
        return execute(sql, params, many, context)

    def leader() -> dict[str, Lookup]:
        with connections["default"].execute_wrapper(hung):
            return prefetch_cross_db([Key(customers[0].pk)], {"customers": spec})

    lead, _ = in_thread(leader)
    try:
        open_batch()
        started = time.monotonic()
        member, outcome = in_thread(
            lambda: prefetch_cross_db([Key(customers[1].pk)], {"customers": spec})
        )
        member.join(10)
        assert not member.is_alive()
        assert lead.is_alive()
    finally:
        release.set()
        lead.join(30)
    assert outcome["finished"] - started < 5
    assert lookup_of(outcome["result"]).stats.coalesced_with == 0


def test_members_of_a_failed_batch_know_they_shared_it(customers: list[Customer]) -> None:
    from tests.test_failure import slow_where

    cancelled = Customer.objects.extra(where=[slow_where("default")])  # an outage: a timeout
    spec = CrossDBPrefetch(
        cancelled,
        key="customer_id",
        fields=("name",),
        coalesce=WINDOW,
        on_error="degrade",
        timeout=0.2,
    )
    results, queries = concurrently(
        6, lambda i: prefetch_cross_db([Key(customers[i].pk)], {"customers": spec})
    )
    lookups = [lookup_of(r) for r in results]
    assert all(lookup.degraded for lookup in lookups)
    assert queries <= 3
    shared = [lookup.stats.coalesced_with for lookup in lookups]
    assert sum(1 for n in shared if n) >= 6 - queries, shared  # the leader counts them too
    assert coalescing._open == {}


# The circuit breaker counts queries, not requests ---------------------------------------------


def test_coalesced_requests_sharing_one_failed_query_count_one_failure(
    postgres_server: PostgresServer, django_db_blocker: DjangoDbBlocker, settings: Any
) -> None:
    from tests.test_failure import spec

    settings.CROSSPREFETCH = {"BREAKER_FAILURES": 3, "BREAKER_RESET": 3600}
    shared = spec(coalesce=WINDOW)
    alone = spec()
    postgres_server.kill()  # refused at once: an outage
    try:
        with database_alias(REFERENCE, postgres_server.settings(), django_db_blocker):

            def request(i: int) -> dict[str, Lookup]:
                return prefetch_cross_db([Key(i + 1)], {"customers": shared})

            results, _ = concurrently(5, request)
            lookups = [lookup_of(r) for r in results]
            assert all(lookup.degraded for lookup in lookups)
            assert all("OperationalError" in lookup.stats.error for lookup in lookups)
            assert not any(lookup.stats.breaker_open for lookup in lookups)
            # a batch of n requests: each of them says it shared with n - 1 others
            batches = sum(1 / (lookup.stats.coalesced_with + 1) for lookup in lookups)
            assert round(batches) <= 2, [lookup.stats.coalesced_with for lookup in lookups]
            assert breaker.databases.failures(REFERENCE) == round(batches)
            assert not breaker.databases.is_open(REFERENCE)  # 5 requests, 1 (or 2) queries

            breaker.databases.reset()
            opened = []
            for i in range(3):  # three queries of their own
                lookup = prefetch_cross_db([Key(i + 1)], {"customers": alone})["customers"]
                assert lookup.degraded
                assert lookup.stats.coalesced_with == 0
                opened.append(breaker.databases.is_open(REFERENCE))
            assert opened == [False, False, True]
            lookup = prefetch_cross_db([Key(1)], {"customers": alone})["customers"]
            assert lookup.stats.breaker_open
            assert lookup.stats.error == "circuit breaker open on 'reference'"
    finally:
        postgres_server.start()


def test_members_of_a_batch_refused_by_the_open_breaker_know_they_shared_it(
    settings: Any, customers: list[Customer]
) -> None:
    settings.CROSSPREFETCH = {"BREAKER_FAILURES": 1, "BREAKER_RESET": 3600}
    # A window no machine outlasts: the batch is released below once all four are in it.
    spec = CrossDBPrefetch(
        Customer, key="customer_id", fields=("name",), coalesce=60, on_error="degrade"
    )
    permit = breaker.databases.allow("default")
    assert permit is not None
    members: list[int] = []

    def open_it_once_they_all_wait() -> None:
        try:
            for _ in range(2000):  # at most ten seconds
                with coalescing._lock:
                    batches = list(coalescing._open.values())
                if batches and len(batches[0].members) == 4:
                    members.append(4)
                    break
                time.sleep(0.005)
            # another query's outage, within their window: the breaker opens, then the
            # leader closes the batch and sends it through the chain
            breaker.databases.failure(permit)
        finally:
            for batch in batches:
                batch.full.set()

    opener = threading.Thread(target=open_it_once_they_all_wait)
    opener.start()
    try:
        results, queries = concurrently(
            4, lambda i: prefetch_cross_db([Key(customers[i].pk)], {"customers": spec})
        )
    finally:
        opener.join()
    assert members == [4], "the four requests never waited in one batch"
    lookups = [lookup_of(r) for r in results]
    assert breaker.databases.is_open("default")
    assert queries == 0
    assert all(lookup.stats.breaker_open for lookup in lookups)
    assert all(lookup.degraded for lookup in lookups)
    assert all(lookup.stats.error == "circuit breaker open on 'default'" for lookup in lookups)
    assert sorted(lookup.stats.coalesced_with for lookup in lookups) == [3, 3, 3, 3]
    assert coalescing._open == {}
