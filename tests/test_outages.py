"""What the circuit breaker counts, against a PostgreSQL server of the test session's own.

Only outages count (a cancelled statement, a refused connection); a query that is wrong (a
missing table, a division by zero) raises even under ``on_error="degrade"`` and counts
nothing; and only the half-open trial closes an open breaker: a query sent before the
breaker opened and answered after it cannot. Real threads, each with its own connection;
a query is held in flight by a PostgreSQL advisory lock the test holds, never by a sleep.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from django.db import DataError, ProgrammingError, connections
from rest_framework.test import APIClient

from crossprefetch import CrossDBPrefetch, Lookup, prefetch_cross_db
from crossprefetch._fetch import breaker, bulkhead
from crossprefetch.testing import assert_num_queries
from tests.failure_urls import REFERENCE
from tests.servers import PostgresServer
from tests.test_failure import NAMES, make_events, reference_with_customers, spec
from tests.testapp.models import Customer, OrderEvent

if TYPE_CHECKING:
    from pytest_django.plugin import DjangoDbBlocker

pytestmark = pytest.mark.django_db(databases=["default", "timeseries"])

#: The advisory lock a held query waits for.
LOCK = 20_020


@pytest.fixture
def server(
    postgres_server: PostgresServer, django_db_blocker: DjangoDbBlocker, settings: Any
) -> Iterator[PostgresServer]:
    settings.ROOT_URLCONF = "tests.failure_urls"
    with reference_with_customers(postgres_server.settings(), django_db_blocker):
        yield postgres_server


@pytest.fixture
def events() -> list[OrderEvent]:
    return make_events()


def held_spec(**options: Any) -> CrossDBPrefetch:
    """Customers whose query waits until the test releases :data:`LOCK`."""
    options.setdefault("on_error", "degrade")
    held = Customer.objects.extra(
        where=[f"(SELECT 1 FROM pg_advisory_xact_lock_shared({LOCK})) = 1"]
    )
    return CrossDBPrefetch(held, key="customer_id", fields=("name",), using=REFERENCE, **options)


def cancelled_spec(**options: Any) -> CrossDBPrefetch:
    """Customers whose query the server cancels after 0.2 s: an outage."""
    options.setdefault("on_error", "degrade")
    slow = Customer.objects.extra(where=["pg_sleep(5) IS NOT NULL"])
    return CrossDBPrefetch(
        slow, key="customer_id", fields=("name",), using=REFERENCE, timeout=0.2, **options
    )


class Held:
    """Holds :data:`LOCK` on a connection of its own while the block runs."""

    def __init__(self) -> None:
        self.connection = connections.create_connection(REFERENCE)

    def __enter__(self) -> Held:
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [LOCK])
        return self

    def release(self) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock_all()")

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.release()
        finally:
            self.connection.close()


def in_thread(work: Callable[[], dict[str, Lookup]]) -> tuple[threading.Thread, list[Any]]:
    """Start ``work()`` on a thread of its own, with its own connection to ``reference``
    (:func:`tests.servers.database_alias` lets every thread connect to it)."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:
            outcome.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def wait_until(condition: Callable[[], bool], seconds: float = 10) -> None:
    done = threading.Event()
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError("the condition never held")


def test_a_missing_table_raises_under_degrade_and_is_not_counted(
    server: PostgresServer, events: list[OrderEvent], settings: Any
) -> None:
    settings.CROSSPREFETCH = {"BREAKER_FAILURES": 1}
    with connections[REFERENCE].cursor() as cursor:
        cursor.execute("DROP TABLE testapp_customer")
    client = APIClient(raise_request_exception=True)
    for _ in range(2):  # the breaker would have opened on the first
        with pytest.raises(ProgrammingError, match="testapp_customer"):
            client.get("/reference/events/")
    assert APIClient(raise_request_exception=False).get("/reference/events/").status_code == 500
    assert breaker.databases.failures(REFERENCE) == 0
    assert not breaker.databases.is_open(REFERENCE)
    assert bulkhead.databases.in_flight(REFERENCE) == 0


def test_a_data_error_raises_under_degrade_and_is_not_counted(
    server: PostgresServer, events: list[OrderEvent], settings: Any
) -> None:
    settings.CROSSPREFETCH = {"BREAKER_FAILURES": 1}
    divided = Customer.objects.extra(where=["1 / (id - id) = 1"])  # division by zero
    wrong = CrossDBPrefetch(
        divided, key="customer_id", fields=("name",), using=REFERENCE, on_error="degrade"
    )
    with pytest.raises(DataError, match="division by zero"):
        prefetch_cross_db(events, {"customers": wrong})
    assert breaker.databases.failures(REFERENCE) == 0
    # the connection goes on
    lookup = prefetch_cross_db(events, {"customers": spec()})["customers"]
    assert lookup.get_for(events[0]) == {"name": NAMES[1]}


@pytest.mark.usefixtures("server_timeout_first")
def test_a_cancelled_statement_is_an_outage_and_counts(
    server: PostgresServer, events: list[OrderEvent], settings: Any
) -> None:
    settings.CROSSPREFETCH = {"BREAKER_FAILURES": 2, "BREAKER_RESET": 3600}
    first = prefetch_cross_db(events, {"customers": cancelled_spec()})["customers"]
    assert first.degraded
    assert "OperationalError" in first.stats.error
    assert breaker.databases.failures(REFERENCE) == 1
    prefetch_cross_db(events, {"customers": cancelled_spec()})
    assert breaker.databases.is_open(REFERENCE)
    with assert_num_queries(**{REFERENCE: 0}):
        skipped = prefetch_cross_db(events, {"customers": spec()})["customers"]
    assert skipped.stats.breaker_open


def test_only_the_trial_closes_an_open_breaker(
    server: PostgresServer,
    events: list[OrderEvent],
    settings: Any,
) -> None:
    settings.CROSSPREFETCH = {"BREAKER_FAILURES": 1, "BREAKER_RESET": 3600}
    with Held() as lock:
        # a query sent while the breaker is closed, held in flight by the lock
        early, outcome = in_thread(lambda: prefetch_cross_db(events, {"customers": held_spec()}))
        try:
            wait_until(lambda: bulkhead.databases.in_flight(REFERENCE) == 1)
            # another query times out: the breaker opens
            assert prefetch_cross_db(events, {"customers": cancelled_spec()})["customers"].degraded
            assert breaker.databases.is_open(REFERENCE)
        finally:
            lock.release()
            early.join(30)
    (result,) = outcome
    early_lookup = result["customers"]
    assert not early_lookup.degraded  # it got its rows...
    assert early_lookup.get_for(events[0]) == {"name": NAMES[1]}
    assert breaker.databases.is_open(REFERENCE)  # ...but a success from before cannot close it
    with assert_num_queries(**{REFERENCE: 0}):
        skipped = prefetch_cross_db(events, {"customers": spec()})["customers"]
    assert skipped.stats.breaker_open

    settings.CROSSPREFETCH = {"BREAKER_FAILURES": 1, "BREAKER_RESET": 0}
    with assert_num_queries(**{REFERENCE: 1}):
        trial = prefetch_cross_db(events, {"customers": spec()})["customers"]
    assert not trial.degraded
    assert not breaker.databases.is_open(REFERENCE)
    assert bulkhead.databases.in_flight(REFERENCE) == 0


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT no_such_column FROM testapp_customer",
        "SELECT 1 FROM crossprefetch_no_such_table",
        "SELECT crossprefetch_no_such_function(1)",
        "SELECTT 1",
    ],
    ids=["column", "table", "function", "syntax"],
)
def test_a_wrong_query_is_a_bug_on_every_backend(sql: str) -> None:
    """Whatever DB-API class the driver picks (SQLite and mysqlclient call some of these
    operational), the error of a wrong query is a bug: raised, never counted."""
    from django.db import DatabaseError, transaction

    from crossprefetch._fetch import errors

    with (
        pytest.raises(DatabaseError) as raised,
        transaction.atomic(using="default"),
        connections["default"].cursor() as cursor,
    ):
        cursor.execute(sql)
    assert errors.kind(raised.value) == "bug", repr(raised.value)
