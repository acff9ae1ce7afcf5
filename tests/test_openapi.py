"""drf-spectacular support: ``ContextLookupField`` typed in generated OpenAPI schemas."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from django.conf import settings
from django.http import HttpRequest
from django.test import override_settings
from django.urls import URLPattern, URLResolver
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from drf_spectacular.settings import patched_settings
from openapi_spec_validator import validate
from rest_framework import serializers, viewsets
from rest_framework.routers import SimpleRouter

from crossprefetch import ContextLookupField, CrossDBPrefetch, CrossDBPrefetchMixin
from crossprefetch.openapi import ContextLookupFieldExtension
from tests.testapp.models import Customer, OrderEvent
from tests.testapp.serializers import CustomerSerializer, EventRowSerializer

Schema = dict[str, Any]
Patterns = list[URLPattern | URLResolver]

CUSTOMERS = CrossDBPrefetch("testapp.Customer", key="customer_id", fields=("name", "tier"))
CUSTOMER_ROWS = CrossDBPrefetch("testapp.Customer", key="customer_id")
EVENTS = CrossDBPrefetch(
    OrderEvent.objects.order_by("id"), key="id", to_field="customer_id", many=True
)

STRING = {"type": "string"}
EMAIL = {"type": "string", "format": "email"}
READ_ONLY = {"readOnly": True}
NULLABLE = {"readOnly": True, "nullable": True}


@pytest.fixture(autouse=True)
def _schema_class() -> Iterator[None]:
    rest_framework = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    }
    with override_settings(REST_FRAMEWORK=rest_framework):
        yield


def generate(
    *, urlconf: str | None = None, patterns: Patterns | None = None
) -> tuple[Schema, list[str]]:
    """The schema as served (JSON), and every warning and error drf-spectacular emitted."""
    GENERATOR_STATS.reset()
    try:
        with GENERATOR_STATS.silence():
            generator = SchemaGenerator(urlconf=urlconf, patterns=patterns)
            schema = generator.get_schema(request=None, public=True)
        messages = [*GENERATOR_STATS._warn_cache, *GENERATOR_STATS._error_cache]
    finally:
        GENERATOR_STATS.reset()
    return json.loads(OpenApiJsonRenderer().render(schema, renderer_context={})), messages


def value_schema(
    field: ContextLookupField,
    specs: Mapping[str, CrossDBPrefetch],
    view_attrs: Mapping[str, Any] | None = None,
) -> tuple[Schema, Schema, list[str]]:
    """Generate the schema of one view whose serializer has one field, ``value``."""
    serializer_class = type(
        "ValueSerializer", (serializers.Serializer,), {"value": field, "__module__": __name__}
    )
    view = type(
        "ValueViewSet",
        (CrossDBPrefetchMixin, viewsets.ReadOnlyModelViewSet),
        {
            "queryset": OrderEvent.objects.all(),
            "serializer_class": serializer_class,
            "pagination_class": None,
            "cross_db_fields": specs,
            "__module__": __name__,
            **(view_attrs or {}),
        },
    )
    router = SimpleRouter()
    router.register("values", view, basename="value")
    schema, messages = generate(patterns=list(router.urls))
    components: Schema = schema["components"]["schemas"]
    return components["Value"]["properties"]["value"], components, messages


def test_the_extension_is_registered_when_the_app_is_ready() -> None:
    extension = OpenApiSerializerFieldExtension.get_match(ContextLookupField("customers"))
    assert isinstance(extension, ContextLookupFieldExtension)


# -- the type, field by field --------------------------------------------------------------

MAPPING: list[tuple[str, Callable[[], ContextLookupField], CrossDBPrefetch, Schema]] = [
    (
        "attr of a projected row, string source",
        lambda: ContextLookupField("rows", "name", default="Unknown customer"),
        CUSTOMERS,
        {**STRING, **READ_ONLY},
    ),
    (
        "the remote field's format",
        lambda: ContextLookupField("rows", "email", default=""),
        CrossDBPrefetch("testapp.Customer", key="customer_id", fields=("email",)),
        {**EMAIL, **READ_ONLY},
    ),
    (
        "default None is nullable",
        lambda: ContextLookupField("rows", "tier", default=None),
        CUSTOMERS,
        {**STRING, **NULLABLE},
    ),
    (
        "no default is nullable",
        lambda: ContextLookupField("rows", "tier"),
        CUSTOMERS,
        {**STRING, **NULLABLE},
    ),
    (
        "allow_null=False overrides",
        lambda: ContextLookupField("rows", "tier", fallback=lambda event: "?", allow_null=False),
        CUSTOMERS,
        {**STRING, **READ_ONLY},
    ),
    (
        "model class source, instance rows",
        lambda: ContextLookupField("rows", "external_id", default=None),
        CrossDBPrefetch(Customer, key="customer_uuid", to_field="external_id"),
        {"type": "string", "format": "uuid", **NULLABLE},
    ),
    (
        "QuerySet source",
        lambda: ContextLookupField("rows", "is_active", default=False),
        CrossDBPrefetch(Customer.objects.filter(tenant="acme"), key="customer_id"),
        {"type": "boolean", **READ_ONLY},
    ),
    (
        "callable source, called with the mock request",
        lambda: ContextLookupField("rows", "name", default=""),
        CrossDBPrefetch(
            lambda request: Customer.objects.filter(tenant=request.GET.get("tenant", "")),
            key="customer_id",
            fields=("name",),
        ),
        {**STRING, **READ_ONLY},
    ),
    (
        "pk of a row matched on another field",
        lambda: ContextLookupField("rows", "pk"),
        CrossDBPrefetch(Customer, key="customer_uuid", to_field="external_id"),
        {"type": "integer", **NULLABLE},
    ),
    (
        "whole projected row: an object of the projected fields",
        lambda: ContextLookupField("rows"),
        CUSTOMERS,
        {
            "type": "object",
            "properties": {"name": STRING, "tier": STRING},
            "required": ["name", "tier"],
            **NULLABLE,
        },
    ),
    (
        "to-many attr: an array",
        lambda: ContextLookupField("rows", "event_type", default=[]),
        EVENTS,
        {"type": "array", "items": {"type": "string"}, **READ_ONLY},
    ),
    (
        "to-many serializer: an array of the component",
        lambda: ContextLookupField("rows", serializer=EventRowSerializer),
        EVENTS,
        {"type": "array", "items": {"$ref": "#/components/schemas/EventRow"}, **NULLABLE},
    ),
    (
        "nested serializer: the component",
        lambda: ContextLookupField("rows", serializer=CustomerSerializer),
        CUSTOMER_ROWS,
        {"allOf": [{"$ref": "#/components/schemas/Customer"}], **NULLABLE},
    ),
    (
        "output_field wins over the model field",
        lambda: ContextLookupField(
            "rows", "amount", output_field=serializers.FloatField(), default=0.0
        ),
        CrossDBPrefetch(OrderEvent.objects.all(), key="customer_id", fields=("amount",)),
        {"type": "number", "format": "double", **READ_ONLY},
    ),
    (
        "projected field across a relation",
        lambda: ContextLookupField("rows", "customer__email", default=""),
        CrossDBPrefetch("shop.JoinedOrderEvent", key="id", fields=("customer__email",)),
        {**EMAIL, **READ_ONLY},
    ),
    (
        "attribute path across a relation",
        lambda: ContextLookupField("rows", "customer.is_active", default=False),
        CrossDBPrefetch("shop.JoinedOrderEvent", key="id"),
        {"type": "boolean", **READ_ONLY},
    ),
    (
        "projected foreign key: the related primary key",
        lambda: ContextLookupField("rows", "customer", default=None),
        CrossDBPrefetch("shop.JoinedOrderEvent", key="id", fields=("customer",)),
        {"type": "integer", **NULLABLE},
    ),
]


@pytest.mark.parametrize(
    ("make_field", "spec", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in MAPPING],
)
def test_type(
    make_field: Callable[[], ContextLookupField], spec: CrossDBPrefetch, expected: Schema
) -> None:
    schema, components, messages = value_schema(make_field(), {"rows": spec})
    assert schema == expected
    assert messages == []
    for ref in _refs(schema):
        assert ref.rsplit("/", 1)[1] in components


def test_output_field_with_choices_documents_an_enumeration() -> None:
    field = ContextLookupField(
        "rows",
        "tier",
        output_field=serializers.ChoiceField(choices=["bronze", "silver", "gold"]),
        default=None,
    )
    schema, components, messages = value_schema(field, {"rows": CUSTOMERS})
    assert schema == {"allOf": [{"$ref": "#/components/schemas/ValueEnum"}], **NULLABLE}
    assert components["ValueEnum"]["enum"] == ["bronze", "silver", "gold"]
    assert messages == []


def test_spec_of_the_request_wins_over_the_class_attribute() -> None:
    def get_cross_db_fields(self: Any) -> Mapping[str, CrossDBPrefetch]:
        return {"rows": CrossDBPrefetch(Customer, key="customer_id", fields=("tier",))}

    schema, _, messages = value_schema(
        ContextLookupField("rows", "tier", default=""),
        {"rows": CrossDBPrefetch(Customer, key="customer_id", fields=("name",))},
        {"get_cross_db_fields": get_cross_db_fields},
    )
    assert (schema, messages) == ({**STRING, **READ_ONLY}, [])


def _tenant_of(request: HttpRequest) -> Any:
    return Customer.objects.filter(tenant=request.user.tenant)  # type: ignore[union-attr]


UNKNOWN: list[tuple[str, Callable[[], ContextLookupField], dict[str, CrossDBPrefetch], str]] = [
    (
        "lookup not declared on the view",
        lambda: ContextLookupField("rows", "name"),
        {},
        "the view declares no lookup 'rows' in its cross_db_fields",
    ),
    (
        "attr that is not a field",
        lambda: ContextLookupField("rows", "nickname"),
        {"rows": CUSTOMER_ROWS},
        "testapp.Customer has no field 'nickname'",
    ),
    (
        "callable source failing on the mock request",
        lambda: ContextLookupField("rows", "name"),
        {"rows": CrossDBPrefetch(_tenant_of, key="customer_id")},
        "failed on the schema generator's mock request (AttributeError",
    ),
    (
        "model instances without serializer",
        lambda: ContextLookupField("rows"),
        {"rows": CUSTOMER_ROWS},
        "yields model instances and the field has no serializer",
    ),
]


@pytest.mark.parametrize(
    ("make_field", "specs", "reason"), [pytest.param(*case[1:], id=case[0]) for case in UNKNOWN]
)
def test_what_cannot_be_derived_is_untyped_with_a_warning(
    make_field: Callable[[], ContextLookupField], specs: dict[str, CrossDBPrefetch], reason: str
) -> None:
    schema, _, messages = value_schema(make_field(), specs)
    assert schema == NULLABLE
    (message,) = messages
    assert 'ContextLookupField "value"' in message
    assert reason in message
    assert "output_field=" in message


def test_an_undeclared_to_many_lookup_typed_by_its_serializer_needs_no_spec() -> None:
    schema, _, messages = value_schema(
        ContextLookupField("rows", serializer=CustomerSerializer, default=None), {}
    )
    assert (schema, messages) == (
        {"allOf": [{"$ref": "#/components/schemas/Customer"}], **NULLABLE},
        [],
    )


# -- the example project -------------------------------------------------------------------


@pytest.fixture(params=["3.0.3", "3.1.0"])
def oas_version(request: pytest.FixtureRequest) -> Iterator[str]:
    with patched_settings({"OAS_VERSION": request.param}):
        yield request.param


def _example_lookup_fields() -> Iterator[tuple[str, str, ContextLookupField]]:
    """(component, property, field) of every ContextLookupField the example's API renders."""
    from shop.urls import router

    for _, viewset, _ in router.registry:
        serializer_class = viewset.serializer_class
        assert serializer_class is not None
        for name, field in serializer_class().fields.items():
            if isinstance(field, ContextLookupField):
                yield serializer_class.__name__.removesuffix("Serializer"), name, field


def _nullable(schema: Schema) -> bool:
    types = schema.get("type")
    return bool(schema.get("nullable")) or (isinstance(types, list) and "null" in types)


def test_example_project_schema_is_valid_and_types_every_crossprefetch_field(
    oas_version: str,
) -> None:
    schema, messages = generate(urlconf="example.urls")

    validate(schema)
    assert schema["openapi"] == oas_version
    assert messages == []
    components = schema["components"]["schemas"]
    event = components["OrderEvent"]["properties"]
    assert event["customer_name"] == {"type": "string", "readOnly": True}
    if oas_version == "3.0.3":
        assert event["customer_tier"] == {"type": "string", "readOnly": True, "nullable": True}
    else:
        assert event["customer_tier"] == {"type": ["string", "null"], "readOnly": True}
    # The crossprefetch endpoint documents the same shape as the naive one it replaces.
    naive = components["NaiveOrderEvent"]["properties"]
    for name in ("customer_name", "customer_tier"):
        assert event[name] == naive[name]

    fields = list(_example_lookup_fields())
    assert fields
    for component, name, field in fields:
        prop = components[component]["properties"][name]
        assert prop.get("type") or prop.get("allOf"), (component, name, prop)
        assert prop["readOnly"] is True
        assert _nullable(prop) is field.allow_null, (component, name, prop)
        assert name in components[component].get("required", [])


def _refs(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _refs(value)
