"""Aggregates go through the fetch chain: concurrent requests share one grouped query, a
failing database degrades them, a filter on them answers 503 rather than a wrong list."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.db import DatabaseError, connections
from django.db.models import Count, Sum
from django.test import RequestFactory

from crossprefetch import CrossDBAggregate, Lookup, prefetch_cross_db
from crossprefetch._fetch import breaker, failure
from crossprefetch.lookup import MISSING
from crossprefetch.testing import assert_num_queries, capture_queries
from tests.conftest import ALL_DATABASES
from tests.servers import database_alias
from tests.testapp.aggregate_views import MemberActivityViewSet, activity
from tests.testapp.models import Entry, Member

if TYPE_CHECKING:
    from pytest_django.plugin import DjangoDbBlocker

REFERENCE = "aggregate_reference"


@pytest.mark.django_db(databases=ALL_DATABASES, transaction=True)
def test_concurrent_requests_share_one_grouped_query() -> None:
    members = [Member.objects.create(name=f"m{i}") for i in range(8)]
    Entry.objects.bulk_create(
        Entry(member_id=member.id, amount=Decimal(i))
        for i, member in enumerate(members)
        for _ in "xy"
    )
    spec = activity(coalesce=0.5)
    n = 8
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    sent = [0] * n

    def request(i: int) -> None:
        try:
            with capture_queries() as captured:
                barrier.wait(timeout=30)
                results[i] = prefetch_cross_db(members[i : i + 1], {"activity": spec})
            sent[i] = sum(not query.shared for query in captured["timeseries"])
        except BaseException as exc:  # reported by the assertions below
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=request, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(sent) <= 2  # a loaded machine may start one straggler's batch late
    coalesced = 0
    for i, result in enumerate(results):
        assert isinstance(result, dict), result
        lookup: Lookup = result["activity"]
        member = members[i]
        assert dict(lookup.items()) == {member.id: _expected(i)}  # only its own key
        coalesced += lookup.stats.coalesced_with > 0
    assert coalesced >= n - 2


def _expected(i: int) -> dict[str, Any]:
    return {
        "entries": 2,
        "paid": 2,
        "kinds": 1,
        "spent": Decimal(2 * i),
        "spent_or_zero": Decimal(2 * i),
        "average": None,
        "smallest": None,
        "largest": None,
        "last": None,
    }


class BrokenFile:
    """A SQLite file holding ``Entry`` rows, made unreadable by the test."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def break_(self) -> None:
        connections[REFERENCE].close()
        shutil.move(self.path, self.path.with_suffix(".saved"))
        self.path.mkdir()  # "unable to open database file"


@pytest.fixture
def reference(tmp_path: Path, django_db_blocker: DjangoDbBlocker) -> Iterator[BrokenFile]:
    path = tmp_path / "reference.sqlite3"
    sqlite = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)}
    with database_alias(REFERENCE, sqlite, django_db_blocker):
        with connections[REFERENCE].schema_editor() as editor:
            editor.create_model(Entry)
        yield BrokenFile(path)
    breaker.databases.reset()
    failure.reset()


def _spec(**options: Any) -> CrossDBAggregate:
    return CrossDBAggregate(
        "testapp.Entry",
        key="id",
        to_field="member_id",
        aggregates={"entries": Count("id"), "spent": Sum("amount")},
        using=REFERENCE,
        **options,
    )


@pytest.mark.django_db(databases=["default"])
def test_a_failing_database_degrades_the_aggregates(reference: BrokenFile) -> None:
    member = Member.objects.create(name="a")
    Entry.objects.using(REFERENCE).create(member_id=member.id, amount=Decimal("4"))
    assert prefetch_cross_db([member], {"a": _spec(on_error="degrade")})["a"][member.id] == {
        "entries": 1,
        "spent": Decimal("4"),
    }
    reference.break_()
    lookup = prefetch_cross_db([member], {"a": _spec(on_error="degrade")})["a"]
    assert lookup.degraded
    assert lookup.get_for(member) is MISSING  # the field renders its default
    with pytest.raises(DatabaseError):
        prefetch_cross_db([member], {"a": _spec(on_error="raise")})


@pytest.mark.django_db(databases=["default"])
def test_a_filter_on_aggregates_of_a_failing_database_is_a_503(reference: BrokenFile) -> None:
    class View(MemberActivityViewSet):
        cross_db_fields = {"activity": _spec(on_error="degrade")}

    Member.objects.create(name="a")
    reference.break_()
    view = View.as_view({"get": "list"})
    with assert_num_queries(default=0):
        response = view(RequestFactory().get("/?entries__gte=1"))
    assert response.status_code == 503
    assert "Filter 'entries__gte'" in response.data["detail"]
