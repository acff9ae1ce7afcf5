"""The statement time limit on MariaDB: ``SET STATEMENT max_statement_time=N FOR SELECT``.

Against the MariaDB server of ``settings.MYSQL`` (``CROSSPREFETCH_MYSQL_HOST``/``_PORT``,
default 127.0.0.1:3306, user root), in a database of the test's own, whatever
``CROSSPREFETCH_TEST_DB`` says; skipped when unreachable.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest
from django.conf import settings
from django.db import connections, transaction

from crossprefetch import prefetch_cross_db
from crossprefetch._fetch import breaker as breaker
from tests.failure_urls import REFERENCE
from tests.servers import unavailable
from tests.test_failure import NAMES, make_events, reference_with_customers, slow_spec, spec
from tests.testapp.models import Customer, OrderEvent

if TYPE_CHECKING:
    from pytest_django.plugin import DjangoDbBlocker

pytestmark = pytest.mark.django_db(databases=["default", "timeseries"])

HOST = settings.MYSQL["HOST"]
PORT = int(settings.MYSQL["PORT"])
USER = settings.MYSQL["USER"]
PASSWORD = settings.MYSQL["PASSWORD"]
DATABASE = f"crossprefetch_failure_{os.getpid()}"


def _server() -> Any:
    try:
        import MySQLdb
    except ImportError:
        unavailable("mysqlclient is not installed")
    try:
        return MySQLdb.connect(
            host=HOST, port=PORT, user=USER, password=PASSWORD, connect_timeout=3
        )
    except MySQLdb.Error as exc:
        unavailable(f"MariaDB at {HOST}:{PORT} is not reachable ({exc})")


@contextmanager
def mariadb_reference(blocker: DjangoDbBlocker, port: int = PORT) -> Iterator[None]:
    """``reference`` on a database of the test's own on the MariaDB server, reached on
    ``port`` (the server's own, or a proxy's in front of it), with the customers."""
    server = _server()
    if "MariaDB" not in server.get_server_info():
        server.close()
        pytest.skip(f"the server at {HOST}:{PORT} is MySQL, not MariaDB")
    server.cursor().execute(f"CREATE DATABASE IF NOT EXISTS `{DATABASE}`")
    try:
        database = {
            "ENGINE": "django.db.backends.mysql",
            "NAME": DATABASE,
            "USER": USER,
            "PASSWORD": PASSWORD,
            "HOST": HOST,
            "PORT": str(port),
        }
        with reference_with_customers(database, blocker):
            yield
    finally:
        server.cursor().execute(f"DROP DATABASE IF EXISTS `{DATABASE}`")
        server.close()
        breaker.databases.reset()


@pytest.fixture
def mariadb(django_db_blocker: DjangoDbBlocker) -> Iterator[None]:
    with mariadb_reference(django_db_blocker):
        yield


@pytest.fixture
def events() -> list[OrderEvent]:
    return make_events()


@pytest.mark.parametrize("atomic", [True, False], ids=["in atomic", "autocommit"])
@pytest.mark.usefixtures("server_timeout_first")
def test_max_statement_time_cancels_the_statement_and_the_connection_goes_on(
    mariadb: None, events: list[OrderEvent], atomic: bool
) -> None:
    def run() -> None:
        lookup = prefetch_cross_db(
            events, {"customers": slow_spec(REFERENCE, on_error="degrade", timeout=0.3)}
        )["customers"]
        assert lookup.degraded
        assert "max_statement_time exceeded" in lookup.stats.error
        with connections[REFERENCE].cursor() as cursor:
            cursor.execute("SELECT @@max_statement_time")
            assert float(cursor.fetchone()[0]) == 0  # the limit was this statement's only
            cursor.execute("SELECT SLEEP(0.5)")
        assert Customer.objects.using(REFERENCE).count() == len(NAMES) + 1
        quick = prefetch_cross_db(events, {"customers": spec(timeout=5)})["customers"]
        assert quick.get_for(events[0]) == {"name": "Customer 1"}

    if atomic:
        with transaction.atomic(using=REFERENCE):
            Customer.objects.using(REFERENCE).create(id=100, name="In this transaction")
            run()
    else:
        Customer.objects.using(REFERENCE).create(id=100, name="Committed")
        run()
