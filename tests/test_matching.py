"""Keys matched as the remote database compares them, on every backend.

The ``Supplier.code`` column is case-insensitive on every backend of the suite (SQLite
``NOCASE``, a nondeterministic collation on PostgreSQL, MariaDB's default collation, which
also ignores trailing spaces and folds accents); ``Supplier.handle`` is a custom field
storing text lowercased. The oracle is a per-row ``filter(...).first()``.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from django.db import connections, models

from crossprefetch import CachePolicy, CrossDBPrefetch, prefetch_cross_db
from crossprefetch._keys.matching import KeyPositions, matched_by_database
from crossprefetch.lookup import MISSING
from crossprefetch.testing import assert_num_queries
from tests.test_cache import _isolated_cache  # noqa: F401 (autouse: a cache of the test's own)
from tests.testapp.models import Customer, LowercaseField, Region, Supplier

pytestmark = pytest.mark.django_db(databases=["default", "timeseries", "legacy"])

KEYS = ["ABC", "abc", "Abc ", "ABC  ", "xyz", "XYZ", "Xyz ", "abd", "é", "E", "", "nope"]


@pytest.fixture
def suppliers() -> list[Supplier]:
    return Supplier.objects.bulk_create(
        [
            Supplier(code="ABC", name="Acme", handle="acme"),
            Supplier(code="xyz", name="Xylo", handle="xylo"),
            Supplier(code="e", name="Eta", handle=None),
        ]
    )


def _naive(field: str, key: Any) -> Supplier | None:
    return None if key is None else Supplier.objects.filter(**{field: key}).first()


def _objects(keys: list[Any]) -> list[SimpleNamespace]:
    return [SimpleNamespace(key=key) for key in [*keys, None]]


@pytest.mark.parametrize(
    ("to_field", "keys"),
    [
        ("code", KEYS),
        ("handle", ["ACME", "acme", "Acme", "xylo", "XYLO", "nope", ""]),
    ],
)
@pytest.mark.parametrize("fields", [("name",), None], ids=["projected", "instances"])
def test_every_key_finds_what_a_per_row_get_finds(
    suppliers: list[Supplier], to_field: str, keys: list[str], fields: tuple[str, ...] | None
) -> None:
    objects = _objects(keys)
    expected = {obj.key: _naive(to_field, obj.key) for obj in objects}
    spec = CrossDBPrefetch(Supplier, key="key", to_field=to_field, fields=fields)
    with assert_num_queries(legacy=1, default=0, timeseries=0):
        lookup = prefetch_cross_db(objects, {"s": spec})["s"]
    for obj in objects:
        row = lookup.get_for(obj)
        want = expected[obj.key]
        if want is None:
            assert row is MISSING, obj.key
        elif fields is None:
            assert row.pk == want.pk, obj.key
        else:
            assert row == {"name": want.name}, obj.key
    assert lookup.stats.keys_found == sum(1 for k in set(keys) if expected[k] is not None)


def test_specs_sharing_a_text_key_share_the_query(suppliers: list[Supplier]) -> None:
    objects = [SimpleNamespace(a="abc", b="XYZ "), SimpleNamespace(a="Xyz", b="ABC")]
    specs = {
        "a": CrossDBPrefetch(Supplier, key="a", to_field="code", fields=("name",)),
        "b": CrossDBPrefetch(Supplier, key="b", to_field="code"),
    }
    with assert_num_queries(legacy=1):
        lookups = prefetch_cross_db(objects, specs)
    assert lookups["a"]["abc"] == {"name": "Acme"}
    assert lookups["a"]["Xyz"] == {"name": "Xylo"}
    assert lookups["b"]["ABC"].name == "Acme"
    trailing = _naive("code", "XYZ ")
    assert lookups["b"].get_for(objects[0]) == (trailing if trailing else MISSING)


def test_to_many_rows_under_each_matching_key(suppliers: list[Supplier]) -> None:
    Supplier.objects.create(code="other", name="Acme", handle="ACME-2")
    objects = _objects(["ACME", "acme", "nope"])
    spec = CrossDBPrefetch(Supplier, key="key", to_field="handle", fields=("code",), many=True)
    with assert_num_queries(legacy=1):
        lookup = prefetch_cross_db(objects, {"s": spec})["s"]
    assert lookup["ACME"] == lookup["acme"] == [{"code": "ABC"}]
    assert lookup["nope"] == []


def test_cached_lookups_agree(suppliers: list[Supplier]) -> None:
    """The cache keys entries by normalised key: "abc" and "ABC " are two entries, each
    holding what the database matched it with."""
    objects = _objects(["abc", "ABC ", "ABC", "zzz"])
    spec = CrossDBPrefetch(
        Supplier, key="key", to_field="code", fields=("name",), cache=CachePolicy(60)
    )
    with assert_num_queries(legacy=1):
        cold = prefetch_cross_db(objects, {"s": spec})["s"]
    with assert_num_queries(legacy=0):
        warm = prefetch_cross_db(objects, {"s": spec})["s"]
    for obj in objects:
        naive = _naive("code", obj.key)
        expected = {"name": naive.name} if naive else MISSING
        assert cold.get_for(obj) == warm.get_for(obj) == expected, obj.key


def test_plain_keys_keep_the_in_filter(suppliers: list[Supplier]) -> None:
    """Integers (and text that compares as Python does) select by ``IN`` / ``= ANY``,
    reading the key off the row: no join."""
    spec = CrossDBPrefetch(Supplier, key="key", fields=("name",))
    with assert_num_queries(legacy=1) as captured:
        lookup = prefetch_cross_db(_objects([s.pk for s in suppliers]), {"s": spec})["s"]
    assert len(lookup) == 3
    assert "JOIN" not in captured["legacy"][0].sql


def test_which_fields_the_database_matches() -> None:
    connection = connections["legacy"]
    mysql = connection.vendor == "mysql"
    cases: list[tuple[models.Field[Any, Any], bool]] = [
        (models.IntegerField(), False),
        (models.UUIDField(), False),
        (models.CharField(max_length=5), mysql),
        (models.TextField(), mysql),
        (models.CharField(max_length=5, db_collation="NOCASE"), True),
        (LowercaseField(max_length=5), True),
        (Supplier._meta.get_field("code"), True),
        (Region._meta.get_field("code"), mysql),
        (Customer._meta.get_field("external_id"), False),
    ]
    for field, expected in cases:
        assert matched_by_database([field], connection) is expected, field


def test_keys_sharing_a_database_value_are_sent_once() -> None:
    positions = KeyPositions(["ABC", "abc", "x"], [("abc",), ("abc",), ("x",)])
    assert positions.values == [("abc",), ("x",)]
    assert positions.keys_at(0) == ["ABC", "abc"]
    assert positions.keys_at(1) == ["x"]


def test_a_key_longer_than_the_column_is_not_truncated_into_a_match() -> None:
    """PostgreSQL truncates a cast to ``varchar(n)``: key arrays are cast to ``varchar``."""
    Customer.objects.create(name="C", region_code="ABCDEFGHIJ")
    Supplier.objects.create(code="A" * 20, name="Long")
    objects = [SimpleNamespace(region="ABCDEFGHIJK", code="A" * 21)]
    specs = {
        "c": CrossDBPrefetch(Customer, key="region", to_field="region_code", fields=("name",)),
        "s": CrossDBPrefetch(Supplier, key="code", to_field="code", fields=("name",)),
    }
    lookups = prefetch_cross_db(objects, specs)
    assert lookups["c"].get_for(objects[0]) is MISSING
    expected = _naive("code", "A" * 21)
    assert lookups["s"].get_for(objects[0]) == ({"name": "Long"} if expected else MISSING)


def test_composite_text_keys() -> None:
    """On MariaDB both parts are compared by their collation; elsewhere, as Python does."""
    Customer.objects.create(name="Ada", tenant="acme", region_code="R1")
    Customer.objects.create(name="Bob", tenant="globex", region_code="r2")
    keys = [("acme", "R1"), ("ACME", "r1 "), ("Globex", "R2"), ("globex", "r2"), ("acme", "R2")]
    objects = [SimpleNamespace(t=t, r=r) for t, r in keys]
    spec = CrossDBPrefetch(
        Customer, key=("t", "r"), to_field=("tenant", "region_code"), fields=("name",)
    )
    with assert_num_queries(default=1, legacy=0):
        lookup = prefetch_cross_db(objects, {"c": spec})["c"]
    for obj in objects:
        naive = Customer.objects.filter(tenant=obj.t, region_code=obj.r).first()
        assert lookup.get_for(obj) == ({"name": naive.name} if naive else MISSING), (obj.t, obj.r)
