"""A key set, or a key -> position mapping, reaches the database as ONE parameter.

Run on the configured backends (SQLite, PostgreSQL) and on the MariaDB server at
``CROSSPREFETCH_MARIADB_HOST``/``_PORT`` (default ``127.0.0.1:3306``, user ``root``), in a
database of its own; the MariaDB tests skip, saying why, when it cannot be reached.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connections
from django.db.models import Q

from crossprefetch._keys.keyset import KeyIn, positions
from crossprefetch.testing import assert_num_queries
from tests.conftest import REQUIRE_SERVICES, T0
from tests.testapp.models import OrderEvent

KEYS = 40_000
#: 64-bit keys: the key map's and rank vector's positions are relative to the lowest key
BIG = 2**40
MARIADB = "keyset_mariadb"
MARIADB_PARAMS = {
    "HOST": os.environ.get("CROSSPREFETCH_MARIADB_HOST", "127.0.0.1"),
    "PORT": os.environ.get("CROSSPREFETCH_MARIADB_PORT", "3306"),
    "USER": os.environ.get("CROSSPREFETCH_MARIADB_USER", "root"),
    "PASSWORD": os.environ.get("CROSSPREFETCH_MARIADB_PASSWORD", ""),
}


def _events(count: int) -> list[OrderEvent]:
    """Events 1..count; every tenth has a null key, every seventh a text key in upper case."""
    return [
        OrderEvent(
            pk=pk,
            timestamp=T0 + dt.timedelta(seconds=pk),
            customer_id=None if pk % 10 == 0 else pk,
            big_ref=None if pk % 10 == 0 else BIG + pk,
            customer_ref=f"REF{pk}" if pk % 7 == 0 else f"ref{pk}",
        )
        for pk in range(1, count + 1)
    ]


@pytest.fixture(scope="module")
def mariadb(django_db_blocker: Any) -> Iterator[str]:
    """A MariaDB alias with the events table, in a database created for this module."""
    try:
        import MySQLdb
    except ImportError as exc:  # pragma: no cover - mysqlclient is in the test extra
        pytest.skip(f"mysqlclient is not installed ({exc})")
    name = f"test_crossprefetch_keyset_{os.getpid()}"
    params = MARIADB_PARAMS
    try:
        server = MySQLdb.connect(
            host=params["HOST"],
            port=int(params["PORT"]),
            user=params["USER"],
            password=params["PASSWORD"],
            connect_timeout=3,
        )
    except MySQLdb.Error as exc:
        reason = f"MariaDB at {params['HOST']}:{params['PORT']} is not reachable ({exc})"
        if REQUIRE_SERVICES:
            pytest.fail(reason)
        pytest.skip(reason)
    server.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    settings = {"ENGINE": "django.db.backends.mysql", "NAME": name, **params}
    configured = connections.configure_settings({"default": settings})["default"]
    connections.settings[MARIADB] = configured
    try:
        with django_db_blocker.unblock(), connections[MARIADB].schema_editor() as editor:
            editor.create_model(OrderEvent)
        yield MARIADB
    finally:
        with django_db_blocker.unblock():
            connections[MARIADB].close()
        del connections[MARIADB]
        del connections.settings[MARIADB]
        server.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        server.close()


def _check_key_set(alias: str) -> None:
    OrderEvent.objects.using(alias).all().delete()
    OrderEvent.objects.using(alias).bulk_create(_events(KEYS + 500), batch_size=5_000)
    keys = list(range(1, KEYS + 1))
    events = OrderEvent.objects.using(alias).filter(KeyIn("customer_id", keys))
    with assert_num_queries(**{alias: 2}):
        count = events.count()
        page = list(events.order_by("customer_id")[:100])
    assert count == KEYS - KEYS // 10  # null keys never match
    assert [e.customer_id for e in page][:3] == [1, 2, 3]
    assert not OrderEvent.objects.using(alias).filter(KeyIn("customer_id", [])).exists()


def _check_text_keys(alias: str) -> None:
    OrderEvent.objects.using(alias).all().delete()
    OrderEvent.objects.using(alias).bulk_create(_events(30))
    found = OrderEvent.objects.using(alias).filter(KeyIn("customer_ref", ["ref1", "ref2", "REF7"]))
    assert sorted(e.pk for e in found) == [1, 2, 7]


#: Far-apart integer keys: too sparse for a rank vector, so they are joined as pairs.
SPARSE = 10**9


def _check_positions(alias: str) -> None:
    """Both forms of the positions: a rank vector (dense integer keys) and joined pairs
    (sparse keys), in both directions, with null, absent and out-of-range keys last."""
    OrderEvent.objects.using(alias).all().delete()
    OrderEvent.objects.using(alias).bulk_create(_events(12))
    # first position: keys 3 and 5 tie at 1, key 2 at 2, key 4 has none (null);
    # second position: 2 before 3 before 5; keys absent from the rows have none (last);
    # event 10 has a null key, event 1's key is outside the ranked keys' range
    rows = [(3, (1, 2)), (5, (1, 3)), (2, (2, 1)), (4, (None, 4))]
    rest = sorted(set(range(1, 13)) - {2, 3, 4, 5}, reverse=True)
    cases = [
        ((False, None), [5, 3, 2, *rest_with(4, rest)]),  # by the first position only
        ((True, None), [2, 5, 3, *rest_with(4, rest)]),
        ((False, True), [5, 3, 2, 4, *rest]),
        ((None, False), [2, 3, 5, 4, *rest]),  # by the second position only
    ]
    for sparse in (False, True):
        ranked = [*rows, (SPARSE, (1, 1))] if sparse else rows
        for directions, expected in cases:
            used = [d if d is not None else False for d in directions]
            events = OrderEvent.objects.using(alias)
            queryset, terms = positions(events, "customer_id", ranked, used)
            terms = [t for t, d in zip(terms, directions, strict=True) if d is not None]
            ordered = queryset.order_by(*terms, "-timestamp")
            with assert_num_queries(**{alias: 2}) as captured:
                assert ordered.count() == 12
                ids = [e.pk for e in ordered]
            assert ids == expected, (sparse, directions)
            count, page = captured[alias]
            assert "crossprefetch_positions" not in count.sql
            assert "CASE" not in count.sql
            assert ("crossprefetch_positions" in page.sql) == sparse, page.sql  # else a vector


def _check_wide_ranks(alias: str) -> None:
    """Ranks compare as numbers whatever their bytes: 65 and 97 ('A' and 'a' as text), and
    ranks whose bytes are not valid text (0xC3A9 and beyond) are read at the right offset."""
    OrderEvent.objects.using(alias).all().delete()
    OrderEvent.objects.using(alias).bulk_create(_events(9))
    rows = [(1, (97,)), (2, (65,)), (3, (0xC3A9,)), (4, (7,)), (5, (0x10000,)), (6, (0xC2,))]
    events = OrderEvent.objects.using(alias)
    for descending, expected in (
        (False, [4, 2, 1, 6, 3, 5]),
        (True, [5, 3, 6, 1, 2, 4]),
    ):
        queryset, (term,) = positions(events, "customer_id", rows, [descending])
        ordered = [e.pk for e in queryset.order_by(term, "pk")]
        assert ordered == [*expected, 7, 8, 9], descending  # no rank: last, by pk


def _check_negation(alias: str) -> None:
    """NOT of a key map is NOT IN: keys outside its range are kept, null keys are not."""
    OrderEvent.objects.using(alias).all().delete()
    OrderEvent.objects.using(alias).bulk_create(_events(300))
    keys = list(range(101, 201))  # a page gets a key map, a count the list
    events = OrderEvent.objects.using(alias).filter(~Q(KeyIn("customer_id", keys)))
    expected = [pk for pk in range(1, 301) if pk % 10 and not 101 <= pk <= 200]
    with assert_num_queries(**{alias: 2}) as captured:
        assert events.count() == len(expected)
        page = [e.pk for e in events.order_by("pk")[:300]]
    assert page == expected
    assert "CASE WHEN" in captured[alias][1].sql


def _check_big_keys(alias: str) -> None:
    """A 64-bit column: a key map (for a page) and a rank vector, relative to the range."""
    OrderEvent.objects.using(alias).all().delete()
    OrderEvent.objects.using(alias).bulk_create(_events(200))
    events = OrderEvent.objects.using(alias)
    keys = [BIG + pk for pk in range(101, 301)]  # 101..200 exist
    found = events.filter(KeyIn("big_ref", keys)).order_by("pk")
    with assert_num_queries(**{alias: 2}) as captured:
        assert found.count() == 90  # null keys never match
        page = [e.pk for e in found[:5]]
    assert page == [101, 102, 103, 104, 105]
    assert "CASE WHEN" in captured[alias][1].sql  # the page: a key map
    rows = [(BIG + pk, (201 - pk,)) for pk in range(101, 201)]  # reversed order
    queryset, (term,) = positions(events, "big_ref", rows, [False])
    ordered = [e.pk for e in queryset.order_by(term, "pk")[:3]]
    assert ordered == [199, 198, 197]  # 200 has a null key: last


def rest_with(pk: int, rest: list[int]) -> list[int]:
    """The events without a position, in the tie-breaking order (-timestamp)."""
    return sorted([pk, *rest], reverse=True)


#: The checks run on the configured backend and on MariaDB alike.
CHECKS = {
    "forty-thousand-keys": _check_key_set,
    "text-keys": _check_text_keys,
    "positions": _check_positions,
    "wide-ranks": _check_wide_ranks,
    "negated-key-set": _check_negation,
    "big-keys": _check_big_keys,
}


@pytest.mark.parametrize("check", CHECKS.values(), ids=CHECKS.keys())
@pytest.mark.django_db(databases=["default", "timeseries"])
def test_configured_backend(check: Callable[[str], None]) -> None:
    check("timeseries")


#: On MariaDB, the text keys' check runs with its collation test below.
MARIADB_CHECKS = {name: check for name, check in CHECKS.items() if name != "text-keys"}


@pytest.mark.parametrize("check", MARIADB_CHECKS.values(), ids=MARIADB_CHECKS.keys())
def test_mariadb(mariadb: str, django_db_blocker: Any, check: Callable[[str], None]) -> None:
    with django_db_blocker.unblock():
        check(mariadb)


def test_text_keys_mariadb(mariadb: str, django_db_blocker: Any) -> None:
    """JSON_TABLE's text column compares with the listed column's own collation."""
    with django_db_blocker.unblock():
        _check_text_keys(mariadb)
        found = OrderEvent.objects.using(mariadb).filter(KeyIn("customer_ref", ["REF1"]))
        assert [e.pk for e in found] == [1]  # utf8mb4's default collation ignores case


def test_one_parameter_on_each_backend(mariadb: str, django_db_blocker: Any) -> None:
    """The statement carries the key set as one parameter, whatever its size."""
    for alias in ("default", mariadb):
        queryset = OrderEvent.objects.using(alias).filter(KeyIn("customer_id", range(1, 5_001)))
        sql, params = queryset.query.get_compiler(alias).as_sql()
        assert len(params) == 1, (connections[alias].vendor, sql)
