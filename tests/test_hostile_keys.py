"""Keys the remote database cannot store are missing references, on every backend.

A NUL character (PostgreSQL refuses it), a lone surrogate (no driver encodes it), text
longer than the column, an integer beyond the column, a fraction or a bool for an integer
field: each reads as missing, is never sent, and every other key of the page is found.
The tables run on the test settings' backend: SQLite, PostgreSQL, or MariaDB
(``CROSSPREFETCH_TEST_DB=mariadb`` puts ``default`` and ``legacy`` there).
"""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from django.db import connections, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from crossprefetch import ContextLookupField, CrossDBPrefetch, prefetch_cross_db
from crossprefetch.lookup import MISSING
from crossprefetch.testing import assert_max_num_queries, capture_queries
from tests.conftest import ALL_DATABASES
from tests.testapp.models import Customer, Region

pytestmark = pytest.mark.django_db(databases=ALL_DATABASES)

MAX_CODE = Region._meta.get_field("code").max_length  # 10

#: Text keys no database stores (or that would fail the query), and where that holds.
HOSTILE_TEXT = [
    ("nul", "R0\x00", {"postgresql", "sqlite"}),
    ("lone_surrogate", "R\ud800", {"postgresql", "mysql", "sqlite"}),
    ("surrogate_pair_halves", "\udc00R0", {"postgresql", "mysql", "sqlite"}),
    ("over_long", "R" * (MAX_CODE + 1), {"postgresql"}),
]
HOSTILE_INTEGERS = [
    ("beyond_bigint", 2**63),
    ("below_bigint", -(2**63) - 1),
    ("huge", 10**40),
    ("fraction", 1.5),
    ("decimal_fraction", Decimal("2.5")),
    ("nan", float("nan")),
    ("infinity", float("inf")),
    ("true", True),
    ("false", False),
    ("text", "abc"),
]


class RegionRowSerializer(serializers.Serializer[Any]):
    code = serializers.CharField()
    region_name = ContextLookupField("regions", "name", default="Unknown region")


class CustomerRowSerializer(serializers.Serializer[Any]):
    ref = serializers.CharField()
    customer_name = ContextLookupField("customers", "name", default="Unknown customer")


def _regions_page(alias: str, codes: list[Any]) -> tuple[dict[Any, Any], list[dict[str, Any]]]:
    """The lookup of ``codes`` against ``alias``'s regions, and the page rendered with it."""
    objects = [SimpleNamespace(code=repr(code), region_code=code) for code in codes]
    spec = CrossDBPrefetch(
        Region.objects.using(alias), key="region_code", to_field="code", fields=("name",)
    )
    lookups = prefetch_cross_db(objects, {"regions": spec})
    page = RegionRowSerializer(objects, many=True, context=lookups).data
    found = {
        code: lookups["regions"].get_for(obj) for code, obj in zip(codes, objects, strict=True)
    }
    return found, list(page)


def _check_text_keys(alias: str) -> None:
    vendor = connections[alias].vendor
    stored = {"R0": "Region 0", "R1": "Region 1"}
    for code, name in stored.items():
        Region.objects.using(alias).update_or_create(code=code, defaults={"name": name})
    for _name, key, refused_by in HOSTILE_TEXT:
        with capture_queries() as captured:
            found, page = _regions_page(alias, ["R0", key, "R1", None])
        assert found["R0"]["name"] == "Region 0"
        assert found["R1"]["name"] == "Region 1"
        assert found[key] is MISSING, (vendor, key)
        assert [row["region_name"] for row in page] == [
            "Region 0",
            "Unknown region",
            "Region 1",
            "Unknown region",
        ]
        if alias not in captured.aliases:  # an alias added at run time, not observed
            continue
        assert captured.count(alias) == 1
        if vendor in refused_by:  # never sent
            sent = [_flat(q.params) for q in captured[alias]]
            assert all(key not in values for values in sent), sent


def _flat(params: Any) -> list[Any]:
    """The values of a query's parameters, an array parameter's items included."""
    return [v for p in params for v in (p if isinstance(p, list | tuple) else [p])]


@pytest.mark.parametrize("alias", ["legacy"])
def test_text_keys_the_database_cannot_store_are_missing(alias: str) -> None:
    _check_text_keys(alias)


@pytest.mark.parametrize(("name", "key"), HOSTILE_INTEGERS, ids=[h[0] for h in HOSTILE_INTEGERS])
def test_integer_keys_the_field_cannot_hold_are_missing(name: str, key: Any) -> None:
    """Customers 1, 2 and 3 exist: 1.5, Decimal("2.5") and True must not find 1 or 2."""
    one, two, three = (Customer.objects.create(pk=pk, name=f"Customer {pk}") for pk in (1, 2, 3))
    objects = [
        SimpleNamespace(ref=str(c), customer_id=k)
        for c, k in [(one, 1), (two, "2"), (three, 3.0), ("hostile", key)]
    ]
    spec = CrossDBPrefetch("testapp.Customer", key="customer_id", fields=("name",))
    with assert_max_num_queries(default=1):
        lookups = prefetch_cross_db(objects, {"customers": spec})
    page = CustomerRowSerializer(objects, many=True, context=lookups).data
    assert [row["customer_name"] for row in page] == [
        "Customer 1",
        "Customer 2",
        "Customer 3",
        "Unknown customer",
    ]
    assert lookups["customers"].stats.keys_found == 3


def test_bool_keys_are_missing_beside_the_integers_they_equal() -> None:
    """``True == 1``: the page holds both; the customer whose id is 1 is found, True is not."""
    first = Customer.objects.create(pk=1, name="One")
    Customer.objects.create(pk=2, name="Two")
    spec = CrossDBPrefetch("testapp.Customer", key="customer_id", fields=("name",))
    for order in ([True, 1, False], [1, True, 0]):
        objects = [SimpleNamespace(customer_id=k) for k in order]
        lookup = prefetch_cross_db(objects, {"c": spec})["c"]
        found = [lookup.get_for(o) for o in objects]
        by_key = {
            type(o.customer_id).__name__ + str(o.customer_id): f
            for o, f in zip(objects, found, strict=True)
        }
        assert by_key["int1"]["name"] == first.name
        assert by_key["boolTrue"] is MISSING
        assert all(v is MISSING for k, v in by_key.items() if k in {"boolFalse", "int0"})
        with pytest.raises(KeyError):
            lookup[True]
        assert lookup[1]["name"] == first.name


# PostgreSQL: any text, the property -------------------------------------------------------

any_text = st.text(st.characters(exclude_categories=()), max_size=MAX_CODE + 2)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stored=st.lists(any_text, max_size=6, unique=True), asked=st.lists(any_text, max_size=12))
def test_any_text_key_is_found_exactly_when_stored(stored: list[str], asked: list[str]) -> None:
    alias = "legacy"
    if connections[alias].vendor != "postgresql":
        pytest.skip("the property runs on PostgreSQL (CROSSPREFETCH_TEST_DB=postgres)")
    storable = [s for s in stored if "\x00" not in s and len(s) <= MAX_CODE and _encodes(s)]
    keys = asked + storable[::2]
    with transaction.atomic(using=alias):
        Region.objects.using(alias).bulk_create(
            Region(code=code, name=f"name of {code!r}") for code in storable
        )
        with assert_max_num_queries(legacy=1):
            found, page = _regions_page(alias, keys)
        transaction.set_rollback(True, using=alias)
    for key in keys:
        if key in storable:
            assert found[key]["name"] == f"name of {key!r}"
        else:
            assert found[key] is MISSING
    assert len(page) == len(keys)


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def test_a_longer_key_the_collation_equals_is_found_as_get_finds_it() -> None:
    """Longer than the column, yet equal to a stored code where the collation pads with
    spaces (MariaDB/MySQL): found exactly when a per-row ``get()`` finds it."""
    Region.objects.create(code="R0", name="Region 0")
    key = "R0" + " " * MAX_CODE
    found, _ = _regions_page("legacy", [key])
    expected = Region.objects.filter(code=key).first()
    if expected is None:
        assert found[key] is MISSING
    else:
        assert found[key]["name"] == expected.name == "Region 0"
