"""``CrossDBPrefetchMixin`` with nothing declared: ForeignKeys across databases in sources."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.db.models import Prefetch
from django.test.utils import CaptureQueriesContext
from rest_framework import serializers, viewsets
from rest_framework.test import APIClient, APIRequestFactory

from crossprefetch import ContextLookupField, CrossDBPrefetch, CrossDBPrefetchMixin
from crossprefetch.rest_framework._inference import related_columns
from crossprefetch.rest_framework.mixins import DEGRADED_HEADER
from crossprefetch.testing import assert_num_queries
from tests.related_data import ALL_DATABASES, make_tickets
from tests.servers import database_alias
from tests.test_failure import SQLiteReference
from tests.testapp import related_serializers, related_views
from tests.testapp.models import SalesRegion, SupportAccount, Ticket

if TYPE_CHECKING:
    from pytest_django.plugin import DjangoDbBlocker

pytestmark = [
    pytest.mark.django_db(databases=ALL_DATABASES),
    pytest.mark.urls("tests.related_urls"),  # the naive twins, for the oracle
]


@pytest.fixture
def data() -> Any:
    return make_tickets()


#: endpoint, its naive twin, and the queries each database answers for one page
ENDPOINTS = [
    # count and page of tickets; their accounts; the tickets' regions, then the accounts'
    ("/api/tickets/", "/api/naive-tickets/", {"timeseries": 2, "default": 1, "legacy": 2}),
    ("/api/tickets/{}/", "/api/naive-tickets/{}/", {"timeseries": 1, "default": 1, "legacy": 2}),
    # count and page of accounts; their tickets (two fields, one query); their regions
    # and their settings (two models of legacy)
    (
        "/api/support-accounts/",
        "/api/naive-support-accounts/",
        {"default": 2, "timeseries": 1, "legacy": 2},
    ),
    ("/api/method-tickets/", None, {"timeseries": 2, "default": 1, "legacy": 0}),
]


@pytest.mark.parametrize(("url", "naive", "queries"), ENDPOINTS)
def test_one_query_per_database_and_model_per_hop(
    data: Any, api: APIClient, url: str, naive: str | None, queries: dict[str, int]
) -> None:
    first = data.tickets[0].id
    with assert_num_queries(**queries):
        ours = api.get(url.format(first))
    assert ours.status_code == 200
    if naive is not None:
        assert ours.json() == api.get(naive.format(first)).json()


def test_what_the_serializer_renders(data: Any, api: APIClient) -> None:
    results = api.get("/api/tickets/").json()["results"]
    first = results[0]
    assert first == {
        "id": first["id"],
        "subject": "Ticket 0",
        "status": "open",
        "account_name": "Account 0",
        "account_tier": "basic",
        "account_region": {"code": "EU", "label": "Europe"},
        "region_label": "Europe",
        "account_pk": data.accounts[0].id,
    }
    dangling, null = results[9], results[7]
    assert dangling["account_name"] is None
    assert dangling["account_region"] is None
    assert dangling["account_pk"] == 1_000_009  # the key itself, read without a query
    assert null["account_name"] is None
    assert null["account_pk"] is None
    accounts = api.get("/api/support-accounts/").json()["results"]
    assert accounts[0]["ticket_ids"] == [t["id"] for t in accounts[0]["tickets"]]
    assert accounts[0]["locale"] == "en"
    assert accounts[1]["locale"] is None
    assert api.get("/api/method-tickets/").json()["results"][0]["account_label"] == (
        "Account 0 (basic)"
    )


def _select(sql: str) -> set[str]:
    """The columns of the model's table a SELECT reads, unquoted."""
    head = sql.split(" FROM ", 1)[0]
    return set(re.findall(r'[`"]?testapp_\w+[`"]?\.[`"]?(\w+)[`"]?', head))


def test_only_the_columns_the_serializer_reads(data: Any, api: APIClient) -> None:
    with (
        CaptureQueriesContext(connections["default"]) as default,
        CaptureQueriesContext(connections["legacy"]) as legacy,
    ):
        api.get("/api/tickets/")
    (accounts,) = default.captured_queries
    # name, tier and the region key; not the notes
    assert _select(accounts["sql"]) == {"id", "name", "tier", "region_id"}
    tickets_regions, accounts_regions = (_select(q["sql"]) for q in legacy.captured_queries)
    assert tickets_regions == accounts_regions == {"id", "code", "label"}  # no timezone


def test_whole_rows_when_a_field_reads_a_property(data: Any) -> None:
    class DisplaySerializer(serializers.ModelSerializer[Ticket]):
        account_display = serializers.ReadOnlyField(source="account.display_name")

        class Meta:
            model = Ticket
            fields = ["id", "account_display"]

    found = related_columns(DisplaySerializer(many=True), Ticket)
    assert found == {"account": None}


INFERENCE = [
    # a dotted source: the field read, and the key of the next hop
    ({"name": serializers.CharField(source="account.name")}, {"account": {"name"}}),
    (
        {"label": serializers.CharField(source="account.region.label")},
        {"account": {"region"}, "account__region": {"label"}},
    ),
    # the key column alone: no row is needed
    ({"pk": serializers.PrimaryKeyRelatedField(source="account", read_only=True)}, {}),
    ({"id": serializers.IntegerField(source="account.id")}, {"account": {"id"}}),
    ({"region": serializers.CharField(source="account.region_id")}, {"account": {"region"}}),
    (
        {"pk": serializers.PrimaryKeyRelatedField(source="account.region", read_only=True)},
        {"account": {"region"}},
    ),
    (
        {"slug": serializers.SlugRelatedField(source="region", slug_field="code", read_only=True)},
        {"region": {"code"}},
    ),
    ({"text": serializers.StringRelatedField(source="account")}, {"account": None}),
    # reverse: many=True related fields and nested serializers
    (
        {"ids": serializers.PrimaryKeyRelatedField(source="children", many=True, read_only=True)},
        {"children": {"id"}},
    ),
    (
        {"kids": related_serializers.TicketBriefSerializer(source="children", many=True)},
        {"children": {"id", "subject", "status"}},
    ),
    # nothing to infer: source="*", write-only fields, methods of the object itself
    ({"method": serializers.SerializerMethodField()}, {}),
    ({"subject": serializers.CharField(write_only=True)}, {}),
    ({"text": serializers.CharField(source="__str__")}, {}),
]


@pytest.mark.parametrize(("declared", "expected"), INFERENCE)
def test_inference(declared: dict[str, Any], expected: dict[str, Any]) -> None:
    serializer_class = type(
        "Probe",
        (serializers.ModelSerializer,),
        {
            **declared,
            "get_method": lambda self, obj: None,
            "Meta": type("Meta", (), {"model": Ticket, "fields": list(declared)}),
        },
    )
    assert related_columns(serializer_class(many=True), Ticket) == expected


def test_paths_in_one_database_are_left_to_django(data: Any) -> None:
    class ParentSerializer(serializers.ModelSerializer[Ticket]):
        parent_subject = serializers.CharField(source="parent.subject", default=None)
        parent_account = serializers.CharField(source="parent.account.name", default=None)

        class Meta:
            model = Ticket
            fields = ["id", "parent_subject", "parent_account"]

    class SameDatabase(CrossDBPrefetchMixin, viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
        queryset = Ticket.objects.order_by("id")
        serializer_class = ParentSerializer

    view = SameDatabase.as_view({"get": "list"})
    # the parents (same database) are fetched because their accounts are in another one
    with assert_num_queries(timeseries=2, default=1, legacy=0):
        response = view(APIRequestFactory().get("/"))
        response.render()
    assert response.data[1]["parent_account"] == "Account 0"

    class OnlyParent(ParentSerializer):
        class Meta(ParentSerializer.Meta):
            fields = ["id", "parent_subject"]

    SameDatabase.serializer_class = OnlyParent
    # a path that stays in the tickets' database: Django's, one query per row
    with assert_num_queries(timeseries=1 + sum(1 for t in data.tickets if t.parent_id)):
        view(APIRequestFactory().get("/")).render()


class AccountsAndLookups(CrossDBPrefetchMixin, viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
    """cross_db_fields and relations side by side."""

    queryset = Ticket.objects.order_by("id")
    cross_db_fields = {
        "accounts": CrossDBPrefetch("testapp.SupportAccount", key="account_id", fields=("name",))
    }

    class serializer_class(serializers.ModelSerializer[Ticket]):
        account_name = ContextLookupField("accounts", "name")
        region = serializers.CharField(source="region.label", default=None)

        class Meta:
            model = Ticket
            fields = ["id", "account_name", "region"]


def test_cross_db_fields_keep_working_beside_relations(data: Any) -> None:
    view = AccountsAndLookups.as_view({"get": "list"})
    with assert_num_queries(timeseries=1, default=1, legacy=1):
        response = view(APIRequestFactory().get("/"))
        response.render()
    assert response.data[0] == {
        "id": data.tickets[0].id,
        "account_name": "Account 0",
        "region": "Europe",
    }


def test_an_unpaginated_list_is_read_once(data: Any) -> None:
    class Unpaginated(related_views.TicketViewSet):
        pagination_class = None

    view = Unpaginated.as_view({"get": "list"})
    with assert_num_queries(timeseries=1, default=1, legacy=2):
        response = view(APIRequestFactory().get("/"))
        response.render()
    assert len(response.data) == len(data.tickets)


def test_the_browsable_api_renders_without_more_queries(data: Any, api: APIClient) -> None:
    with assert_num_queries(timeseries=1, default=1, legacy=2):
        response = api.get(f"/api/tickets/{data.tickets[0].id}/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert b"Account 0" in response.content


def test_writes_render_the_saved_object() -> None:
    """A create's response reads the relations of the new object, one query each."""

    class Writable(CrossDBPrefetchMixin, viewsets.ModelViewSet):  # type: ignore[type-arg]
        queryset = Ticket.objects.all()

        class serializer_class(serializers.ModelSerializer[Ticket]):
            account_name = serializers.CharField(source="account.name", read_only=True)

            class Meta:
                model = Ticket
                fields = ["id", "subject", "account", "account_name"]

    account = SupportAccount.objects.create(name="Fresh")
    view = Writable.as_view({"post": "create"})
    request = APIRequestFactory().post("/", {"subject": "New", "account": account.id}, "json")
    response = view(request)
    assert response.status_code == 201, response.data
    assert response.data["account_name"] == "Fresh"


def test_cross_db_related_with_a_prefetch(data: Any) -> None:
    class OpenTickets(CrossDBPrefetchMixin, viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
        queryset = SupportAccount.objects.order_by("id")
        cross_db_related = (
            Prefetch("tickets", Ticket.objects.filter(status="open"), to_attr="open_tickets"),
        )

        class serializer_class(serializers.ModelSerializer[SupportAccount]):
            open = serializers.SerializerMethodField()

            class Meta:
                model = SupportAccount
                fields = ["id", "open"]

            def get_open(self, account: Any) -> list[str]:
                return [ticket.subject for ticket in account.open_tickets]

    view = OpenTickets.as_view({"get": "list"})
    with assert_num_queries(default=1, timeseries=1, legacy=0):
        response = view(APIRequestFactory().get("/"))
        response.render()
    assert response.data[0]["open"] == [
        t.subject for t in Ticket.objects.filter(account=data.accounts[0], status="open")
    ]


def test_a_bad_cross_db_related_names_the_view() -> None:
    class Misspelled(related_views.MethodTicketViewSet):
        cross_db_related = ("acount",)

    Ticket.objects.create(subject="x")
    with pytest.raises(ImproperlyConfigured, match=r"Misspelled.cross_db_related.*'account'"):
        Misspelled.as_view({"get": "list"})(APIRequestFactory().get("/"))


# --- the fetch chain's failure policy -------------------------------------------------

REFERENCE = "reference"


@pytest.fixture
def reference(tmp_path: Path, django_db_blocker: DjangoDbBlocker) -> Iterator[SQLiteReference]:
    path = tmp_path / "reference.sqlite3"
    sqlite = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)}
    with database_alias(REFERENCE, sqlite, django_db_blocker):
        with connections[REFERENCE].schema_editor() as editor:
            editor.create_model(SalesRegion)
        SalesRegion.objects.using(REFERENCE).create(code="EU", label="Europe (reference)")
        yield SQLiteReference(path)


class ReferenceRegions(CrossDBPrefetchMixin, viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
    queryset = Ticket.objects.order_by("id")
    cross_db_related = (Prefetch("region", SalesRegion.objects.using(REFERENCE)),)

    class serializer_class(serializers.ModelSerializer[Ticket]):
        region_label = serializers.SerializerMethodField()

        class Meta:
            model = Ticket
            fields = ["id", "region_label"]

        def get_region_label(self, ticket: Any) -> str | None:
            return None if ticket.region is None else ticket.region.label


def test_a_failing_database_degrades_the_relation(
    data: Any, reference: SQLiteReference, settings: Any
) -> None:
    settings.CROSSPREFETCH = {"ON_ERROR": "degrade"}
    view = ReferenceRegions.as_view({"get": "list"})
    response = view(APIRequestFactory().get("/"))
    assert response.data[0]["region_label"] == "Europe (reference)"
    assert DEGRADED_HEADER not in response
    reference.break_("directory")
    try:
        with assert_num_queries(timeseries=1, total=1):
            response = view(APIRequestFactory().get("/"))
            response.render()
    finally:
        reference.repair()
    assert response.status_code == 200
    assert len(response.data) == len(data.tickets)
    assert {row["region_label"] for row in response.data} == {None}
    assert response[DEGRADED_HEADER] == "region"
