"""Filtering and ordering by remote rows: results, counts, queries per alias, 400s."""

from __future__ import annotations

import re
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from django.db.models.functions import Substr
from django.test import override_settings
from rest_framework.test import APIClient, APIRequestFactory

from crossprefetch import CrossDBPrefetch
from crossprefetch.filters import CrossDBFilter
from crossprefetch.testing import assert_num_queries, capture_queries
from tests.conftest import ALL_DATABASES, Scenario
from tests.testapp.models import Customer, OrderEvent, Region

pytestmark = pytest.mark.django_db(databases=ALL_DATABASES)

URL = "/api/filtered-events/"
Row = tuple[OrderEvent, Customer | None, Region | None]


def rows(scenario: Scenario) -> list[Row]:
    """Each event with its customer and region, in the view's order (-timestamp, -id)."""
    customers = {c.id: c for c in Customer.objects.all()}
    regions = {r.code: r for r in Region.objects.all()}
    events = sorted(scenario.events, key=lambda e: (e.timestamp, e.id), reverse=True)
    return [
        (
            e,
            customers.get(e.customer_id) if e.customer_id is not None else None,
            regions.get(e.region_code) if e.region_code is not None else None,
        )
        for e in events
    ]


def get(api: APIClient, query: str) -> Any:
    response = api.get(f"{URL}?page_size=1000&{query}")
    assert response.status_code == 200, response.content
    return response.json()


def _i(customer: Customer) -> int:
    """The customer's number in the scenario (its name is ``Customer <i>``), not its id:
    ids depend on the backend's sequences."""
    return int(customer.name.split()[1])


def with_ids(scenario: Scenario, query: str) -> str:
    """``{id7}`` in a query becomes the id of the scenario's customer number 7."""
    return re.sub(r"\{id(\d+)\}", lambda m: str(scenario.customers[int(m.group(1))].id), query)


Predicate = Callable[[OrderEvent, Customer | None, Region | None], bool]

FILTERS: list[tuple[str, Predicate]] = [
    ("customer_tier=gold", lambda e, c, r: c is not None and c.tier == "gold"),
    ("customer_tier__iexact=GOLD", lambda e, c, r: c is not None and c.tier == "gold"),
    (
        "customer_tier__in=gold,platinum",
        lambda e, c, r: c is not None and c.tier in {"gold", "platinum"},
    ),
    ("customer_name=MER 1", lambda e, c, r: c is not None and "mer 1" in c.name.lower()),
    ("customer_name__contains=r 2", lambda e, c, r: c is not None and "r 2" in c.name),
    (
        "customer_name__startswith=Customer 1",
        lambda e, c, r: c is not None and c.name.startswith("Customer 1"),
    ),
    (
        "customer_name__istartswith=customer 2",
        lambda e, c, r: c is not None and c.name.startswith("Customer 2"),
    ),
    ("customer_active=true", lambda e, c, r: c is not None and c.is_active),
    ("customer_active=false", lambda e, c, r: c is not None and not c.is_active),
    ("customer_id__gt={id10}", lambda e, c, r: c is not None and _i(c) > 10),
    ("customer_id__gte={id10}", lambda e, c, r: c is not None and _i(c) >= 10),
    ("customer_id__lt={id10}", lambda e, c, r: c is not None and _i(c) < 10),
    ("customer_id__lte={id10}", lambda e, c, r: c is not None and _i(c) <= 10),
    ("customer_id__in={id3},{id4},99999", lambda e, c, r: c is not None and _i(c) in {3, 4}),
    ("customer_email__isnull=false", lambda e, c, r: c is not None),
    ("customer_email__isnull=true", lambda e, c, r: False),
    ("no_customer=true", lambda e, c, r: c is None),
    ("no_customer=false", lambda e, c, r: c is not None),
    ("region_name=Region 1", lambda e, c, r: r is not None and r.name == "Region 1"),
    (
        "customer_tier=gold&customer_id__gte={id5}&customer_name=1",
        lambda e, c, r: c is not None and c.tier == "gold" and _i(c) >= 5 and "1" in c.name,
    ),
    (
        "customer_id__lte={id15}&region_name=Region 1",
        lambda e, c, r: c is not None and _i(c) <= 15 and r is not None and r.code == "R1",
    ),
    ("no_customer=true&customer_tier=gold", lambda e, c, r: False),
    ("no_customer=true&no_customer__again=false", lambda e, c, r: False),
    ("customer_tier=nobody", lambda e, c, r: False),
]


@pytest.mark.parametrize(("query", "keep"), FILTERS, ids=[q for q, _ in FILTERS])
def test_filter(scenario: Scenario, api: APIClient, query: str, keep: Predicate) -> None:
    Customer.objects.filter(id__in=[c.id for c in scenario.customers[::4]]).update(is_active=False)
    expected = [e.id for e, c, r in rows(scenario) if keep(e, c, r)]
    query = with_ids(scenario, query)
    assert expected or "nobody" in query or "true" in query  # the table tests something
    filtered = {p.split("=")[0].split("__")[0].split("_")[0] for p in query.split("&")}
    remote_default = int("customer" in filtered or "no" in filtered)
    if query.startswith("no_customer=true&"):
        remote_default = 0  # contradictory: answered without asking
    remote_legacy = int("region" in filtered)
    # a filter's query reads the rows of its matches, which answer the page's keys; only
    # "without a customer" reads keys alone, and the page's (dangling) keys are looked up
    lookup_default = 0 if remote_default and "no_customer=true" not in query else 1
    lookup_legacy = 0 if remote_legacy else 1
    empty = not expected
    with assert_num_queries(
        default=remote_default + (0 if empty else lookup_default),
        legacy=remote_legacy + (0 if empty else lookup_legacy),
        timeseries=0 if empty else 2,  # no remote match: no local query at all
    ):
        page = get(api, query)
    assert [row["id"] for row in page["results"]] == expected
    assert page["count"] == len(expected)


def test_filters_on_one_spec_share_one_remote_query(scenario: Scenario, api: APIClient) -> None:
    with capture_queries() as captured:
        page = get(api, "customer_tier=gold&customer_name=1&customer_id__gte=2&page_size=5")
    assert page["count"] > 5
    default = captured["default"]
    # the three filters' one query, which also reads the rows the page's lookup needs
    assert len(default) == 1
    assert default[0].sql.split("WHERE", 1)[1].count("tier") == 1
    assert "LIKE" in default[0].sql.upper()
    timeseries = captured["timeseries"]
    assert len(timeseries) == 2  # count, page: one parameter of keys each
    assert "COUNT(" in timeseries[0].sql.upper()


def test_pages_and_next_links_are_exact(scenario: Scenario, api: APIClient) -> None:
    expected = [e.id for e, c, r in rows(scenario) if c is not None and c.tier == "gold"]
    seen: list[int] = []
    url: str | None = f"{URL}?customer_tier=gold&page_size=7"
    while url:
        page = api.get(url).json()
        assert page["count"] == len(expected)
        seen += [row["id"] for row in page["results"]]
        url = page["next"]
    assert seen == expected


def test_scoping_of_a_callable_source_applies(scenario: Scenario, api: APIClient) -> None:
    response = api.get("/api/tenant-filtered-events/?tenant=acme&customer_tier=gold&page_size=500")
    expected = [
        e.id
        for e, c, r in rows(scenario)
        if c is not None and c.tier == "gold" and c.tenant == "acme"
    ]
    assert [row["id"] for row in response.json()["results"]] == expected
    assert response.json()["count"] == len(expected)


INVALID = [
    ("customer_id__gte=abc", "customer_id__gte", "'abc' is not a valid value"),
    ("customer_id__gte=99999999999999999999", "customer_id__gte", "out of the range"),
    ("customer_id__in=1,x", "customer_id__in", "'x' is not a valid value"),
    ("customer_active=maybe", "customer_active", "'maybe' is not a boolean"),
    ("no_customer=perhaps", "no_customer", "not a boolean"),
    ("customer_uuid=not-a-uuid", "customer_uuid", "is not a valid value"),
    ("customer_tier=a%00b", "customer_tier", "NUL character"),
    (f"customer_tier={'x' * 21}", "customer_tier", "holds at most 20"),
    (f"customer_tier__in=gold,{'x' * 21}", "customer_tier__in", "is 21 characters long"),
    (f"customer_name__startswith={'x' * 101}", "customer_name__startswith", "at most 100"),
    (f"customer_name={'a' * 50_001}", "customer_name", "MAX_FILTER_VALUE_LENGTH"),
    (f"customer_id__in={'1,' * 6_000}1", "customer_id__in", "MAX_FILTER_VALUE_LENGTH"),
]


@pytest.mark.parametrize(("query", "name", "message"), INVALID, ids=[q[:40] for q, _, _ in INVALID])
def test_invalid_values_are_400_naming_the_filter(
    scenario: Scenario, api: APIClient, query: str, name: str, message: str
) -> None:
    with assert_num_queries(default=0, timeseries=0, legacy=0):
        response = api.get(f"{URL}?{query}")
    assert response.status_code == 400
    errors = response.json()
    assert list(errors) == [name]
    assert f"Filter {name!r}" in errors[name][0]
    assert message in errors[name][0]


@pytest.mark.parametrize(
    "query",
    [
        "customer_tier__in=",
        "customer_id__in=&customer_tier__in=",
        "customer_tier=",
        "customer_name=",
        "customer_id__gt=",
        "customer_active=",
        "customer_uuid=",
        "customer_email__isnull=",
        "no_customer=",
        "customer_tier=&region_name=&customer_name__startswith=",
    ],
)
def test_an_empty_value_filters_nothing(scenario: Scenario, api: APIClient, query: str) -> None:
    """As django-filter's filters: an empty value (a form's empty input) leaves the filter
    out, and asks the remote database nothing for it."""
    unfiltered = get(api, "")
    with assert_num_queries(default=1, timeseries=2, legacy=1):  # the page's lookups only
        page = get(api, query)
    assert page == unfiltered


def test_a_uuid_value(scenario: Scenario, api: APIClient) -> None:
    customer = scenario.customers[3]
    page = get(api, f"customer_uuid={customer.external_id}")
    assert {row["customer_id"] for row in page["results"]} == {customer.id}


@override_settings(CROSSPREFETCH={"MAX_FILTER_KEYS": 20})
def test_more_keys_than_max_filter_keys_is_400(scenario: Scenario, api: APIClient) -> None:
    assert get(api, "customer_tier__in=gold,platinum")["count"] > 0  # 20 customers: allowed
    with assert_num_queries(default=1, timeseries=0, legacy=0):
        response = api.get(f"{URL}?customer_tier__in=basic,gold,platinum")  # 30 customers
    assert response.status_code == 400
    message = response.json()["customer_tier__in"][0]
    assert "more than 20 remote rows" in message
    assert "MAX_FILTER_KEYS" in message
    response = api.get(f"{URL}?ordering=customer_name")
    assert response.status_code == 400
    assert "ordering" not in response.json()
    assert "more than 20" in response.json()["customer_name"][0]


# --- ordering ------------------------------------------------------------------------------


def _sorted(items: list[Row], key: Callable[[Row], Any], descending: bool) -> list[int]:
    """Rows with a value by it (stable: ties keep the view's order), the others after."""
    with_value = [row for row in items if key(row) is not None]
    without = [row for row in items if key(row) is None]
    with_value.sort(key=key, reverse=descending)
    if descending:  # a reversed stable sort reverses ties too: restore the view's order
        groups: dict[Any, list[Row]] = {}
        for row in items:
            if key(row) is not None:
                groups.setdefault(key(row), []).append(row)
        with_value = [row for value in sorted(groups, reverse=True) for row in groups[value]]
    return [row[0].id for row in with_value + without]


def _name(row: Row) -> Any:
    return row[1].name if row[1] is not None else None


def _tier(row: Row) -> Any:
    return row[1].tier if row[1] is not None else None


def _region(row: Row) -> Any:
    return row[2].name if row[2] is not None else None


ORDERINGS: list[tuple[str, Callable[[list[Row]], list[int]]]] = [
    ("customer_name", lambda rs: _sorted(rs, _name, False)),
    ("-customer_name", lambda rs: _sorted(rs, _name, True)),
    ("customer_tier", lambda rs: _sorted(rs, _tier, False)),
    ("-customer_tier", lambda rs: _sorted(rs, _tier, True)),
    ("region_name", lambda rs: _sorted(rs, _region, False)),
    (
        "customer_tier,amount",
        lambda rs: _sorted(sorted(rs, key=lambda r: r[0].amount), _tier, False),
    ),
    ("amount", lambda rs: [r[0].id for r in sorted(rs, key=lambda r: r[0].amount)]),
]


@pytest.mark.parametrize(("ordering", "expected"), ORDERINGS, ids=[o for o, _ in ORDERINGS])
def test_ordering(
    scenario: Scenario,
    api: APIClient,
    ordering: str,
    expected: Callable[[list[Row]], list[int]],
) -> None:
    remote = {"default": 1 if "customer" in ordering else 0}
    remote["legacy"] = 1 if "region" in ordering else 0
    with assert_num_queries(
        default=remote["default"] + 1, legacy=remote["legacy"] + 1, timeseries=2
    ) as captured:
        page = get(api, f"ordering={ordering}")
    assert [row["id"] for row in page["results"]] == expected(rows(scenario))
    assert page["count"] == len(scenario.events)
    count, listed = captured["timeseries"]
    assert not _ranked(count.sql)  # the count pays for no ranks
    assert _ranked(listed.sql) == (ordering != "amount")


def _ranked(sql: str) -> bool:
    """Whether ``sql`` orders by remote ranks: a rank vector, or joined ``[key, rank]`` pairs."""
    return "crossprefetch_positions" in sql or "CASE WHEN" in sql


def test_ordering_and_filtering_the_same_spec(scenario: Scenario, api: APIClient) -> None:
    # the filter (with the rows of the page), the ranks; no lookup for the page
    with assert_num_queries(default=2, legacy=1, timeseries=2) as captured:
        page = get(api, with_ids(scenario, "customer_id__gte={id20}&ordering=-customer_name"))
    assert ">=" in captured["default"][1].sql  # only the rows the filter left are ranked
    keep = [row for row in rows(scenario) if row[1] is not None and _i(row[1]) >= 20]
    assert [row["id"] for row in page["results"]] == _sorted(keep, _name, True)


def test_unknown_ordering_terms_are_ignored_as_drf_does(
    scenario: Scenario, api: APIClient, settings: Any
) -> None:
    settings.CROSSPREFETCH = {"STRICT": False}  # STRICT refuses them: tests/test_strict.py
    page = get(api, "ordering=secret,customer_name")
    assert [row["id"] for row in page["results"]] == _sorted(rows(scenario), _name, False)


def test_a_filter_needs_a_single_column_key() -> None:
    from django.core.exceptions import ImproperlyConfigured

    from crossprefetch import CrossDBPrefetch
    from crossprefetch.rest_framework.filters import filter_by_remote

    accounts = CrossDBPrefetch(
        "testapp.Account",
        key=("account_tenant", "account_number"),
        to_field=("tenant_id", "number"),
    )
    with pytest.raises(ImproperlyConfigured, match="composite key"):
        filter_by_remote(
            OrderEvent.objects.all(),
            accounts,
            [("account", CrossDBFilter("accounts", "label"), "x")],
        )


def test_filter_is_immutable_and_readable() -> None:
    cross_filter = CrossDBFilter("customers", "tier", lookup_expr="in")
    assert repr(cross_filter) == "CrossDBFilter('customers', 'tier', lookup_expr='in')"
    assert (cross_filter.field_name, cross_filter.lookup_expr) == ("tier", "in")
    with pytest.raises(AttributeError):
        cross_filter.lookup_expr = "exact"  # type: ignore[misc]


def _failing_customers(request: Any) -> Any:
    """Customers behind a condition the database refuses: every filter query fails."""
    return Customer.objects.extra(where=["crossprefetch_no_such_function(1) > 0"])


def _filtered_view(on_error: str) -> Callable[..., Any]:
    from crossprefetch import CrossDBPrefetch
    from tests.testapp.filter_views import FilteredEventViewSet

    class FailingRemote(FilteredEventViewSet):
        cross_db_fields = {
            "customers": CrossDBPrefetch(
                _failing_customers, key="customer_id", fields=("name", "tier"), on_error=on_error
            ),
        }
        cross_db_filters = {"customer_tier": CrossDBFilter("customers", "tier")}
        cross_db_ordering_fields = {"customer_name": ("customers", "name")}

    return FailingRemote.as_view({"get": "list"})


@pytest.mark.parametrize("on_error", ["degrade", "raise"])
@pytest.mark.parametrize("query", ["customer_tier=gold", "ordering=customer_name"])
def test_a_bug_in_the_remote_query_raises_even_when_degrading(
    scenario: Scenario, query: str, on_error: str
) -> None:
    """A query the database refuses (an unknown function: a bug, not an outage) is raised
    under ``degrade`` too; a database that is out answers 503 (``test_filter_chain``)."""
    from django.db import DatabaseError
    from rest_framework.test import APIRequestFactory

    with pytest.raises(DatabaseError, match="crossprefetch_no_such_function"):
        _filtered_view(on_error)(APIRequestFactory().get(f"/?{query}"))


PROJECTED = CrossDBPrefetch("testapp.Customer", key="customer_id", fields=("name", "tier"))


class _MixinView:
    """Stands for a view serializing through ``CrossDBPrefetchMixin``."""

    def _crossprefetch_lookups(self) -> None:  # pragma: no cover - only its presence counts
        raise NotImplementedError


def _read_through(spec: CrossDBPrefetch, view: Any, request: Any) -> tuple[Any, Any]:
    """Run a filter on ``spec`` for ``view``; its one query and the rows kept for the page."""
    from crossprefetch.rest_framework._known import known_rows
    from crossprefetch.rest_framework.filters import filter_by_remote

    active = [("f", CrossDBFilter("s", "name", lookup_expr="icontains"), "1")]
    with capture_queries() as captured:
        filter_by_remote(OrderEvent.objects.all(), spec, active, request=request, view=view)
    (query,) = [q for alias in ("default", "legacy") for q in captured[alias]]
    return query, known_rows(view, request, {"s": spec})


@pytest.mark.parametrize(
    ("spec", "reads_rows"),
    [
        (PROJECTED, True),
        (CrossDBPrefetch("testapp.Customer", key="customer_id"), False),  # instances
        (CrossDBPrefetch("testapp.Region", key="region_code", to_field="code"), False),
        (
            CrossDBPrefetch("testapp.Customer", key="customer_id", fields=("region_code__x",)),
            False,  # a field across a relation: rows per key could repeat
        ),
        (
            CrossDBPrefetch(
                Customer.objects.annotate(initial=Substr("name", 1, 1)),
                key="customer_id",
                fields=("name", "initial"),
            ),
            False,  # an annotation: a filter across a relation could change its value
        ),
    ],
    ids=["projected", "instances", "instances-to-field", "across-relation", "annotation"],
)
def test_a_filter_reads_the_rows_of_a_projected_spec_only(
    scenario: Scenario, spec: CrossDBPrefetch, reads_rows: bool
) -> None:
    """The page's lookup is answered by the filter's query when its rows are the spec's
    own (dicts of its columns, one per key); otherwise the filter reads keys only."""
    request = APIRequestFactory().get("/")
    query, known = _read_through(spec, _MixinView(), request)
    assert (known is not None) == reads_rows
    if reads_rows:
        assert known is not None
        (rows,) = known.values()
        assert rows
        assert all(set(rows[key]) == {"name", "tier"} for key in rows)
        assert "tier" in query.sql.split("FROM", 1)[0]  # read with the keys


@pytest.mark.parametrize(
    ("view", "method"),
    [(_MixinView(), "post"), (SimpleNamespace(), "get")],
    ids=["a-write", "not-the-mixin"],
)
def test_a_filter_reads_keys_only_when_its_rows_could_not_serve_the_page(
    scenario: Scenario, view: Any, method: str
) -> None:
    """A write could change the rows before the response is serialized; a view without the
    mixin would never use them."""
    query, known = _read_through(PROJECTED, view, getattr(APIRequestFactory(), method)("/"))
    assert known is None
    assert "tier" not in query.sql.split("FROM", 1)[0]


def test_rows_kept_for_one_request_and_spec_only(scenario: Scenario) -> None:
    from crossprefetch.rest_framework._known import known_rows

    view, request = _MixinView(), APIRequestFactory().get("/")
    _read_through(PROJECTED, view, request)
    assert known_rows(view, request, {"s": PROJECTED})
    assert known_rows(view, APIRequestFactory().get("/"), {"s": PROJECTED}) is None
    other = CrossDBPrefetch("testapp.Customer", key="customer_id", fields=("name",))
    assert known_rows(view, request, {"s": other}) == {}  # another spec under that name
