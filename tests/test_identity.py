"""The one identity of a group: computed once, with the connection's tenant state, read by
grouping, coalescing and the cache.

The tenant tests with real schemas are in ``test_tenants.py`` (PostgreSQL); here the
connection's state is set as django-tenants sets it, on every backend.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.core import checks
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, transaction
from django.db.models import OuterRef
from django.db.models.sql.compiler import SQLCompiler
from django.test import override_settings

from crossprefetch import CachePolicy, CrossDBPrefetch, prefetch_cross_db
from crossprefetch._fetch import caching
from crossprefetch._groups import Group, group_plans
from crossprefetch._identity import Identity, connection_scope
from crossprefetch._plans import collect_keys, make_plan
from crossprefetch.checks.coalesce import check_connection_scope
from crossprefetch.lookup import Lookup
from tests.conftest import ALL_DATABASES
from tests.testapp.models import Customer

pytestmark = pytest.mark.django_db(databases=ALL_DATABASES, transaction=True)


class Key:
    def __init__(self, customer_id: int) -> None:
        self.customer_id = customer_id


class Tenant:
    """What django-tenants' ``FakeTenant`` is: an object with a schema name."""

    def __init__(self, schema_name: str) -> None:
        self.schema_name = schema_name


def scope_by_marker(connection: Any) -> Any:
    return getattr(connection, "marker", None)


@pytest.fixture
def customers() -> list[Customer]:
    return [Customer.objects.create(name=f"c{i}") for i in range(4)]


@pytest.fixture(autouse=True)
def _clean_state() -> Iterator[None]:
    caching.clear_local()
    yield
    caching.clear_local()
    caches["default"].clear()
    connection = connections["default"]
    for name in ("schema_name", "tenant", "marker"):
        connection.__dict__.pop(name, None)


def group_of(spec: CrossDBPrefetch, keys: list[int], request: Any = None) -> Group:
    plan = make_plan("customers", spec, request)
    collect_keys([Key(k) for k in keys], [plan])
    (group,) = group_plans([plan], request)
    return group


def identity_of(spec: CrossDBPrefetch, keys: list[int] | None = None) -> Identity:
    identity = group_of(spec, keys or [1]).identity
    assert identity is not None
    return identity


def lookup_of(lookups: dict[str, Lookup]) -> Lookup:
    (lookup,) = lookups.values()
    return lookup


@pytest.fixture
def compilations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The SQL of every compilation of a ``Customer`` QuerySet."""
    seen: list[str] = []
    as_sql = SQLCompiler.as_sql

    def counting(self: SQLCompiler, *args: Any, **kwargs: Any) -> Any:
        result = as_sql(self, *args, **kwargs)
        if self.query.model is Customer:
            seen.append(result[0])
        return result

    monkeypatch.setattr(SQLCompiler, "as_sql", counting)
    return seen


# Computed once --------------------------------------------------------------------------------


def test_the_remote_queryset_is_compiled_once_per_group(
    customers: list[Customer], compilations: list[str]
) -> None:
    """With the cache and coalescing on, one compilation for the identity; plus one per
    query sent, which compiles the key filter."""
    spec = CrossDBPrefetch(
        Customer.objects.filter(is_active=True),
        key="customer_id",
        fields=("name",),
        cache=60,
        coalesce=0.01,
    )
    keys = [Key(c.pk) for c in customers]
    cold = lookup_of(prefetch_cross_db(keys, {"customers": spec}))
    assert cold.stats.queries == 1
    assert len(compilations) == 2, compilations
    compilations.clear()
    warm = lookup_of(prefetch_cross_db(keys, {"customers": spec}))
    assert (warm.stats.queries, warm.stats.cache_hits) == (0, 4)
    assert len(compilations) == 1, compilations


def test_without_sharing_nothing_is_compiled_for_an_identity(
    customers: list[Customer], compilations: list[str]
) -> None:
    spec = CrossDBPrefetch(Customer.objects.filter(is_active=True), key="customer_id")
    lookup = lookup_of(prefetch_cross_db([Key(c.pk) for c in customers], {"customers": spec}))
    assert lookup.stats.queries == 1
    assert len(compilations) == 1  # the query itself


def test_two_plans_of_one_group_share_the_first_ones_compilation(
    customers: list[Customer], compilations: list[str]
) -> None:
    active = Customer.objects.filter(is_active=True)
    specs = {
        "buyer": CrossDBPrefetch(active, key="customer_id", fields=("name",), coalesce=0.01),
        "seller": CrossDBPrefetch(active, key="customer_id", fields=("tier",), coalesce=0.01),
    }
    lookups = prefetch_cross_db([Key(c.pk) for c in customers], specs)
    assert lookups["buyer"].stats.shared_with == ["seller"]
    # each plan compiled to be compared, the group's identity reusing the first's; the query
    assert len(compilations) == 3, compilations


def test_a_narrowed_group_keeps_the_identity() -> None:
    group = group_of(CrossDBPrefetch(Customer, key="customer_id", cache=60), [1, 2])
    narrowed = group.narrowed({group.first: {2}})
    assert narrowed.keys == {2}
    assert narrowed.identity is group.identity


# What is part of it ---------------------------------------------------------------------------


def test_filters_aliases_matched_fields_and_policies_differ() -> None:
    base = CrossDBPrefetch(Customer, key="customer_id", fields=("name",))
    variants = [
        CrossDBPrefetch(Customer.objects.filter(tier="gold"), key="customer_id", fields=("name",)),
        CrossDBPrefetch(Customer, key="customer_id", fields=("name",), using="legacy"),
        CrossDBPrefetch(Customer, key="customer_id", to_field="external_id", fields=("name",)),
        CrossDBPrefetch(Customer, key="customer_id", fields=("name",), on_error="degrade"),
        CrossDBPrefetch(Customer, key="customer_id", fields=("name",), timeout=2),
        CrossDBPrefetch(Customer, key="customer_id", fields=("name",), cache=60),
    ]
    keys = {identity_of(base).key, *(identity_of(v).key for v in variants)}
    assert len(keys) == 1 + len(variants)
    # a projection without joins, or another ``many``, reads the same rows
    same = CrossDBPrefetch(Customer, key="customer_id", fields=("tier",))
    assert identity_of(same).key == identity_of(base).key


def test_the_connection_schema_and_tenant_are_part_of_it() -> None:
    spec = CrossDBPrefetch(Customer, key="customer_id", fields=("name",), cache=60)
    connection = connections["default"]
    public = identity_of(spec)
    connection.schema_name = "t1"  # type: ignore[attr-defined]
    t1 = identity_of(spec)
    connection.schema_name = "t2"  # type: ignore[attr-defined]
    t2 = identity_of(spec)
    connection.tenant = Tenant("t2")  # type: ignore[attr-defined]
    t2_tenant = identity_of(spec)
    assert len({public.rows, t1.rows, t2.rows, t2_tenant.rows}) == 4
    assert len({public.key, t1.key, t2.key, t2_tenant.key}) == 4
    heads = {
        caching._entries(group_of(spec, [1]).first, "p", 1, identity.rows, 0).head
        for identity in (public, t1, t2, t2_tenant)
    }
    assert len(heads) == 4  # cache keys differ too, though the policy declares no scope


def test_a_tenant_model_instance_is_its_label_and_primary_key() -> None:
    connection = connections["default"]
    connection.schema_name = "acme"  # type: ignore[attr-defined]
    connection.tenant = Customer(pk=7, name="acme")  # type: ignore[attr-defined]
    assert connection_scope(connection, cached=True) == ("tenant", "acme", ("testapp.Customer", 7))
    connection.tenant = Tenant("acme")  # type: ignore[attr-defined]
    assert connection_scope(connection, cached=True) == ("tenant", "acme", ("Tenant", "acme"))


def test_a_connection_without_tenant_state_has_none() -> None:
    assert connection_scope(connections["default"]) is None


@pytest.mark.parametrize(
    "setting", [scope_by_marker, "tests.test_identity.scope_by_marker"], ids=["callable", "path"]
)
def test_connection_scope_setting_replaces_the_schema(setting: Any) -> None:
    spec = CrossDBPrefetch(Customer, key="customer_id", fields=("name",), cache=60)
    connection = connections["default"]
    with override_settings(CROSSPREFETCH={"CONNECTION_SCOPE": setting}):
        connection.schema_name = "ignored"  # type: ignore[attr-defined]
        unmarked = identity_of(spec)
        connection.marker = ("acme", uuid.UUID(int=1))  # type: ignore[attr-defined]
        marked = identity_of(spec)
        assert connection_scope(connection) == ("scope", ("acme", uuid.UUID(int=1)))
    assert unmarked.rows != marked.rows


def test_a_connection_scope_that_is_not_plain_is_refused_for_the_cache() -> None:
    connection = connections["default"]
    connection.marker = object()  # type: ignore[attr-defined]
    cached = CrossDBPrefetch(Customer, key="customer_id", fields=("name",), cache=60)
    coalesced = CrossDBPrefetch(Customer, key="customer_id", fields=("name",), coalesce=0.01)
    with override_settings(CROSSPREFETCH={"CONNECTION_SCOPE": scope_by_marker}):
        assert identity_of(coalesced).coalesce  # hashable is enough within one process
        with pytest.raises(TypeError, match=r"CONNECTION_SCOPE.*a str, an int, a UUID") as error:
            prefetch_cross_db([Key(1)], {"customers": cached})
        assert "'default'" in str(error.value)
        connection.marker = ["not", "hashable"]  # type: ignore[attr-defined]
        with pytest.raises(TypeError, match="not hashable"):
            prefetch_cross_db([Key(1)], {"customers": coalesced})


@pytest.mark.parametrize("value", [42, "tests.test_identity.no_such_function"])
def test_a_connection_scope_that_is_not_callable_is_a_system_check_error(value: Any) -> None:
    with override_settings(CROSSPREFETCH={"CONNECTION_SCOPE": value}):
        messages = check_connection_scope()
        assert [m.id for m in messages] == ["crossprefetch.E302"]
        assert repr(value) in messages[0].msg
        assert "connection" in (messages[0].hint or "")
        shared = CrossDBPrefetch(Customer, key="customer_id", coalesce=0.01)
        with pytest.raises(ImproperlyConfigured, match="CONNECTION_SCOPE"):
            prefetch_cross_db([Key(1)], {"c": shared})
    with override_settings(CROSSPREFETCH={"CONNECTION_SCOPE": scope_by_marker}):
        assert checks.run_checks(tags=["crossprefetch"]) == []


# What shares nothing --------------------------------------------------------------------------


def test_groups_that_share_nothing_have_no_identity() -> None:
    outer = Customer.objects.filter(pk=OuterRef("customer_id"))
    for queryset in (
        Customer.objects.none(),
        Customer.objects.filter(pk__in=[]),
        Customer.objects.select_for_update(),
        outer,  # compiles only inside another query
    ):
        assert group_of(CrossDBPrefetch(queryset, key="customer_id"), [1]).identity is None


def test_in_an_atomic_block_the_group_is_cached_but_not_coalesced() -> None:
    spec = CrossDBPrefetch(Customer, key="customer_id", fields=("name",), cache=60)
    assert identity_of(spec).coalesce
    with transaction.atomic(using="default"):
        inside = identity_of(spec)
    assert not inside.coalesce
    assert inside.rows == identity_of(spec).rows


def test_a_spec_that_locks_rows_is_never_served_from_the_cache(customers: list[Customer]) -> None:
    spec = CrossDBPrefetch(
        Customer.objects.select_for_update(), key="customer_id", fields=("name",), cache=60
    )
    keys = [Key(c.pk) for c in customers]
    for _ in range(2):
        with transaction.atomic(using="default"):
            lookup = lookup_of(prefetch_cross_db(keys, {"customers": spec}))
        assert (lookup.stats.queries, lookup.stats.cache_hits) == (1, 0)


def test_the_cache_scope_is_part_of_it() -> None:
    spec = CrossDBPrefetch(
        Customer,
        key="customer_id",
        fields=("name",),
        cache=CachePolicy(60, scope=lambda request: getattr(request, "tenant", None)),
    )

    class Request:
        def __init__(self, tenant: str) -> None:
            self.tenant = tenant

    identities = [group_of(spec, [1], Request(t)).identity for t in ("acme", "globex")]
    assert identities[0] is not None
    assert identities[1] is not None
    assert identities[0].rows != identities[1].rows
