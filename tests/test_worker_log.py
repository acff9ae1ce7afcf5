"""Queries a worker thread sends for a request are in Django's log of the request's own
connection: ``CaptureQueriesContext``, ``assertNumQueries``, pytest-django's
``django_assert_num_queries`` and ``connection.queries`` under ``DEBUG`` see them.

Outside a transaction the query of a spec with a ``timeout`` runs on a worker of
crossprefetch, on the worker's connection (``crossprefetch._fetch.workers``); each test
checks that it did.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections, reset_queries
from django.db.backends.signals import connection_created
from django.test.utils import CaptureQueriesContext

from crossprefetch import CrossDBPrefetch, prefetch_cross_db
from tests.testapp.models import Customer

pytestmark = [
    pytest.mark.django_db(databases=["default", "timeseries", "legacy"], transaction=True),
    pytest.mark.skipif(
        connections["default"].vendor == "sqlite",
        reason="SQLite's queries run on the request's thread (no socket to hang): workers "
        "serve PostgreSQL and MariaDB (CROSSPREFETCH_TEST_DB=postgres or mariadb)",
    ),
]

SPEC = CrossDBPrefetch(Customer, key="customer_id", fields=("name",), timeout=30)


class Event:
    def __init__(self, customer_id: int) -> None:
        self.customer_id = customer_id


@pytest.fixture
def customers() -> list[Customer]:
    return [Customer.objects.create(name=f"c{i}", tier="gold") for i in range(3)]


@pytest.fixture
def connected_on() -> Iterator[list[str]]:
    """The names of the threads that open a connection to ``default``."""
    threads: list[str] = []

    def opened(sender: Any, connection: Any, **kwargs: Any) -> None:
        if connection.alias == "default":
            threads.append(threading.current_thread().name)

    connections["default"].close()  # this thread's connection would answer otherwise
    connection_created.connect(opened)
    yield threads
    connection_created.disconnect(opened)


def fetch(customers: list[Customer]) -> None:
    lookup = prefetch_cross_db([Event(c.pk) for c in customers], {"customers": SPEC})["customers"]
    assert sorted(row["name"] for row in lookup.values()) == ["c0", "c1", "c2"]


def on_a_worker(threads: list[str]) -> bool:
    return "crossprefetch-default" in threads


def selects(statements: list[dict[str, Any]]) -> int:
    """The statements that read the customers (the others set the statement timeout)."""
    return sum('FROM "testapp_customer"' in s["sql"].replace("`", '"') for s in statements)


def test_capture_queries_context_sees_the_workers_query(
    customers: list[Customer], connected_on: list[str]
) -> None:
    with CaptureQueriesContext(connections["default"]) as captured:
        fetch(customers)
    assert on_a_worker(connected_on), connected_on
    assert selects(captured.captured_queries) == 1, captured.captured_queries


def test_django_assert_num_queries_counts_it(
    customers: list[Customer], connected_on: list[str], django_assert_max_num_queries: Any
) -> None:
    """pytest-django's fixtures see the read (a new worker connection's setup statements,
    MySQL's, may come with it, as on the request's own first connection)."""
    with django_assert_max_num_queries(20) as counted:
        fetch(customers)
    assert selects(counted.captured_queries) == 1, counted.captured_queries
    assert on_a_worker(connected_on), connected_on


def test_connection_queries_under_debug(
    customers: list[Customer], connected_on: list[str], settings: Any
) -> None:
    settings.DEBUG = True
    reset_queries()
    fetch(customers)
    assert on_a_worker(connected_on), connected_on
    assert selects(connections["default"].queries) == 1


def test_nothing_is_logged_when_the_requests_connection_does_not_log(
    customers: list[Customer], connected_on: list[str]
) -> None:
    connection = connections["default"]
    assert not connection.queries_logged
    reset_queries()
    fetch(customers)
    fetch(customers)
    assert set(connected_on) == {"crossprefetch-default"}, connected_on  # workers' only
    assert len(connection.queries_log) == 0


def test_a_request_in_another_thread_logs_in_its_own_connection(customers: list[Customer]) -> None:
    """Two requests at once, each capturing its own connection: each sees its query only."""
    reads: dict[str, int] = {}
    barrier = threading.Barrier(2)

    def request(name: str) -> None:
        try:
            with CaptureQueriesContext(connections["default"]) as captured:
                barrier.wait()
                fetch(customers)
            reads[name] = selects(captured.captured_queries)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=request, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert reads == {"a": 1, "b": 1}
