"""``CrossDBPrefetchAdminMixin``: the admin's changelist over ForeignKeys across databases."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client
from django.test.utils import CaptureQueriesContext

from crossprefetch.admin import CrossDBFieldListFilter
from crossprefetch.testing import assert_num_queries
from tests import admin_settings
from tests.related_data import ALL_DATABASES, Tickets, make_tickets
from tests.testapp.models import SalesRegion, SupportAccount, Ticket

if TYPE_CHECKING:
    from pytest_django.live_server_helper import LiveServer
    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = pytest.mark.django_db(databases=ALL_DATABASES)

TICKETS = "/admin/testapp/ticket/"
NAIVE_TICKETS = "/naive-admin/testapp/ticket/"


@pytest.fixture
def admin_on(settings: Any) -> None:
    """Django's admin, with the test sites, for this test only."""
    overrides = admin_settings.overrides(
        list(settings.INSTALLED_APPS), list(settings.MIDDLEWARE), list(settings.TEMPLATES)
    )
    for name, value in overrides.items():
        setattr(settings, name, value)


@pytest.fixture
def client(admin_on: None) -> Client:
    user = User.objects.create_superuser("admin", password="x")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def data() -> Tickets:
    return make_tickets()


class _Changelist(HTMLParser):
    """The cells of ``#result_list``, the paginator's text, the sortable columns."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.sortable: list[str] = []
        self.paginator = ""
        self._in: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        classes = (found.get("class") or "").split()
        if tag == "table" and found.get("id") == "result_list":
            self._in.append("table")
        elif tag == "tbody" and "table" in self._in:
            self._in.append("tbody")
        elif tag == "tr" and "tbody" in self._in:
            self.rows.append([])
        elif tag in {"td", "th"} and "tbody" in self._in:
            self._cell = []
        elif tag == "th" and "table" in self._in and "sortable" in classes:
            self.sortable.append(next(c for c in classes if c.startswith("column-"))[7:])
        elif tag in ("p", "nav") and "paginator" in classes:  # <nav> from Django 6.1
            self._in.append("paginator")

    def handle_endtag(self, tag: str) -> None:
        if tag in {"td", "th"} and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tbody" and "tbody" in self._in:
            self._in.remove("tbody")
        elif tag == "table" and "table" in self._in:
            self._in.remove("table")
        elif tag in ("p", "nav") and "paginator" in self._in:
            self._in.remove("paginator")

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if "paginator" in self._in:
            self.paginator += data

    @property
    def count(self) -> int:
        match = re.search(r"(\d+) tickets?", self.paginator)
        assert match, self.paginator
        return int(match.group(1))


def changelist(client: Client, url: str) -> _Changelist:
    response = client.get(url)
    assert response.status_code == 200, response.content[:2000]
    parsed = _Changelist()
    parsed.feed(response.content.decode())
    return parsed


def test_the_page_reads_each_database_once_per_model_and_hop(client: Client, data: Tickets) -> None:
    # the user (default); count, full count and page, the status filter's choices
    # (timeseries); the accounts and the tier filter's choices (default); the tickets'
    # regions, the accounts' regions and the region filter's choices (legacy)
    with assert_num_queries(default=3, timeseries=4, legacy=3):
        ours = changelist(client, TICKETS)
    # Django alone: one query per account and per region of the page
    with CaptureQueriesContext(connections["default"]) as default:
        naive = changelist(client, NAIVE_TICKETS)
    assert len(default.captured_queries) > 10
    assert ours.rows == naive.rows
    assert len(ours.rows) == 20
    assert ours.count == naive.count == len(data.tickets)


def test_the_cells(client: Client, data: Tickets) -> None:
    rows = changelist(client, TICKETS).rows
    first = data.tickets[0]
    assert rows[0] == [first.subject, "open", "Account 0", "Account 0", "Europe", "Europe", "-"]
    assert rows[9][2:5] == ["-", "-", "-"]  # a dangling account
    assert rows[7][2:5] == ["-", "-", "-"]  # no account


def test_no_join_into_another_database(client: Client, data: Tickets) -> None:
    with CaptureQueriesContext(connections["timeseries"]) as captured:
        changelist(client, TICKETS)
    page = next(q["sql"] for q in captured.captured_queries if "LIMIT" in q["sql"])
    assert "testapp_supportaccount" not in page
    assert "JOIN" in page  # list_select_related's "parent" is in the same database


def test_remote_columns_are_not_sortable(client: Client, data: Tickets) -> None:
    page = changelist(client, TICKETS)
    assert page.sortable == ["subject", "status", "parent"]
    # a crafted ?o= on a remote column is ignored, not a join that fails
    for column in range(1, 8):
        assert changelist(client, f"{TICKETS}?o={column}").count == len(data.tickets)


def _tickets_of(accounts: set[int]) -> int:
    return Ticket.objects.filter(account_id__in=accounts).count()


def test_list_filter_on_a_remote_field(client: Client, data: Tickets) -> None:
    gold = set(SupportAccount.objects.filter(tier="gold").values_list("id", flat=True))
    # the gold accounts' keys: one more query on default
    with assert_num_queries(default=4, timeseries=4, legacy=3):
        page = changelist(client, f"{TICKETS}?account__tier=gold")
    assert page.count == _tickets_of(gold)
    assert {row[3] for row in page.rows} <= {a.name for a in data.accounts if a.id in gold}
    # the choices are read where the rows are
    assert "gold" in client.get(TICKETS).content.decode()


def test_list_filter_on_a_remote_relation(client: Client, data: Tickets) -> None:
    europe = SalesRegion.objects.get(code="EU")
    page = changelist(client, f"{TICKETS}?account__region={europe.pk}")
    in_europe = {a.id for a in data.accounts if a.region_id == "EU"}
    assert page.count == _tickets_of(in_europe)
    assert {row[4] for row in page.rows} == {"Europe"}
    # none: no account, a dangling one, or an account without (a live) region
    # (as the regions' database compares codes: "us" finds "US" on MariaDB)
    with_region = {
        a.id
        for a in data.accounts
        if a.region_id is not None and SalesRegion.objects.filter(code=a.region_id).exists()
    }
    page = changelist(client, f"{TICKETS}?account__region__isnull=True")
    assert page.count == len(data.tickets) - _tickets_of(with_region)


def _matching(data: Tickets, *words: str) -> int:
    """Tickets every word of which is in the subject or the (live) account's name."""
    names = {a.id: a.name.lower() for a in data.accounts}
    return sum(
        1
        for t in data.tickets
        if all(w in t.subject.lower() or w in names.get(t.account_id or 0, "") for w in words)
    )


def test_search_on_remote_fields(client: Client, data: Tickets) -> None:
    # "=account__region__label": the whole label, any case
    page = changelist(client, f"{TICKETS}?q=eUROPE")
    in_europe = {a.id for a in data.accounts if a.region_id == "EU"}
    assert page.count == _tickets_of(in_europe)
    # every word must match one field: the subject, the account's name, the region's label
    for words in (("account", "11"), ("ticket", "5"), ("1",)):
        # per word: the accounts by name (default), the regions by label (legacy)
        with assert_num_queries(default=3 + len(words), legacy=3 + len(words)):
            page = changelist(client, f"{TICKETS}?q={'+'.join(words)}")
        assert page.count == _matching(data, *words)


def test_a_callable_names_its_relation_in_cross_db_related(client: Client, data: Tickets) -> None:
    # the user, count, full count and page; the tickets; the regions of "region"
    with assert_num_queries(default=4, timeseries=1, legacy=1):
        page = changelist(client, "/admin/testapp/supportaccount/")
    counts = {row[0]: int(row[3]) for row in page.rows}
    assert counts == {a.name: Ticket.objects.filter(account=a).count() for a in data.accounts}


def test_the_filter_refuses_a_local_path(admin_on: None) -> None:
    from tests.testapp.admin import site

    with pytest.raises(ValueError, match="does not reach another database"):
        CrossDBFieldListFilter(
            Ticket._meta.get_field("status"),
            None,  # type: ignore[arg-type]
            {},
            Ticket,
            site._registry[Ticket],
            "status",
        )


# --- in a browser ---------------------------------------------------------------------


@pytest.fixture
def admin_server(admin_on: None) -> Iterator[LiveServer]:
    """A live server started once the admin's settings are in place."""
    from pytest_django.live_server_helper import LiveServer

    server = LiveServer("localhost:0")
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.django_db(transaction=True, databases=ALL_DATABASES)
def test_the_changelist_in_a_browser(admin_server: LiveServer, browser: WebDriver) -> None:
    """Log in, open the tickets, filter by a remote field, search a remote field."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    data = make_tickets()
    User.objects.create_superuser("admin", password="secret")
    wait = WebDriverWait(browser, 15)
    browser.get(f"{admin_server.url}/admin/login/?next={TICKETS}")
    browser.find_element(By.NAME, "username").send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys("secret")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()

    table = wait.until(lambda d: d.find_element(By.ID, "result_list"))
    rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(rows) == 20
    cells = [cell.text for cell in rows[0].find_elements(By.CSS_SELECTOR, "td, th")]
    assert cells[-7:] == [
        data.tickets[0].subject,
        "open",
        "Account 0",
        "Account 0",
        "Europe",
        "Europe",
        "-",
    ]

    paginator = browser.find_element(By.CSS_SELECTOR, ".paginator")
    assert f"{len(data.tickets)} tickets" in paginator.text

    browser.find_element(By.LINK_TEXT, "gold").click()
    paginator = wait.until(
        lambda d: (
            d.find_element(By.CSS_SELECTOR, ".paginator")
            if "account__tier=gold" in d.current_url
            else None
        )
    )
    gold = {a.id for a in data.accounts if a.tier == "gold"}
    assert f"{_tickets_of(gold)} tickets" in paginator.text

    search = browser.find_element(By.ID, "searchbar")
    search.clear()
    search.send_keys("europe")
    search.submit()
    wait.until(lambda d: "q=europe" in d.current_url)
    in_europe = {a.id for a in data.accounts if a.region_id == "EU" and a.id in gold}
    body = browser.find_element(By.CSS_SELECTOR, ".paginator").text
    assert f"{_tickets_of(in_europe)} ticket" in body
