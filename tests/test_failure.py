"""``on_error="degrade"`` and ``timeout``, against a reference database that really fails.

The ``reference`` alias is a SQLite file of the test's own, made unreadable by replacing it
with a directory or by corrupting its header; the servers that are killed, hung and
restarted are in ``test_failure_postgres.py``, ``test_failure_mariadb.py`` and
``test_cache_breaker.py``.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.db import DatabaseError, OperationalError, connections, transaction
from rest_framework.test import APIClient

from crossprefetch import CachePolicy, CrossDBPrefetch, prefetch_cross_db
from crossprefetch._fetch import breaker as breaker
from crossprefetch._fetch import caching as cache_layer
from crossprefetch._fetch import failure
from crossprefetch.checks.failure import check_failure_settings
from crossprefetch.loaders import ModelLoader, aprefetch_cross_db
from crossprefetch.lookup import MISSING
from crossprefetch.testing import assert_num_queries
from tests.failure_urls import REFERENCE
from tests.servers import database_alias
from tests.testapp.models import Customer, OrderEvent

if TYPE_CHECKING:
    from pytest_django.plugin import DjangoDbBlocker

pytestmark = pytest.mark.django_db(databases=["default", "timeseries"])

#: Customer ids of the events: five customers, one null key, one dangling key.
CUSTOMER_IDS = [1, 2, 3, 4, 5, 1, 2, None, 99]
NAMES = {i: f"Customer {i}" for i in range(1, 6)}


def make_events() -> list[OrderEvent]:
    from tests.conftest import T0

    OrderEvent.objects.bulk_create(
        OrderEvent(timestamp=T0, customer_id=customer_id) for customer_id in CUSTOMER_IDS
    )
    return list(OrderEvent.objects.order_by("id"))


def create_customers(alias: str, names: dict[int, str] = NAMES) -> None:
    with connections[alias].schema_editor() as editor:
        editor.create_model(Customer)
    Customer.objects.using(alias).bulk_create(
        Customer(id=pk, name=name, email=f"c{pk}@example.com") for pk, name in names.items()
    )


@contextmanager
def reference_with_customers(settings_dict: dict[str, Any], blocker: Any) -> Iterator[None]:
    """The ``reference`` alias on a database of the test's own (``settings_dict``), holding
    the customers of :data:`NAMES` in a table created afresh."""
    with database_alias(REFERENCE, settings_dict, blocker):
        with connections[REFERENCE].cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS testapp_customer")
        create_customers(REFERENCE)
        yield


class SQLiteReference:
    """The ``reference`` database: a SQLite file the test can make unreadable and restore."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.saved = path.with_suffix(".saved")

    def break_(self, how: str) -> None:
        connections[REFERENCE].close()
        shutil.move(self.path, self.saved)
        if how == "directory":
            self.path.mkdir()  # "unable to open database file", whoever runs the tests
        else:
            data = bytearray(self.saved.read_bytes())
            data[:100] = b"not a database, whatever sqlite3 thinks" * 2 + b"\0" * 20
            self.path.write_bytes(bytes(data))

    def repair(self) -> None:
        connections[REFERENCE].close()
        if self.path.is_dir():
            self.path.rmdir()
        else:
            self.path.unlink()
        shutil.move(self.saved, self.path)


@pytest.fixture(autouse=True)
def _fresh_state(settings: Any) -> Iterator[None]:
    settings.ROOT_URLCONF = "tests.failure_urls"
    breaker.databases.reset()
    breaker.caches.reset()
    failure.reset()
    cache_layer.clear_local()
    yield
    breaker.databases.reset()
    breaker.caches.reset()
    failure.reset()


@pytest.fixture
def reference(tmp_path: Path, django_db_blocker: DjangoDbBlocker) -> Iterator[SQLiteReference]:
    path = tmp_path / "reference.sqlite3"
    sqlite = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)}
    with database_alias(REFERENCE, sqlite, django_db_blocker):
        create_customers(REFERENCE)
        yield SQLiteReference(path)


@pytest.fixture
def events() -> list[OrderEvent]:
    return make_events()


def spec(**options: Any) -> CrossDBPrefetch:
    options.setdefault("on_error", "degrade")
    return CrossDBPrefetch(
        "testapp.Customer", key="customer_id", fields=("name",), using=REFERENCE, **options
    )


HOW = ["directory", "corrupted"]


@pytest.mark.parametrize("how", HOW)
def test_the_broken_file_really_fails(reference: SQLiteReference, how: str) -> None:
    reference.break_(how)
    with pytest.raises(DatabaseError):
        Customer.objects.using(REFERENCE).count()


@pytest.mark.parametrize("how", HOW)
def test_degraded_response_has_every_primary_row_and_names_the_lookup(
    reference: SQLiteReference, events: list[OrderEvent], api: APIClient, how: str
) -> None:
    healthy = api.get("/reference/events/")
    assert healthy.status_code == 200
    assert "Crossprefetch-Degraded" not in healthy
    assert [row["customer_name"] for row in healthy.json()][:5] == list(NAMES.values())

    reference.break_(how)
    with assert_num_queries(default=0, timeseries=1):
        response = api.get("/reference/events/")
    assert response.status_code == 200
    assert response["Crossprefetch-Degraded"] == "customers"
    rows = response.json()
    assert [row["id"] for row in rows] == [e.id for e in events]
    assert {row["customer_name"] for row in rows} == {"Unknown customer"}
    assert [row["customer_label"] for row in rows] == [
        f"Customer #{customer_id}" for customer_id in CUSTOMER_IDS
    ]

    reference.repair()
    breaker.databases.reset()
    fresh = api.get("/reference/events/")
    assert "Crossprefetch-Degraded" not in fresh
    assert fresh.json() == healthy.json()


def test_lookups_sharing_a_query_degrade_together(
    reference: SQLiteReference, events: list[OrderEvent], api: APIClient
) -> None:
    OrderEvent.objects.filter(customer_id__isnull=False).update(seller_id=2)
    assert api.get("/reference/buyer-seller/").json()[0] == {
        "id": events[0].id,
        "buyer": "Customer 1",
        "seller": "Customer 2",
    }
    reference.break_("directory")
    with assert_num_queries(default=0, timeseries=1):
        response = api.get("/reference/buyer-seller/")
    assert response["Crossprefetch-Degraded"] == "buyers, sellers"
    assert {(row["buyer"], row["seller"]) for row in response.json()} == {(None, None)}


def test_a_missing_table_is_a_bug_raised_even_under_degrade(
    reference: SQLiteReference, events: list[OrderEvent], settings: Any
) -> None:
    settings.CROSSPREFETCH = {"BREAKER_FAILURES": 1}
    with connections[REFERENCE].schema_editor() as editor:
        editor.delete_model(Customer)
    client = APIClient(raise_request_exception=True)
    for _ in range(2):  # the breaker would have opened on the first
        with pytest.raises(OperationalError, match="no such table"):
            client.get("/reference/events/")
    assert breaker.databases.failures(REFERENCE) == 0
    assert not breaker.databases.is_open(REFERENCE)
    assert APIClient(raise_request_exception=False).get("/reference/events/").status_code == 500


def test_raise_is_the_default_and_propagates(
    reference: SQLiteReference, events: list[OrderEvent]
) -> None:
    reference.break_("directory")
    with pytest.raises(DatabaseError, match="unable to open database file"):
        prefetch_cross_db(events, {"customers": spec(on_error=None)})
    with pytest.raises(DatabaseError):
        prefetch_cross_db(events, {"customers": spec(on_error="raise")})
    assert not breaker.databases.is_open(REFERENCE)


def test_the_setting_gives_the_default_and_the_spec_overrides_it(
    reference: SQLiteReference, events: list[OrderEvent], settings: Any
) -> None:
    reference.break_("directory")
    settings.CROSSPREFETCH = {"ON_ERROR": "degrade"}
    assert prefetch_cross_db(events, {"customers": spec(on_error=None)})["customers"].degraded
    with pytest.raises(DatabaseError):
        prefetch_cross_db(events, {"customers": spec(on_error="raise")})


def test_degraded_lookup_reads_every_key_as_missing(
    reference: SQLiteReference, events: list[OrderEvent]
) -> None:
    reference.break_("corrupted")
    lookup = prefetch_cross_db(events, {"customers": spec()})["customers"]
    assert lookup.degraded
    assert [lookup.get_for(e) for e in events] == [MISSING] * len(events)
    stats = lookup.stats
    assert (stats.keys_asked, stats.keys_found, stats.keys_missing) == (6, 0, 6)
    assert stats.degraded
    assert not stats.breaker_open
    assert "file is not a database" in stats.error
    assert stats.as_dict()["degraded"] is True


def test_a_healthy_lookup_is_not_degraded(
    reference: SQLiteReference, events: list[OrderEvent]
) -> None:
    with assert_num_queries(**{REFERENCE: 1}):
        lookup = prefetch_cross_db(events, {"customers": spec()})["customers"]
    assert not lookup.degraded
    assert lookup.stats.error == ""
    assert lookup.get_for(events[0]) == {"name": "Customer 1"}


def test_breaker_skips_the_database_after_consecutive_failures(
    reference: SQLiteReference, events: list[OrderEvent], settings: Any
) -> None:
    settings.CROSSPREFETCH = {"BREAKER_FAILURES": 3, "BREAKER_RESET": 3600}
    reference.break_("directory")
    opened = []
    for _ in range(6):
        stats = prefetch_cross_db(events, {"customers": spec()})["customers"].stats
        assert stats.degraded
        opened.append(stats.breaker_open)
    assert opened == [False, False, False, True, True, True]

    reference.repair()  # still open: the reset time has not passed
    assert prefetch_cross_db(events, {"customers": spec()})["customers"].stats.breaker_open

    settings.CROSSPREFETCH = {"BREAKER_FAILURES": 3, "BREAKER_RESET": 0}
    with assert_num_queries(**{REFERENCE: 1}):  # the trial
        lookup = prefetch_cross_db(events, {"customers": spec()})["customers"]
    assert not lookup.degraded
    assert not breaker.databases.is_open(REFERENCE)


def test_a_success_resets_the_count(
    reference: SQLiteReference, events: list[OrderEvent], settings: Any
) -> None:
    settings.CROSSPREFETCH = {"BREAKER_FAILURES": 2, "BREAKER_RESET": 3600}
    for _ in range(3):
        reference.break_("directory")
        prefetch_cross_db(events, {"customers": spec()})
        reference.repair()
        assert not prefetch_cross_db(events, {"customers": spec()})["customers"].degraded
    assert not breaker.databases.is_open(REFERENCE)


def test_raise_mode_never_consults_the_breaker(
    reference: SQLiteReference, events: list[OrderEvent], settings: Any
) -> None:
    settings.CROSSPREFETCH = {"BREAKER_FAILURES": 1, "BREAKER_RESET": 3600}
    reference.break_("directory")
    prefetch_cross_db(events, {"customers": spec()})
    assert breaker.databases.is_open(REFERENCE)
    reference.repair()
    lookup = prefetch_cross_db(events, {"customers": spec(on_error="raise")})["customers"]
    assert lookup.get_for(events[0]) == {"name": "Customer 1"}


def test_one_warning_for_many_failures(
    reference: SQLiteReference,
    events: list[OrderEvent],
    settings: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.CROSSPREFETCH = {"BREAKER_FAILURES": 100}
    reference.break_("directory")
    with caplog.at_level(logging.DEBUG, logger="crossprefetch"):
        for _ in range(5):
            prefetch_cross_db(events, {"customers": spec()})
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "database 'reference' failed" in message
    assert "'customers'" in message
    assert "unable to open database file" in message


def test_cached_entries_are_served_and_only_the_misses_degrade(
    reference: SQLiteReference, events: list[OrderEvent]
) -> None:
    cached = spec(cache=CachePolicy(300, invalidate=False))
    prefetch_cross_db(events[:3], {"customers": cached})  # customers 1, 2 and 3

    reference.break_("directory")
    lookup = prefetch_cross_db(events, {"customers": cached})["customers"]
    assert lookup.degraded
    assert lookup.stats.cache_hits == 3
    assert [lookup.get_for(e) for e in events[:5]] == [
        {"name": "Customer 1"},
        {"name": "Customer 2"},
        {"name": "Customer 3"},
        MISSING,
        MISSING,
    ]

    reference.repair()
    breaker.databases.reset()
    lookup = prefetch_cross_db(events, {"customers": cached})["customers"]
    assert not lookup.degraded  # the failed keys were not cached as missing rows
    assert lookup.get_for(events[4]) == {"name": "Customer 5"}


def test_fully_cached_lookups_are_not_degraded(
    reference: SQLiteReference, events: list[OrderEvent], api: APIClient
) -> None:
    healthy = api.get("/reference/cached-events/")
    reference.break_("directory")
    response = api.get("/reference/cached-events/")
    assert "Crossprefetch-Degraded" not in response
    assert response.json() == healthy.json()


def test_aprefetch_cross_db_degrades(reference: SQLiteReference, events: list[OrderEvent]) -> None:
    reference.break_("directory")
    lookups = async_to_sync(aprefetch_cross_db)(events, {"customers": spec()})
    assert lookups["customers"].degraded
    assert lookups["customers"].get_for(events[0]) is MISSING


def test_model_loader_degrades(reference: SQLiteReference) -> None:
    async def load(loader: ModelLoader) -> list[Any]:
        return await loader.load_many([1, 2, 99])

    healthy = ModelLoader("testapp.Customer", fields=("name",), using=REFERENCE)
    assert async_to_sync(load)(healthy) == [{"name": "Customer 1"}, {"name": "Customer 2"}, None]

    reference.break_("directory")
    degrading = ModelLoader(
        "testapp.Customer", fields=("name",), using=REFERENCE, on_error="degrade"
    )
    assert "on_error='degrade'" in repr(degrading)
    assert async_to_sync(load)(degrading) == [None, None, None]
    with pytest.raises(DatabaseError):
        async_to_sync(load)(ModelLoader("testapp.Customer", fields=("name",), using=REFERENCE))


def test_specs_with_different_policies_do_not_share_a_query(
    reference: SQLiteReference, events: list[OrderEvent]
) -> None:
    with assert_num_queries(**{REFERENCE: 2}):
        lookups = prefetch_cross_db(
            events, {"degrading": spec(), "raising": spec(on_error="raise")}
        )
    assert lookups["degrading"].stats.shared_with == []


# Timeouts on the test databases (a slow statement cancelled, the transaction still usable)


def slow_where(alias: str) -> str:
    """A condition the database takes seconds to evaluate."""
    vendor = connections[alias].vendor
    if vendor == "postgresql":
        return "pg_sleep(5) IS NOT NULL"
    if vendor == "mysql":
        return "SLEEP(5) = 0"
    if vendor == "sqlite":
        return (
            "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
            "WHERE x < 500000000) SELECT count(*) FROM c) > 0"
        )
    pytest.skip(f"no slow statement written for {vendor}")
    raise AssertionError


def slow_spec(alias: str = "default", **options: Any) -> CrossDBPrefetch:
    return CrossDBPrefetch(
        Customer.objects.using(alias).extra(where=[slow_where(alias)]),
        key="customer_id",
        fields=("name",),
        **options,
    )


CANCELLED = {
    "postgresql": "statement timeout",
    "sqlite": "interrupted",
    "mysql": "max_statement_time exceeded",
}


@pytest.mark.usefixtures("server_timeout_first")
def test_timeout_cancels_the_statement_in_a_test_case_and_the_transaction_goes_on(
    events: list[OrderEvent],
) -> None:
    connection = connections["default"]
    assert connection.in_atomic_block  # the test's transaction
    Customer.objects.create(id=1, name="Written before")  # a key's row: the slow condition runs
    lookup = prefetch_cross_db(events, {"customers": slow_spec(on_error="degrade", timeout=0.2)})[
        "customers"
    ]
    assert lookup.degraded
    assert CANCELLED[connection.vendor] in lookup.stats.error
    Customer.objects.create(id=2, name="Written after")  # explicit: no sequence involved
    assert Customer.objects.filter(name__startswith="Written").count() == 2


@pytest.mark.usefixtures("server_timeout_first")
def test_timeout_inside_atomic_with_raise_leaves_the_transaction_usable(
    events: list[OrderEvent],
) -> None:
    Customer.objects.create(id=1, name="Someone")  # the slow condition runs for each row
    with transaction.atomic(using="default"):
        with pytest.raises(DatabaseError):
            prefetch_cross_db(events, {"customers": slow_spec(timeout=0.2)})
        assert Customer.objects.count() == 1


def test_timeout_does_not_apply_to_later_statements(events: list[OrderEvent]) -> None:
    quick = CrossDBPrefetch("testapp.Customer", key="customer_id", fields=("name",), timeout=0.2)
    Customer.objects.create(name="Someone")
    prefetch_cross_db(events, {"customers": quick})
    connection = connections["default"]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone() == ("0",)
        cursor.execute("SELECT 1")


# Arguments, settings and checks -------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"on_error": "ignore"}, ValueError, "on_error must be 'raise'"),
        ({"on_error": True}, TypeError, "on_error must be 'raise'"),
        ({"timeout": -1}, ValueError, r"timeout=-1\): give a finite number of seconds"),
        ({"timeout": "1"}, TypeError, r"timeout='1'\): give a finite number of seconds"),
        ({"timeout": True}, TypeError, r"timeout=True\): give a finite number of seconds"),
    ],
)
def test_spec_arguments_are_validated(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        CrossDBPrefetch("testapp.Customer", key="customer_id", **options)


def test_spec_repr_and_resolution(settings: Any) -> None:
    given = CrossDBPrefetch("testapp.Customer", key="customer_id", on_error="degrade", timeout=2)
    assert repr(given).endswith("on_error='degrade', timeout=2)")
    default = CrossDBPrefetch("testapp.Customer", key="customer_id")
    assert (default.error_policy(), default.statement_timeout()) == ("raise", None)
    settings.CROSSPREFETCH = {"ON_ERROR": "degrade", "TIMEOUT": 1.5}
    assert (default.error_policy(), default.statement_timeout()) == ("degrade", 1.5)
    none = CrossDBPrefetch("testapp.Customer", key="customer_id", timeout=0)
    assert none.statement_timeout() is None


@pytest.mark.parametrize(
    ("given", "ids"),
    [
        ({"ON_ERROR": "degrade", "TIMEOUT": 0.5, "BREAKER_FAILURES": 5, "BREAKER_RESET": 0}, []),
        ({"TIMEOUT": None}, []),
        ({"ON_ERROR": "ignore"}, ["crossprefetch.E201"]),
        ({"TIMEOUT": "5s"}, ["crossprefetch.E202"]),
        ({"TIMEOUT": -1}, ["crossprefetch.E202"]),
        ({"BREAKER_FAILURES": 0}, ["crossprefetch.E203"]),
        ({"BREAKER_FAILURES": 2.5}, ["crossprefetch.E203"]),
        ({"BREAKER_RESET": "30"}, ["crossprefetch.E204"]),
        ({"MAX_CONCURRENT": 4}, []),
        ({"MAX_CONCURRENT": {"default": 4, "timeseries": 1}}, []),
        ({"MAX_CONCURRENT": 0}, ["crossprefetch.E205"]),
        ({"MAX_CONCURRENT": "10"}, ["crossprefetch.E205"]),
        ({"MAX_CONCURRENT": True}, ["crossprefetch.E205"]),
        ({"MAX_CONCURRENT": None}, ["crossprefetch.E205"]),
        ({"MAX_CONCURRENT": {"default": 0}}, ["crossprefetch.E205"]),
        ({"MAX_CONCURRENT": {"default": 2.5}}, ["crossprefetch.E205"]),
        ({"MAX_CONCURRENT": {"nowhere": 4}}, ["crossprefetch.E205"]),
    ],
)
def test_settings_checks(settings: Any, given: dict[str, Any], ids: list[str]) -> None:
    settings.CROSSPREFETCH = given
    assert [m.id for m in check_failure_settings()] == ids


def test_the_checks_run_with_manage_py_check(settings: Any) -> None:
    from django.core.management.base import SystemCheckError

    settings.CROSSPREFETCH = {"ON_ERROR": "ignore"}
    with pytest.raises(SystemCheckError, match=r"crossprefetch\.E201"):
        call_command("check", tags=["crossprefetch"])


def test_max_concurrent_messages_name_the_problem(settings: Any) -> None:
    settings.CROSSPREFETCH = {"MAX_CONCURRENT": {"nowhere": 4, "default": 0}}
    (message,) = check_failure_settings()
    assert "names no database of settings.DATABASES: 'nowhere'" in message.msg
    settings.CROSSPREFETCH = {"MAX_CONCURRENT": {"default": 0}}
    (message,) = check_failure_settings()
    assert "not a positive whole number for 'default'" in message.msg
    assert message.hint is not None
    assert '{"reference": 4}' in message.hint


def test_a_bad_max_concurrent_fails_clearly_at_run_time(
    reference: SQLiteReference, settings: Any, events: list[OrderEvent]
) -> None:
    from django.core.exceptions import ImproperlyConfigured

    settings.CROSSPREFETCH = {"MAX_CONCURRENT": {REFERENCE: -1}}
    with pytest.raises(ImproperlyConfigured, match=r'MAX_CONCURRENT"\]\[\'reference\'\] = -1'):
        prefetch_cross_db(events, {"customers": spec()})
    # raise-mode lookups are not limited, so they never read it
    assert prefetch_cross_db(events, {"customers": spec(on_error="raise")})["customers"]


def test_a_bad_on_error_setting_fails_clearly_at_run_time(
    settings: Any, events: list[OrderEvent]
) -> None:
    from django.core.exceptions import ImproperlyConfigured

    settings.CROSSPREFETCH = {"ON_ERROR": "ignore"}
    with pytest.raises(ImproperlyConfigured, match="use 'raise' or 'degrade'"):
        prefetch_cross_db(events, {"customers": CrossDBPrefetch(Customer, key="customer_id")})
