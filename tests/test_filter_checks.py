"""System checks for misdeclared ``cross_db_filters`` and ``cross_db_ordering_fields``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import django_filters
import pytest
from django.core import checks
from django.test import override_settings
from django.urls import path
from rest_framework import generics

from crossprefetch import CrossDBPrefetch, CrossDBPrefetchMixin
from crossprefetch.checks import check_view_filters
from crossprefetch.filters import (
    LOOKUPS,
    CrossDBFilter,
    CrossDBFilterBackend,
    CrossDBFilterSetFilter,
    CrossDBOrderingFilter,
)
from tests.testapp.filter_views import FilteredEventViewSet, TenantFilteredEventViewSet
from tests.testapp.models import Customer, OrderEvent
from tests.testapp.serializers import OrderEventSerializer

CUSTOMERS = CrossDBPrefetch("testapp.Customer", key="customer_id", fields=("name", "tier"))
BACKENDS = [CrossDBFilterBackend, CrossDBOrderingFilter]


def view(**attrs: Any) -> type:
    return type(
        "FilteredView",
        (CrossDBPrefetchMixin, generics.ListAPIView),
        {
            "queryset": OrderEvent.objects.all(),
            "serializer_class": OrderEventSerializer,
            "cross_db_fields": {"customers": CUSTOMERS},
            "filter_backends": BACKENDS,
            "__module__": __name__,
            **attrs,
        },
    )


def by_key(key: Any, **spec: Any) -> dict[str, CrossDBPrefetch]:
    return {"customers": CrossDBPrefetch("testapp.Customer", key=key, **spec)}


CASES: list[tuple[str, type, str, str]] = [
    (
        "filters not a dict",
        view(cross_db_filters=[CrossDBFilter("customers", "tier")]),
        "E401",
        "cross_db_filters = {",
    ),
    ("filter not a CrossDBFilter", view(cross_db_filters={"t": "tier"}), "E401", "Wrap it"),
    (
        "ordering not a pair",
        view(cross_db_ordering_fields={"name": "customers.name"}),
        "E401",
        "('customers', 'name')",
    ),
    (
        "unknown lookup name",
        view(cross_db_filters={"t": CrossDBFilter("buyers", "tier")}),
        "E402",
        "'customers'",
    ),
    (
        "ordering through an unknown lookup name",
        view(cross_db_ordering_fields={"name": ("buyers", "name")}),
        "E402",
        "'customers'",
    ),
    (
        "unknown remote field",
        view(cross_db_filters={"t": CrossDBFilter("customers", "rank")}),
        "E403",
        "tier",
    ),
    (
        "unknown remote field across a relation",
        view(cross_db_filters={"t": CrossDBFilter("customers", "tier__name")}),
        "E403",
        "tier",
    ),
    (
        "ordering by an unknown remote field",
        view(cross_db_ordering_fields={"r": ("customers", "rank")}),
        "E403",
        "name",
    ),
    (
        "unsupported lookup",
        view(
            cross_db_fields={"joined": CrossDBPrefetch("shop.JoinedOrderEvent", key="customer_id")},
            cross_db_filters={"t": CrossDBFilter("joined", "customer", lookup_expr="icontains")},
        ),
        "E404",
        "'exact'",
    ),
    (
        "composite key",
        view(
            cross_db_fields={
                "accounts": CrossDBPrefetch(
                    "testapp.Account",
                    key=("account_tenant", "account_number"),
                    to_field=("tenant_id", "number"),
                )
            },
            cross_db_filters={"a": CrossDBFilter("accounts", "label")},
        ),
        "E405",
        "single key",
    ),
    (
        "callable key",
        view(
            cross_db_fields=by_key(lambda event: event.customer_id),
            cross_db_filters={"t": CrossDBFilter("customers", "tier")},
        ),
        "E405",
        "one field",
    ),
    (
        "dotted key",
        view(
            cross_db_fields=by_key("customer.id"),
            cross_db_ordering_fields={"n": ("customers", "name")},
        ),
        "E405",
        "one field",
    ),
    (
        "remote ordering also a local one",
        view(
            cross_db_ordering_fields={"amount": ("customers", "name")}, ordering_fields=["amount"]
        ),
        "E406",
        "Rename",
    ),
    (
        "no filter backend",
        view(cross_db_filters={"t": CrossDBFilter("customers", "tier")}, filter_backends=[]),
        "W401",
        "CrossDBFilterBackend",
    ),
    (
        "no ordering backend",
        view(
            cross_db_ordering_fields={"n": ("customers", "name")},
            filter_backends=[CrossDBFilterBackend],
        ),
        "W402",
        "CrossDBOrderingFilter",
    ),
    # the closest name, where a name is misspelled
    (
        "a misspelled lookup name",
        view(cross_db_filters={"t": CrossDBFilter("customer", "tier")}),
        "E402",
        "Did you mean 'customers'?",
    ),
    (
        "a misspelled remote field",
        view(cross_db_filters={"t": CrossDBFilter("customers", "teir")}),
        "E403",
        "Did you mean 'tier'?",
    ),
    (
        "ordering by a misspelled remote field",
        view(cross_db_ordering_fields={"n": ("customers", "nmae")}),
        "E403",
        "Did you mean 'name'?",
    ),
    # arguments a CrossDBFilter cannot take: reported here, never raised at import
    (
        "an unknown lookup_expr",
        view(cross_db_filters={"t": CrossDBFilter("customers", "tier", lookup_expr="icontain")}),
        "E408",
        "Did you mean 'icontains'? Use one of: exact, iexact, in",
    ),
    (
        "no field_name without isnull",
        view(cross_db_filters={"t": CrossDBFilter("customers")}),
        "E408",
        "lookup_expr='isnull'",
    ),
    (
        "an empty spec name",
        view(cross_db_filters={"t": CrossDBFilter("", "tier")}),
        "E408",
        "Name a spec of the view's cross_db_fields",
    ),
    (
        "an empty field_name",
        view(cross_db_filters={"t": CrossDBFilter("customers", "")}),
        "E408",
        "Name a remote field",
    ),
]


@pytest.mark.parametrize(("name", "view_class", "code", "hint"), CASES, ids=[c[0] for c in CASES])
def test_check(name: str, view_class: type, code: str, hint: str) -> None:
    messages = check_view_filters(view_class)
    assert [m.id for m in messages] == [f"crossprefetch.{code}"], messages
    assert hint in (messages[0].hint or "") + messages[0].msg
    assert "FilteredView" in messages[0].msg


def test_an_invalid_filter_is_named_with_its_view_and_parameter() -> None:
    broken = CrossDBFilter("customers", "tier", lookup_expr="regex")
    [message] = check_view_filters(view(cross_db_filters={"customer_tier": broken}))
    assert message.id == "crossprefetch.E408"
    assert message.msg == (
        f"{__name__}.FilteredView.cross_db_filters['customer_tier'] = "
        "CrossDBFilter('customers', 'tier', lookup_expr='regex'): lookup_expr 'regex' is not "
        "a lookup crossprefetch filters with."
    )
    assert message.hint == f"Use one of: {', '.join(LOOKUPS)}."  # nothing close to 'regex'


class BrokenFilterSet(django_filters.FilterSet):  # type: ignore[misc]
    tier = CrossDBFilterSetFilter("customers", "tier", lookup_expr="icontain")
    missing = CrossDBFilterSetFilter("customers", exclude=True)
    fine = CrossDBFilterSetFilter("customers", "tier")
    local = django_filters.CharFilter(field_name="event_type")

    class Meta:
        model = OrderEvent
        fields: list[str] = []


def test_invalid_filters_of_the_filterset_are_reported() -> None:
    messages = check_view_filters(view(filterset_class=BrokenFilterSet))
    assert [m.id for m in messages] == ["crossprefetch.E408"] * 2
    where = f"{__name__}.FilteredView.filterset_class.base_filters"
    tier, missing = messages
    assert tier.msg.startswith(
        f"{where}['tier'] = CrossDBFilterSetFilter('customers', 'tier', lookup_expr='icontain'): "
    )
    assert "Did you mean 'icontains'?" in (tier.hint or "")
    assert missing.msg.startswith(f"{where}['missing'] = ")  # no field_name: the first problem
    assert "lookup_expr='isnull'" in (missing.hint or "")


def test_exclude_is_reported_for_a_filter_otherwise_valid() -> None:
    class Excluding(django_filters.FilterSet):  # type: ignore[misc]
        tier = CrossDBFilterSetFilter("customers", "tier", exclude=True)

        class Meta:
            model = OrderEvent
            fields: list[str] = []

    [message] = check_view_filters(view(filterset_class=Excluding))
    assert message.id == "crossprefetch.E408"
    assert "exclude=True is not supported" in message.msg
    assert "opposite value" in (message.hint or "")


class PlainFilteredView(generics.ListAPIView):  # type: ignore[type-arg]
    """No cross_db_fields: a FilterSet filter may take its spec directly."""

    queryset = OrderEvent.objects.all()
    serializer_class = OrderEventSerializer
    filterset_class = BrokenFilterSet


urlpatterns = [path("plain/", PlainFilteredView.as_view())]


@override_settings(ROOT_URLCONF=__name__)
def test_the_filterset_of_a_view_without_cross_db_fields_is_checked() -> None:
    messages = checks.run_checks(tags=["crossprefetch"])
    assert [m.id for m in messages] == ["crossprefetch.E408"] * 2 + ["crossprefetch.E402"]
    assert all(m.msg.startswith(f"{__name__}.PlainFilteredView.filterset_class") for m in messages)
    fine = messages[-1]  # valid arguments, but a spec by name where no view declares specs
    assert "['fine']" in fine.msg
    assert "declares no cross_db_fields" in fine.msg
    assert "CrossDBFilterSetFilter(CrossDBPrefetch(...)" in (fine.hint or "")


class MisspelledFilterSet(django_filters.FilterSet):  # type: ignore[misc]
    spec_typo = CrossDBFilterSetFilter("custmers", "tier")
    field_typo = CrossDBFilterSetFilter("customers", "teir")
    lookup = CrossDBFilterSetFilter(
        CrossDBPrefetch("shop.JoinedOrderEvent", key="customer_id"),
        "customer",
        lookup_expr="icontains",  # a ForeignKey: no icontains
    )
    given = CrossDBFilterSetFilter(
        CrossDBPrefetch("testapp.Customer", key="customer_id"), "nmae", lookup_expr="icontains"
    )
    fine = CrossDBFilterSetFilter("customers", "tier", lookup_expr="in")
    given_fine = CrossDBFilterSetFilter(
        CrossDBPrefetch("testapp.Customer", key="customer_id"), lookup_expr="isnull"
    )

    class Meta:
        model = OrderEvent
        fields: list[str] = []


def test_misspelled_specs_fields_and_lookups_of_the_filterset_are_reported() -> None:
    """The checks of ``cross_db_filters`` (E402, E403, E404) for a FilterSet's filters,
    whether they name the view's spec or hold their own."""
    messages = check_view_filters(view(filterset_class=MisspelledFilterSet))
    where = f"{__name__}.FilteredView.filterset_class.base_filters"
    by_param = {m.msg.split("]")[0].split("[")[-1]: m for m in messages}
    assert sorted(by_param) == ["'field_typo'", "'given'", "'lookup'", "'spec_typo'"], messages
    spec_typo = by_param["'spec_typo'"]
    assert spec_typo.id == "crossprefetch.E402"
    assert spec_typo.msg.startswith(f"{where}['spec_typo'] = CrossDBFilterSetFilter('custmers'")
    assert "Did you mean 'customers'?" in (spec_typo.hint or "")
    field_typo = by_param["'field_typo'"]
    assert field_typo.id == "crossprefetch.E403"
    assert "Did you mean 'tier'?" in (field_typo.hint or "")
    assert by_param["'lookup'"].id == "crossprefetch.E404"
    assert "'icontains'" in by_param["'lookup'"].msg
    given = by_param["'given'"]
    assert given.id == "crossprefetch.E403"
    assert "Did you mean 'name'?" in (given.hint or "")


@override_settings(ROOT_URLCONF="tests.test_filter_errors")
def test_a_urlconf_with_invalid_filters_imports_and_the_checks_name_them() -> None:
    from tests.test_filter_errors import FILTERS, FILTERSET

    messages = checks.run_checks(tags=["crossprefetch"])
    invalid = sorted(m.msg.split(" = ")[0] for m in messages if m.id == "crossprefetch.E408")
    assert invalid == [
        f"{FILTERS}['no_field']",
        f"{FILTERS}['tier_like']",
        f"{FILTERSET}['set_tier']",
    ]
    found = {m.id for m in messages}
    assert {"crossprefetch.E402", "crossprefetch.E403"} <= found  # 'customer', 'emial'


def test_specs_known_per_request_are_not_guessed() -> None:
    class PerRequest(CrossDBPrefetchMixin, generics.ListAPIView):  # type: ignore[type-arg]
        queryset = OrderEvent.objects.all()
        serializer_class = OrderEventSerializer
        filter_backends = BACKENDS
        cross_db_filters = {"t": CrossDBFilter("customers", "tier")}

        def get_cross_db_fields(self) -> Mapping[str, CrossDBPrefetch]:
            return {"customers": CrossDBPrefetch(Customer, key="customer_id")}

    assert check_view_filters(PerRequest) == []


def test_well_declared_views_pass() -> None:
    assert check_view_filters(FilteredEventViewSet) == []
    assert check_view_filters(TenantFilteredEventViewSet) == []


def test_project_urlconf_is_clean() -> None:
    messages = checks.run_checks(tags=["crossprefetch"])
    assert [m for m in messages if m.id.startswith("crossprefetch.")] == []
