"""prefetch_cross_db on its own: keys, normalisation, grouping, projection, to-many."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from crossprefetch import CrossDBPrefetch, Lookup, prefetch_cross_db, signals
from crossprefetch.testing import assert_num_queries
from tests.conftest import ALL_DATABASES, Scenario
from tests.testapp.models import Account, Customer, OrderEvent, Region

pytestmark = pytest.mark.django_db(databases=ALL_DATABASES)

NAMES = CrossDBPrefetch("testapp.Customer", key="customer_id", fields=("name",))


def objs(**columns: list[Any]) -> list[SimpleNamespace]:
    """Plain objects with the given attribute columns."""
    names = list(columns)
    return [
        SimpleNamespace(**dict(zip(names, values, strict=True)))
        for values in zip(*columns.values(), strict=True)
    ]


@pytest.fixture
def customers() -> list[Customer]:
    return Customer.objects.bulk_create(
        Customer(name=f"C{i}", tier="gold" if i % 2 else "basic", region_code=f"R{i}")
        for i in range(5)
    )


def test_string_keys_match_an_integer_pk(customers: list[Customer]) -> None:
    c = customers[0]
    items = objs(customer_id=[str(c.pk), c.pk, f" {c.pk}", "abc", None, 2**70])
    with assert_num_queries(default=1, timeseries=0, legacy=0):
        lookup = prefetch_cross_db(items, {"c": NAMES})["c"]
    assert [lookup.get_for(o) for o in items[:3]] == [{"name": c.name}] * 3
    assert lookup[str(c.pk)] == lookup[c.pk] == {"name": c.name}
    assert lookup.stats.keys_invalid == 2
    with pytest.raises(KeyError):
        lookup["abc"]


def test_only_invalid_or_null_keys_make_no_query(customers: list[Customer]) -> None:
    with assert_num_queries(total=0):
        lookups = prefetch_cross_db(objs(customer_id=["x", None, "1.5.6"]), {"c": NAMES})
    assert len(lookups["c"]) == 0


def test_no_objects_make_no_query() -> None:
    with assert_num_queries(total=0):
        lookups = prefetch_cross_db([], {"c": NAMES})
    assert dict(lookups["c"]) == {}


def test_duplicated_keys_are_asked_once(customers: list[Customer]) -> None:
    items = objs(customer_id=[customers[1].pk] * 50)
    with assert_num_queries(default=1) as captured:
        lookup = prefetch_cross_db(items, {"c": NAMES})["c"]
    assert captured["default"][0].params in (
        (customers[1].pk,),
        [customers[1].pk],
        ([customers[1].pk],),
    )
    assert lookup.stats.keys_asked == 1


def test_uuid_keys_as_strings(customers: list[Customer]) -> None:
    c = customers[2]
    spec = CrossDBPrefetch(Customer, key="ref", to_field="external_id", fields=("name",))
    items = objs(ref=[str(c.external_id), c.external_id, "not-a-uuid"])
    lookup = prefetch_cross_db(items, {"c": spec})["c"]
    assert [lookup.get_for(o) for o in items] == [
        {"name": c.name},
        {"name": c.name},
        lookup_missing(),
    ]


def lookup_missing() -> Any:
    from crossprefetch.lookup import MISSING

    return MISSING


def test_integer_keys_match_a_char_field(db: None) -> None:
    Region.objects.create(code="42", name="Answer")
    spec = CrossDBPrefetch(Region, key="region", to_field="code", fields=("name",))
    with assert_num_queries(legacy=1, default=0):
        lookup = prefetch_cross_db(objs(region=[42]), {"r": spec})["r"]
    assert lookup["42"] == {"name": "Answer"}


def test_projection_selects_only_its_columns(customers: list[Customer]) -> None:
    spec = CrossDBPrefetch(Customer, key="customer_id", fields=("name", "tier"))
    with assert_num_queries(default=1) as captured:
        prefetch_cross_db(objs(customer_id=[customers[0].pk]), {"c": spec})
    sql = captured["default"][0].sql
    select = sql.split(" FROM ")[0]
    assert select.count(",") == 2
    quote = connections["default"].ops.quote_name
    for column in ("name", "tier", "id"):
        assert quote(column) in select
    assert "email" not in sql
    assert "ORDER BY" not in sql


def test_instances_when_no_projection(customers: list[Customer]) -> None:
    spec = CrossDBPrefetch(Customer, key="customer_id")
    lookup = prefetch_cross_db(objs(customer_id=[customers[0].pk]), {"c": spec})["c"]
    row = lookup[customers[0].pk]
    assert isinstance(row, Customer)
    assert row.name == customers[0].name


def test_queryset_filters_are_kept(customers: list[Customer]) -> None:
    Customer.objects.filter(pk=customers[0].pk).update(is_active=False)
    spec = CrossDBPrefetch(
        Customer.objects.filter(is_active=True), key="customer_id", fields=("name",)
    )
    items = objs(customer_id=[c.pk for c in customers])
    lookup = prefetch_cross_db(items, {"c": spec})["c"]
    assert customers[0].pk not in lookup
    assert set(lookup) == {c.pk for c in customers[1:]}


GROUPING = [
    (
        "same model, default manager",
        {
            "a": CrossDBPrefetch("testapp.Customer", key="customer_id", fields=("name",)),
            "b": CrossDBPrefetch(Customer, key="seller_id", fields=("tier",)),
        },
        {"default": 1},
    ),
    (
        "same filter, two QuerySets",
        {
            "a": CrossDBPrefetch(Customer.objects.filter(is_active=True), key="customer_id"),
            "b": CrossDBPrefetch(Customer.objects.filter(is_active=True), key="seller_id"),
        },
        {"default": 1},
    ),
    (
        "different filters",
        {
            "a": CrossDBPrefetch(Customer.objects.filter(is_active=True), key="customer_id"),
            "b": CrossDBPrefetch(Customer.objects.filter(tier="gold"), key="seller_id"),
        },
        {"default": 2},
    ),
    (
        "instances and projection",
        {
            "a": CrossDBPrefetch(Customer, key="customer_id"),
            "b": CrossDBPrefetch(Customer, key="seller_id", fields=("name",)),
        },
        {"default": 1},
    ),
    (
        "different matched fields",
        {
            "a": CrossDBPrefetch(Customer, key="customer_id", fields=("name",)),
            "b": CrossDBPrefetch(Customer, key="region", to_field="region_code", fields=("name",)),
        },
        {"default": 2},
    ),
    (
        "two databases",
        {
            "a": CrossDBPrefetch(Customer, key="customer_id", fields=("name",)),
            "b": CrossDBPrefetch(Region, key="region", to_field="code", fields=("name",)),
        },
        {"default": 1, "legacy": 1},
    ),
    (
        "explicit alias",
        {
            "a": CrossDBPrefetch(Customer, key="customer_id", fields=("name",)),
            "b": CrossDBPrefetch(Customer, key="seller_id", fields=("name",), using="legacy"),
        },
        {"default": 1, "legacy": 1},
    ),
]


@pytest.mark.parametrize(("name", "specs", "queries"), GROUPING, ids=[g[0] for g in GROUPING])
def test_grouping(
    customers: list[Customer], name: str, specs: dict[str, CrossDBPrefetch], queries: dict[str, int]
) -> None:
    Region.objects.create(code="R1", name="One")
    if "legacy" in queries and name == "explicit alias":
        Customer.objects.using("legacy").create(name="Legacy", pk=customers[1].pk)
    items = objs(
        customer_id=[c.pk for c in customers],
        seller_id=[customers[1].pk] * 5,
        region=["R1"] * 5,
    )
    expected = {"default": 0, "timeseries": 0, "legacy": 0, **queries}
    with assert_num_queries(expected):
        lookups = prefetch_cross_db(items, specs)
    for lookup_name, spec in specs.items():
        lookup = lookups[lookup_name]
        for item in items:
            naive = _naive(spec, item)
            got = lookup.get_for(item)
            if naive is None:
                assert got is lookup_missing()
            elif spec.fields is None:
                assert got.pk == naive.pk
            else:
                assert got == {f: getattr(naive, f) for f in spec.fields}


def _naive(spec: CrossDBPrefetch, item: Any) -> Any:
    key = getattr(item, str(spec.key))
    field = spec.to_field[0]
    return spec.get_queryset().filter(**{field: key}).first()


def test_grouped_specs_get_their_own_keys(customers: list[Customer]) -> None:
    specs = {
        "a": CrossDBPrefetch(Customer, key="customer_id", fields=("name",)),
        "b": CrossDBPrefetch(Customer, key="seller_id", fields=("tier",)),
    }
    items = objs(customer_id=[customers[0].pk], seller_id=[customers[1].pk])
    lookups = prefetch_cross_db(items, specs)
    assert dict(lookups["a"]) == {customers[0].pk: {"name": customers[0].name}}
    assert dict(lookups["b"]) == {customers[1].pk: {"tier": customers[1].tier}}
    assert lookups["a"].stats.shared_with == ["b"]


def test_to_many_lists_in_queryset_order(scenario: Scenario) -> None:
    spec = CrossDBPrefetch(
        OrderEvent.objects.order_by("-amount"),
        key="id",
        to_field="customer_id",
        fields=("event_type", "amount"),
        many=True,
    )
    lonely = Customer.objects.create(name="No events")
    items = [*scenario.customers, lonely]
    with assert_num_queries(timeseries=1, default=0):
        lookup = prefetch_cross_db(items, {"events": spec})["events"]
    for customer in items:
        expected = list(
            OrderEvent.objects.filter(customer_id=customer.pk)
            .order_by("-amount")
            .values("event_type", "amount")
        )
        assert lookup.get_for(customer) == expected
    assert lookup.get_for(lonely) == []


def test_composite_keys(scenario: Scenario) -> None:
    spec = CrossDBPrefetch(
        Account,
        key=("account_tenant", "account_number"),
        to_field=("tenant_id", "number"),
        fields=("label",),
    )
    items = [*scenario.events, SimpleNamespace(account_tenant=None, account_number=1)]
    with assert_num_queries(legacy=1, timeseries=0):
        lookup = prefetch_cross_db(items, {"a": spec})["a"]
    for event in scenario.events:
        naive = Account.objects.filter(
            tenant_id=event.account_tenant, number=event.account_number
        ).first()
        got = lookup.get_for(event)
        assert got == ({"label": naive.label} if naive else lookup_missing())
    assert lookup.get_for(items[-1]) is lookup_missing()
    assert lookup[("1", "0")] == {"label": "Account 1/0"}


def test_mappings_dotted_paths_and_callables(customers: list[Customer]) -> None:
    c = customers[3]
    specs = {
        "dict": CrossDBPrefetch(Customer, key="customer_id", fields=("name",)),
    }
    rows = [{"customer_id": c.pk}]
    assert prefetch_cross_db(rows, specs)["dict"].get_for(rows[0]) == {"name": c.name}
    nested = [SimpleNamespace(order=SimpleNamespace(customer_id=c.pk))]
    dotted = {"d": CrossDBPrefetch(Customer, key="order.customer_id", fields=("name",))}
    assert prefetch_cross_db(nested, dotted)["d"].get_for(nested[0]) == {"name": c.name}
    call = {"f": CrossDBPrefetch(Customer, key=lambda o: o["customer_id"], fields=("name",))}
    assert prefetch_cross_db(rows, call)["f"].get_for(rows[0]) == {"name": c.name}


def test_find_answers_for_objects_not_prefetched(customers: list[Customer]) -> None:
    lookup = prefetch_cross_db(objs(customer_id=[customers[0].pk]), {"c": NAMES})["c"]
    stranger = SimpleNamespace(customer_id=str(customers[0].pk))
    assert lookup.find(stranger) == {"name": customers[0].name}
    assert lookup.find(SimpleNamespace(customer_id=customers[1].pk)) is lookup_missing()


def test_unreadable_key_names_the_spec_and_fix(customers: list[Customer]) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"\('c'\): cannot read key 'customer_id'"):
        prefetch_cross_db(objs(other=[1]), {"c": NAMES})


def test_unhashable_key_is_a_clear_error(customers: list[Customer]) -> None:
    with pytest.raises(TypeError, match=r"not hashable.*composite key must be a tuple"):
        prefetch_cross_db(objs(customer_id=[[1, 2]]), {"c": NAMES})


def test_specs_must_be_a_dict_of_specs() -> None:
    with pytest.raises(TypeError, match="must be a dict"):
        prefetch_cross_db([], [NAMES])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"specs\['c'\] is 'x', not a CrossDBPrefetch"):
        prefetch_cross_db([], {"c": "x"})  # type: ignore[dict-item]


def test_signal_reports_stats(customers: list[Customer]) -> None:
    received: list[dict[str, Lookup]] = []

    def receiver(sender: Any, lookups: dict[str, Lookup], **kwargs: Any) -> None:
        received.append(lookups)

    signals.lookups_prefetched.connect(receiver)
    try:
        items = objs(customer_id=[customers[0].pk, 999_999, None])
        prefetch_cross_db(items, {"c": NAMES})
    finally:
        signals.lookups_prefetched.disconnect(receiver)
    stats = received[0]["c"].stats.as_dict()
    assert stats["keys_asked"] == 2
    assert stats["keys_found"] == 1
    assert stats["keys_missing"] == 1
    assert stats["queries"] == 1
    assert stats["alias"] == "default"
    assert stats["model"] == "testapp.Customer"


def test_postgresql_sends_one_array_parameter(customers: list[Customer]) -> None:
    if connections["default"].vendor != "postgresql":
        pytest.skip("needs 'default' on PostgreSQL (CROSSPREFETCH_TEST_DB=postgres)")
    items = objs(customer_id=[c.pk for c in customers])
    with assert_num_queries(default=1) as captured:
        prefetch_cross_db(items, {"c": NAMES})
    query = captured["default"][0]
    assert "= ANY(" in query.sql


def test_projections_through_lookups_share_a_query_only_when_identical(
    scenario: Scenario,
) -> None:
    def events(*fields: str) -> CrossDBPrefetch:
        return CrossDBPrefetch(
            OrderEvent, key="id", to_field="customer_id", fields=fields, many=True
        )

    customer = scenario.customers[0]
    with assert_num_queries(timeseries=2):
        lookups = prefetch_cross_db(
            [customer], {"a": events("timestamp__year"), "b": events("timestamp__month")}
        )
    naive = OrderEvent.objects.filter(customer_id=customer.pk)
    assert lookups["a"][customer.pk] == [{"timestamp__year": e.timestamp.year} for e in naive]
    assert lookups["b"][customer.pk] == [{"timestamp__month": e.timestamp.month} for e in naive]
    with assert_num_queries(timeseries=1):
        prefetch_cross_db(
            [customer], {"a": events("timestamp__year"), "b": events("timestamp__year")}
        )


def test_values_queryset_needs_a_projection(customers: list[Customer]) -> None:
    spec = CrossDBPrefetch(Customer.objects.values("id", "name"), key="customer_id")
    with pytest.raises(ImproperlyConfigured, match=r"values\(\)/values_list\(\) QuerySet.*fields="):
        prefetch_cross_db(objs(customer_id=[customers[0].pk]), {"c": spec})


def test_none_on_a_dotted_key_path_is_a_null_key(customers: list[Customer]) -> None:
    items = [
        SimpleNamespace(order=None),
        SimpleNamespace(order=SimpleNamespace(customer_id=customers[0].pk)),
    ]
    spec = CrossDBPrefetch(Customer, key="order.customer_id", fields=("name",))
    with assert_num_queries(default=1):
        lookup = prefetch_cross_db(items, {"c": spec})["c"]
    assert lookup.get_for(items[0]) is lookup_missing()
    assert lookup.get_for(items[1]) == {"name": customers[0].name}


def test_known_rows_answer_their_keys_and_only_the_rest_is_fetched(
    customers: list[Customer],
) -> None:
    """``known``: rows already read (a filter's query) are not fetched again."""
    first, second, third = customers[:3]
    items = objs(customer_id=[first.pk, second.pk, third.pk])
    known = {"c": {first.pk: {"name": "read earlier"}, second.pk: {"name": "also"}}}
    with assert_num_queries(default=1, timeseries=0, legacy=0) as captured:
        lookup = prefetch_cross_db(items, {"c": NAMES}, known=known)["c"]
    assert [lookup.get_for(o) for o in items] == [
        {"name": "read earlier"},
        {"name": "also"},
        {"name": third.name},
    ]
    where = captured["default"][0].sql.split("WHERE", 1)[1]
    assert re.findall(r"\b\d+\b", where) == [str(third.pk)]  # only the key it lacked
    assert lookup.stats.keys_found == 3


def test_known_rows_covering_every_key_make_no_query(customers: list[Customer]) -> None:
    items = objs(customer_id=[c.pk for c in customers])
    known = {"c": {c.pk: {"name": c.name} for c in customers}}
    with assert_num_queries(total=0):
        lookup = prefetch_cross_db(items, {"c": NAMES}, known=known)["c"]
    assert [lookup.get_for(o) for o in items] == [{"name": c.name} for c in customers]
    assert lookup.stats.queries == 0


def test_known_rows_are_ignored_by_to_many_specs(customers: list[Customer]) -> None:
    """A to-many spec's rows per key could be incomplete: it always queries."""
    spec = CrossDBPrefetch(
        "testapp.Customer", key="tier", to_field="tier", fields=("name",), many=True
    )
    items = objs(tier=["gold"])
    with assert_num_queries(default=1, timeseries=0, legacy=0):
        lookup = prefetch_cross_db(items, {"t": spec}, known={"t": {"gold": [{"name": "x"}]}})
    assert sorted(row["name"] for row in lookup["t"]["gold"]) == ["C1", "C3"]
