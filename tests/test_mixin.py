"""The DRF integration end to end: real requests through APIClient, queries counted per alias."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import FieldError, ImproperlyConfigured
from django.db.models.functions import Upper
from django.test import override_settings
from rest_framework import serializers, viewsets
from rest_framework.test import APIClient, APIRequestFactory

from crossprefetch import (
    ContextLookupField,
    CrossDBPrefetch,
    CrossDBPrefetchMixin,
    prefetch_cross_db,
)
from crossprefetch.testing import assert_num_queries
from tests.conftest import ALL_DATABASES, Scenario, make_scenario
from tests.testapp.models import Customer, OrderEvent

pytestmark = pytest.mark.django_db(databases=ALL_DATABASES)

# (name, url, queries per alias). timeseries: the page itself (+1 for the count query of
# paginators that count); default/legacy: the cross-database lookups.
QUERY_TABLE = [
    (
        "page of 100, two fields from one spec",
        "/api/events/?page_size=100",
        {"timeseries": 2, "default": 1, "legacy": 0},
    ),
    ("generic ListAPIView", "/api/event-list/", {"timeseries": 2, "default": 1, "legacy": 0}),
    (
        "limit/offset pagination",
        "/api/events-limit/?limit=50",
        {"timeseries": 2, "default": 1, "legacy": 0},
    ),
    ("cursor pagination", "/api/events-cursor/", {"timeseries": 1, "default": 1, "legacy": 0}),
    ("unpaginated list", "/api/events-all/", {"timeseries": 1, "default": 1, "legacy": 0}),
    (
        "two specs on the same model",
        "/api/buyer-seller/",
        {"timeseries": 2, "default": 1, "legacy": 0},
    ),
    (
        "two specs on two databases",
        "/api/two-databases/",
        {"timeseries": 2, "default": 1, "legacy": 1},
    ),
    (
        "model instances, nested serializer",
        "/api/nested/",
        {"timeseries": 2, "default": 1, "legacy": 0},
    ),
    ("composite key", "/api/accounts/", {"timeseries": 2, "default": 0, "legacy": 1}),
    ("to-many (reverse) spec", "/api/customers/", {"timeseries": 1, "default": 2, "legacy": 0}),
    (
        "per-request QuerySet",
        "/api/tenant-events/?tenant=acme",
        {"timeseries": 2, "default": 1, "legacy": 0},
    ),
    (
        "page past the last",
        "/api/events-limit/?offset=5000",
        {"timeseries": 1, "default": 0, "legacy": 0},
    ),
]


def _event_with_customer(scenario: Scenario) -> OrderEvent:
    customers = {c.pk for c in scenario.customers}
    return next(e for e in scenario.events if e.customer_id in customers)


@pytest.mark.parametrize(("name", "url", "queries"), QUERY_TABLE, ids=[r[0] for r in QUERY_TABLE])
def test_queries_per_alias(
    scenario: Scenario, api: APIClient, name: str, url: str, queries: dict[str, int]
) -> None:
    with assert_num_queries(queries):
        response = api.get(url)
    assert response.status_code == 200, response.content


def test_empty_page_makes_no_lookup_query(api: APIClient) -> None:
    # The paginator counts, finds nothing, and does not even fetch the page.
    with assert_num_queries(timeseries=1, default=0, legacy=0):
        response = api.get("/api/events/")
    assert response.json()["results"] == []


def test_all_null_keys_make_no_lookup_query(scenario: Scenario, api: APIClient) -> None:
    OrderEvent.objects.update(customer_id=None)
    with assert_num_queries(timeseries=2, default=0, legacy=0):
        response = api.get("/api/events/")
    results = response.json()["results"]
    assert {r["customer_name"] for r in results} == {"Unknown customer"}
    assert {r["customer_tier"] for r in results} == {None}


def test_retrieve_is_one_lookup_query(scenario: Scenario, api: APIClient) -> None:
    event = _event_with_customer(scenario)
    customer = Customer.objects.get(pk=event.customer_id)
    with assert_num_queries(timeseries=1, default=1, legacy=0):
        response = api.get(f"/api/events/{event.pk}/")
    assert response.json()["customer_name"] == customer.name
    assert response.json()["customer_tier"] == customer.tier


def test_create_response_has_lookups(scenario: Scenario, api: APIClient) -> None:
    customer = scenario.customers[3]
    payload = {
        "timestamp": "2026-02-01T00:00:00Z",
        "customer_id": customer.pk,
        "event_type": "created",
        "amount": "12.50",
    }
    with assert_num_queries(timeseries=1, default=1, legacy=0):
        response = api.post("/api/writable-events/", payload, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["customer_name"] == customer.name


@pytest.mark.parametrize("method", ["put", "patch"])
def test_update_response_sees_the_new_key(scenario: Scenario, api: APIClient, method: str) -> None:
    event = _event_with_customer(scenario)
    new_customer = next(c for c in scenario.customers if c.pk != event.customer_id)
    payload: dict[str, Any] = {"customer_id": new_customer.pk}
    if method == "put":
        payload.update(timestamp="2026-02-01T00:00:00Z", event_type="paid", amount="1.00")
    with assert_num_queries(default=1, legacy=0):
        response = getattr(api, method)(f"/api/writable-events/{event.pk}/", payload, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["customer_name"] == new_customer.name


def test_invalid_create_makes_no_lookup_query(scenario: Scenario, api: APIClient) -> None:
    with assert_num_queries(default=0, legacy=0):
        response = api.post("/api/writable-events/", {"amount": "x"}, format="json")
    assert response.status_code == 400


def test_browsable_api_forms_make_no_extra_lookup_query(scenario: Scenario) -> None:
    event = _event_with_customer(scenario)
    api = APIClient()
    with assert_num_queries(default=1, legacy=0):
        response = api.get(f"/api/writable-events/{event.pk}/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    with assert_num_queries(default=1, legacy=0):
        response = api.get("/api/writable-events/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200


def test_page_output(scenario: Scenario, api: APIClient) -> None:
    names = {c.pk: c for c in scenario.customers}
    results = api.get("/api/events/?page_size=100").json()["results"]
    assert len(results) == 100
    for row in results:
        customer = names.get(row["customer_id"])
        if customer is None:
            assert row["customer_name"] == "Unknown customer"
            assert row["customer_tier"] is None
            assert row["customer_label"] == f"Unknown customer (ID {row['customer_id']})"
        else:
            assert row["customer_name"] == row["customer_label"] == customer.name
            assert row["customer_tier"] == customer.tier


def test_only_the_page_keys_are_fetched(scenario: Scenario, api: APIClient) -> None:
    with assert_num_queries(timeseries=2, default=1) as captured:
        results = api.get("/api/events/?page_size=5").json()["results"]
    sql = captured["default"][0].sql
    assert "IN" in sql or "ANY" in sql
    keys = {r["customer_id"] for r in results if r["customer_id"] is not None}
    params = captured["default"][0].params
    flat = set(params[0]) if params and isinstance(params[0], list) else set(params or ())
    assert keys == flat


def test_two_specs_on_one_model_output(scenario: Scenario, api: APIClient) -> None:
    by_pk = {c.pk: c.name for c in scenario.customers}
    events = {e.pk: e for e in scenario.events}
    for row in api.get("/api/buyer-seller/").json()["results"]:
        event = events[row["id"]]
        assert row["buyer"] == by_pk.get(event.customer_id)
        assert row["seller"] == by_pk.get(event.seller_id)


def test_two_databases_output(scenario: Scenario, api: APIClient) -> None:
    regions = {r.code: r.name for r in scenario.regions}
    events = {e.pk: e for e in scenario.events}
    for row in api.get("/api/two-databases/").json()["results"]:
        assert row["region_name"] == regions.get(events[row["id"]].region_code, "")


def test_composite_key_output(scenario: Scenario, api: APIClient) -> None:
    labels = {(a.tenant_id, a.number): a.label for a in scenario.accounts}
    events = {e.pk: e for e in scenario.events}
    results = api.get("/api/accounts/").json()["results"]
    assert any(r["account"] is None for r in results)
    for row in results:
        event = events[row["id"]]
        assert row["account"] == labels.get((event.account_tenant, event.account_number))


def test_nested_serializer_output(scenario: Scenario, api: APIClient) -> None:
    customers = {c.pk: c for c in scenario.customers}
    events = {e.pk: e for e in scenario.events}
    for row in api.get("/api/nested/").json()["results"]:
        customer = customers.get(events[row["id"]].customer_id)
        expected = (
            None
            if customer is None
            else {"id": customer.pk, "name": customer.name, "tier": customer.tier}
        )
        assert row["customer"] == expected


def test_to_many_output_in_queryset_order(scenario: Scenario, api: APIClient) -> None:
    results = api.get("/api/customers/").json()["results"]
    for row in results:
        events = list(OrderEvent.objects.filter(customer_id=row["id"]).order_by("id"))
        assert row["events"] == [{"id": e.pk, "event_type": e.event_type} for e in events]
        assert row["event_types"] == [e.event_type for e in events]


def test_per_request_queryset_scopes_rows(scenario: Scenario, api: APIClient) -> None:
    tenants = {c.pk: c.tenant for c in scenario.customers}
    results = api.get("/api/tenant-events/?tenant=acme&page_size=100").json()["results"]
    for row in results:
        if tenants.get(row["customer_id"]) == "acme":
            assert row["customer_name"] != "Unknown customer"
        else:
            assert row["customer_name"] == "Unknown customer"


def test_serializer_by_hand_with_view_context(db: None) -> None:
    """A custom action building its serializer from get_serializer_context()."""
    from rest_framework.test import APIRequestFactory

    from tests.testapp.serializers import OrderEventSerializer
    from tests.testapp.views import OrderEventViewSet

    scenario = make_scenario(events=20)
    request = APIRequestFactory().get("/")
    view = OrderEventViewSet(request=request, format_kwarg=None, kwargs={})
    events = scenario.events[:10]
    with assert_num_queries(default=1, timeseries=0):
        data = OrderEventSerializer(events, many=True, context=view.get_serializer_context()).data
    assert len(data) == 10


@override_settings(CROSSPREFETCH={"SERVER_TIMING": True})
def test_server_timing_header(scenario: Scenario, api: APIClient) -> None:
    response = api.get("/api/buyer-seller/")
    header = response["Server-Timing"]
    assert header.startswith("crossprefetch;dur=")
    assert header.endswith('desc="2 lookups, 1 queries"')


@override_settings(CROSSPREFETCH={"SERVER_TIMING": True})
def test_server_timing_header_on_create(scenario: Scenario, api: APIClient) -> None:
    payload = {
        "timestamp": "2026-02-01T00:00:00Z",
        "customer_id": scenario.customers[0].pk,
        "event_type": "created",
        "amount": "1.00",
    }
    response = api.post("/api/writable-events/", payload, format="json")
    assert response["Server-Timing"].endswith('desc="1 lookups, 1 queries"')


def test_no_server_timing_header_by_default(scenario: Scenario, api: APIClient) -> None:
    assert "Server-Timing" not in api.get("/api/events/")


def test_positional_data_builds_lookups_after_save(scenario: Scenario, api: APIClient) -> None:
    event = _event_with_customer(scenario)
    other = next(c for c in scenario.customers if c.pk != event.customer_id)
    with assert_num_queries(default=1, legacy=0):
        response = api.post(
            f"/api/writable-events/{event.pk}/reassign/", {"customer_id": other.pk}, format="json"
        )
    assert response.json()["customer_name"] == other.name


def test_changed_key_is_fetched_again(scenario: Scenario, api: APIClient) -> None:
    event = _event_with_customer(scenario)
    other = next(c for c in scenario.customers if c.pk != event.customer_id)
    first = Customer.objects.get(pk=event.customer_id)
    with assert_num_queries(default=2, legacy=0):
        body = api.post(
            f"/api/writable-events/{event.pk}/bump/", {"customer_id": other.pk}, format="json"
        ).json()
    assert body["before"]["customer_name"] == first.name
    assert body["after"]["customer_name"] == other.name


@override_settings(CROSSPREFETCH={"STRICT": True})
def test_validate_only_explains_that_nothing_was_saved(scenario: Scenario, api: APIClient) -> None:
    payload = {
        "timestamp": "2026-02-01T00:00:00Z",
        "customer_id": 1,
        "event_type": "x",
        "amount": "1",
    }
    with pytest.raises(ImproperlyConfigured, match="no instance to read keys from yet"):
        api.post("/api/writable-events/check/", payload, format="json")


@pytest.mark.parametrize("method", ["put", "patch"])
def test_browsable_api_write_makes_one_lookup_query(
    scenario: Scenario, api: APIClient, method: str
) -> None:
    event = _event_with_customer(scenario)
    payload = {
        "customer_id": event.customer_id,
        "timestamp": "2026-02-01T00:00:00Z",
        "event_type": "paid",
        "amount": "1.00",
    }
    with assert_num_queries(default=1, legacy=0):
        response = getattr(api, method)(
            f"/api/writable-events/{event.pk}/?format=api", payload, format="json"
        )
    assert response.status_code == 200


class _TypoSerializer(serializers.ModelSerializer[OrderEvent]):
    customer_name = ContextLookupField("customers", "nmae")

    class Meta:
        model = OrderEvent
        fields = ["id", "customer_name"]


class TypoInFieldsViewSet(CrossDBPrefetchMixin, viewsets.ReadOnlyModelViewSet[OrderEvent]):
    """``fields=`` misspelled on a callable source: no system check can see the model."""

    queryset = OrderEvent.objects.all()
    serializer_class = _TypoSerializer
    cross_db_fields = {
        "customers": CrossDBPrefetch(
            lambda request: Customer.objects.annotate(label=Upper("name")),
            key="customer_id",
            fields=("nmae", "label"),
        ),
    }


def test_fields_typo_reaching_the_database_names_the_spec_and_the_view(
    scenario: Scenario,
) -> None:
    view = TypoInFieldsViewSet.as_view({"get": "list"})
    with pytest.raises(ImproperlyConfigured) as excinfo:
        view(APIRequestFactory().get("/typo/"))
    message = str(excinfo.value)
    assert message.startswith(
        "tests.test_mixin.TypoInFieldsViewSet: cross_db_fields['customers'] = CrossDBPrefetch("
    )
    assert "fields names 'nmae', which testapp.Customer cannot resolve" in message
    assert "Did you mean 'name'?" in message
    assert isinstance(excinfo.value.__cause__, FieldError)


def test_fields_typo_outside_a_view_names_the_spec(scenario: Scenario) -> None:
    specs = {"customers": TypoInFieldsViewSet.cross_db_fields["customers"]}
    with pytest.raises(ImproperlyConfigured, match=r"^cross_db_fields\['customers'\] = Cross"):
        prefetch_cross_db(scenario.events, specs)
    # An annotation of the source QuerySet is a valid projected field.
    fine = CrossDBPrefetch(
        lambda request: Customer.objects.annotate(label=Upper("name")),
        key="customer_id",
        fields=("name", "label"),
    )
    lookups = prefetch_cross_db(scenario.events, {"customers": fine})
    assert {row["label"] for row in lookups["customers"].values()} == {
        c.name.upper() for c in scenario.customers if c.pk in lookups["customers"]
    }
