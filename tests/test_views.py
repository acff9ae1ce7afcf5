"""``CrossDBPrefetchViewMixin``: ListView and DetailView templates over relations across
databases."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.template import TemplateSyntaxError
from django.test import Client, RequestFactory

from crossprefetch.testing import assert_num_queries
from tests.related_data import ALL_DATABASES, Tickets, make_tickets
from tests.testapp.models import SalesRegion, Ticket
from tests.testapp.related_pages import AccountDetailView, TicketListView

pytestmark = pytest.mark.django_db(databases=ALL_DATABASES)


@pytest.fixture
def data() -> Tickets:
    return make_tickets()


def _lines(html: str) -> list[str]:
    return [line.strip() for line in re.findall(r"<li>(.*?)</li>", html)]


def test_a_list_page(data: Tickets) -> None:
    client = Client()
    # count and page of tickets; their accounts; the accounts' regions; the parents
    with assert_num_queries(timeseries=3, default=1, legacy=1):
        response = client.get("/api/ticket-pages/?page=1")
    html = response.content.decode()
    lines = _lines(html)
    assert len(lines) == 20
    assert lines[0] == "Ticket 0 | Account 0 | Europe | -"
    # "us": found as the regions' database compares it
    region = SalesRegion.objects.filter(code=data.accounts[1].region_id).first()
    assert lines[1] == f"Ticket 1 | Account 1 | {region.label if region else '-'} | Ticket 0"
    assert lines[9].startswith("Ticket 9 | - | - |")  # a dangling account
    assert f"{len(data.tickets)} tickets" in html


def test_a_detail_page(data: Tickets) -> None:
    account = data.accounts[0]
    with assert_num_queries(default=1, timeseries=1, legacy=1):
        response = Client().get(f"/api/account-pages/{account.pk}/")
    html = response.content.decode()
    assert "<h1>Account 0 (Europe)</h1>" in html
    assert _lines(html) == [t.subject for t in Ticket.objects.filter(account=account)]


def test_a_bad_path_names_the_view(data: Tickets) -> None:
    class Misspelled(TicketListView):
        cross_db_related = ("acount",)

    with pytest.raises(ImproperlyConfigured, match=r"Misspelled.cross_db_related.*'account'"):
        Misspelled.as_view()(RequestFactory().get("/"))


def test_the_tag_names_a_missing_lookup(data: Tickets) -> None:
    class NoLookups(TicketListView):
        cross_db_fields = {}

    response = NoLookups.as_view()(RequestFactory().get("/"))
    with pytest.raises(TemplateSyntaxError, match=r"no lookup 'parents'"):
        response.render()


def test_an_empty_page_costs_no_lookup() -> None:
    with assert_num_queries(timeseries=1, default=0, legacy=0):
        response = Client().get("/api/ticket-pages/")
    assert "0 tickets" in response.content.decode()
    assert AccountDetailView.cross_db_related == ("region", "tickets")
