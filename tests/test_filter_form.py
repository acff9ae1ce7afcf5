"""The browsable API's Filters dialog: the form of a view's ``cross_db_filters``.

Rendered through the real browsable API (the HTML of a list), read back input by input, and
used in headless Chromium: open the dialog, fill an input, submit, see the filtered page.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory

from crossprefetch.filters import CrossDBFilter, CrossDBFilterBackend
from crossprefetch.testing import capture_queries
from shop import activity
from shop import views as shop_views
from shop.models import Customer, OrderEvent
from tests.conftest import ALL_DATABASES, T0
from tests.testapp import filter_views

if TYPE_CHECKING:
    from pytest_django.live_server_helper import LiveServer
    from selenium.webdriver.remote.webdriver import WebDriver


class _FormParser(HTMLParser):
    """The fields of the ``<form class="crossprefetch-filters">``: for each, in order,
    ``(tag, type, name, value, options)`` -- a select's value is its selected option's, its
    options the values it lists."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str, str, str, list[str]]] = []
        self.forms = 0
        self._inside = False
        self._select: list[Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form" and "crossprefetch-filters" in (attributes.get("class") or "").split():
            self.forms += 1
            self._inside = True
        elif not self._inside:
            return
        elif tag == "input":
            self.fields.append(
                (
                    "input",
                    attributes.get("type") or "",
                    attributes.get("name") or "",
                    attributes.get("value") or "",
                    [],
                )
            )
        elif tag == "select":
            self._select = ["select", "", attributes.get("name") or "", "", []]
        elif tag == "option" and self._select is not None:
            value = attributes.get("value") or ""
            self._select[4].append(value)
            if "selected" in attributes:
                self._select[3] = value

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._inside = False
        elif tag == "select" and self._select is not None:
            self.fields.append(tuple(self._select))  # type: ignore[arg-type]
            self._select = None


def form_fields(html: str) -> list[tuple[str, str, str, str, list[str]]]:
    parser = _FormParser()
    parser.feed(html)
    assert parser.forms == 1, f"{parser.forms} filter forms in the page"
    return parser.fields


YES_NO = ["", "true", "false"]


def make_shop_events() -> None:
    """Six events of customers of three tiers, two per tier, and one of no customer."""
    tiers = ["gold", "silver", "bronze"]
    people = [
        Customer.objects.create(name=f"Customer {i}", email=f"c{i}@example.com", tier=tier)
        for i, tier in enumerate(tiers)
    ]
    for i in range(7):
        customer_id = people[i % 3].pk if i < 6 else 10_000_000
        OrderEvent.objects.create(
            timestamp=T0 + dt.timedelta(minutes=i),
            customer_id=customer_id,
            event_type="created",
            amount=i,
        )


@pytest.mark.django_db(databases=ALL_DATABASES)
def test_the_dialog_has_an_input_per_filter_with_the_request_s_value() -> None:
    """One input per filter of the example's ``events/``, named as its parameter; a select
    for a boolean and for ``isnull``; the other parameters kept, but for the page."""
    make_shop_events()
    response = APIClient().get(
        "/shop/events/",
        {
            "customer_tier": "gold",
            "customer_missing": "false",
            "ordering": "-customer_name",
            "page_size": "1",
            "page": "2",
        },
        HTTP_ACCEPT="text/html",
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-target="#filtersModal"' in html  # DRF's Filters button
    assert form_fields(html) == [
        ("input", "hidden", "ordering", "-customer_name", []),
        ("input", "hidden", "page_size", "1", []),
        ("input", "text", "customer_tier", "gold", []),
        ("input", "text", "customer_tier__in", "", []),
        ("input", "text", "customer_name", "", []),
        ("select", "", "customer_active", "", YES_NO),
        ("input", "text", "customer_id__gte", "", []),
        ("select", "", "customer_missing", "false", YES_NO),
    ]
    # with each filter's description, and DRF's ordering links after the form
    assert "true: only objects without a &#x27;customers&#x27; row; false: only with one." in html
    assert html.index("crossprefetch-filters") < html.index("<h2>Ordering</h2>")


CHOICES_TABLE = [
    # (query string, the vendor_tier select's value and options)
    ("", "", ["", "bronze", "silver", "gold"]),
    ("vendor_tier=silver", "silver", ["", "bronze", "silver", "gold"]),
    # a value that is no choice is shown as the URL has it
    ("vendor_tier=platinum", "platinum", ["", "bronze", "silver", "gold", "platinum"]),
]


@pytest.mark.django_db(databases=ALL_DATABASES)
@pytest.mark.parametrize(("query", "value", "options"), CHOICES_TABLE)
def test_a_field_with_choices_is_a_select(query: str, value: str, options: list[str]) -> None:
    response = APIClient().get(f"/api/parcels/?{query}", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    fields = {
        name: (tag, selected, listed)
        for tag, _, name, selected, listed in form_fields(response.content.decode())
    }
    assert fields["vendor_tier"] == ("select", value, options)
    # ``in`` takes several values: text, comma-separated
    assert fields["vendor_tier__in"] == ("input", "", [])
    assert fields["no_vendor"] == ("select", "", YES_NO)


@pytest.mark.django_db(databases=ALL_DATABASES)
@pytest.mark.parametrize(
    ("value", "selected"),
    [("1", "true"), ("YES", "true"), (" off ", "false"), ("false", "false"), ("maybe", "maybe")],
)
def test_a_boolean_spelled_as_the_filter_takes_it_selects_its_option(
    value: str, selected: str
) -> None:
    """``?customer_active=1`` filters as ``true`` does, and the select says so."""
    request, view = _view(filter_views.FilteredEventViewSet, {"customer_active": value})
    html = CrossDBFilterBackend().to_html(request, view.get_queryset(), view)
    assert html is not None
    fields = {name: (chosen, listed) for _, _, name, chosen, listed in form_fields(html)}
    listed = YES_NO if selected in YES_NO else [*YES_NO, selected]
    assert fields["customer_active"] == (selected, listed)


class _WithAnInvalidFilter(filter_views.FilteredEventViewSet):
    cross_db_filters = {
        **filter_views.FilteredEventViewSet.cross_db_filters,
        "customer_name__like": CrossDBFilter("customers", "name", lookup_expr="icontain"),
    }


@pytest.mark.django_db(databases=ALL_DATABASES)
def test_an_invalid_filter_is_left_out_of_the_form() -> None:
    """``crossprefetch.E408`` reports it, a request using it fails; the page of a request
    that does not use it shows the form of the others."""
    request, view = _view(_WithAnInvalidFilter, {"customer_tier": "gold"})
    html = CrossDBFilterBackend().to_html(request, view.get_queryset(), view)
    assert html is not None
    names = [name for _, _, name, _, _ in form_fields(html)]
    assert "customer_name__like" not in names
    assert names == list(filter_views.FilteredEventViewSet.cross_db_filters)


def _view(view_class: type, query: dict[str, str]) -> tuple[Request, Any]:
    """A view of ``view_class`` serving a GET of its list with ``query``, as DRF sets it up."""
    request = Request(APIRequestFactory().get("/", query))
    view = view_class(request=request, format_kwarg=None, action="list", args=(), kwargs={})
    return request, view


NO_QUERY_TABLE = [
    ("the example's events", shop_views.OrderEventViewSet, {"customer_tier": "gold"}),
    ("aggregates of another database", activity.CustomerActivityViewSet, {"events__gte": "2"}),
    ("every lookup", filter_views.FilteredEventViewSet, {"no_customer": "true"}),
    ("a callable source", filter_views.TenantFilteredEventViewSet, {"tenant": "acme"}),
    ("choices", filter_views.ParcelViewSet, {"vendor_tier": "gold"}),
]


@pytest.mark.django_db(databases=ALL_DATABASES)
@pytest.mark.parametrize(
    ("view_class", "query"),
    [case[1:] for case in NO_QUERY_TABLE],
    ids=[case[0] for case in NO_QUERY_TABLE],
)
def test_the_form_sends_no_query(view_class: type, query: dict[str, str]) -> None:
    request, view = _view(view_class, query)
    with capture_queries() as captured:
        html = CrossDBFilterBackend().to_html(request, view.get_queryset(), view)
    assert html is not None
    assert captured.counts == dict.fromkeys(ALL_DATABASES, 0)
    assert len(form_fields(html)) >= len(view.cross_db_filters)


@pytest.mark.django_db(databases=ALL_DATABASES)
def test_the_browsable_page_costs_the_queries_of_the_json_one() -> None:
    """The filtered page of ``events/``, as HTML with the dialog and as JSON: the same
    queries on each alias (the filter's one on default answers the page's lookup too; the
    count and the page on timeseries)."""
    make_shop_events()
    client = APIClient()
    counts = {}
    for accept in ("text/html", "application/json"):
        with capture_queries() as captured:
            response = client.get("/shop/events/?customer_tier=gold", HTTP_ACCEPT=accept)
        assert response.status_code == 200
        counts[accept] = captured.counts
    assert counts == {
        "text/html": {"default": 1, "timeseries": 2, "legacy": 0},
        "application/json": {"default": 1, "timeseries": 2, "legacy": 0},
    }


@pytest.mark.django_db(databases=ALL_DATABASES)
def test_no_form_without_filters() -> None:
    """A view without ``cross_db_filters``: no form (and no Filters button of its own)."""
    request, view = _view(shop_views.DegradingOrderEventViewSet, {})
    assert CrossDBFilterBackend().to_html(request, view.get_queryset(), view) is None


# -- in a browser ---------------------------------------------------------------------------

#: Where the filtering how-to's screenshot of the dialog is written, when asked for.
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "howto" / "browsable-api-filters.png"


def _page(browser: WebDriver) -> dict[str, Any]:
    """The JSON the browsable API shows, parsed."""
    from selenium.webdriver.common.by import By

    text = browser.find_element(By.CSS_SELECTOR, ".response-info pre").text
    page: dict[str, Any] = json.loads(text[text.index("{") :])
    return page


@pytest.mark.django_db(transaction=True, databases=ALL_DATABASES)
def test_filtering_in_the_browsable_api(
    live_server: LiveServer, browser: WebDriver, tmp_path: Path
) -> None:
    """Open ``events/`` ordered by name, open the Filters dialog, ask for the gold tier:
    the page lists the gold customers' events, still ordered, and the URL holds only the
    filters given. ``CROSSPREFETCH_SCREENSHOT=1`` refreshes the how-to's screenshot of the
    dialog."""
    from urllib.parse import parse_qsl, urlsplit

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    make_shop_events()
    browser.get(f"{live_server.url}/shop/events/?ordering=-customer_name")
    wait = WebDriverWait(browser, 15)
    assert _page(browser)["count"] == 7

    browser.find_element(By.CSS_SELECTOR, 'button[data-target="#filtersModal"]').click()
    tier = wait.until(lambda d: d.find_element(By.NAME, "customer_tier"))
    wait.until(lambda d: tier.is_displayed())
    tier.send_keys("gold")
    screenshot = tmp_path / SCREENSHOT.name
    browser.save_screenshot(str(screenshot))
    if os.environ.get("CROSSPREFETCH_SCREENSHOT") == "1":
        shutil.copyfile(screenshot, SCREENSHOT)
    form = browser.find_element(By.CSS_SELECTOR, "form.crossprefetch-filters")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    wait.until(lambda d: "customer_tier=" in d.current_url)
    assert parse_qsl(urlsplit(browser.current_url).query, keep_blank_values=True) == [
        ("ordering", "-customer_name"),
        ("customer_tier", "gold"),
    ]
    page = _page(browser)
    assert page["count"] == 2
    assert [row["customer_tier"] for row in page["results"]] == ["gold", "gold"]
    # the dialog of the new page holds the filter's value
    assert browser.find_element(By.NAME, "customer_tier").get_attribute("value") == "gold"
