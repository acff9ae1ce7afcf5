"""django-filter's own backend and FilterSet tests, run against ``CrossDBFilterSetFilter``.

Ported from django-filter's ``tests/rest_framework/test_backends.py`` (the integration
tests of ``DjangoFilterBackend``: filtered list and detail views, unknown parameters,
validation errors, ``raise_exception``, the HTML form) and the FilterSet form tests
(labels, unbound and invalid forms). django-filter's ``FilterableItem`` (``text``,
``decimal``, ``date``) is here a parcel's vendor, in another database: the filters are
``CrossDBFilterSetFilter`` on the vendor's name, rating and start date, and each must
behave as django-filter's ``CharFilter``/``NumberFilter``/``DateFilter`` on a local field.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import django_filters
import pytest
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import generics, serializers, status
from rest_framework.test import APIRequestFactory

from crossprefetch import CrossDBPrefetch
from crossprefetch.filters import CrossDBFilterSetFilter
from crossprefetch.testing import assert_num_queries
from tests.conftest import ALL_DATABASES
from tests.testapp.models import Customer, Parcel, Vendor

pytestmark = pytest.mark.django_db(databases=ALL_DATABASES)

factory = APIRequestFactory()
VENDORS = CrossDBPrefetch("testapp.Vendor", key="vendor_code", to_field="code")


class ParcelSerializer(serializers.ModelSerializer[Parcel]):
    class Meta:
        model = Parcel
        fields = ["id", "vendor_code", "weight"]


class SeveralFieldsFilter(django_filters.FilterSet):  # type: ignore[misc]
    text = CrossDBFilterSetFilter("vendors", "name", lookup_expr="icontains")
    decimal = CrossDBFilterSetFilter("vendors", "rating", lookup_expr="lt")
    date = CrossDBFilterSetFilter("vendors", "since", lookup_expr="gt")
    no_vendor = CrossDBFilterSetFilter("vendors", lookup_expr="isnull")

    class Meta:
        model = Parcel
        fields = ["weight"]


class FilterClassRootView(generics.ListAPIView):  # type: ignore[type-arg]
    queryset = Parcel.objects.all()
    serializer_class = ParcelSerializer
    filterset_class = SeveralFieldsFilter
    filter_backends = (DjangoFilterBackend,)
    cross_db_fields = {"vendors": VENDORS}


class FilterClassDetailView(generics.RetrieveAPIView):  # type: ignore[type-arg]
    queryset = Parcel.objects.all()
    serializer_class = ParcelSerializer
    filterset_class = SeveralFieldsFilter
    filter_backends = (DjangoFilterBackend,)
    cross_db_fields = {"vendors": VENDORS}


class GetQuerysetView(generics.ListAPIView):  # type: ignore[type-arg]
    serializer_class = ParcelSerializer
    filterset_class = SeveralFieldsFilter
    filter_backends = (DjangoFilterBackend,)
    cross_db_fields = {"vendors": VENDORS}

    def get_queryset(self) -> Any:
        return Parcel.objects.all()


class PermissiveBackend(DjangoFilterBackend):  # type: ignore[misc]
    raise_exception = False


class PermissiveRootView(FilterClassRootView):
    filter_backends = (PermissiveBackend,)


class MisconfiguredFilter(django_filters.FilterSet):  # type: ignore[misc]
    text = CrossDBFilterSetFilter("vendors", "name", lookup_expr="icontains")

    class Meta:
        model = Customer
        fields = ["name"]


class IncorrectlyConfiguredRootView(FilterClassRootView):
    filterset_class = MisconfiguredFilter


@pytest.fixture(autouse=True)
def items() -> list[dict[str, Any]]:
    """django-filter's ``CommonFilteringTestCase.setUp``: ten items ``aaa``, ``bbb``...
    with decimals from 0.25 and dates from 2012-10-08 back by two days: here vendors,
    each referenced by one parcel."""
    data = []
    for i in range(10):
        text = chr(i + ord("a")) * 3
        decimal = Decimal("0.25") + i
        date = dt.date(2012, 10, 8) - dt.timedelta(days=i * 2)
        Vendor.objects.create(code=f"V{i}", name=text, tier="gold", rating=decimal, since=date)
        parcel = Parcel.objects.create(vendor_code=f"V{i}", weight=i)
        data.append({"parcel": parcel, "text": text, "decimal": decimal, "date": date})
    return data


def serialized(items: list[dict[str, Any]], keep: Any = lambda item: True) -> list[Any]:
    return [ParcelSerializer(i["parcel"]).data for i in items if keep(i)]


def test_get_filtered_class_root_view(items: list[dict[str, Any]]) -> None:
    view = FilterClassRootView.as_view()

    # Basic test with no filter.
    response = view(factory.get("/")).render()
    assert response.status_code == status.HTTP_200_OK
    assert response.data == serialized(items)

    # Tests that the decimal filter set with 'lt' in the filter class works.
    with assert_num_queries(default=1, legacy=1):
        response = view(factory.get("/", {"decimal": "4.25"})).render()
    assert response.status_code == status.HTTP_200_OK
    assert response.data == serialized(items, lambda i: i["decimal"] < Decimal("4.25"))

    # Tests that the date filter set with 'gt' in the filter class works.
    response = view(factory.get("/", {"date": "2012-10-02"})).render()
    assert response.data == serialized(items, lambda i: i["date"] > dt.date(2012, 10, 2))

    # Tests that the text filter set with 'icontains' in the filter class works.
    response = view(factory.get("/", {"text": "ff"})).render()
    assert response.data == serialized(items, lambda i: "ff" in i["text"])

    # Tests that multiple filters works.
    response = view(factory.get("/", {"decimal": "5.25", "date": "2012-10-02"})).render()
    assert response.data == serialized(
        items, lambda i: i["date"] > dt.date(2012, 10, 2) and i["decimal"] < Decimal("5.25")
    )


def test_filter_with_get_queryset_only() -> None:
    """Regression test for django-filter #834: neither ``model`` nor ``queryset``."""
    response = GetQuerysetView.as_view()(factory.get("/get-queryset/")).render()
    assert response.status_code == status.HTTP_200_OK


def test_unknown_filter(items: list[dict[str, Any]]) -> None:
    """GET requests with filters that aren't configured return 200, unfiltered."""
    response = FilterClassRootView.as_view()(factory.get("/", {"integer": "10"})).render()
    assert response.status_code == status.HTTP_200_OK
    assert response.data == serialized(items)


def test_incorrectly_configured_filter() -> None:
    with pytest.raises(AssertionError):
        IncorrectlyConfiguredRootView.as_view()(factory.get("/"))


def test_get_filtered_detail_view(items: list[dict[str, Any]]) -> None:
    view = FilterClassDetailView.as_view()
    first = items[0]["parcel"]
    response = view(factory.get("/"), pk=first.pk).render()
    assert response.data == ParcelSerializer(first).data

    # the filter excludes the object: 404
    high = next(i["parcel"] for i in items if i["decimal"] > Decimal("4.25"))
    response = view(factory.get("/", {"decimal": "4.25"}), pk=high.pk).render()
    assert response.status_code == status.HTTP_404_NOT_FOUND

    low = next(i["parcel"] for i in items if i["decimal"] < Decimal("4.25"))
    response = view(factory.get("/", {"decimal": "4.25"}), pk=low.pk).render()
    assert response.status_code == status.HTTP_200_OK
    assert response.data == ParcelSerializer(low).data

    # Tests that multiple filters works.
    valid = next(
        i["parcel"]
        for i in items
        if i["decimal"] < Decimal("5.25") and i["date"] > dt.date(2012, 10, 2)
    )
    query = {"decimal": "5.25", "date": "2012-10-02"}
    response = view(factory.get("/", query), pk=valid.pk).render()
    assert response.status_code == status.HTTP_200_OK


def test_default_ordering(items: list[dict[str, Any]]) -> None:
    """DjangoFilterOrderingTests: the queryset's own ordering survives the filter."""

    class OrderedView(FilterClassRootView):
        queryset = Parcel.objects.order_by("-weight")

    response = OrderedView.as_view()(factory.get("/", {"decimal": "4.25"})).render()
    assert [row["weight"] for row in response.data] == [3, 2, 1, 0]


# ValidationErrorTests: errors are the form's ---------------------------------------------


def test_errors() -> None:
    with assert_num_queries(default=0, legacy=0):
        response = FilterClassRootView.as_view()(factory.get("/", {"decimal": "foobar"}))
    assert response.status_code == status.HTTP_400_BAD_REQUEST
    assert list(response.data) == ["decimal"]
    (message,) = response.data["decimal"]
    assert "'foobar' is not a valid value of testapp.Vendor.rating" in message


def test_every_invalid_value_is_reported() -> None:
    query = {"decimal": "foobar", "date": "not-a-date", "text": "ok"}
    response = FilterClassRootView.as_view()(factory.get("/", query))
    assert response.status_code == status.HTTP_400_BAD_REQUEST
    assert sorted(response.data) == ["date", "decimal"]


def test_invalid_values_are_left_out_without_raise_exception(items: list[dict[str, Any]]) -> None:
    """``raise_exception = False``: as with django-filter's own filters, the invalid filter
    is left out and the valid ones apply."""
    query = {"decimal": "foobar", "text": "aa"}
    response = PermissiveRootView.as_view()(factory.get("/", query)).render()
    assert response.status_code == status.HTTP_200_OK
    assert response.data == serialized(items, lambda i: "aa" in i["text"])


def test_a_percent_sign_in_an_invalid_value_is_400_not_500() -> None:
    response = FilterClassRootView.as_view()(factory.get("/", {"decimal": "100%"}))
    assert response.status_code == status.HTTP_400_BAD_REQUEST
    assert "'100%'" in response.data["decimal"][0]


def test_a_value_longer_than_the_remote_field_is_a_form_error() -> None:
    response = FilterClassRootView.as_view()(factory.get("/", {"text": "x" * 101}))
    assert response.status_code == status.HTTP_400_BAD_REQUEST
    assert "holds at most 100" in response.data["text"][0]


# The FilterSet's form: labels, unbound and bound -------------------------------------------


def _filterset(query: dict[str, str] | None) -> SeveralFieldsFilter:
    view = FilterClassRootView()
    request = view.initialize_request(factory.get("/", query or {}))
    view.setup(request)
    return SeveralFieldsFilter(query, queryset=Parcel.objects.all(), request=request)


def test_labels_come_from_the_remote_fields() -> None:
    """django-filter labels a filter from its model field ("Weight is greater than"); a
    remote field is labelled from the remote model, never "[invalid name]"."""
    form = _filterset({}).form
    labels = {name: str(field.label) for name, field in form.fields.items()}
    assert labels == {
        "weight": "Weight",
        "text": "Trading name contains",
        "decimal": "Rating is less than",
        "date": "Since is greater than",
        "no_vendor": "Vendor is null",
    }


def test_a_label_without_a_request_names_the_spec_and_field() -> None:
    form = SeveralFieldsFilter({}, queryset=Parcel.objects.all()).form
    assert form.fields["decimal"].label == "Vendors rating is less than"
    assert form.fields["text"].label != "[invalid name]"


def test_a_given_label_is_kept() -> None:
    class Labelled(django_filters.FilterSet):  # type: ignore[misc]
        rating = CrossDBFilterSetFilter(VENDORS, "rating", label="Vendor's rating")

        class Meta:
            model = Parcel
            fields: list[str] = []

    assert Labelled().form.fields["rating"].label == "Vendor's rating"


def test_the_html_form_shows_the_labels() -> None:
    """What ``DjangoFilterBackend.to_html`` renders for the browsable API: the form."""
    html = str(_filterset({}).form)
    assert "Rating is less than" in html
    assert "[invalid name]" not in html


def test_unbound_and_bound_forms(items: list[dict[str, Any]]) -> None:
    unbound = SeveralFieldsFilter(queryset=Parcel.objects.all())
    assert not unbound.is_bound
    assert list(unbound.qs) == [i["parcel"] for i in items]
    invalid = _filterset({"decimal": "foobar"})
    assert not invalid.is_valid()
    assert list(invalid.errors) == ["decimal"]
    valid = _filterset({"decimal": "2.25"})
    assert valid.is_valid()
    assert valid.form.cleaned_data["decimal"] == Decimal("2.25")
    assert [p.vendor_code for p in valid.qs] == ["V0", "V1"]
