"""DRF's own ``OrderingFilter`` tests, run against ``CrossDBOrderingFilter``.

Ported from Django REST framework's ``tests/test_filters.py`` (``OrderingFilterTests`` and
``SensitiveOrderingFilterTests``: 13 behaviours): a view that also orders by remote rows
must behave as DRF's filter does for everything else. Each view here declares a remote
term (the item's vendor, in another database), so the subclass's own code runs. Rows are
compared by their titles, not ids (sequences are not reset between tests on PostgreSQL).
The last tests add what only the subclass has: a remote term under DRF's settings and
labels.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.test import override_settings
from rest_framework import generics, serializers
from rest_framework.test import APIRequestFactory

from crossprefetch import CrossDBPrefetch
from crossprefetch.filters import CrossDBOrderingFilter
from tests.conftest import ALL_DATABASES
from tests.testapp.models import Credential, OrderingItem, OrderingItemPart, Vendor

pytestmark = pytest.mark.django_db(databases=ALL_DATABASES)

factory = APIRequestFactory()

#: DRF drops an invalid ordering term; CROSSPREFETCH["STRICT"] (on in tests) refuses it
#: with a 400 instead (tests/test_strict.py). DRF's own tests run with STRICT off.
DRF_LENIENCY = override_settings(CROSSPREFETCH={"STRICT": False})

VENDORS = CrossDBPrefetch("testapp.Vendor", key="vendor_code", to_field="code", fields=("name",))


class OrderingItemSerializer(serializers.ModelSerializer[OrderingItem]):
    class Meta:
        model = OrderingItem
        fields = ["id", "title", "text"]


class RemoteTerm:
    """What every view below declares besides DRF's attributes: a remote ordering term."""

    cross_db_fields = {"vendors": VENDORS}
    cross_db_ordering_fields = {"vendor_name": ("vendors", "name")}


@pytest.fixture(autouse=True)
def items() -> None:
    """Titles and texts as DRF's ``setUp`` makes them: zyx/abc, yxw/bcd, xwv/cde; vendors
    named so that their order is the reverse of the texts'."""
    for idx in range(3):
        title = chr(ord("z") - idx) + chr(ord("y") - idx) + chr(ord("x") - idx)
        text = chr(idx + ord("a")) + chr(idx + ord("b")) + chr(idx + ord("c"))
        OrderingItem.objects.create(title=title, text=text, vendor_code=f"V{idx}")
        Vendor.objects.create(code=f"V{idx}", name=f"vendor {3 - idx}", tier="gold")


def titles(response: Any) -> list[str]:
    assert response.status_code == 200, response.data
    return [row["title"] for row in response.data]


def test_ordering() -> None:
    class OrderingListView(RemoteTerm, generics.ListAPIView):  # type: ignore[type-arg]
        queryset = OrderingItem.objects.all()
        serializer_class = OrderingItemSerializer
        filter_backends = (CrossDBOrderingFilter,)
        ordering = ("title",)
        ordering_fields = ("text",)

    response = OrderingListView.as_view()(factory.get("/", {"ordering": "text"}))
    assert titles(response) == ["zyx", "yxw", "xwv"]


def test_reverse_ordering() -> None:
    class OrderingListView(RemoteTerm, generics.ListAPIView):  # type: ignore[type-arg]
        queryset = OrderingItem.objects.all()
        serializer_class = OrderingItemSerializer
        filter_backends = (CrossDBOrderingFilter,)
        ordering = ("title",)
        ordering_fields = ("text",)

    response = OrderingListView.as_view()(factory.get("/", {"ordering": "-text"}))
    assert titles(response) == ["xwv", "yxw", "zyx"]


@DRF_LENIENCY
def test_incorrecturl_extrahyphens_ordering() -> None:
    class OrderingListView(RemoteTerm, generics.ListAPIView):  # type: ignore[type-arg]
        queryset = OrderingItem.objects.all()
        serializer_class = OrderingItemSerializer
        filter_backends = (CrossDBOrderingFilter,)
        ordering = ("title",)
        ordering_fields = ("text",)

    response = OrderingListView.as_view()(factory.get("/", {"ordering": "--text"}))
    assert titles(response) == ["xwv", "yxw", "zyx"]


@DRF_LENIENCY
def test_incorrectfield_ordering() -> None:
    class OrderingListView(RemoteTerm, generics.ListAPIView):  # type: ignore[type-arg]
        queryset = OrderingItem.objects.all()
        serializer_class = OrderingItemSerializer
        filter_backends = (CrossDBOrderingFilter,)
        ordering = ("title",)
        ordering_fields = ("text",)

    response = OrderingListView.as_view()(factory.get("/", {"ordering": "foobar"}))
    assert titles(response) == ["xwv", "yxw", "zyx"]


def test_default_ordering() -> None:
    class OrderingListView(RemoteTerm, generics.ListAPIView):  # type: ignore[type-arg]
        queryset = OrderingItem.objects.all()
        serializer_class = OrderingItemSerializer
        filter_backends = (CrossDBOrderingFilter,)
        ordering = ("title",)
        ordering_fields = ("text",)

    response = OrderingListView.as_view()(factory.get(""))
    assert titles(response) == ["xwv", "yxw", "zyx"]


def test_default_ordering_using_string() -> None:
    class OrderingListView(RemoteTerm, generics.ListAPIView):  # type: ignore[type-arg]
        queryset = OrderingItem.objects.all()
        serializer_class = OrderingItemSerializer
        filter_backends = (CrossDBOrderingFilter,)
        ordering = "title"
        ordering_fields = ("text",)

    response = OrderingListView.as_view()(factory.get(""))
    assert titles(response) == ["xwv", "yxw", "zyx"]


def test_ordering_by_aggregate_field() -> None:
    for item, parts in zip(OrderingItem.objects.order_by("pk"), [2, 5, 3], strict=True):
        OrderingItemPart.objects.bulk_create(OrderingItemPart(item=item) for _ in range(parts))

    class OrderingListView(RemoteTerm, generics.ListAPIView):  # type: ignore[type-arg]
        serializer_class = OrderingItemSerializer
        filter_backends = (CrossDBOrderingFilter,)
        ordering = "title"
        ordering_fields = "__all__"
        queryset = OrderingItem.objects.annotate(models.Count("relateds"))

    response = OrderingListView.as_view()(factory.get("/", {"ordering": "relateds__count"}))
    assert titles(response) == ["zyx", "xwv", "yxw"]


def test_ordering_with_nonstandard_ordering_param() -> None:
    """DRF's test reloads its module to take the setting; ours reads it on each request."""

    class OrderingListView(RemoteTerm, generics.ListAPIView):  # type: ignore[type-arg]
        queryset = OrderingItem.objects.all()
        serializer_class = OrderingItemSerializer
        filter_backends = (CrossDBOrderingFilter,)
        ordering = ("title",)
        ordering_fields = ("text",)

    with override_settings(REST_FRAMEWORK={"ORDERING_PARAM": "order"}):
        response = OrderingListView.as_view()(factory.get("/", {"order": "text"}))
        assert titles(response) == ["zyx", "yxw", "xwv"]
        # a remote term under the same parameter
        response = OrderingListView.as_view()(factory.get("/", {"order": "-vendor_name"}))
        assert titles(response) == ["zyx", "yxw", "xwv"]
        # and the former name is no ordering any more
        response = OrderingListView.as_view()(factory.get("/", {"ordering": "text"}))
        assert titles(response) == ["xwv", "yxw", "zyx"]


def test_get_template_context() -> None:
    class OrderingListView(RemoteTerm, generics.ListAPIView):  # type: ignore[type-arg]
        ordering_fields = "__all__"
        serializer_class = OrderingItemSerializer
        queryset = OrderingItem.objects.all()
        filter_backends = (CrossDBOrderingFilter,)

    request = factory.get("/", {"ordering": "title"}, HTTP_ACCEPT="text/html")
    response = OrderingListView.as_view()(request).render()
    assert "verbose title" in response.content.decode()


def test_ordering_with_overridden_get_serializer_class() -> None:
    class OrderingListView(RemoteTerm, generics.ListAPIView):  # type: ignore[type-arg]
        queryset = OrderingItem.objects.all()
        filter_backends = (CrossDBOrderingFilter,)
        ordering = ("title",)

        # note: no ordering_fields and serializer_class specified

        def get_serializer_class(self) -> type[OrderingItemSerializer]:
            return OrderingItemSerializer

    response = OrderingListView.as_view()(factory.get("/", {"ordering": "text"}))
    assert titles(response) == ["zyx", "yxw", "xwv"]


def test_ordering_with_improper_configuration() -> None:
    class OrderingListView(RemoteTerm, generics.ListAPIView):  # type: ignore[type-arg]
        queryset = OrderingItem.objects.all()
        filter_backends = (CrossDBOrderingFilter,)
        ordering = ("title",)
        # note: no ordering_fields and serializer_class
        # or get_serializer_class specified

    with pytest.raises(ImproperlyConfigured):
        OrderingListView.as_view()(factory.get("/", {"ordering": "text"}))


# SensitiveOrderingFilterTests: three styles of serializer, all allowing ordering by
# username, none by password.


class SensitiveDataSerializer1(serializers.ModelSerializer[Credential]):
    username = serializers.CharField()

    class Meta:
        model = Credential
        fields = ("id", "username")


class SensitiveDataSerializer2(serializers.ModelSerializer[Credential]):
    username = serializers.CharField()
    password = serializers.CharField(write_only=True)

    class Meta:
        model = Credential
        fields = ("id", "username", "password")


class SensitiveDataSerializer3(serializers.ModelSerializer[Credential]):
    user = serializers.CharField(source="username")

    class Meta:
        model = Credential
        fields = ("id", "user")


SENSITIVE = [SensitiveDataSerializer1, SensitiveDataSerializer2, SensitiveDataSerializer3]


@pytest.fixture
def credentials() -> None:
    for username, password in [("userA", "passA"), ("userB", "passC"), ("userC", "passB")]:
        Credential.objects.create(username=username, password=password)


def _sensitive_view(serializer_cls: type[serializers.Serializer[Any]]) -> Any:
    class OrderingListView(generics.ListAPIView):  # type: ignore[type-arg]
        queryset = Credential.objects.all().order_by("username")
        filter_backends = (CrossDBOrderingFilter,)
        serializer_class = serializer_cls
        cross_db_fields = {"vendors": VENDORS}
        cross_db_ordering_fields = {"vendor_name": ("vendors", "name")}

    return OrderingListView.as_view()


@pytest.mark.parametrize("serializer_cls", SENSITIVE)
def test_order_by_serializer_fields(
    credentials: None, serializer_cls: type[serializers.Serializer[Any]]
) -> None:
    response = _sensitive_view(serializer_cls)(factory.get("/", {"ordering": "-username"}))
    username_field = "user" if serializer_cls is SensitiveDataSerializer3 else "username"
    # Note: Inverse username ordering correctly applied.
    assert [row[username_field] for row in response.data] == ["userC", "userB", "userA"]


@DRF_LENIENCY
@pytest.mark.parametrize("serializer_cls", SENSITIVE)
def test_cannot_order_by_non_serializer_fields(
    credentials: None, serializer_cls: type[serializers.Serializer[Any]]
) -> None:
    response = _sensitive_view(serializer_cls)(factory.get("/", {"ordering": "password"}))
    username_field = "user" if serializer_cls is SensitiveDataSerializer3 else "username"
    # Note: The passwords are not in order.  Default ordering is used.
    assert [row[username_field] for row in response.data] == ["userA", "userB", "userC"]


# What only the subclass has --------------------------------------------------------------


def test_remote_terms_are_labelled_with_the_remote_field_verbose_name() -> None:
    """``Vendor.name`` is ``"trading name"``: the browsable API's ordering choices say so."""

    class OrderingListView(RemoteTerm, generics.ListAPIView):  # type: ignore[type-arg]
        ordering_fields = ("text",)
        serializer_class = OrderingItemSerializer
        queryset = OrderingItem.objects.all()
        filter_backends = (CrossDBOrderingFilter,)

    request = factory.get("/", {"ordering": "vendor_name"}, HTTP_ACCEPT="text/html")
    view = OrderingListView()
    view.setup(view.initialize_request(request))
    context = CrossDBOrderingFilter().get_template_context(
        view.request, OrderingItem.objects.all(), view
    )
    assert ("vendor_name", "trading name - ascending") in context["options"]
    assert ("-vendor_name", "trading name - descending") in context["options"]
    assert context["current"] == "vendor_name"
    html = OrderingListView.as_view()(request).render().content.decode()
    assert "trading name - descending" in html


def test_a_subclass_may_still_name_its_own_parameter() -> None:
    class SortFilter(CrossDBOrderingFilter):
        ordering_param = "sort"

    class OrderingListView(RemoteTerm, generics.ListAPIView):  # type: ignore[type-arg]
        queryset = OrderingItem.objects.all()
        serializer_class = OrderingItemSerializer
        filter_backends = (SortFilter,)
        ordering = ("title",)
        ordering_fields = ("text",)

    with override_settings(REST_FRAMEWORK={"ORDERING_PARAM": "order"}):
        response = OrderingListView.as_view()(factory.get("/", {"sort": "vendor_name"}))
    assert titles(response) == ["xwv", "yxw", "zyx"]
