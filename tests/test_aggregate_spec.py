"""``CrossDBAggregate``: validated where it is declared, checked by the system checks,
typed in OpenAPI schemas."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Avg, Count, F, Max, Min, Q, Sum, Value, Window
from django.db.models.functions import RowNumber
from rest_framework import serializers, viewsets
from rest_framework.routers import SimpleRouter

from crossprefetch import ContextLookupField, CrossDBAggregate, CrossDBPrefetchMixin
from crossprefetch.checks import check_view, check_view_aggregates, check_view_filters
from crossprefetch.filters import CrossDBFilter, CrossDBFilterBackend, CrossDBOrderingFilter
from tests.test_openapi import _schema_class, generate  # noqa: F401  (autouse fixture)
from tests.testapp.aggregate_views import MemberActivityViewSet
from tests.testapp.models import Entry, Member

COUNT = {"n": Count("id")}


def aggregate(source: Any = Entry, **options: Any) -> CrossDBAggregate:
    options.setdefault("key", "id")
    options.setdefault("to_field", "member_id")
    options.setdefault("aggregates", COUNT)
    return CrossDBAggregate(source, **options)


# -- construction ----------------------------------------------------------------------------

BAD: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"aggregates": [Count("id")]}, TypeError, "must be a dict of {name: aggregate}"),
    ({"aggregates": {}}, ValueError, "aggregates is empty"),
    ({"aggregates": {"n": "id"}}, TypeError, "aggregates['n'] is 'id', not an aggregate"),
    ({"aggregates": {"n": F("id")}}, TypeError, "not an aggregate"),
    ({"aggregates": {"n": Window(RowNumber())}}, TypeError, "not an aggregate"),
    ({"aggregates": {1: Count("id")}}, TypeError, "the name 1 is not a str"),
    ({"aggregates": {"two words": Count("id")}}, ValueError, "use a Python identifier"),
    ({"aggregates": {"class": Count("id")}}, ValueError, "use a Python identifier"),
    ({"aggregates": {"a__b": Count("id")}}, ValueError, "cannot name an aggregate"),
    ({"aggregates": {"_n": Count("id")}}, ValueError, "cannot name an aggregate"),
    ({"aggregates": {"pk": Count("id")}}, ValueError, "cannot name an aggregate"),
    ({"aggregates": {"member_id": Count("id")}}, ValueError, "is also the to_field"),
    (
        {"aggregates": {"n": Sum("amount", default=F("quantity"))}},
        ValueError,
        "give a plain value",
    ),
    ({"aggregates": {"n": Sum("amont")}}, ValueError, "cannot compute the aggregates"),
    ({"aggregates": {"kind": Count("id")}}, ValueError, "conflicts with a field"),
    ({"to_field": "owner"}, Exception, "has no field 'owner' for to_field"),
    ({"key": 3}, TypeError, "key must be an attribute path"),
    ({"on_error": "ignore"}, ValueError, "on_error must be 'raise'"),
    ({"cache": "forever"}, TypeError, "cache must be None"),
]


@pytest.mark.parametrize(("options", "error", "message"), BAD)
def test_bad_arguments_fail_where_the_spec_is_declared(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as raised:
        aggregate(**options)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (Entry.objects.values("member_id"), "already values()/values_list() or grouped"),
        (Entry.objects.annotate(n=Count("id")), "already values()/values_list() or grouped"),
        (Entry.objects.all()[:5], "the source QuerySet is sliced"),
    ],
)
def test_sources_that_cannot_be_grouped_again_are_refused(source: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        aggregate(source)


def test_a_string_source_is_resolved_and_checked_on_first_use() -> None:
    spec = aggregate("testapp.Entry", aggregates={"n": Sum("amont")})  # apps may not be ready
    with pytest.raises(ImproperlyConfigured, match="cannot compute the aggregates"):
        spec.get_queryset()


def test_a_callable_source_is_grouped_per_call() -> None:
    spec = aggregate(lambda request: Entry.objects.values("kind"))
    with pytest.raises(ImproperlyConfigured, match=r"already values\(\)"):
        spec.get_queryset()


def test_defaults_are_the_value_over_no_rows() -> None:
    spec = aggregate(
        aggregates={
            "n": Count("id"),
            "distinct": Count("kind", distinct=True, filter=Q(kind="paid")),
            "total": Sum("amount"),
            "zero": Sum("amount", default=0),
            "value": Sum("quantity", default=Value(7)),
            "mean": Avg("quantity"),
            "low": Min("at"),
        }
    )
    assert {name: spec.empty_value(name) for name in spec.aggregates} == {
        "n": 0,
        "distinct": 0,
        "total": None,
        "zero": 0,
        "value": 7,
        "mean": None,
        "low": None,
    }


def test_repr_and_immutability() -> None:
    spec = aggregate(using="legacy", on_error="degrade")
    assert repr(spec) == (
        "CrossDBAggregate('testapp.Entry', key='id', to_field='member_id', "
        "aggregates={'n': Count(F(id))}, using='legacy', on_error='degrade')"
    )
    assert spec.fields == ("n",)
    assert spec.many is False
    with pytest.raises(AttributeError, match="immutable"):
        spec.aggregates = {}  # type: ignore[misc]


def test_output_fields_are_what_the_aggregates_yield() -> None:
    spec = aggregate(
        aggregates={
            "n": Count("id"),
            "total": Sum("amount"),
            "mean": Avg("quantity"),
            "last": Max("at"),
        }
    )
    queryset = spec.get_queryset()
    types = {name: type(spec.output_field(name, queryset)).__name__ for name in spec.aggregates}
    assert types == {
        "n": "IntegerField",
        "total": "DecimalField",
        "mean": "FloatField",
        "last": "DateTimeField",
    }
    assert spec.output_field("total", queryset).decimal_places == 2


# -- system checks ---------------------------------------------------------------------------


class Activity(serializers.ModelSerializer):  # type: ignore[type-arg]
    n = ContextLookupField("activity", "n", default=0)
    visits = ContextLookupField("activity", "visits", default=0)

    class Meta:
        model = Member
        fields = ["id", "n", "visits"]


def view(**attrs: Any) -> type:
    attrs.setdefault("cross_db_fields", {"activity": aggregate("testapp.Entry")})
    return type(
        "AggregateView",
        (CrossDBPrefetchMixin, viewsets.ReadOnlyModelViewSet),
        {
            "queryset": Member.objects.all(),
            "serializer_class": Activity,
            "filter_backends": [CrossDBFilterBackend, CrossDBOrderingFilter],
            "__module__": __name__,
            **attrs,
        },
    )


def ids(messages: list[Any]) -> list[str]:
    return sorted(message.id for message in messages)


def test_the_example_views_pass_every_check() -> None:
    for checked in (MemberActivityViewSet,):
        assert check_view(checked) == []
        assert check_view_filters(checked) == []
        assert check_view_aggregates(checked) == []


def test_an_aggregate_of_an_unknown_field_is_E601() -> None:
    checked = view(
        cross_db_fields={"activity": aggregate("testapp.Entry", aggregates={"n": Sum("amont")})}
    )
    (error,) = check_view_aggregates(checked)
    assert error.id == "crossprefetch.E601"
    assert "cross_db_fields['activity']" in error.msg
    assert "amont" in error.msg
    assert "E006" not in ids(check_view(checked))  # not reported twice


def test_an_aggregate_the_database_cannot_compute_is_E602(settings: Any) -> None:
    from django.contrib.postgres.aggregates import ArrayAgg
    from django.db import connections

    spec = aggregate("testapp.Entry", aggregates={"kinds": ArrayAgg("kind")})
    messages = check_view_aggregates(view(cross_db_fields={"activity": spec}))
    if connections["timeseries"].vendor == "postgresql":
        assert messages == []
    else:
        assert ids(messages) == ["crossprefetch.E602"]
        assert "ArrayAgg is PostgreSQL's own" in messages[0].msg


def test_sqlite_refuses_sums_of_dates_as_E602() -> None:
    from django.db import connections

    spec = aggregate("testapp.Entry", aggregates={"n": Count("id"), "total": Sum("at")})
    messages = check_view_aggregates(view(cross_db_fields={"activity": spec}))
    if connections["timeseries"].vendor == "sqlite":
        assert ids(messages) == ["crossprefetch.E602"]
        assert "'total'" in messages[0].msg
    else:
        assert messages == []


def test_filters_and_orderings_naming_no_aggregate_are_E603_to_E605() -> None:
    checked = view(
        cross_db_filters={
            "n__gte": CrossDBFilter("activity", "n", lookup_expr="gte"),
            "visits__gte": CrossDBFilter("activity", "visits", lookup_expr="gte"),
            "n__icontains": CrossDBFilter("activity", "n", lookup_expr="icontains"),
            "idle": CrossDBFilter("activity", lookup_expr="isnull"),
        },
        ordering_fields=["id"],
        cross_db_ordering_fields={"n": ("activity", "n"), "visits": ("activity", "visits")},
    )
    messages = check_view_aggregates(checked)
    assert ids(messages) == ["crossprefetch.E603", "crossprefetch.E604", "crossprefetch.E605"]
    by_id = {m.id: m for m in messages}
    assert "cross_db_filters['visits__gte']" in by_id["crossprefetch.E603"].msg
    assert "Name one of its aggregates: 'n'" in by_id["crossprefetch.E603"].hint
    assert "'icontains' does not apply" in by_id["crossprefetch.E604"].msg
    assert "cross_db_ordering_fields['visits']" in by_id["crossprefetch.E605"].msg
    assert check_view_filters(checked) == []  # E403/E404 are for model fields


def test_an_invalid_lookup_on_an_aggregate_is_E408_alone() -> None:
    """Reported once, as the filter's own problem, not again as E604."""
    checked = view(cross_db_filters={"n": CrossDBFilter("activity", "n", lookup_expr="lte_")})
    assert check_view_aggregates(checked) == []
    (error,) = check_view_filters(checked)
    assert error.id == "crossprefetch.E408"
    assert "Did you mean 'lte'?" in (error.hint or "")


def test_a_field_reading_no_aggregate_is_E011_with_the_aggregates_named() -> None:
    messages = [m for m in check_view(view()) if m.id == "crossprefetch.E011"]
    (error,) = messages
    assert "Activity.visits" in error.msg
    assert (
        error.hint == "Read one of the aggregates the spec computes ('n'), or add 'visits' to them."
    )


def test_no_uniqueness_warning_for_a_grouped_spec() -> None:
    assert "crossprefetch.W002" not in ids(check_view(view()))


# -- OpenAPI ---------------------------------------------------------------------------------


def test_fields_and_filters_are_typed_from_the_aggregates() -> None:
    router = SimpleRouter()
    router.register("members", MemberActivityViewSet, basename="member")
    schema, messages = generate(patterns=list(router.urls))
    assert messages == []
    properties = schema["components"]["schemas"]["MemberActivity"]["properties"]
    assert properties["entries"] == {"type": "integer", "readOnly": True}
    assert properties["smallest"] == {"type": "integer", "readOnly": True, "nullable": True}
    assert properties["spent"]["type"] == "string"  # its output_field: a DecimalField
    parameters = {p["name"]: p for p in schema["paths"]["/members/"]["get"]["parameters"]}
    assert parameters["entries__gte"]["schema"] == {"type": "integer"}
    assert parameters["entries__in"]["schema"] == {"type": "array", "items": {"type": "integer"}}
    assert parameters["spent__lt"]["schema"] == {"type": "number", "format": "decimal"}
    assert parameters["average__gt"]["schema"] == {"type": "number", "format": "double"}
    assert parameters["last__gte"]["schema"] == {"type": "string", "format": "date-time"}
    assert parameters["spent__isnull"]["schema"] == {"type": "boolean"}
    ordering = parameters["ordering"]["schema"]["items"]["enum"]
    assert {"entries", "-entries", "last", "-last", "name"} <= set(ordering)


def test_a_field_without_output_field_takes_the_source_fields_type() -> None:
    class Row(serializers.Serializer):  # type: ignore[type-arg]
        total = ContextLookupField("activity", "total")
        mean = ContextLookupField("activity", "mean", default=0.0)
        row = ContextLookupField("activity")

    spec = aggregate(
        "testapp.Entry",
        aggregates={"n": Count("id"), "total": Sum("quantity"), "mean": Avg("quantity")},
    )
    checked = view(cross_db_fields={"activity": spec}, serializer_class=Row)
    router = SimpleRouter()
    router.register("rows", checked, basename="row")
    schema, messages = generate(patterns=list(router.urls))
    assert messages == []
    properties = schema["components"]["schemas"]["Row"]["properties"]
    assert properties["total"] == {"type": "integer", "readOnly": True, "nullable": True}
    assert properties["mean"] == {"type": "number", "format": "double", "readOnly": True}
    assert properties["row"]["type"] == "object"
    assert properties["row"]["properties"]["n"] == {"type": "integer"}
    assert sorted(properties["row"]["required"]) == ["mean", "n", "total"]
