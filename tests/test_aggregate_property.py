"""On random data, aggregates across databases equal ``annotate()`` through a join in one.

The oracle is ``Member.objects.annotate(...)`` over ``JoinedEntry`` (``joined_entries``),
the same rows next to ``Member`` with a real ForeignKey (a ``LEFT JOIN … GROUP BY``),
filtered by the same lookups. The ordering oracle sorts the annotated rows by the
documented rule: members without rows, or whose aggregate is null, last in both
directions; ties by the view's ordering. Fields, counts, pages and their order must be
identical, the aggregates read from ``timeseries`` and from ``legacy`` (PostgreSQL and
MariaDB in the ``mariadb`` suite).
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
from django.db.models import Avg, Count, Max, Min, Q, Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework import serializers
from rest_framework.test import APIClient

from crossprefetch.testing import assert_max_num_queries
from tests.conftest import ALL_DATABASES, T0
from tests.testapp.aggregate_views import AGGREGATES
from tests.testapp.models import Entry, JoinedEntry, Member

pytestmark = pytest.mark.django_db(databases=ALL_DATABASES)

#: The aggregates of the view, through the join.
ORACLE = {
    "entries": Count("joined_entries__id"),
    "paid": Count("joined_entries__id", filter=Q(joined_entries__kind="paid")),
    "kinds": Count("joined_entries__kind", distinct=True),
    "spent": Sum("joined_entries__amount"),
    "spent_or_zero": Sum("joined_entries__amount", default=Decimal("0")),
    "average": Avg("joined_entries__quantity"),
    "smallest": Min("joined_entries__quantity"),
    "largest": Max("joined_entries__quantity"),
    "last": Max("joined_entries__at"),
}
assert set(ORACLE) == set(AGGREGATES)

MINUTES = [T0 + dt.timedelta(minutes=m) for m in range(4)]
AMOUNTS = [None, Decimal("1.00"), Decimal("2.50"), Decimal("9.00")]
QUANTITIES = [None, 0, 1, 5]
#: Values a filter on each aggregate is tried with: those the data yields, and between.
VALUES: dict[str, list[Any]] = {
    "entries": [0, 1, 2, 4],
    "paid": [0, 1, 3],
    "kinds": [0, 1, 2],
    "spent": [Decimal(v) for v in ("0", "1", "2.5", "3.5", "9", "11.5", "12.5")],
    "spent_or_zero": [Decimal(v) for v in ("0", "1", "2.5", "9", "10")],
    "average": [0, 0.5, 1, 2.5, 5],
    "smallest": [0, 1, 5],
    "largest": [0, 1, 5],
    "last": MINUTES,
}
LOOKUPS = ["exact", "gt", "gte", "lt", "lte", "isnull", "in"]
RENDER = {
    "spent": serializers.DecimalField(12, 2),
    "spent_or_zero": serializers.DecimalField(12, 2),
    "average": serializers.FloatField(),
    "last": serializers.DateTimeField(),
}
NAMES = ["ann", "bob", "bob", "cy"]


@st.composite
def datasets(draw: st.DrawFn) -> tuple[list[str], list[dict[str, Any]]]:
    members = draw(st.lists(st.sampled_from(NAMES), max_size=8))
    ids = list(range(1, len(members) + 1))
    owner = (st.sampled_from(ids) if ids else st.nothing()) | st.sampled_from([None, 500])
    entries = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "member_id": owner,
                    "kind": st.sampled_from(["paid", "refund"]),
                    "amount": st.sampled_from(AMOUNTS),
                    "quantity": st.sampled_from(QUANTITIES),
                    "at": st.sampled_from([None, *MINUTES]),
                }
            ),
            max_size=20,
        )
    )
    return members, entries


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.datetime) else str(value)


@st.composite
def queries(draw: st.DrawFn) -> tuple[dict[str, str], list[tuple[str, str, Any]], list[str]]:
    params: dict[str, str] = {}
    tests: list[tuple[str, str, Any]] = []
    for name in draw(st.lists(st.sampled_from(list(AGGREGATES)), unique=True, max_size=2)):
        lookup = draw(st.sampled_from(LOOKUPS))
        value: Any
        if lookup == "isnull":
            value = draw(st.booleans())
            raw = "true" if value else "false"
        elif lookup == "in":
            value = draw(st.lists(st.sampled_from(VALUES[name]), min_size=1, max_size=3))
            raw = ",".join(map(_text, value))
        else:
            value = draw(st.sampled_from(VALUES[name]))
            raw = _text(value)
        params[f"{name}__{lookup}"] = raw
        tests.append((name, lookup, value))
    terms = draw(st.lists(st.sampled_from([*AGGREGATES, "name"]), unique=True, max_size=2))
    ordering = [f"{'-' if draw(st.booleans()) else ''}{term}" for term in terms]
    if ordering:
        params["ordering"] = ",".join(ordering)
    params["page_size"] = str(draw(st.integers(1, 5)))
    params["page"] = str(draw(st.integers(1, 3)))
    return params, tests, ordering


def _load(alias: str, names: list[str], entries: list[dict[str, Any]]) -> None:
    JoinedEntry.objects.all().delete()
    Member.objects.all().delete()
    for database in ("timeseries", "legacy"):
        Entry.objects.using(database).all().delete()
    Member.objects.bulk_create(Member(id=i, name=n) for i, n in enumerate(names, start=1))
    Entry.objects.using(alias).bulk_create(Entry(**entry) for entry in entries)
    JoinedEntry.objects.bulk_create(JoinedEntry(**entry) for entry in entries)


def _oracle(
    entries: list[dict[str, Any]], tests: list[tuple[str, str, Any]], ordering: list[str]
) -> list[dict[str, Any]]:
    """The members as the view must list them, through the join."""
    queryset = Member.objects.annotate(**ORACLE)
    for name, lookup, value in tests:
        queryset = queryset.filter(**{f"{name}__{lookup}": value})
    rows = [
        {"id": member.id, "name": member.name, **{n: getattr(member, n) for n in ORACLE}}
        for member in queryset.order_by("id")
    ]
    with_rows = {entry["member_id"] for entry in entries}
    # stable sorts, the last term first; the view's own ordering (id) is already applied
    for term in reversed(ordering):
        name = term.lstrip("-")
        descending = term.startswith("-")
        if name == "name":
            rows.sort(key=lambda row: row["name"], reverse=descending)
            continue

        def value(row: dict[str, Any], name: str = name) -> Any:
            return row[name] if row["id"] in with_rows else None

        present = [row for row in rows if value(row) is not None]
        present.sort(key=value, reverse=descending)
        rows = present + [row for row in rows if value(row) is None]
    for row in rows:
        for name, field in RENDER.items():
            if row[name] is not None:
                row[name] = field.to_representation(row[name])
    return rows


def _same(mine: dict[str, Any], theirs: dict[str, Any]) -> bool:
    """Rows equal; averages to the precision both databases keep (MariaDB: 4 digits)."""
    if mine.keys() != theirs.keys():
        return False
    for key, value in mine.items():
        other = theirs[key]
        if key == "average" and value is not None and other is not None:
            if not math.isclose(value, other, abs_tol=1e-3):
                return False
        elif value != other:
            return False
    return True


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@pytest.mark.parametrize(
    ("alias", "url"), [("timeseries", "members"), ("legacy", "legacy-members")]
)
@given(data=datasets(), query=queries())
def test_same_fields_counts_and_order_as_annotate_through_a_join(
    alias: str,
    url: str,
    data: tuple[list[str], list[dict[str, Any]]],
    query: tuple[dict[str, str], list[tuple[str, str, Any]], list[str]],
) -> None:
    names, entries = data
    params, tests, ordering = query
    _load(alias, names, entries)
    expected = _oracle(entries, tests, ordering)
    remote = 1 + bool(tests) + any(t.lstrip("-") in AGGREGATES for t in ordering)
    others = {a: 0 for a in ("timeseries", "legacy") if a != alias}
    with assert_max_num_queries(default=2, **{alias: remote}, **others):
        response = APIClient().get(f"/api/{url}/?{urlencode(params)}")
    size, page = int(params["page_size"]), int(params["page"])
    if page > max(1, math.ceil(len(expected) / size)):
        assert response.status_code == 404, response.content
        return
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == len(expected)
    wanted = expected[(page - 1) * size : page * size]
    assert [row["id"] for row in body["results"]] == [row["id"] for row in wanted]
    for mine, theirs in zip(body["results"], wanted, strict=True):
        assert _same(mine, theirs), (mine, theirs)
