"""Tests of ``crossprefetch.testing`` on the real test databases of every backend."""

from __future__ import annotations

import pickle
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

import pytest
from asgiref.sync import async_to_sync
from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from django.test import TestCase
from rest_framework.test import APIClient

from crossprefetch import CrossDBPrefetch, prefetch_cross_db
from crossprefetch.testing import (
    CapturedQueries,
    CrossDBQueryAssertionsMixin,
    ForbiddenQueryError,
    assert_max_num_queries,
    assert_num_queries,
    capture_queries,
    forbid_queries,
)
from tests.testapp.models import Customer, OrderEvent, Region
from tests.testapp.serializers import OrderEventSerializer

ALL = ["default", "timeseries", "legacy"]
NOW = datetime(2024, 1, 1, tzinfo=timezone.utc)


def _touch_all() -> None:
    """One query on each of the three aliases."""
    list(Customer.objects.all())
    list(OrderEvent.objects.all())
    list(Region.objects.all())


def _two_customer_queries_and_one_event_query() -> None:
    Customer.objects.filter(name="a").count()
    Customer.objects.filter(name="b").exists()
    list(OrderEvent.objects.filter(event_type="paid"))


def _query_then_fail() -> None:
    Customer.objects.count()
    raise ZeroDivisionError


def _query_and_hide_the_error() -> None:
    """Code under test that swallows every exception."""
    for name in ("first", "second"):
        try:
            Customer.objects.filter(name=name).count()
        except Exception:
            continue


def _lookup_customer_names(events: list[OrderEvent]) -> list[str]:
    """The naive per-row lookup that ``forbid_queries`` exists to catch."""
    names = []
    for event in events:
        names.append(Customer.objects.get(pk=event.customer_id).name)
    return names


@contextmanager
def _setup_query_on_connect() -> Iterator[list[str]]:
    """Close ``default`` and run a query from ``connection_created`` when it opens again."""
    opened: list[str] = []

    def set_up(sender: object, connection: BaseDatabaseWrapper, **kwargs: object) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        opened.append(connection.alias)

    connections["default"].close()
    connection_created.connect(set_up)
    try:
        yield opened
    finally:
        connection_created.disconnect(set_up)


@pytest.mark.django_db(databases=ALL)
class TestAssertNumQueries:
    def test_passes_on_exact_counts(self) -> None:
        with assert_num_queries(default=1, timeseries=1, legacy=1) as captured:
            _touch_all()
        assert captured.counts == {"default": 1, "timeseries": 1, "legacy": 1}

    def test_dict_form(self) -> None:
        with assert_num_queries({"default": 1, "timeseries": 1}, legacy=1):
            _touch_all()

    def test_failure_message_has_every_mismatch_and_the_sql_of_every_alias(self) -> None:
        with pytest.raises(AssertionError) as excinfo, assert_num_queries(default=1, timeseries=0):
            _two_customer_queries_and_one_event_query()
        message = str(excinfo.value)
        lines = message.splitlines()
        assert lines[0] == "Expected to perform 1 queries on 'default' but 2 were done"
        assert lines[1] == "Expected to perform 0 queries on 'timeseries' but 1 was done"
        assert "Queries on 'default' (2, expected 1):" in lines
        assert "Queries on 'timeseries' (1, expected 0):" in lines
        assert "Queries on 'legacy' (0, not asserted): none" in lines
        default_sql = lines[lines.index("Queries on 'default' (2, expected 1):") + 2 :]
        assert re.match(r"1\. SELECT COUNT\(\*\) .*.testapp_customer.*'a'", default_sql[0])
        assert re.match(r"2\. SELECT 1 AS .a. .*'b'", default_sql[1])
        assert "testapp_orderevent" in message
        assert "'paid'" in message

    def test_info_is_appended(self) -> None:
        with (
            pytest.raises(AssertionError, match=r"done\nthe events page\n"),
            assert_num_queries(default=0, info="the events page"),
        ):
            Customer.objects.count()

    def test_unnamed_aliases_are_reported_but_not_asserted(self) -> None:
        with assert_num_queries(default=1) as captured:
            _touch_all()
        assert captured.counts == {"default": 1, "timeseries": 1, "legacy": 1}
        with pytest.raises(AssertionError) as excinfo, assert_num_queries(default=0):
            _touch_all()
        message = str(excinfo.value)
        assert message.splitlines()[0] == (
            "Expected to perform 0 queries on 'default' but 1 was done"
        )
        assert "Queries on 'legacy' (1, not asserted):" in message
        assert "testapp_region" in message

    def test_total_covers_every_alias(self) -> None:
        with assert_num_queries(total=3):
            _touch_all()
        with assert_num_queries(default=1, total=3):
            _touch_all()
        with pytest.raises(AssertionError) as excinfo, assert_num_queries(default=1, total=2):
            _touch_all()
        message = str(excinfo.value)
        assert message.splitlines()[0] == "Expected to perform 2 queries in total but 3 were done"
        assert "Queries on 'timeseries' (1, counted in the total):" in message

    def test_queries_are_available_afterwards(self) -> None:
        with assert_num_queries(default=1, timeseries=1) as captured:
            Customer.objects.filter(pk=7).first()
            list(OrderEvent.objects.all())
        assert isinstance(captured, CapturedQueries)
        assert len(captured) == 2
        assert captured.count() == 2
        assert captured.count("legacy") == 0
        assert captured["legacy"] == []
        [query] = captured["default"]
        assert query.alias == "default"
        assert "testapp_customer" in query.sql
        assert "%s" in query.raw_sql
        assert list(query.params) == [7]
        assert not query.many
        assert query.origin is not None
        assert query.origin.name == "test_queries_are_available_afterwards"
        assert [q.alias for q in captured] == ["default", "timeseries"]
        with pytest.raises(KeyError, match="unknown database alias 'nope'"):
            captured["nope"]

    def test_executemany_counts_once(self) -> None:
        with assert_num_queries(legacy=1) as captured, connections["legacy"].cursor() as cursor:
            cursor.executemany(
                "INSERT INTO testapp_region (code, name) VALUES (%s, %s)",
                [("n", "North"), ("s", "South"), ("e", "East")],
            )
        assert captured["legacy"][0].many
        assert Region.objects.count() == 3

    def test_exception_in_block_is_not_masked(self) -> None:
        with pytest.raises(ZeroDivisionError), assert_num_queries(default=5):
            _query_then_fail()

    def test_nested_blocks_each_count(self) -> None:
        before = {alias: list(connections[alias].execute_wrappers) for alias in ALL}
        with assert_num_queries(default=2) as outer:
            Customer.objects.count()
            with assert_num_queries(default=1) as inner:
                Customer.objects.count()
        assert (outer.count(), inner.count()) == (2, 1)
        for alias in ALL:
            assert connections[alias].execute_wrappers == before[alias]

    def test_inside_atomic_transaction_control_is_not_counted(self) -> None:
        with (
            assert_num_queries(default=1, timeseries=1) as captured,
            transaction.atomic(using="default"),
            transaction.atomic(using="timeseries"),
        ):
            Customer.objects.create(name="Ada")
            OrderEvent.objects.create(timestamp=NOW, customer_id=1)
        assert "SAVEPOINT" not in " ".join(q.sql for q in captured)

    def test_async_orm_under_async_to_sync(self) -> None:
        async def count_both() -> tuple[int, int]:
            return await Customer.objects.acount(), await OrderEvent.objects.acount()

        with assert_num_queries(default=1, timeseries=1):
            assert async_to_sync(count_both)() == (0, 0)

    def test_other_threads_are_not_observed(self) -> None:
        def elsewhere() -> None:
            with connections["default"].cursor() as cursor:
                cursor.execute("SELECT 1")
            connections["default"].close()

        with assert_num_queries(total=0):
            thread = threading.Thread(target=elsewhere)
            thread.start()
            thread.join()


@pytest.mark.django_db(databases=ALL, transaction=True)
class TestOutsideTestTransaction:
    def test_atomic_counts_the_same_as_inside_a_test_transaction(self) -> None:
        with (
            assert_num_queries(default=1, timeseries=1),
            transaction.atomic(using="default"),
            transaction.atomic(using="timeseries"),
        ):
            Customer.objects.create(name="Ada")
            OrderEvent.objects.create(timestamp=NOW, customer_id=1)

    def test_connection_opened_lazily_in_the_block(self) -> None:
        for alias in ALL:
            connections[alias].close()
        assert all(connections[alias].connection is None for alias in ALL)
        with assert_num_queries(default=1, legacy=0, timeseries=1):
            Customer.objects.count()
            OrderEvent.objects.count()
        assert connections["legacy"].connection is None
        assert connections["default"].connection is not None

    def test_connection_setup_is_not_counted(self) -> None:
        """Statements run while a connection opens (the backend's own, such as MySQL's
        ``SET SQL_AUTO_IS_NULL``, and ``connection_created`` receivers) are not the code's."""
        with (
            _setup_query_on_connect() as setup,
            assert_num_queries(default=1, legacy=0, timeseries=0) as captured,
        ):
            Customer.objects.count()
        assert setup == ["default"]
        assert "COUNT" in captured["default"][0].sql.upper()

    def test_connection_setup_is_not_forbidden(self) -> None:
        with (
            _setup_query_on_connect() as setup,
            pytest.raises(ForbiddenQueryError) as error,
            forbid_queries("default"),
        ):
            Customer.objects.count()
        assert setup == ["default"]
        assert "COUNT" in error.value.query.sql.upper()


@pytest.mark.django_db(databases=ALL)
class TestAssertMaxNumQueries:
    def test_passes_at_or_below_the_bound(self) -> None:
        with assert_max_num_queries(default=2, timeseries=1, total=3):
            _touch_all()
        with assert_max_num_queries(default=5):
            pass

    def test_fails_above_the_bound(self) -> None:
        with pytest.raises(AssertionError) as excinfo, assert_max_num_queries(legacy=0, total=2):
            _touch_all()
        lines = str(excinfo.value).splitlines()
        assert lines[0] == "Expected to perform 0 queries or less on 'legacy' but 1 was done"
        assert lines[1] == "Expected to perform 2 queries or less in total but 3 were done"
        assert "Queries on 'legacy' (1, expected at most 0):" in lines


class TestArguments:
    def test_unknown_alias_names_the_configured_ones(self) -> None:
        with pytest.raises(ValueError, match="unknown database alias 'timeserie'") as excinfo:
            assert_num_queries(timeserie=1)
        message = str(excinfo.value)
        assert "'default', 'timeseries', 'legacy'" in message
        assert "Did you mean 'timeseries'?" in message

    def test_unknown_alias_in_dict_form_and_forbid(self) -> None:
        with pytest.raises(ValueError, match="'time-series'"):
            assert_max_num_queries({"time-series": 1})
        with pytest.raises(ValueError, match="forbid_queries\\('nope'\\): unknown"):
            forbid_queries("nope")

    @pytest.mark.parametrize(
        ("args", "kwargs", "error", "match"),
        [
            ((), {}, TypeError, "give the expected number"),
            (({"default": 1},), {"default": 2}, TypeError, "both in the dict and by keyword"),
            ((), {"default": -1}, ValueError, "cannot be negative"),
            ((), {"default": "1"}, TypeError, "must be an int"),
            ((), {"default": True}, TypeError, "must be an int"),
            ((), {"default": 2, "total": 1}, ValueError, "less than the sum"),
        ],
    )
    def test_invalid_expectations(
        self,
        args: tuple[object, ...],
        kwargs: dict[str, object],
        error: type[Exception],
        match: str,
    ) -> None:
        with pytest.raises(error, match=match):
            assert_num_queries(*args, **kwargs)  # type: ignore[arg-type]


@pytest.mark.django_db(databases=ALL)
class TestForbidQueries:
    def test_raises_at_the_first_query_with_sql_and_frame(self) -> None:
        event = OrderEvent.objects.create(timestamp=NOW, customer_id=42)
        Customer.objects.create(pk=42, name="Ada")
        with pytest.raises(ForbiddenQueryError) as excinfo, forbid_queries("default"):
            _lookup_customer_names([event, event])
        error = excinfo.value
        assert error.query.alias == "default"
        assert "testapp_customer" in error.query.raw_sql
        assert error.query.origin is not None
        assert error.query.origin.name == "_lookup_customer_names"
        message = str(error)
        assert message.startswith("Query on 'default' forbidden by forbid_queries('default'):\n")
        assert "params: " in message
        assert "in _lookup_customer_names\n" in message
        assert "names.append(Customer.objects.get(pk=event.customer_id).name)" in message
        assert "Stack (most recent call last" in message
        assert "django/db/" not in message

    def test_error_survives_pickling(self) -> None:
        with pytest.raises(ForbiddenQueryError) as excinfo, forbid_queries("default"):
            Customer.objects.count()
        copy = pickle.loads(pickle.dumps(excinfo.value))
        assert str(copy) == str(excinfo.value)
        assert copy.query.origin == excinfo.value.query.origin

    def test_query_is_not_executed(self) -> None:
        with (
            pytest.raises(ForbiddenQueryError),
            forbid_queries("legacy"),
            connections["legacy"].cursor() as cursor,
        ):
            cursor.execute("INSERT INTO testapp_region (code, name) VALUES ('n', 'North')")
        assert Region.objects.count() == 0

    def test_other_aliases_are_captured(self) -> None:
        with forbid_queries("default", "legacy") as captured:
            list(OrderEvent.objects.all())
        assert captured.counts == {"default": 0, "timeseries": 1, "legacy": 0}

    def test_without_aliases_forbids_every_alias(self) -> None:
        with pytest.raises(ForbiddenQueryError, match="'timeseries'"), forbid_queries():
            OrderEvent.objects.count()

    def test_swallowed_error_is_raised_again_on_exit(self) -> None:
        with (
            pytest.raises(ForbiddenQueryError, match="'default'") as excinfo,
            forbid_queries("default"),
        ):
            _query_and_hide_the_error()
        assert excinfo.value.query.params == ("first",)

    def test_transaction_control_is_allowed(self) -> None:
        with forbid_queries("default"), transaction.atomic(using="default"):
            pass


@pytest.mark.django_db(databases=ALL)
def test_capture_queries_asserts_nothing() -> None:
    with capture_queries() as captured:
        _touch_all()
        Customer.objects.count()
    assert captured.counts == {"default": 2, "timeseries": 1, "legacy": 1}
    assert repr(captured) == "<CapturedQueries {'default': 2, 'timeseries': 1, 'legacy': 1}>"


class _CustomFailure(AssertionError):
    pass


class MixinTests(CrossDBQueryAssertionsMixin, TestCase):
    databases = {"default", "timeseries", "legacy"}
    failureException = _CustomFailure

    def test_assert_num_queries_per_alias(self) -> None:
        with self.assertNumQueriesPerAlias(default=1, timeseries=1) as captured:
            Customer.objects.count()
            OrderEvent.objects.count()
        assert captured.count("legacy") == 0

    def test_failure_uses_failure_exception(self) -> None:
        with (
            self.assertRaisesMessage(
                _CustomFailure,
                "Expected to perform 0 queries on 'legacy' but 1 was done",
            ),
            self.assertNumQueriesPerAlias({"legacy": 0}),
        ):
            Region.objects.count()

    def test_assert_max_num_queries_per_alias(self) -> None:
        with self.assertMaxNumQueriesPerAlias(total=2):
            Customer.objects.count()
        with (
            self.assertRaisesMessage(AssertionError, "2 queries or less in total but 3 were done"),
            self.assertMaxNumQueriesPerAlias(total=2),
        ):
            _touch_all()

    def test_assert_no_queries(self) -> None:
        with self.assertNoQueries("default") as captured:
            OrderEvent.objects.count()
        assert captured.counts["timeseries"] == 1
        with pytest.raises(ForbiddenQueryError), self.assertNoQueries("default"):
            Customer.objects.count()


def _events(count: int) -> None:
    customers = [Customer.objects.create(name=f"Customer {i}") for i in range(3)]
    for i in range(count):
        OrderEvent.objects.create(timestamp=NOW, customer_id=customers[i % 3].pk)


@pytest.mark.django_db(databases=ALL)
class TestWithTheEngine:
    """The examples of the how-to, on the test app's endpoints."""

    @pytest.mark.parametrize(
        ("events", "timeseries", "default"),
        [(0, 1, 0), (1, 2, 1), (10, 2, 1), (50, 2, 1)],
    )
    def test_endpoint_stays_at_n_queries_per_database(
        self, events: int, timeseries: int, default: int
    ) -> None:
        _events(events)
        with assert_num_queries(timeseries=timeseries, default=default, legacy=0):
            response = APIClient().get("/api/events/")
        assert len(response.json()["results"]) == events

    def test_serialization_touches_no_reference_database(self) -> None:
        _events(5)
        events = list(OrderEvent.objects.all())
        spec = CrossDBPrefetch(Customer, key="customer_id", fields=("name", "tier"))
        with assert_num_queries(default=1):
            lookups = prefetch_cross_db(events, {"customers": spec})
        with forbid_queries("default", "legacy"):
            data = OrderEventSerializer(events, many=True, context=lookups).data
        assert {row["customer_name"] for row in data} == {"Customer 0", "Customer 1", "Customer 2"}
