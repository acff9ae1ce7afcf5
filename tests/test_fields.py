"""ContextLookupField: defaults, fallbacks, nesting, strictness and error messages."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from rest_framework import serializers

from crossprefetch import ContextLookupField, CrossDBPrefetch, prefetch_cross_db
from crossprefetch.conf import conf
from crossprefetch.testing import assert_num_queries
from tests.testapp.models import Customer

pytestmark = pytest.mark.django_db(databases=["default", "timeseries", "legacy"])


@pytest.fixture
def alice() -> Customer:
    return Customer.objects.create(name="Alice", tier="gold", email="alice@example.com")


def render(
    field: ContextLookupField,
    items: list[Any],
    specs: dict[str, CrossDBPrefetch] | None,
    **context: Any,
) -> list[Any]:
    class ItemSerializer(serializers.Serializer[Any]):
        value = field

    if specs is not None:
        context.update(prefetch_cross_db(items, specs))
    return [row["value"] for row in ItemSerializer(items, many=True, context=context).data]


def spec(**kwargs: Any) -> dict[str, CrossDBPrefetch]:
    kwargs.setdefault("fields", ("name", "tier", "email"))
    return {"c": CrossDBPrefetch(Customer, key="customer_id", **kwargs)}


def items(*keys: Any) -> list[SimpleNamespace]:
    return [SimpleNamespace(customer_id=key) for key in keys]


FIELD_TABLE = [
    ("attr", lambda: ContextLookupField("c", "name"), spec(), ["Alice", None, None]),
    ("default", lambda: ContextLookupField("c", "name", default="?"), spec(), ["Alice", "?", "?"]),
    (
        "fallback wins over default",
        lambda: ContextLookupField(
            "c", "name", default="?", fallback=lambda o: f"#{o.customer_id}"
        ),
        spec(),
        ["Alice", "#None", "#404"],
    ),
    (
        "whole projected row",
        lambda: ContextLookupField("c"),
        spec(fields=("name",)),
        [{"name": "Alice"}, None, None],
    ),
    (
        "attr of a model instance",
        lambda: ContextLookupField("c", "email"),
        spec(fields=None),
        ["alice@example.com", None, None],
    ),
    (
        "dotted attr",
        lambda: ContextLookupField("c", "external_id.hex"),
        spec(fields=None),
        lambda alice: [alice.external_id.hex, None, None],
    ),
    (
        "output_field",
        lambda: ContextLookupField("c", "tier", output_field=serializers.CharField()),
        spec(),
        ["gold", None, None],
    ),
    (
        "nested serializer",
        lambda: ContextLookupField("c", serializer=CustomerOut),
        spec(fields=None),
        [{"name": "Alice", "tier": "gold"}, None, None],
    ),
    (
        "to-many with attr",
        lambda: ContextLookupField("c", "name"),
        {"c": CrossDBPrefetch(Customer, key="tier", to_field="tier", fields=("name",), many=True)},
        [["Alice"], None, []],  # a null key is missing; a key without rows is []
    ),
]


class CustomerOut(serializers.Serializer[Any]):
    name = serializers.CharField()
    tier = serializers.CharField()


@pytest.mark.parametrize(
    ("name", "make_field", "specs", "expected"), FIELD_TABLE, ids=[r[0] for r in FIELD_TABLE]
)
def test_field_output(
    alice: Customer, name: str, make_field: Any, specs: Any, expected: list[Any]
) -> None:
    if name == "to-many with attr":
        objects = [
            SimpleNamespace(tier="gold"),
            SimpleNamespace(tier=None),
            SimpleNamespace(tier="none"),
        ]
    else:
        objects = items(alice.pk, None, 404)
    if callable(expected):
        expected = expected(alice)
    with assert_num_queries(total=1):
        assert render(make_field(), objects, specs) == expected


def test_output_field_renders_decimals(alice: Customer) -> None:
    field = ContextLookupField(
        "c", "pk", output_field=serializers.DecimalField(max_digits=5, decimal_places=1)
    )
    out = render(field, items(alice.pk), spec(fields=None))
    assert out == [str(Decimal(alice.pk).quantize(Decimal("0.1")))]


def test_no_query_while_serializing(alice: Customer) -> None:
    objects = items(*([alice.pk, None, 404] * 50))
    lookups = prefetch_cross_db(objects, spec())

    class ItemSerializer(serializers.Serializer[Any]):
        name = ContextLookupField("c", "name")
        tier = ContextLookupField("c", "tier")

    with assert_num_queries(total=0):
        data = ItemSerializer(objects, many=True, context=lookups).data
    assert len(data) == 150


@override_settings(CROSSPREFETCH={"STRICT": True})
def test_missing_lookup_is_a_clear_error_when_strict(alice: Customer) -> None:
    class EventSerializer(serializers.Serializer[Any]):
        customer_name = ContextLookupField("customers", "name")

    with pytest.raises(ImproperlyConfigured) as excinfo:
        EventSerializer(items(alice.pk), many=True, context={}).data  # noqa: B018
    message = str(excinfo.value)
    for part in (
        "EventSerializer.customer_name",
        "'customers'",
        "cross_db_fields",
        "CrossDBPrefetchMixin",
        "prefetch_cross_db",
        "STRICT",
    ):
        assert part in message


@override_settings(CROSSPREFETCH={"STRICT": False})
def test_missing_lookup_renders_the_default_when_not_strict(alice: Customer) -> None:
    field = ContextLookupField("customers", "name", fallback=lambda o: "n/a")
    with assert_num_queries(total=0):
        assert render(field, items(alice.pk), None) == ["n/a"]


@override_settings(DEBUG=True)
def test_strict_follows_debug_by_default(alice: Customer) -> None:
    with pytest.raises(ImproperlyConfigured, match="has no lookup 'customers'"):
        render(ContextLookupField("customers", "name"), items(alice.pk), None)


@pytest.mark.parametrize(
    ("debug", "testing", "setting", "strict"),
    [
        (False, True, None, True),  # a test run (this one), DEBUG off
        (True, False, None, True),
        (False, False, None, False),  # production
        (False, True, False, False),  # an explicit value wins
        (True, True, False, False),
        (False, False, True, True),
    ],
)
def test_strict_default(
    monkeypatch: pytest.MonkeyPatch,
    debug: bool,
    testing: bool,
    setting: bool | None,
    strict: bool,
) -> None:
    from django.test import utils

    from crossprefetch import _test_run

    monkeypatch.setattr(_test_run, "plugin_active", testing)
    if not testing:  # as after teardown_test_environment()
        monkeypatch.delattr(utils._TestState, "saved_data")
    overrides = {} if setting is None else {"STRICT": setting}
    with override_settings(DEBUG=debug, CROSSPREFETCH=overrides):
        assert conf.STRICT is strict


def test_django_test_environment_alone_turns_strict_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """``manage.py test``: no pytest plugin, Django's test environment set up."""
    from django.test import utils

    from crossprefetch import _test_run

    monkeypatch.setattr(_test_run, "plugin_active", False)
    assert hasattr(utils._TestState, "saved_data")  # pytest-django set it up, as the runner does
    with override_settings(DEBUG=False, CROSSPREFETCH={}):
        assert conf.STRICT is True


@pytest.mark.parametrize(
    ("attr", "hint"),
    [
        ("email", "Add 'email' to the spec's fields (it selects 'name', 'tier')."),
        ("nmae", "Did you mean 'name'? The spec selects 'name', 'tier'."),
        ("emial", "testapp.Customer has no field 'emial'; did you mean 'email'?"),
    ],
)
def test_attr_outside_the_projection_is_a_clear_error(
    alice: Customer, attr: str, hint: str
) -> None:
    with pytest.raises(ImproperlyConfigured) as excinfo:
        render(ContextLookupField("c", attr), items(alice.pk), spec(fields=("name", "tier")))
    assert f"reads {attr!r}" in str(excinfo.value)
    assert hint in str(excinfo.value)


def test_whole_instance_without_serializer_is_a_clear_error(alice: Customer) -> None:
    with pytest.raises(ImproperlyConfigured, match="yields model instances"):
        render(ContextLookupField("c"), items(alice.pk), spec(fields=None))


def test_context_value_must_be_a_lookup(alice: Customer) -> None:
    with pytest.raises(
        ImproperlyConfigured, match=r"context\['c'\] is a dict, not a crossprefetch"
    ):
        render(ContextLookupField("c", "name"), items(alice.pk), None, c={alice.pk: "x"})


@override_settings(CROSSPREFETCH={"STRICT": True})
def test_object_not_prefetched_is_an_error_when_strict(alice: Customer) -> None:
    lookups = prefetch_cross_db(items(alice.pk), spec())

    class ItemSerializer(serializers.Serializer[Any]):
        name = ContextLookupField("c", "name")

    with pytest.raises(ImproperlyConfigured, match="not among the objects lookup 'c' was built"):
        ItemSerializer(items(404), many=True, context=lookups).data  # noqa: B018


@override_settings(CROSSPREFETCH={"STRICT": False})
def test_object_not_prefetched_is_found_by_key_when_not_strict(alice: Customer) -> None:
    lookups = prefetch_cross_db(items(alice.pk), spec())

    class ItemSerializer(serializers.Serializer[Any]):
        name = ContextLookupField("c", "name", default="?")

    others = items(str(alice.pk), 404)
    with assert_num_queries(total=0):
        data = ItemSerializer(others, many=True, context=lookups).data
    assert [row["name"] for row in data] == ["Alice", "?"]


def test_fallbacks_are_counted(alice: Customer) -> None:
    lookups = prefetch_cross_db(items(alice.pk, None, 404), spec())

    class ItemSerializer(serializers.Serializer[Any]):
        name = ContextLookupField("c", "name")

    ItemSerializer(items(alice.pk, None, 404), many=True, context=lookups).data  # noqa: B018
    assert lookups["c"].stats.fallbacks == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lookup": ""}, "lookup must name a lookup"),
        ({"lookup": "c", "attr": "a..b"}, "attr must be a key path"),
        ({"lookup": "c", "fallback": "x"}, "fallback must be callable"),
        ({"lookup": "c", "source": "x"}, "does not take source="),
        ({"lookup": "c", "read_only": False}, "does not take read_only="),
        ({"lookup": "c", "serializer": 3}, "serializer must be a Serializer"),
        ({"lookup": "c", "output_field": str}, "output_field must be a DRF field"),
        (
            {"lookup": "c", "serializer": CustomerOut, "output_field": serializers.CharField()},
            "not both",
        ),
    ],
)
def test_bad_field_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        ContextLookupField(**kwargs)


def test_field_is_read_only_and_ignored_on_input(alice: Customer) -> None:
    class EventIn(serializers.Serializer[Any]):
        customer_id = serializers.IntegerField()
        customer_name = ContextLookupField("customers", "name")

    serializer = EventIn(data={"customer_id": 1, "customer_name": "forged"})
    assert serializer.is_valid(), serializer.errors
    assert serializer.validated_data == {"customer_id": 1}


def test_a_context_refilled_between_batches_is_read_afresh(alice: Customer) -> None:
    bob = Customer.objects.create(name="Bob", tier="basic")
    specs = spec()

    class ItemSerializer(serializers.Serializer[Any]):
        name = ContextLookupField("c", "name", default="?")

    context: dict[str, Any] = {}
    serializer = ItemSerializer(context=context)
    names = []
    for batch in (items(alice.pk), items(bob.pk)):
        context.update(prefetch_cross_db(batch, specs))
        names.append(serializer.to_representation(batch[0])["name"])
    assert names == ["Alice", "Bob"]
