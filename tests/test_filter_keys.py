"""Keys a filter or an ordering sends to the listed objects' database: one form, never cut.

The parcels (``legacy``) reference vendors (``default``) by code in a column narrower
than the vendors' (``varchar(8)`` against ``varchar(12)``). A vendor ``ABCDEFGHIJ`` must
never match the parcels of vendor ``ABCDEFGH``: a cast of the key set to the column's
type would cut the first into the second, a wrong row and a wrong count. The answers are
compared with the same query in one database (``joined-parcels/``), on whatever backend
the suite runs (SQLite, PostgreSQL, MariaDB).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.db import connections, models
from django.test import override_settings
from rest_framework.test import APIClient

from crossprefetch._keys.keyset import KeyIn, positions
from crossprefetch._keys.values import array_type, json_table_type
from crossprefetch.testing import assert_max_num_queries
from tests.conftest import ALL_DATABASES
from tests.testapp.models import JoinedParcel, Parcel, Vendor

pytestmark = pytest.mark.django_db(databases=ALL_DATABASES)


def load(vendors: list[tuple[str, str, str]], codes: list[str | None]) -> None:
    """Vendors ``(code, name, tier)``, and one parcel per code, in both databases."""
    Vendor.objects.bulk_create(Vendor(code=c, name=n, tier=t) for c, n, t in vendors)
    for i, code in enumerate(codes, start=1):
        Parcel.objects.create(id=i, vendor_code=code, weight=i)
        JoinedParcel.objects.create(id=i, vendor_code=code, weight=i)


def both(api: APIClient, query: str, remote: int = 2) -> tuple[dict[str, Any], dict[str, Any]]:
    """``parcels/`` and the oracle ``joined-parcels/`` for the same query (200 each).

    Ours costs at most two queries on the vendors' database (the filter's or the
    ordering's, and the page's names when the filter's rows cannot serve them) and two on
    the parcels' (count and page); ``remote`` more with an ordering beside the filter.
    """
    with assert_max_num_queries(default=remote, legacy=2):
        ours = api.get(f"/api/parcels/?page_size=100&{query}")
    theirs = api.get(f"/api/joined-parcels/?page_size=100&{query}")
    assert ours.status_code == theirs.status_code == 200, (ours.content, theirs.content)
    return ours.json(), theirs.json()


@pytest.fixture
def cut_codes() -> None:
    load(
        [("ABCDEFGHIJ", "Gold Ltd", "gold"), ("ABCDEFGH", "Silver Ltd", "silver")],
        ["ABCDEFGH", "ABCDEFGH", None, "ZZ"],
    )


@pytest.mark.parametrize(
    ("query", "ids"),
    [
        ("vendor_tier=gold", []),
        ("vendor_tier=silver", [1, 2]),
        ("vendor_tier__in=gold", []),
        ("vendor_name=gold", []),
        ("vendor_code__startswith=ABCDEFGHI", []),
        ("no_vendor=true", [3, 4]),
        ("no_vendor=false", [1, 2]),
    ],
)
def test_a_key_longer_than_the_column_matches_no_row(
    cut_codes: None, query: str, ids: list[int]
) -> None:
    ours, theirs = both(APIClient(), query)
    assert [row["id"] for row in ours["results"]] == ids
    assert ours == theirs


@pytest.mark.parametrize("ordering", ["vendor_name", "-vendor_name", "vendor_tier"])
def test_a_key_longer_than_the_column_ranks_no_row(cut_codes: None, ordering: str) -> None:
    ours, theirs = both(APIClient(), f"ordering={ordering}")
    assert ours == theirs
    named = {row["id"]: row["vendor_name"] for row in ours["results"]}
    assert named == {1: "Silver Ltd", 2: "Silver Ltd", 3: None, 4: None}


def test_many_text_keys_longer_than_the_column(db: None) -> None:
    """Past the sizes where the key set changes form, still no key is cut."""
    vendors = [(f"K{i:07d}XY", f"long {i}", "gold") for i in range(300)]
    vendors += [(f"K{i:07d}", f"short {i}", "silver") for i in range(0, 300, 3)]
    load(vendors, [f"K{i:07d}" for i in range(300)])
    api = APIClient()
    ours, theirs = both(api, "vendor_tier=gold")
    assert ours["count"] == theirs["count"] == 0
    ours, theirs = both(api, "vendor_tier=silver&ordering=-vendor_name", remote=3)
    assert ours == theirs
    assert ours["count"] == 100


def test_hostile_remote_keys_are_never_sent() -> None:
    """A NUL the remote database stores but the local one refuses (PostgreSQL): the key
    matches no row there, and the other keys of the filter still do."""
    vendors = [("OK", "fine", "gold"), ("ZZ", "zed", "gold")]
    if connections["default"].vendor != "postgresql":
        vendors.append(("BAD\x00", "nul", "gold"))
    load(vendors, ["OK", "BAD", None])
    ours, theirs = both(APIClient(), "vendor_tier=gold&ordering=vendor_name", remote=3)
    assert [row["id"] for row in ours["results"]] == [1]
    assert ours == theirs


def test_the_key_set_itself_carries_no_length() -> None:
    """Even a key nobody normalised is sent whole: in a key list and in ranked positions."""
    load([], ["ABCDEFGH", "ABCDEFGHIJ"[:8], "ZZ"])
    assert not Parcel.objects.filter(KeyIn("vendor_code", ["ABCDEFGHIJ"])).exists()
    assert list(
        Parcel.objects.filter(KeyIn("vendor_code", ["ABCDEFGHIJ", "ZZ"])).values_list(
            "id", flat=True
        )
    ) == [3]
    ranked, (order,) = positions(
        Parcel.objects.all(), "vendor_code", [("ABCDEFGHIJ", (1,)), ("ZZ", (2,))], [False]
    )
    assert list(ranked.order_by(order, "id").values_list("id", flat=True)) == [3, 1, 2]


@pytest.mark.parametrize(
    ("field", "element"),
    [
        (models.CharField(max_length=8), "varchar"),
        (models.DecimalField(max_digits=12, decimal_places=2), "numeric"),
        (models.IntegerField(), "integer"),
        (models.UUIDField(), "uuid"),
        (models.DateTimeField(), "timestamp with time zone"),
    ],
)
def test_postgresql_arrays_take_the_type_without_its_modifier(
    field: models.Field[Any, Any], element: str
) -> None:
    from django.db.backends.postgresql.base import DatabaseWrapper

    postgresql = DatabaseWrapper({**settings.DATABASES["default"], "NAME": "unused"}, "unused")
    assert array_type(field, postgresql) == element
    assert "(" not in array_type(field, postgresql)


def test_a_json_table_column_is_as_wide_as_the_longest_key() -> None:
    field = Parcel._meta.get_field("vendor_code")
    connection = connections["legacy"]
    assert json_table_type(field, connection, ["ABCDEFGHIJ"]) == "VARCHAR(10)"
    assert json_table_type(field, connection, ["AB"]) == "VARCHAR(8)"
    assert json_table_type(field, connection, ["A" * 20_000]) == "LONGTEXT"


@override_settings(CROSSPREFETCH={"MAX_FILTER_VALUE_LENGTH": 100_000})
@pytest.mark.parametrize("text", ["a" * 50_001, "%" * 30_000, "é" * 30_000])
def test_a_pattern_too_long_for_sqlite_is_400_never_500(text: str) -> None:
    """``icontains`` on a ``TextField`` (no ``max_length``) past the setting's default: SQLite
    refuses patterns over 50,000 bytes ("LIKE or GLOB pattern too complex"), so the value
    is refused first, naming the filter; the other databases answer as the join does."""
    load([("ABCD", "Ada", "gold")], ["ABCD"])
    api = APIClient()
    response = api.get("/api/parcels/", {"vendor_notes": text})
    if connections["default"].vendor == "sqlite":
        assert response.status_code == 400, response.content
        (message,) = response.json()["vendor_notes"]
        assert message.startswith("Filter 'vendor_notes': ")
        assert "SQLite" in message
    else:
        ours, theirs = both(api, urlencode({"vendor_notes": text}))
        assert ours == theirs
        assert ours["count"] == 0
