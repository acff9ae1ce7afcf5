"""A PostgreSQL reference database of the test session's own: killed, slowed, restarted.

The server is started by the suite (``initdb``/``pg_ctl`` into a temp dir, on a free port),
whatever ``CROSSPREFETCH_TEST_DB`` says; without the server binaries these tests skip.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from django.db import DatabaseError, connections, transaction
from rest_framework.test import APIClient

from crossprefetch import prefetch_cross_db
from crossprefetch._fetch import breaker as breaker
from crossprefetch._fetch import failure
from tests.failure_urls import REFERENCE
from tests.servers import HangingUp, PostgresServer, database_alias
from tests.test_failure import (
    NAMES,
    make_events,
    reference_with_customers,
    slow_spec,
    spec,
)
from tests.testapp.models import Customer, OrderEvent

if TYPE_CHECKING:
    from pytest_django.plugin import DjangoDbBlocker

pytestmark = pytest.mark.django_db(databases=["default", "timeseries"])


@pytest.fixture(autouse=True)
def _fresh_state(settings: Any) -> Iterator[None]:
    settings.ROOT_URLCONF = "tests.failure_urls"
    breaker.databases.reset()
    failure.reset()
    yield
    breaker.databases.reset()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def server(
    postgres_server: PostgresServer, django_db_blocker: DjangoDbBlocker
) -> Iterator[PostgresServer]:
    with reference_with_customers(postgres_server.settings(), django_db_blocker):
        yield postgres_server
    if not _listening(postgres_server.port):  # a test killed it and failed before restarting
        postgres_server.start()


@pytest.fixture
def events() -> list[OrderEvent]:
    return make_events()


def test_killed_server_degrades_and_restarted_server_serves_fresh_data(
    server: PostgresServer, events: list[OrderEvent], api: APIClient
) -> None:
    healthy = api.get("/reference/events/")
    assert [row["customer_name"] for row in healthy.json()][:5] == list(NAMES.values())
    assert connections[REFERENCE].connection is not None  # kept open, as in a worker

    server.kill()
    # the open connection meets a dead server, then new connections are refused
    for _ in range(2):
        response = api.get("/reference/events/")
        assert response.status_code == 200
        assert response["Crossprefetch-Degraded"] == "customers"
        rows = response.json()
        assert [row["id"] for row in rows] == [e.id for e in events]
        assert {row["customer_name"] for row in rows} == {"Unknown customer"}
    assert connections[REFERENCE].connection is None  # the broken one was dropped

    server.start()
    Customer.objects.using(REFERENCE).filter(id=1).update(name="Renamed after restart")
    fresh = api.get("/reference/events/")
    assert "Crossprefetch-Degraded" not in fresh
    assert fresh.json()[0]["customer_name"] == "Renamed after restart"


def test_server_killed_inside_a_transaction_degrades(
    server: PostgresServer, events: list[OrderEvent]
) -> None:
    lookups = {"customers": spec()}
    # the lookup goes on; the transaction's owner learns it lost it when it commits
    outcome: list[bool] = []
    with pytest.raises(DatabaseError), transaction.atomic(using=REFERENCE):  # noqa: PT012
        outcome.append(prefetch_cross_db(events, lookups)["customers"].degraded)
        server.kill()
        outcome.append(prefetch_cross_db(events, lookups)["customers"].degraded)
    assert outcome == [False, True]
    server.start()
    assert not prefetch_cross_db(events, lookups)["customers"].degraded


@pytest.mark.parametrize("atomic", [True, False], ids=["in atomic", "autocommit"])
@pytest.mark.usefixtures("server_timeout_first")
def test_timeout_cancels_pg_sleep_and_the_connection_goes_on(
    server: PostgresServer, events: list[OrderEvent], atomic: bool
) -> None:
    def run() -> None:
        lookup = prefetch_cross_db(
            events, {"customers": slow_spec(REFERENCE, on_error="degrade", timeout=0.3)}
        )["customers"]
        assert lookup.degraded
        assert "canceling statement due to statement timeout" in lookup.stats.error
        # the next statements on that connection work, without the timeout
        with connections[REFERENCE].cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone() == ("0",)
            cursor.execute("SELECT pg_sleep(0.5)")
        assert Customer.objects.using(REFERENCE).count() == len(NAMES) + 1

    if atomic:
        with transaction.atomic(using=REFERENCE):
            Customer.objects.using(REFERENCE).create(id=100, name="In this transaction")
            run()
            assert prefetch_cross_db(events, {"customers": spec(timeout=5)})["customers"]
    else:
        Customer.objects.using(REFERENCE).create(id=100, name="Committed")
        run()
    # a cancelled statement is no reason to reconnect
    assert connections[REFERENCE].connection is not None


def test_breaker_stops_the_connection_attempts(
    django_db_blocker: DjangoDbBlocker, events: list[OrderEvent], api: APIClient, settings: Any
) -> None:
    dead = HangingUp()
    dead_settings = PostgresServer.settings_for(dead.port)
    try:
        with database_alias(REFERENCE, dead_settings, django_db_blocker):
            settings.CROSSPREFETCH = {"BREAKER_FAILURES": 3, "BREAKER_RESET": 3600}
            for _ in range(10):
                response = api.get("/reference/events/")
                assert response.status_code == 200
                assert response["Crossprefetch-Degraded"] == "customers"
                assert len(response.json()) == len(events)
            assert dead.accepted == 3

            settings.CROSSPREFETCH = {"BREAKER_FAILURES": 3, "BREAKER_RESET": 0}
            api.get("/reference/events/")  # the trial, which fails and opens it again
            assert dead.accepted == 4
            assert breaker.databases.is_open(REFERENCE)
    finally:
        dead.close()
