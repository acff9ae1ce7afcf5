"""A filter's or an ordering's remote query goes through the fetch chain, as lookups do.

The customers live in the ``reference`` alias, on a PostgreSQL server of the test's own (or
a port that hangs up on every connection). Each test takes one layer in turn: the client
deadline on a hung server, the circuit breaker and the bulkhead, coalescing, the cache.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from django.db import connections
from rest_framework.test import APIClient

from crossprefetch._fetch import breaker, failure
from crossprefetch._fetch import caching as cache_layer
from crossprefetch.testing import capture_queries
from tests.failure_urls import REFERENCE
from tests.filter_failure_urls import TIMEOUT
from tests.servers import HangingUp, PostgresServer, database_alias
from tests.test_failure import NAMES, make_events, reference_with_customers
from tests.testapp.models import Customer, OrderEvent

if TYPE_CHECKING:
    from pytest_django.plugin import DjangoDbBlocker

pytestmark = pytest.mark.django_db(databases=["default", "timeseries"], transaction=True)

#: Generous: the deadline is TIMEOUT plus a few milliseconds; the tests never time it tightly.
BOUND = TIMEOUT + 2

QUERIES = ["customer_name=Customer", "ordering=customer_name"]


@pytest.fixture(autouse=True)
def _fresh_state(settings: Any) -> Iterator[None]:
    settings.ROOT_URLCONF = "tests.filter_failure_urls"
    breaker.databases.reset()
    failure.reset()
    cache_layer.clear_local()
    yield
    breaker.databases.reset()


@pytest.fixture
def server(
    postgres_server: PostgresServer, django_db_blocker: DjangoDbBlocker
) -> Iterator[PostgresServer]:
    with reference_with_customers(postgres_server.settings(), django_db_blocker):
        yield postgres_server


@pytest.fixture
def events() -> list[OrderEvent]:
    return make_events()


def _in_thread(work: Callable[[], Any], out: list[Any]) -> Any:
    """A thread of the test's own (``database_alias`` lets every thread reach ``reference``),
    which closes its connections when done."""

    def run() -> None:
        try:
            out.append(work())
        finally:
            connections.close_all()

    return threading.Thread(target=run)


def _reads(captured: Any) -> int:
    """The queries of customers sent to ``reference`` (not the timeout's ``set_config``)."""
    return sum(1 for q in captured[REFERENCE] if "testapp_customer" in q.sql)


def _page(response: Any) -> list[Any]:
    assert response.status_code == 200, response.content
    return [(row["id"], row["customer_name"]) for row in response.json()]


def _expected(events: list[OrderEvent], query: str) -> list[Any]:
    rows = [(e.id, NAMES.get(e.customer_id or 0, "Unknown customer")) for e in events]
    if query.startswith("ordering"):  # by name, rows without a customer last
        return sorted(rows, key=lambda r: (r[1] == "Unknown customer", r[1], r[0]))
    return [row for row in rows if row[1] != "Unknown customer"]


@pytest.mark.parametrize("fresh_connection", [False, True], ids=["open", "new connection"])
@pytest.mark.parametrize("query", QUERIES)
def test_a_hung_server_answers_503_naming_the_filter_within_the_timeout(
    server: PostgresServer,
    events: list[OrderEvent],
    api: APIClient,
    query: str,
    fresh_connection: bool,
) -> None:
    assert _page(api.get(f"/filtered/?{query}")) == _expected(events, query)
    if fresh_connection:
        connections[REFERENCE].close()
    with server.hung(BOUND + 10):
        started = time.monotonic()
        response = api.get(f"/filtered/?{query}")
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert "customer_name" in response.json()["detail"]
    assert f"database {REFERENCE!r} failed" in response.json()["detail"]
    assert elapsed < BOUND
    # once the server answers again, so does the filter, on a working connection
    assert _page(api.get(f"/filtered/?{query}")) == _expected(events, query)


@pytest.mark.parametrize("query", QUERIES)
def test_failing_filters_count_once_per_query_and_open_the_breaker(
    django_db_blocker: DjangoDbBlocker,
    events: list[OrderEvent],
    api: APIClient,
    settings: Any,
    query: str,
) -> None:
    dead = HangingUp()
    try:
        with database_alias(REFERENCE, PostgresServer.settings_for(dead.port), django_db_blocker):
            settings.CROSSPREFETCH = {"BREAKER_FAILURES": 2, "BREAKER_RESET": 3600}
            details = []
            for _ in range(5):
                response = api.get(f"/filtered/?{query}")
                assert response.status_code == 503
                details.append(response.json()["detail"])
            assert dead.accepted == 2  # then the breaker skips the server
            assert breaker.databases.is_open(REFERENCE)
            assert all("customer_name" in detail for detail in details)
            assert "circuit breaker open" in details[-1]
            # the lookups on that alias skip it too: every event, degraded
            page = api.get("/filtered/")
            assert page.status_code == 200
            assert page["Crossprefetch-Degraded"] == "customers"
            assert len(page.json()) == len(events)
            assert dead.accepted == 2
    finally:
        dead.close()


def test_the_trial_after_the_reset_closes_the_breaker_for_filters(
    server: PostgresServer, events: list[OrderEvent], api: APIClient, settings: Any
) -> None:
    settings.CROSSPREFETCH = {"BREAKER_FAILURES": 1, "BREAKER_RESET": 3600}
    server.kill()
    try:
        assert api.get("/filtered/?customer_name=Customer").status_code == 503
        assert breaker.databases.is_open(REFERENCE)
    finally:
        server.start()
    assert api.get("/filtered/?customer_name=Customer").status_code == 503  # still open
    settings.CROSSPREFETCH = {"BREAKER_FAILURES": 1, "BREAKER_RESET": 0}
    query = "customer_name=Customer"
    assert _page(api.get(f"/filtered/?{query}")) == _expected(events, query)
    assert not breaker.databases.is_open(REFERENCE)


def test_a_full_bulkhead_answers_503_at_once(
    server: PostgresServer,
    events: list[OrderEvent],
    api: APIClient,
    settings: Any,
) -> None:
    settings.CROSSPREFETCH = {"MAX_CONCURRENT": {REFERENCE: 1}}
    held: list[Any] = []
    with server.hung(BOUND + 10):
        holder = _in_thread(
            lambda: APIClient().get("/filtered/?customer_name=Customer"),
            held,
        )
        holder.start()
        try:
            _wait_for(lambda: _in_flight(REFERENCE) == 1)
            response = api.get("/filtered/?ordering=customer_name")
            assert response.status_code == 503
            assert "bulkhead full" in response.json()["detail"]
        finally:
            holder.join(BOUND + 5)
    assert [r.status_code for r in held] == [503]  # the one in flight met its deadline
    assert _in_flight(REFERENCE) == 0


def _in_flight(alias: str) -> int:
    from crossprefetch._fetch import bulkhead

    return bulkhead.databases.in_flight(alias)


def _wait_for(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def test_identical_filter_reads_of_concurrent_requests_share_one_query(
    server: PostgresServer, events: list[OrderEvent]
) -> None:
    n = 4
    barrier = threading.Barrier(n)
    pages: list[Any] = [None] * n
    sent = [0] * n

    def request(i: int) -> None:
        client = APIClient()
        barrier.wait()
        with capture_queries() as captured:
            pages[i] = client.get("/filtered/coalesced/?customer_name=Customer")
        sent[i] = sum(1 for q in captured[REFERENCE] if "LIKE" in q.sql.upper() and not q.shared)

    threads = [_in_thread(lambda i=i: request(i), []) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    expected = _expected(events, "customer_name=Customer")
    assert [_page(page) for page in pages] == [expected] * n
    assert sum(sent) == 1  # one filter query for the four requests


def test_a_caching_spec_caches_its_filter_reads_until_the_rows_change(
    server: PostgresServer, events: list[OrderEvent], api: APIClient
) -> None:
    query = "customer_name=Customer"
    with capture_queries() as first:
        assert _page(api.get(f"/filtered/cached/?{query}")) == _expected(events, query)
    assert _reads(first) == 1  # the filter's read serves the page's lookup too
    with capture_queries() as second:
        assert _page(api.get(f"/filtered/cached/?{query}")) == _expected(events, query)
    assert _reads(second) == 0
    Customer.objects.using(REFERENCE).filter(id=2).update(name="Renamed")
    with capture_queries() as third:
        page = _page(api.get(f"/filtered/cached/?{query}"))
    assert _reads(third) == 1
    renamed = {**NAMES, 2: "Renamed"}
    assert page == [
        (e.id, renamed[e.customer_id])
        for e in events
        if e.customer_id in renamed and "Customer" in renamed[e.customer_id]
    ]
