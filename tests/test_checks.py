"""Every system check, triggered by a misdeclared view; ids asserted, messages name the fix."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import checks
from django.db import models
from django.test import override_settings
from django.urls import path
from rest_framework import generics, serializers, viewsets

from crossprefetch import ContextLookupField, CrossDBPrefetch, CrossDBPrefetchMixin
from crossprefetch.checks import check_view
from tests.testapp.models import Customer, OrderEvent
from tests.testapp.views import OrderEventViewSet


class EventSerializer(serializers.ModelSerializer[OrderEvent]):
    customer_name = ContextLookupField("customers", "name")

    class Meta:
        model = OrderEvent
        fields = ["id", "customer_name"]


def view(cross_db_fields: Any, serializer: Any = EventSerializer, *, mixin: bool = True) -> type:
    bases: tuple[type, ...] = (generics.ListAPIView,)
    if mixin:
        bases = (CrossDBPrefetchMixin, *bases)
    return type(
        "BadView",
        bases,
        {
            "queryset": OrderEvent.objects.all(),
            "serializer_class": serializer,
            "cross_db_fields": cross_db_fields,
            "__module__": __name__,
        },
    )


def spec(model: Any = "testapp.Customer", **kwargs: Any) -> dict[str, CrossDBPrefetch]:
    kwargs.setdefault("key", "customer_id")
    kwargs.setdefault("fields", ("name",))
    return {"customers": CrossDBPrefetch(model, **kwargs)}


class Shipment(models.Model):
    pk = models.CompositePrimaryKey("carrier", "number")
    carrier = models.IntegerField()
    number = models.IntegerField()

    class Meta:
        app_label = "testapp"
        managed = False

    def __str__(self) -> str:
        return f"{self.carrier}/{self.number}"


class NamesAndTiers(serializers.ModelSerializer[OrderEvent]):
    customer_tier = ContextLookupField("customers", "tier")
    customer = ContextLookupField("customers")

    class Meta:
        model = OrderEvent
        fields = ["id", "customer_tier", "customer"]


class MisspelledTier(serializers.ModelSerializer[OrderEvent]):
    customer_tier = ContextLookupField("customers", "teir")

    class Meta:
        model = OrderEvent
        fields = ["id", "customer_tier"]


class MisspelledEmail(serializers.ModelSerializer[OrderEvent]):
    customer_email = ContextLookupField("customers", "emial")

    class Meta:
        model = OrderEvent
        fields = ["id", "customer_email"]


class MisspelledSpec(serializers.ModelSerializer[OrderEvent]):
    customer_tier = ContextLookupField("customers", "tier")

    class Meta:
        model = OrderEvent
        fields = ["id", "customer_tier"]


class Nested(serializers.Serializer[Any]):
    events = EventSerializer(many=True)


CHECKS = [
    (
        "E013 cross_db_fields without the mixin",
        view(spec(), mixin=False),
        "E013",
        "Add CrossDBPrefetchMixin",
    ),
    ("E001 not a dict", view([("customers", None)]), "E001", "cross_db_fields = {"),
    ("E002 not a spec", view({"customers": "shop.Customer"}), "E002", "CrossDBPrefetch("),
    ("E003 unknown model", view(spec("testapp.Custmer")), "E003", "installed model"),
    (
        "E003 misspelled model: the closest label",
        view(spec("testapp.Custmer")),
        "E003",
        "Did you mean 'testapp.Customer'?",
    ),
    (
        "E003 misspelled app label",
        view(spec("testap.Customer")),
        "E003",
        "Did you mean 'testapp.Customer'?",
    ),
    ("E004 unknown alias", view(spec(using="replica")), "E004", "default, timeseries, legacy"),
    ("E005 unknown to_field", view(spec(to_field="nmae")), "E005", "to_field"),
    ("E006 unknown projected field", view(spec(fields=("nmae",))), "E006", "fields"),
    (
        "E006 misspelled projected field",
        view(spec(fields=("nmae",))),
        "E006",
        "no field 'nmae' in fields. Did you mean 'name'?",
    ),
    ("E007 key not on the view's model", view(spec(key="custmer_id")), "E007", "customer_id"),
    ("E009 undeclared lookup", view({"buyers": spec()["customers"]}), "E009", "'customers'"),
    (
        "E009 misspelled lookup: the closest declared",
        view({"customer": spec()["customers"]}),
        "E009",
        "Did you mean 'customer'?",
    ),
    (
        "E010 reserved name",
        view({"request": spec()["customers"]}, serializer=None),
        "E010",
        "Rename",
    ),
    (
        "E011 attr outside the projection",
        view(spec(), serializer=NamesAndTiers),
        "E011",
        "Add 'tier' to the spec's fields",
    ),
    (
        "E011 misspelled attr: the closest selected field",
        view(spec(fields=("name", "tier")), serializer=MisspelledTier),
        "E011",
        "Did you mean 'tier'?",
    ),
    (
        "E011 misspelled spec field: the spec's typo, not the field's",
        view(spec(fields=("name", "tierr")), serializer=MisspelledSpec),
        "E011",
        "The spec's fields name 'tierr', which testapp.Customer does not have; did you mean "
        "'tier'? Give fields=('name', 'tier').",
    ),
    (
        "E011 a spec known per request: either name may be the typo",
        view(
            spec(lambda request: Customer.objects.all(), fields=("name", "tierr")),
            serializer=MisspelledSpec,
        ),
        "E011",
        "The spec selects 'tierr' and the field reads 'tier': correct whichever is misspelled",
    ),
    (
        "E011 attr the model does not have",
        view(spec(fields=("name",)), serializer=MisspelledEmail),
        "E011",
        "testapp.Customer has no field 'emial'; did you mean 'email'?",
    ),
    (
        "E012 whole instances",
        view(spec(fields=None), serializer=NamesAndTiers),
        "E012",
        "serializer=",
    ),
    (
        "E009 in a nested serializer",
        view({"other": spec()["customers"]}, serializer=Nested),
        "E009",
        "Nested.events.customer_name",
    ),
    ("W002 non-unique to_field", view(spec(to_field="tier")), "W002", "many=True"),
]


@pytest.mark.parametrize(("name", "view_class", "code", "hint"), CHECKS, ids=[c[0] for c in CHECKS])
def test_check(name: str, view_class: type, code: str, hint: str) -> None:
    messages = check_view(view_class)
    ids = [m.id for m in messages]
    assert f"crossprefetch.{code}" in ids, messages
    message = next(m for m in messages if m.id == f"crossprefetch.{code}")
    assert hint in f"{message.msg} {message.hint}"
    assert message.hint
    assert "BadView" in message.msg or "Nested" in message.msg
    if code == "E011":  # never suggests adding a name the remote model does not have
        assert "Add 'teir'" not in message.hint
        assert "Add 'emial'" not in message.hint
        assert "Did you mean 'tierr'" not in message.hint
    if code.startswith("E"):
        assert message.level == checks.ERROR


def test_composite_primary_key_arity_mismatch() -> None:
    """A key of one part matched against a composite primary key (Django 5.2+)."""
    messages = check_view(
        view({"customers": CrossDBPrefetch(Shipment, key="customer_id")}, serializer=None)
    )
    assert [m.id for m in messages] == ["crossprefetch.E008"]
    assert "key has 1 part(s)" in messages[0].msg
    assert "tuple" in (messages[0].hint or "")


def test_well_declared_views_pass() -> None:
    assert check_view(OrderEventViewSet) == []


class BadViewSet(CrossDBPrefetchMixin, viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
    queryset = Customer.objects.all()
    serializer_class = EventSerializer
    cross_db_fields = {"customers": CrossDBPrefetch("testapp.Nope", key="id")}


urlpatterns = [path("bad/", BadViewSet.as_view({"get": "list"}))]


@override_settings(ROOT_URLCONF=__name__)
def test_views_are_found_through_the_urlconf() -> None:
    messages = checks.run_checks(tags=["crossprefetch"])
    assert [m.id for m in messages] == ["crossprefetch.E003"]
    assert "BadViewSet" in messages[0].msg


def test_project_urlconf_is_clean() -> None:
    assert checks.run_checks(tags=["crossprefetch"]) == []
