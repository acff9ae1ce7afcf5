"""Tests of ``crossprefetch.testing`` on the real test databases of every backend."""

from __future__ import annotations

import pickle
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

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


# -- parity with Django's AssertNumQueries / CaptureQueriesContext and pytest-django -------


@pytest.mark.django_db(databases=ALL)
class TestDjangoParity:
    """Behaviours of Django's ``assertNumQueries``/``CaptureQueriesContext`` tests and of
    pytest-django's ``django_assert_num_queries`` tests, across every alias."""

    def test_counts_zero_one_two(self) -> None:
        with assert_num_queries(total=0):
            pass
        with assert_num_queries(default=1):
            Customer.objects.count()
        with assert_num_queries(default=2):
            Customer.objects.count()
            Customer.objects.count()

    def test_exception_in_the_block_propagates_unasserted(self) -> None:
        with pytest.raises(TypeError), assert_num_queries(default=2):
            _count_then_raise(TypeError)

    def test_requests_of_the_test_client_are_counted(self, scenario: object) -> None:
        client = APIClient()
        with assert_num_queries(default=2, timeseries=4):
            client.get("/api/events/")
            client.get("/api/events/")

    def test_django_style_indexing(self) -> None:
        with capture_queries() as captured:
            Customer.objects.count()
            list(OrderEvent.objects.all())
        assert len(captured) == 2
        assert captured[0].alias == "default"
        assert "COUNT" in captured[0]["sql"]
        assert captured[-1].alias == "timeseries"
        assert [query.alias for query in captured[0:2]] == ["default", "timeseries"]
        assert float(captured[1]["time"]) >= 0
        assert [entry["sql"] for entry in captured.captured_queries] == [
            query.sql for query in captured
        ]
        assert set(captured.captured_queries[0]) == {"sql", "time"}

    def test_indexing_errors_are_clear(self) -> None:
        with capture_queries() as captured:
            Customer.objects.count()
        with pytest.raises(IndexError, match=r"CapturedQueries\[5\]: 1 queries were captured"):
            captured[5]
        with pytest.raises(TypeError, match="index by database alias"):
            captured[1.5]  # type: ignore[call-overload]
        with pytest.raises(KeyError, match="unknown database alias 'defualt'"):
            captured["defualt"]
        with pytest.raises(KeyError, match="use 'sql' or 'time'"):
            captured[0]["duration"]

    def test_nested_captures_both_see_the_inner_queries(self) -> None:
        with capture_queries() as outer:
            Customer.objects.count()
            with capture_queries() as inner:
                Customer.objects.count()
        assert (len(outer), len(inner)) == (2, 1)

    def test_rolled_back_savepoint_still_counts_its_queries(self) -> None:
        with assert_num_queries(default=1):
            try:
                with transaction.atomic():
                    Customer.objects.filter(name="x").count()
                    raise ZeroDivisionError
            except ZeroDivisionError:
                pass

    def test_one_query_reads_was_not_were(self) -> None:
        with pytest.raises(AssertionError) as excinfo, assert_num_queries(default=2):
            Customer.objects.count()
        assert "Expected to perform 2 queries on 'default' but 1 was done" in str(excinfo.value)


def _count_then_raise(error: type[Exception]) -> None:
    Customer.objects.count()
    raise error


@assert_num_queries(default=1)
def _counted_customers() -> int:
    return Customer.objects.count()


@assert_max_num_queries(total=1)
def _too_many() -> None:
    Customer.objects.count()
    Customer.objects.count()


@pytest.mark.django_db(databases=ALL)
class TestAsDecorators:
    def test_each_call_is_one_block(self) -> None:
        assert _counted_customers() == 0
        assert _counted_customers() == 0  # the count starts again
        assert _counted_customers.__name__ == "_counted_customers"

    def test_failure_is_raised_by_the_call(self) -> None:
        with pytest.raises(AssertionError, match="Expected to perform 1 queries or less in total"):
            _too_many()

    def test_forbid_queries_decorates(self) -> None:
        @forbid_queries("default")
        def reads_default() -> int:
            return Customer.objects.count()

        with pytest.raises(ForbiddenQueryError):
            reads_default()

    def test_async_function(self) -> None:
        @assert_num_queries(default=1)
        async def count() -> int:
            return await Customer.objects.acount()

        assert async_to_sync(count)() == 0

    @assert_num_queries(default=1, timeseries=0)
    def test_decorated_test_method(self) -> None:
        Customer.objects.count()


class DecoratedTests(CrossDBQueryAssertionsMixin, TestCase):
    databases = {"default", "timeseries", "legacy"}

    @assert_num_queries(default=1)
    def test_decorated_in_a_test_case(self) -> None:
        Customer.objects.count()


# -- peers' call styles -------------------------------------------------------------------------


def _customers_named(name: str, *, tier: str = "basic") -> int:
    return Customer.objects.filter(name=name, tier=tier).count()


@pytest.mark.django_db(databases=ALL)
class TestCallStyles:
    def test_a_single_number_counts_default_and_reports_every_alias(self) -> None:
        with assert_num_queries(1) as captured:
            Customer.objects.count()
            Region.objects.count()  # observed, not asserted
        assert captured.counts == {"default": 1, "timeseries": 0, "legacy": 1}

    @pytest.mark.parametrize(
        "how",
        [{"using": "legacy"}, {"connection": "legacy"}, {"positional": "legacy"}],
    )
    def test_a_single_number_on_another_alias(self, how: dict[str, str]) -> None:
        alias = next(iter(how.values()))
        if "using" in how:
            block = assert_max_num_queries(1, using=alias)
        elif "connection" in how:
            block = assert_max_num_queries(1, connection=connections[alias])
        else:
            block = assert_max_num_queries(1, connections[alias], "the regions")
        with (
            pytest.raises(AssertionError, match="1 queries or less on 'legacy' but 2") as error,
            block,
        ):
            _two_region_queries()
        if "positional" in how:
            assert "the regions" in str(error.value)

    def test_num_by_keyword_with_info(self) -> None:
        with (
            pytest.raises(AssertionError, match="on 'default' but 1 was done\nwhy two"),
            assert_num_queries(num=2, info="why two"),
        ):
            Customer.objects.count()

    def test_django_s_callable_form_returns_the_result(self) -> None:
        Customer.objects.create(name="a", tier="gold")
        assert assert_num_queries(1, _customers_named, "a", tier="gold") == 1
        assert assert_num_queries(1, _customers_named, "a", using="default") == 0
        with pytest.raises(AssertionError, match="0 queries on 'legacy' but"):
            assert_num_queries(0, Region.objects.count, using="legacy")

    def test_the_callable_form_with_counts_per_alias(self) -> None:
        assert assert_num_queries({"default": 1, "legacy": 1}, _touch_two) == "done"
        with pytest.raises(AssertionError, match="0 queries or less on 'default' but 1 was"):
            assert_max_num_queries({"default": 0}, _touch_two)

    @pytest.mark.parametrize(
        ("args", "kwargs", "error", "match"),
        [
            (("3",), {}, TypeError, r"the expected number of queries is an int"),
            ((1, "legacy"), {}, TypeError, r"connection is a Django database connection"),
            ((1,), {"connection": False}, TypeError, r"connection is a Django database"),
            ((1,), {"using": 1}, TypeError, r"using is a database alias, a str"),
            ((1,), {"using": "legacyy"}, ValueError, r"unknown database alias 'legacyy'"),
            ((1,), {"timeseries": 1}, TypeError, r"unexpected keyword timeseries="),
            ((1, None, "x"), {"info": "y"}, TypeError, r"info given both by position"),
            ((1, None, "x", 3), {}, TypeError, r"the positional arguments are connection"),
            ((), {"using": "legacy"}, TypeError, r"using= go\(es\) with a single number"),
            (({"default": 1}, 5), {}, TypeError, r"a function to run in the block"),
            ((), {"num": "1", "using": "legacy"}, TypeError, "num=, using= go"),
        ],
    )
    def test_bad_calls_are_named(
        self,
        args: tuple[object, ...],
        kwargs: dict[str, object],
        error: type[Exception],
        match: str,
    ) -> None:
        with pytest.raises(error, match=match):
            assert_num_queries(*args, **kwargs)  # type: ignore[call-overload]

    def test_connection_and_using_together(self) -> None:
        with pytest.raises(ValueError, match='"connection" and "using" parameters cannot be'):
            assert_num_queries(1, connection=connections["legacy"], using="legacy")


def _two_region_queries() -> None:
    Region.objects.count()
    Region.objects.exists()


def _touch_two() -> str:
    Customer.objects.count()
    Region.objects.count()
    return "done"


@pytest.mark.django_db(databases=ALL)
def test_under_pytest_a_failure_is_pytest_fail_and_an_assertion_error() -> None:
    from crossprefetch.pytest_plugin import QueryCountFailed

    with pytest.raises(pytest.fail.Exception) as excinfo, assert_num_queries(default=1):
        pass
    assert type(excinfo.value) is QueryCountFailed
    assert isinstance(excinfo.value, AssertionError)
    assert excinfo.value.args[0].startswith("Expected to perform 1 queries on 'default' but 0")


def test_outside_pytest_a_failure_is_an_assertion_error(tmp_path: Path) -> None:
    """A plain script (no pytest plugin): ``AssertionError``, and pytest is not imported."""
    script = tmp_path / "script.py"
    script.write_text(
        "import sys\n"
        "import django\n"
        "from django.conf import settings\n"
        "settings.configure(DATABASES={'default': {'ENGINE': 'django.db.backends.sqlite3',"
        " 'NAME': ':memory:'}}, INSTALLED_APPS=['crossprefetch'])\n"
        "django.setup()\n"
        "from crossprefetch.testing import assert_num_queries\n"
        "try:\n"
        "    with assert_num_queries(1):\n"
        "        pass\n"
        "except AssertionError as error:\n"
        "    print(type(error).__name__, 'pytest' in sys.modules)\n"
        "    print(str(error).splitlines()[0])\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.splitlines() == [
        "AssertionError False",
        "Expected to perform 1 queries on 'default' but 0 were done",
    ]


# -- the one execute wrapper --------------------------------------------------------------------


@pytest.mark.django_db(databases=ALL, transaction=True)
class TestOneWrapper:
    def test_installed_once_first_on_every_connection_of_every_thread(self) -> None:
        from crossprefetch._observe.capture import _observe

        for _ in range(3):
            with capture_queries():
                Customer.objects.count()
        assert connections["default"].execute_wrappers.count(_observe) == 1
        seen: list[list[object]] = []

        def elsewhere() -> None:  # a thread whose connection opens after the app started
            Customer.objects.count()
            seen.append(list(connections["default"].execute_wrappers))
            connections.close_all()

        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
        assert seen[0][:1] == [_observe]
        assert seen[0].count(_observe) == 1

    def test_an_execute_wrapper_block_keeps_removing_its_own(self) -> None:
        """Connecting inside ``connection.execute_wrapper()`` installs the capture's wrapper
        first: the block, which pops the last wrapper, still removes its own."""
        from crossprefetch._observe.capture import _observe

        def mine(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            return execute(sql, params, many, context)

        default = connections["default"]
        default.close()
        default.execute_wrappers.remove(_observe)
        with default.execute_wrapper(mine):
            Customer.objects.count()  # opens the connection: connection_created installs it
        assert default.execute_wrappers[:1] == [_observe]
        assert mine not in default.execute_wrappers

    def test_a_decorated_function_in_two_threads_counts_each_call_alone(self) -> None:
        both = threading.Barrier(2, timeout=10)
        errors: list[BaseException] = []

        @assert_num_queries(default=2)
        def two_counts() -> None:
            Customer.objects.count()
            both.wait()
            Customer.objects.count()

        def run() -> None:
            try:
                two_counts()
            except BaseException as error:
                errors.append(error)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
