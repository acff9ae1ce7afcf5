"""CrossDBPrefetch validates what it can at construction and resolves models lazily."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from crossprefetch import CachePolicy, CrossDBPrefetch
from tests.testapp.models import Account, Customer

BAD_SPECS: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"model": 42, "key": "customer_id"}, TypeError, "first argument must be a model class"),
    ({"model": "Customer", "key": "customer_id"}, ValueError, "'app_label.ModelName'"),
    ({"model": "a.b.c", "key": "customer_id"}, ValueError, "'app_label.ModelName'"),
    ({"model": "testapp.Customer", "key": ""}, ValueError, "key must be an attribute path"),
    ({"model": "testapp.Customer", "key": "a..b"}, ValueError, "key must be an attribute path"),
    ({"model": "testapp.Customer", "key": ("a", "")}, ValueError, "key must be an attribute"),
    ({"model": "testapp.Customer", "key": ("a", 1)}, TypeError, "key must be an attribute path"),
    ({"model": "testapp.Customer", "key": 3}, TypeError, "key must be an attribute path"),
    ({"model": "testapp.Customer", "key": "c", "fields": "name"}, TypeError, "fields=('name',)"),
    ({"model": "testapp.Customer", "key": "c", "fields": ()}, ValueError, "non-empty tuple"),
    ({"model": "testapp.Customer", "key": "c", "fields": ("a", 1)}, TypeError, "non-empty tuple"),
    ({"model": "testapp.Customer", "key": "c", "fields": ("a", "")}, ValueError, "field names"),
    ({"model": "testapp.Customer", "key": "c", "fields": ("a", "a")}, ValueError, "repeated"),
    ({"model": "testapp.Customer", "key": "c", "to_field": ()}, ValueError, "non-empty tuple"),
    ({"model": "testapp.Customer", "key": "c", "using": ""}, ValueError, "database alias"),
    ({"model": "testapp.Customer", "key": "c", "using": 1}, TypeError, "database alias"),
    ({"model": "testapp.Customer", "key": "c", "many": 1}, TypeError, "True or False"),
    ({"model": "testapp.Customer", "key": "c", "cache": "1"}, TypeError, "timeout in seconds"),
    ({"model": "testapp.Customer", "key": "c", "cache": 0}, ValueError, "more than 0"),
    (
        {"model": "testapp.Account", "key": ("a", "b"), "to_field": ("tenant_id",)},
        ValueError,
        "key has 2 part(s) but to_field has 1",
    ),
    (
        {"model": "testapp.Account", "key": "a", "to_field": ("tenant_id", "number")},
        ValueError,
        "key has 1 part(s) but to_field has 2",
    ),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), BAD_SPECS)
def test_bad_spec_fails_at_construction(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    model = kwargs.pop("model")
    with pytest.raises(error) as excinfo:
        CrossDBPrefetch(model, **kwargs)
    assert message in str(excinfo.value)


def test_spec_is_immutable() -> None:
    spec = CrossDBPrefetch("testapp.Customer", key="customer_id")
    with pytest.raises(AttributeError, match="immutable"):
        spec.key = "other"  # type: ignore[misc]


def test_model_string_resolves_lazily() -> None:
    spec = CrossDBPrefetch("testapp.Customer", key="customer_id")
    assert spec.get_model() is Customer
    assert spec.get_queryset().db == "default"


def test_unknown_model_names_the_fix() -> None:
    spec = CrossDBPrefetch("testapp.Custmer", key="customer_id")
    with pytest.raises(ImproperlyConfigured, match="not an installed model"):
        spec.get_model()


def test_cache_seconds_become_a_policy() -> None:
    spec = CrossDBPrefetch("testapp.Customer", key="customer_id", cache=300)
    assert spec.cache == CachePolicy(300)


def test_using_overrides_the_router() -> None:
    spec = CrossDBPrefetch(Customer, key="customer_id", using="legacy")
    assert spec.get_queryset().db == "legacy"


def test_queryset_source_keeps_filters_and_is_not_shared() -> None:
    source = Customer.objects.filter(is_active=True)
    spec = CrossDBPrefetch(source, key="customer_id")
    queryset = spec.get_queryset()
    assert queryset is not source
    assert "is_active" in str(queryset.query)


def test_callable_source_must_return_a_queryset() -> None:
    spec = CrossDBPrefetch(lambda request: [1, 2], key="customer_id")
    with pytest.raises(TypeError, match="returned list, not a QuerySet"):
        spec.get_queryset(None)


def test_unknown_to_field_names_the_choices() -> None:
    spec = CrossDBPrefetch(Customer, key="customer_id", to_field="nmae")
    with pytest.raises(ImproperlyConfigured, match=r"no field 'nmae'.*Choose one of: id, name"):
        spec.get_match_fields(Customer)


def test_unknown_projected_field_names_the_choices() -> None:
    spec = CrossDBPrefetch(Customer, key="customer_id", fields=("nmae",))
    with pytest.raises(ImproperlyConfigured, match="no field 'nmae' in fields"):
        spec.check_fields(Customer)


def test_composite_to_field() -> None:
    spec = CrossDBPrefetch(Account, key=("t", "n"), to_field=("tenant_id", "number"))
    assert [f.name for f in spec.get_match_fields(Account)] == ["tenant_id", "number"]


def test_repr_shows_the_arguments() -> None:
    spec = CrossDBPrefetch("testapp.Customer", key="customer_id", fields=("name",), many=True)
    assert repr(spec) == (
        "CrossDBPrefetch('testapp.Customer', key='customer_id', fields=('name',), many=True)"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": "1"}, "number of seconds"),
        ({"timeout": 10, "alias": 3}, "alias must name a cache"),
        ({"timeout": 10, "scope": "tenant"}, "scope must be a callable"),
    ],
)
def test_bad_cache_policy(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        CachePolicy(**kwargs)
