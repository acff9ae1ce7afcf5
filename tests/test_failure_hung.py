"""A hung reference database costs a request its ``timeout``, not as long as it hangs.

A hung server accepts TCP connections and answers nothing: a PostgreSQL or a MariaDB server
of the test session's own stopped with SIGSTOP (the postmaster and its backends; ``mariadbd``),
then continued. Each test asserts the bound (generously, ``TIMEOUT`` + 2 s: the benchmark
measures the tight figure), the degraded header with every primary row, and that the alias
answers again once the server does, with its queries counted per alias.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from django.db import OperationalError, connections, transaction
from rest_framework.test import APIClient

from crossprefetch import CrossDBPrefetch, prefetch_cross_db
from crossprefetch._fetch import breaker, failure, workers
from crossprefetch._fetch.deadline import DeadlineExceeded
from crossprefetch.testing import assert_num_queries, capture_queries
from tests.failure_urls import REFERENCE
from tests.filter_failure_urls import TIMEOUT
from tests.servers import MariadbServer, PostgresServer, unavailable
from tests.test_failure import NAMES, make_events, reference_with_customers, spec
from tests.testapp.models import Customer, OrderEvent

if TYPE_CHECKING:
    from pytest_django.plugin import DjangoDbBlocker

pytestmark = pytest.mark.django_db(databases=["default", "timeseries"], transaction=True)

BOUND = TIMEOUT + 2


@pytest.fixture(autouse=True)
def _fresh_state(settings: Any) -> Iterator[None]:
    settings.ROOT_URLCONF = "tests.filter_failure_urls"
    breaker.databases.reset()
    failure.reset()
    yield
    breaker.databases.reset()


def _serve(server: PostgresServer, blocker: DjangoDbBlocker, **options: Any) -> Any:
    """The reference alias on ``server``, without ``connect_timeout``: the deadline alone
    bounds connecting (libpq's 2 s would fit in the tests' generous bound too)."""
    settings = server.settings()
    kept = {k: v for k, v in settings["OPTIONS"].items() if k != "connect_timeout"}
    settings["OPTIONS"] = {**kept, **options}
    return reference_with_customers(settings, blocker)


@pytest.fixture
def server(
    postgres_server: PostgresServer, django_db_blocker: DjangoDbBlocker
) -> Iterator[PostgresServer]:
    with _serve(postgres_server, django_db_blocker):
        yield postgres_server


@pytest.fixture
def pooled(
    postgres_server: PostgresServer, django_db_blocker: DjangoDbBlocker
) -> Iterator[PostgresServer]:
    """The server through Django's connection pool, with the pool's usual 30 s wait."""
    pool = {"min_size": 1, "max_size": 4, "timeout": 30}
    with _serve(postgres_server, django_db_blocker, pool=pool):
        yield postgres_server
        connections[REFERENCE].close_pool()  # type: ignore[attr-defined]


@pytest.fixture
def events() -> list[OrderEvent]:
    return make_events()


def _timed(api: APIClient, url: str = "/events/") -> tuple[Any, float]:
    started = time.monotonic()
    response = api.get(url)
    return response, time.monotonic() - started


def _assert_degraded(response: Any, events: list[OrderEvent]) -> None:
    assert response.status_code == 200
    assert response["Crossprefetch-Degraded"] == "customers"
    rows = response.json()
    assert [row["id"] for row in rows] == [e.id for e in events]  # every primary row
    assert {row["customer_name"] for row in rows} == {"Unknown customer"}


def _assert_bounded_degrading(api: APIClient, events: list[OrderEvent], times: int = 2) -> None:
    """``times`` requests, each degraded within the bound (the breaker held closed)."""
    for _ in range(times):
        response, elapsed = _timed(api)
        _assert_degraded(response, events)
        assert elapsed < BOUND


def _healthy_get(api: APIClient, url: str = "/events/") -> Any:
    """One healthy request: the page on ``timeseries``; on the reference alias, run on a
    worker thread and counted as the request's, the customers' query, after the statement
    timeout's ``set_config`` on PostgreSQL (MariaDB puts it in the query itself). Django
    asks a MariaDB server its version once per connection wrapper, so once per new worker
    thread: that query is counted apart."""
    with capture_queries() as captured:
        response = api.get(url)
    reference = [q.sql for q in captured["reference"]]
    probes = [sql for sql in reference if "SELECT VERSION()" in sql]
    assert captured.count("default") == 0
    assert captured.count("timeseries") == 1
    if connections[REFERENCE].vendor == "postgresql":
        assert len(reference) == 2, reference
        assert "set_config('statement_timeout'" in reference[0]
    else:
        assert len(reference) - len(probes) == 1, reference
        assert len(probes) <= 1, reference
    assert "testapp_customer" in reference[-1]
    return response


def _assert_healthy(response: Any, events: list[OrderEvent]) -> None:
    assert response.status_code == 200
    assert "Crossprefetch-Degraded" not in response
    names = {row["id"]: row["customer_name"] for row in response.json()}
    assert names == {e.id: NAMES.get(e.customer_id or 0, "Unknown customer") for e in events}


@pytest.mark.parametrize("fresh_connection", [False, True], ids=["open", "new connection"])
def test_a_hung_server_degrades_within_the_timeout_and_serves_again_after(
    server: PostgresServer,
    events: list[OrderEvent],
    api: APIClient,
    settings: Any,
    fresh_connection: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.CROSSPREFETCH = {"BREAKER_FAILURES": 2, "BREAKER_RESET": 3600}
    # the worker keeps its connection, as outside a test run: the hang meets it open
    monkeypatch.setattr(workers, "CLOSE_IN_TESTS", False)
    _assert_healthy(_healthy_get(api), events)
    if fresh_connection:
        connections.close_all()
        workers.reset()  # the workers' connections too: the next one connects to a hung server
    with server.hung(BOUND * 3 + 10):
        for _ in range(2):
            response, elapsed = _timed(api)
            _assert_degraded(response, events)
            assert elapsed < BOUND
        assert breaker.databases.is_open(REFERENCE)
        response, elapsed = _timed(api)  # the breaker answers: no wait at all
        _assert_degraded(response, events)
        assert elapsed < BOUND
    settings.CROSSPREFETCH = {"BREAKER_FAILURES": 2, "BREAKER_RESET": 0}
    _assert_healthy(_healthy_get(api), events)  # the trial, on a working connection
    assert not breaker.databases.is_open(REFERENCE)


def test_a_server_stopped_in_the_middle_of_the_query_degrades_within_the_timeout(
    server: PostgresServer, events: list[OrderEvent]
) -> None:
    """Stopped while it runs the query (each row takes 0.1 s): neither the rows nor the
    server's own timeout ever come; the client's deadline does."""
    slow = Customer.objects.using(REFERENCE).extra(where=["pg_sleep(0.1) IS NOT NULL"])
    lookups = {
        "customers": CrossDBPrefetch(
            slow, key="customer_id", fields=("name",), on_error="degrade", timeout=TIMEOUT
        )
    }
    with server.hung(BOUND + 10, after=0.15):
        started = time.monotonic()
        lookup = prefetch_cross_db(events, lookups)["customers"]
        elapsed = time.monotonic() - started
    assert lookup.degraded
    assert "did not answer within the timeout" in str(lookup.stats.error)
    assert elapsed < BOUND
    with assert_num_queries(reference=1):
        assert Customer.objects.using(REFERENCE).get(pk=1).name == NAMES[1]


def test_raise_mode_gets_the_deadline_error_within_the_bound(
    server: PostgresServer, events: list[OrderEvent]
) -> None:
    lookups = {"customers": spec(on_error="raise", timeout=TIMEOUT)}
    assert not prefetch_cross_db(events, lookups)["customers"].degraded
    with server.hung(BOUND + 10):
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded, match="did not answer within the timeout"):
            prefetch_cross_db(events, lookups)
        assert time.monotonic() - started < BOUND
    assert prefetch_cross_db(events, lookups)["customers"].get(1)["name"] == NAMES[1]


def test_inside_a_transaction_the_watchdog_cuts_the_requests_own_connection(
    server: PostgresServer, events: list[OrderEvent]
) -> None:
    """The lookup degrades within the bound; the transaction is lost with its connection,
    as to any outage, and the block says so as it ends, at once: Django's attempt to connect
    again there (to the hung server) is refused. The next connection works."""
    lookups = {"customers": spec(on_error="degrade", timeout=TIMEOUT)}
    outcome: list[bool] = []
    with server.hung(BOUND + 10):
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded), transaction.atomic(using=REFERENCE):  # noqa: PT012
            assert connections[REFERENCE].connection is not None  # opened before the hang
            outcome.append(prefetch_cross_db(events, lookups)["customers"].degraded)
        elapsed = time.monotonic() - started
    assert outcome == [True]
    assert elapsed < BOUND
    with assert_num_queries(reference=1):  # its own connection again (no timeout's set_config)
        assert Customer.objects.using(REFERENCE).get(pk=1).name == NAMES[1]
    assert not prefetch_cross_db(events, lookups)["customers"].degraded


def test_a_dead_server_behind_the_pool_degrades_within_the_timeout(
    pooled: PostgresServer, events: list[OrderEvent], api: APIClient
) -> None:
    _assert_healthy(_healthy_get(api), events)
    pooled.kill()
    try:
        _assert_bounded_degrading(api, events)
    finally:
        pooled.start()
    breaker.databases.reset()
    deadline = time.monotonic() + 30  # the pool reconnects in the background
    while True:
        response = api.get("/events/")
        if "Crossprefetch-Degraded" not in response or time.monotonic() > deadline:
            break
        breaker.databases.reset()
        time.sleep(0.2)
    _assert_healthy(response, events)


def test_a_hung_server_behind_the_pool_degrades_within_the_timeout(
    pooled: PostgresServer, events: list[OrderEvent], api: APIClient
) -> None:
    _assert_healthy(_healthy_get(api), events)
    pool = connections[REFERENCE].pool  # type: ignore[attr-defined]
    bad = pool.get_stats().get("returns_bad", 0)
    with pooled.hung(BOUND * 2 + 10):
        _assert_bounded_degrading(api, events)
    # the connection cut at the deadline went back to the pool broken, which dropped it
    assert pool.get_stats().get("returns_bad", 0) > bad
    breaker.databases.reset()
    _assert_healthy(_healthy_get(api), events)


# A tenant's connection -----------------------------------------------------------------------


@pytest.fixture
def tenant(server: PostgresServer) -> Iterator[str]:
    """A schema of its own holding other names under the same keys, as a tenant's would."""
    schema = "cp_hung_tenant"
    with connections[REFERENCE].cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA {schema}")
        cursor.execute(
            f"CREATE TABLE {schema}.testapp_customer (LIKE public.testapp_customer INCLUDING ALL)"
        )
        cursor.execute(
            f"INSERT INTO {schema}.testapp_customer SELECT * FROM public.testapp_customer"
        )
        cursor.execute(f"UPDATE {schema}.testapp_customer SET name = 'Tenant ' || name")
    try:
        yield schema
    finally:
        connection = connections[REFERENCE]
        for name in ("schema_name", "tenant"):
            connection.__dict__.pop(name, None)
        connection.close()
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def _enter(schema: str) -> None:
    """This thread's connection to the reference alias in ``schema``, as django-tenants'
    ``connection.set_tenant()`` leaves it: a ``search_path`` a worker's would lack."""
    connection = connections[REFERENCE]
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('search_path', %s, false)", [schema])
    connection.schema_name = schema  # type: ignore[attr-defined]


def test_a_tenants_connection_is_the_one_queried_and_is_cut_at_the_deadline(
    server: PostgresServer, tenant: str, events: list[OrderEvent]
) -> None:
    """The query runs on the request's own connection, which alone reads the tenant's rows;
    a hang there is cut by the watchdog within the bound, and that connection closed."""
    lookups = {"customers": spec(on_error="degrade", timeout=TIMEOUT)}
    _enter(tenant)
    with assert_num_queries(default=0, reference=2):  # set_config, the customers
        lookup = prefetch_cross_db(events, lookups)["customers"]
    assert {pk: row["name"] for pk, row in lookup.items()} == {
        pk: f"Tenant {name}" for pk, name in NAMES.items()
    }
    with server.hung(BOUND + 10):
        started = time.monotonic()
        lookup = prefetch_cross_db(events, lookups)["customers"]
        elapsed = time.monotonic() - started
    assert lookup.degraded
    assert "did not answer within the timeout" in str(lookup.stats.error)
    assert elapsed < BOUND
    assert connections[REFERENCE].connection is None  # closed: never used again
    _enter(tenant)
    assert prefetch_cross_db(events, lookups)["customers"].get(1)["name"] == "Tenant Customer 1"


# MariaDB, hung ---------------------------------------------------------------------------------


@pytest.fixture
def mariadb(
    mariadb_server: MariadbServer, django_db_blocker: DjangoDbBlocker
) -> Iterator[MariadbServer]:
    """``reference`` on the private MariaDB server, with the customers."""
    try:
        import MySQLdb
    except ImportError:
        unavailable("mysqlclient is not installed")
    name = "crossprefetch_hung"
    admin = MySQLdb.connect(
        host="127.0.0.1", port=mariadb_server.port, user="root", password="", connect_timeout=5
    )
    try:
        admin.cursor().execute(f"CREATE DATABASE IF NOT EXISTS `{name}`")
    finally:
        admin.close()
    with reference_with_customers(mariadb_server.settings(name), django_db_blocker):
        yield mariadb_server


@pytest.mark.parametrize("fresh_connection", [False, True], ids=["open", "new connection"])
def test_a_hung_mariadb_degrades_within_the_timeout_and_serves_again_after(
    mariadb: MariadbServer,
    events: list[OrderEvent],
    api: APIClient,
    fresh_connection: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(workers, "CLOSE_IN_TESTS", False)
    _assert_healthy(_healthy_get(api), events)
    if fresh_connection:
        connections.close_all()
        workers.reset()
    with mariadb.hung(BOUND * 2 + 10):
        _assert_bounded_degrading(api, events)
    breaker.databases.reset()
    _assert_healthy(_healthy_get(api), events)


def test_the_deadline_error_is_an_outage() -> None:
    assert issubclass(DeadlineExceeded, OperationalError)
