"""drf-spectacular documents every filter and the remote orderings, with types."""

from __future__ import annotations

from typing import Any

from rest_framework.routers import SimpleRouter

from tests.test_openapi import _schema_class, generate  # noqa: F401  (autouse fixture)
from tests.testapp.filter_views import FilteredEventViewSet, TenantFilteredEventViewSet


def parameters(view: type) -> dict[str, dict[str, Any]]:
    router = SimpleRouter()
    router.register("events", view, basename="event")
    schema, messages = generate(patterns=list(router.urls))
    assert messages == []
    operation = schema["paths"]["/events/"]["get"]
    return {p["name"]: p for p in operation["parameters"]}


def test_filters_are_typed_from_the_remote_field() -> None:
    params = parameters(FilteredEventViewSet)
    assert params["customer_tier"]["schema"] == {"type": "string", "maxLength": 20}
    assert params["customer_id__gte"]["schema"] == {"type": "integer"}
    assert params["customer_active"]["schema"] == {"type": "boolean"}
    assert params["customer_uuid"]["schema"] == {"type": "string", "format": "uuid"}
    assert params["no_customer"]["schema"] == {"type": "boolean"}
    assert params["customer_id__in"]["schema"] == {"type": "array", "items": {"type": "integer"}}
    assert params["customer_id__in"]["explode"] is False
    assert params["customer_name"]["schema"] == {"type": "string", "maxLength": 100}
    assert params["customer_tier__in"]["schema"] == {
        "type": "array",
        "items": {"type": "string", "maxLength": 20},
    }
    assert "tier" in params["customer_tier"]["description"]
    assert all(p["in"] == "query" and p["required"] is False for p in params.values())


def test_ordering_lists_local_and_remote_fields() -> None:
    ordering = parameters(FilteredEventViewSet)["ordering"]
    values = ordering["schema"]["items"]["enum"]
    for name in ("timestamp", "amount", "customer_name", "customer_tier", "region_name"):
        assert name in values
        assert f"-{name}" in values


def test_a_callable_source_is_typed_through_the_mock_request() -> None:
    params = parameters(TenantFilteredEventViewSet)
    assert params["customer_id__lt"]["schema"] == {"type": "integer"}


def test_text_without_a_max_length_is_bounded_by_the_setting() -> None:
    from tests.testapp.filter_views import ParcelViewSet

    params = parameters(ParcelViewSet)
    assert params["vendor_notes"]["schema"] == {"type": "string", "maxLength": 10_000}
    assert params["vendor_code__startswith"]["schema"] == {"type": "string", "maxLength": 12}
