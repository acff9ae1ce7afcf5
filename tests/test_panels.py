"""The debug-toolbar panel: real requests through the toolbar, then the panel it stored."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import json
import os
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
from asgiref.sync import async_to_sync
from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client, RequestFactory
from rest_framework.request import Request

from crossprefetch import CachePolicy, CrossDBPrefetch, LookupStats, prefetch_cross_db
from crossprefetch._cache import invalidation as _invalidation
from crossprefetch.cache import failed_invalidations
from shop import serializers
from shop.models import Customer as ShopCustomer
from shop.models import OrderEvent as ShopOrderEvent
from tests import panel_settings
from tests.conftest import ALL_DATABASES, T0, make_scenario
from tests.testapp.models import Customer

if TYPE_CHECKING:
    from debug_toolbar.toolbar import DebugToolbar
    from pytest_django import Settings
    from pytest_django.live_server_helper import LiveServer
    from selenium.webdriver.remote.webdriver import WebDriver

pytest.importorskip("debug_toolbar")

from crossprefetch.panels import CrossDBPrefetchPanel

PANEL_ID = CrossDBPrefetchPanel.panel_id


def _clear_toolbar_caches() -> None:
    """The toolbar caches its show-toolbar callback for the life of the process."""
    from debug_toolbar import middleware

    cached = getattr(middleware, "show_toolbar_func_or_path", None)
    if cached is not None and hasattr(cached, "cache_clear"):
        cached.cache_clear()


@pytest.fixture
def toolbar(settings: Settings) -> Iterator[type[DebugToolbar]]:
    """django-debug-toolbar on, with the crossprefetch panel, for this test only.

    The toolbar's class is imported only then: its module defines a model, which needs
    ``debug_toolbar`` in ``INSTALLED_APPS``.
    """
    overrides = panel_settings.overrides(list(settings.INSTALLED_APPS), list(settings.MIDDLEWARE))
    for name, value in overrides.items():
        setattr(settings, name, value)
    _clear_toolbar_caches()
    from debug_toolbar.toolbar import DebugToolbar

    yield DebugToolbar
    _clear_toolbar_caches()


class _TableParser(HTMLParser):
    """The text of each body row of the first ``<table class="...{css_class}...">``."""

    def __init__(self, css_class: str) -> None:
        super().__init__()
        self.css_class = css_class
        self.rows: list[list[str]] = []
        self.row_classes: list[list[str]] = []
        self._depth = 0  # >0 inside the wanted table
        self._in_body = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            classes = (dict(attrs).get("class") or "").split()
            if self._depth or (self.css_class in classes and not self.rows):
                self._depth += 1
        elif self._depth and tag == "tbody":
            self._in_body = True
        elif self._depth and self._in_body and tag == "tr":
            self.rows.append([])
            self.row_classes.append((dict(attrs).get("class") or "").split())
        elif self._depth and self._in_body and tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self._depth:
            self._depth -= 1
        elif tag == "tbody":
            self._in_body = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def table_rows(html: str, css_class: str = "crossprefetch-lookups") -> list[list[str]]:
    """The cells of each row of the table, but for the lookups' rows of details."""
    parser = _TableParser(css_class)
    parser.feed(html)
    return [
        cells
        for cells, classes in zip(parser.rows, parser.row_classes, strict=True)
        if "crossprefetch-details" not in classes
    ]


def lookup_details(html: str) -> list[str]:
    """For each lookup, the text of the row of details below its figures ("" if none)."""
    parser = _TableParser("crossprefetch-lookups")
    parser.feed(html)
    details: list[str] = []
    for cells, classes in zip(parser.rows, parser.row_classes, strict=True):
        if "crossprefetch-details" in classes:
            details[-1] = " ".join(cells).strip()
        else:
            details.append("")
    return details


def stored_panel(
    toolbar: type[DebugToolbar], client: Client, response: Any
) -> tuple[dict[str, Any], str, str]:
    """The panel's stored stats, its subtitle, and its content from ``render_panel``."""
    request_id = response.headers["djdt-request-id"]
    stored = toolbar.fetch(request_id, PANEL_ID)
    assert stored is not None, "the toolbar stored nothing for the request"
    panel = stored.get_panel_by_id(PANEL_ID)
    assert isinstance(panel, CrossDBPrefetchPanel)
    rendered = client.get(
        "/__debug__/render_panel/", {"request_id": request_id, "panel_id": PANEL_ID}
    )
    assert rendered.status_code == 200
    return panel.get_stats(), str(panel.nav_subtitle), rendered.json()["content"]


_COLUMNS = (
    "name",
    "model",
    "alias",
    "keys_asked",
    "keys_found",
    "keys_missing",
    "keys_invalid",
    "queries",
    "cache_hits",
    "cache_misses",
    "cache_errors",
    "fallbacks",
    "shared_with",
)


def _row(*values: Any) -> dict[str, Any]:
    return dict(zip(_COLUMNS, values, strict=True))


# make_scenario(): 100 events; 80 reference 24 distinct customers, 10 have no customer,
# 10 reference customers that do not exist. OrderEventSerializer reads "customers" in
# three fields, so each of the 20 events without a customer falls back three times.
PANEL_TABLE = [
    (
        "one lookup, three fields",
        "/api/events/",
        # the page's count and rows on timeseries, the lookup on default
        "1 lookup · 3 queries (default 1, timeseries 2)",
        [_row("customers", "testapp.Customer", "default", 34, 24, 10, 0, 1, 0, 0, 0, 60, [])],
    ),
    (
        "two databases",
        "/api/two-databases/",
        "2 lookups · 4 queries (default 1, timeseries 2, legacy 1)",
        [
            _row("customers", "testapp.Customer", "default", 34, 24, 10, 0, 1, 0, 0, 0, 20, []),
            _row("regions", "testapp.Region", "legacy", 4, 3, 1, 0, 1, 0, 0, 0, 42, []),
        ],
    ),
    (
        "two lookups sharing one query",
        "/api/buyer-seller/",
        "2 lookups · 3 queries (default 1, timeseries 2)",
        [
            _row(
                "buyers", "testapp.Customer", "default", 34, 24, 10, 0, 1, 0, 0, 0, 20, ["sellers"]
            ),
            _row(
                "sellers", "testapp.Customer", "default", 24, 24, 0, 0, 1, 0, 0, 0, 20, ["buyers"]
            ),
        ],
    ),
    # DRF's LimitOffsetPagination asks for no rows past the count
    (
        "nothing serialized",
        "/api/events-limit/?offset=5000",
        "0 lookups · 1 query (timeseries 1)",
        [],
    ),
]


@pytest.mark.django_db(databases=ALL_DATABASES)
@pytest.mark.parametrize(
    ("url", "subtitle", "expected"),
    [case[1:] for case in PANEL_TABLE],
    ids=[case[0] for case in PANEL_TABLE],
)
def test_panel_numbers(
    toolbar: type[DebugToolbar], url: str, subtitle: str, expected: list[dict[str, Any]]
) -> None:
    make_scenario()
    client = Client()
    response = client.get(url, headers={"accept": "application/json"})
    assert response.status_code == 200

    stats, nav_subtitle, content = stored_panel(toolbar, client, response)

    assert [{k: row[k] for k in _COLUMNS} for row in stats["lookups"]] == expected
    assert nav_subtitle == subtitle
    per_alias = ", ".join(f"{alias} {count}" for alias, count in stats["request_queries"].items())
    assert f"({per_alias})" in subtitle
    [summary] = table_rows(content, "crossprefetch-summary")
    request_queries = subtitle.split(" · ")[1]  # "3 queries (default 1, timeseries 2)"
    assert summary[3:5] == [str(stats["queries"]), re.sub(" quer(y|ies)", "", request_queries)]
    assert stats["fallbacks"] == sum(row["fallbacks"] for row in expected)
    assert stats["databases"] == sorted({row["alias"] for row in expected})
    assert all(row["time_ms"] >= 0 for row in stats["lookups"])
    # The rendered table, cell by cell, but for the two time columns.
    rendered = table_rows(content)
    assert [cells[:8] + cells[10:] for cells in rendered] == [
        [str(row[k]) for k in _COLUMNS[:-1]] for row in expected
    ]
    for cells, row in zip(rendered, stats["lookups"], strict=True):
        assert cells[8].endswith(" ms")  # SQL
        assert cells[9].endswith(" ms")  # building rows
        assert row["sql_ms"] >= 0
        assert row["rows_ms"] >= 0
        assert len(row["sql"]) == row["queries"]
        assert all(row["model"].split(".")[1].lower() in q["sql"] for q in row["sql"])
    # Below the figures: the first few missing keys of each lookup, then an ellipsis for
    # the rest, and the lookups it shared its query with.
    assert lookup_details(content) == [
        _details(row["keys_missing"], MISSING_KEYS[row["name"]], row["shared_with"])
        for row in expected
    ]
    assert [row["missing_keys"] for row in stats["lookups"]] == [
        MISSING_KEYS[row["name"]] for row in expected
    ]
    assert stats["repeats"] == []
    if not expected:
        assert "No cross-database lookups were built during this request." in content


# make_scenario(): the events with i % 10 == 9 reference customer 10_000_000 + i, which does
# not exist; region codes R0-R3 are referenced and R3 does not exist; every seller exists.
MISSING_KEYS = {
    "customers": ["10000009", "10000019", "10000029", "10000039", "10000049"],
    "buyers": ["10000009", "10000019", "10000029", "10000039", "10000049"],
    "sellers": [],
    "regions": ["'R3'"],
}


def _details(count: int, shown: list[str], shared_with: list[str]) -> str:
    details = []
    if shown:
        details.append("Missing keys: " + ", ".join(shown) + (", …" if count > len(shown) else ""))
    if shared_with:
        details.append("Query shared with: " + ", ".join(shared_with))
    return " ".join(details)


def make_shop(events: int = 12, customers: int = 4) -> int:
    """The example shop's data: events referencing its customers, the last of whom is
    deleted; returns the deleted customer's id."""
    people = [
        ShopCustomer.objects.create(name=f"Customer {i}", email=f"c{i}@example.com", tier="gold")
        for i in range(customers)
    ]
    for i in range(events):
        ShopOrderEvent.objects.create(
            timestamp=T0 + dt.timedelta(minutes=i),
            customer_id=people[i % customers].pk,
            event_type="created",
            amount=i,
        )
    deleted = people[-1].pk
    people[-1].delete()
    return deleted


NAIVE_ORIGINS = [
    (
        "NaiveOrderEventSerializer.get_customer_name",
        "NaiveOrderEventSerializer.customer_name",
        "get_customer_name",
    ),
    (
        "NaiveOrderEventSerializer.get_customer_tier",
        "NaiveOrderEventSerializer.customer_tier",
        "get_customer_tier",
    ),
]


@pytest.mark.django_db(databases=ALL_DATABASES)
def test_panel_names_the_n_plus_one_of_the_naive_endpoint(toolbar: type[DebugToolbar]) -> None:
    """The example's naive endpoint builds no lookup but sends 2 queries per event: the
    panel says so, with the code that sent them and the spec that would replace them."""
    make_shop()
    client = Client()
    response = client.get("/shop/naive-events/", headers={"accept": "application/json"})
    assert response.status_code == 200

    stats, nav_subtitle, content = stored_panel(toolbar, client, response)

    # 20 customers' rows one by one on default; the page's count and rows on timeseries
    assert nav_subtitle == "0 lookups · 22 queries (default 20, timeseries 2) · 1 N+1"
    assert stats["request_queries"] == {"default": 20, "timeseries": 2}
    [repeat] = stats["repeats"]
    assert (repeat["alias"], repeat["table"], repeat["model"], repeat["count"]) == (
        "default",
        "shop_customer",
        "shop.Customer",
        20,
    )
    serializers_py = os.path.relpath(serializers.__file__)
    assert [
        (o["function"], o["field"], o["count"], o["where"].rsplit(":", 1)[0])
        for o in repeat["origins"]
    ] == [(function, field, 10, serializers_py) for function, field, _ in NAIVE_ORIGINS]
    assert repeat["suggestion"] == (
        "CrossDBPrefetch('shop.Customer', key='customer_id', fields=('name', 'tier'))"
    )
    assert repeat["lookup"] == "customers"

    [cells] = table_rows(content, "crossprefetch-repeats")
    assert cells[:3] == ["default", "shop_customer (shop.Customer)", "20"]
    for function, field, method in NAIVE_ORIGINS:
        line = _line_of(serializers.NaiveOrderEventSerializer, method)
        assert f"10 \u00d7 {function} (field {field}) {serializers_py}:{line}" in cells[3]
    assert cells[4] == f"customers: {repeat['suggestion']}"
    assert "No cross-database lookups were built during this request." in content


@pytest.mark.django_db(databases=ALL_DATABASES)
def test_panel_finds_no_n_plus_one_on_the_crossprefetch_endpoint(
    toolbar: type[DebugToolbar],
) -> None:
    deleted = make_shop()
    client = Client()
    response = client.get("/shop/events/", headers={"accept": "application/json"})
    stats, nav_subtitle, content = stored_panel(toolbar, client, response)
    assert nav_subtitle == "1 lookup · 3 queries (default 1, timeseries 2)"
    assert stats["request_queries"] == {"default": 1, "timeseries": 2}
    assert stats["repeats"] == []
    assert "No SQL shape ran more than 2 times on one database." in content
    [lookup] = stats["lookups"]
    assert (lookup["keys_missing"], lookup["missing_keys"]) == (1, [repr(deleted)])
    [query] = lookup["sql"]
    assert "shop_customer" in query["sql"]
    [cells] = table_rows(content, "crossprefetch-lookup-sql")
    assert cells[:2] == ["customers", "default"]
    assert cells[3] == query["sql"]


def _line_of(cls: type, method: str) -> int:
    """The line of the first statement of ``cls.method``: where the naive fields query."""
    function = getattr(cls, method)
    lines, start = inspect.getsourcelines(function)
    body = next(i for i, text in enumerate(lines) if "Customer.objects" in text)
    return start + body


@pytest.mark.django_db(databases=ALL_DATABASES)
def test_panel_under_asgi(toolbar: type[DebugToolbar]) -> None:
    """The panel is async-capable: the view runs in a worker thread, the toolbar does not."""
    make_scenario()
    response = async_to_sync(AsyncClient().get)(
        "/api/two-databases/", headers={"accept": "application/json"}
    )
    assert response.status_code == 200

    stats, nav_subtitle, _ = stored_panel(toolbar, Client(), response)

    assert nav_subtitle == "2 lookups · 4 queries (default 1, timeseries 2, legacy 1)"
    assert [(row["name"], row["alias"], row["fallbacks"]) for row in stats["lookups"]] == [
        ("customers", "default", 20),
        ("regions", "legacy", 42),
    ]


@pytest.mark.django_db(databases=ALL_DATABASES)
def test_panel_stats_are_json(toolbar: type[DebugToolbar]) -> None:
    """Toolbar 5+ stores stats serialised; the panel records plain JSON types only."""
    panel = _panel(toolbar, RequestFactory().get("/"))
    panel.enable_instrumentation()
    try:
        _prefetch(panel.toolbar.request, "customers")
    finally:
        panel.disable_instrumentation()
    panel.generate_stats(panel.toolbar.request, HttpResponse())

    stats = panel.get_stats()
    assert json.loads(json.dumps(stats)) == stats
    assert stats["lookups"][0]["name"] == "customers"


def _unreachable_redis() -> dict[str, str]:
    """A Redis cache on a port nothing listens on: every operation is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{port}/0",
    }


@pytest.mark.django_db(databases=ALL_DATABASES)
def test_panel_shows_invalidations_the_cache_refused(
    toolbar: type[DebugToolbar], settings: Settings
) -> None:
    """A save during the request while the (real, unreachable) Redis refuses the write."""
    settings.CACHES = {**settings.CACHES, "down": _unreachable_redis()}
    data = make_scenario()
    spec = CrossDBPrefetch(
        "testapp.Customer", key="customer_id", cache=CachePolicy(60, alias="down")
    )
    watched = (_invalidation._state, _invalidation._discovered)
    before = sum(failed_invalidations().values())
    panel = _panel(toolbar, RequestFactory().get("/"))
    panel.enable_instrumentation()
    try:
        prefetch_cross_db(data.events, {"c": spec}, request=panel.toolbar.request)
        data.customers[0].save()
    finally:
        panel.disable_instrumentation()
        _invalidation.reset()
        _invalidation._state, _invalidation._discovered = watched
    panel.generate_stats(panel.toolbar.request, HttpResponse())

    stats = panel.get_stats()
    assert [(f["alias"], f["models"]) for f in stats["failed_invalidations"]] == [
        ("down", ["testapp.customer"])
    ]
    assert stats["failed_invalidations_total"] == before + 1
    assert stats["lookups"][0]["cache_errors"] == 1
    rows = table_rows(panel.content, "crossprefetch-failed-invalidations")
    assert [row[:2] for row in rows] == [["down", "testapp.customer"]]
    assert "ConnectionError" in rows[0][2]


@pytest.mark.django_db(databases=ALL_DATABASES)
def test_panel_shows_degraded_lookups(toolbar: type[DebugToolbar]) -> None:
    from tests.test_failure import CANCELLED, slow_where

    panel = _panel(toolbar, RequestFactory().get("/"))
    Customer.objects.create(id=1, name="Someone")  # the slow condition runs per row
    broken = Customer.objects.extra(where=[slow_where("default")])  # cancelled: an outage
    panel.enable_instrumentation()
    try:
        prefetch_cross_db(
            [SimpleNamespace(customer_id=1)],
            {"broken": CrossDBPrefetch(broken, key="customer_id", on_error="degrade", timeout=0.2)},
            request=panel.toolbar.request,
        )
    finally:
        panel.disable_instrumentation()
    panel.generate_stats(panel.toolbar.request, HttpResponse())

    stats = panel.get_stats()
    assert stats["degraded"] == ["broken"]
    assert stats["lookups"][0]["degraded"] is True
    content = str(panel.content)
    [details] = lookup_details(content)
    assert details.startswith("Degraded: ")
    assert CANCELLED[connections["default"].vendor] in details
    assert table_rows(content, "crossprefetch-summary")[0][-1] == "broken"


def _panel(toolbar: type[DebugToolbar], request: HttpRequest) -> CrossDBPrefetchPanel:
    """The panel of a toolbar built for ``request``, as the toolbar's middleware builds it."""
    panel = toolbar(request, lambda request: HttpResponse()).get_panel_by_id(PANEL_ID)
    assert isinstance(panel, CrossDBPrefetchPanel)
    return panel


def _prefetch(request: Any, marker: str) -> None:
    # Only null keys: no query, but the signal is sent for the batch.
    prefetch_cross_db(
        [SimpleNamespace(customer_id=None)],
        {marker: CrossDBPrefetch("testapp.Customer", key="customer_id")},
        request=request,
    )


def _names(panel: CrossDBPrefetchPanel) -> list[tuple[int, str]]:
    return [(row["call"], row["name"]) for row in panel.get_stats()["lookups"]]


@pytest.mark.django_db(databases=ALL_DATABASES)
def test_panel_records_only_its_own_request(toolbar: type[DebugToolbar]) -> None:
    """Two requests in flight at once, in two threads: each panel keeps its own batches.

    A batch is its request's when built for the toolbar's request (directly or wrapped in
    a DRF ``Request``), or built without a request in the context the panel instruments.
    """
    factory = RequestFactory()
    a, b = panels = [_panel(toolbar, factory.get(f"/{n}/")) for n in "ab"]
    both_enabled = threading.Barrier(2, timeout=10)
    both_sent = threading.Barrier(2, timeout=10)

    def request_b() -> None:
        b.enable_instrumentation()
        both_enabled.wait()
        _prefetch(Request(b.toolbar.request), "b_drf_request")
        _prefetch(None, "b_no_request")
        both_sent.wait()
        b.disable_instrumentation()

    thread = threading.Thread(target=request_b)
    thread.start()
    a.enable_instrumentation()
    both_enabled.wait()
    _prefetch(a.toolbar.request, "a_request")
    _prefetch(None, "a_no_request")
    _prefetch(factory.get("/other/"), "another_request")
    both_sent.wait()
    a.disable_instrumentation()
    thread.join()
    _prefetch(None, "after_the_request")

    for panel in panels:
        panel.generate_stats(panel.toolbar.request, HttpResponse())
    assert _names(a) == [(1, "a_request"), (2, "a_no_request")]
    assert _names(b) == [(1, "b_drf_request"), (2, "b_no_request")]
    assert a.get_stats()["calls"] == 2
    # With more than one call, the table says which call built each lookup.
    assert [cells[:2] for cells in table_rows(a.content)] == [
        ["1", "a_request"],
        ["2", "a_no_request"],
    ]


# -- in a browser ---------------------------------------------------------------------------


@pytest.fixture
def toolbar_server(toolbar: type[DebugToolbar]) -> Iterator[LiveServer]:
    """pytest-django's live server, started once the toolbar's settings are in place.

    The session-wide ``live_server`` fixture builds its middleware chain when it first
    starts, possibly before (or without) the toolbar; a server of the same kind started
    by this test serves the toolbar's middleware and URLs.
    """
    from pytest_django.live_server_helper import LiveServer

    server = LiveServer("localhost:0")
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.django_db(transaction=True, databases=ALL_DATABASES)
def test_panel_in_a_browser(toolbar_server: LiveServer, browser: WebDriver, tmp_path: Path) -> None:
    """A developer opens the browsable API, then the panel: the lookup's row is there."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    make_scenario()
    browser.get(f"{toolbar_server.url}/api/two-databases/")
    wait = WebDriverWait(browser, 15)

    toolbar_root = wait.until(lambda d: d.find_element(By.ID, "djDebugRoot").shadow_root)
    link = toolbar_root.find_element(By.CSS_SELECTOR, f"#djDebugPanelList a.{PANEL_ID}")
    wait.until(lambda d: link.is_displayed())
    # The live server serves each request in a thread of its own, with new connections: on
    # MariaDB/MySQL, Django reads the server's version and modes (SELECT VERSION(), ...)
    # when the regions' lookup first needs them: one more query of the request on legacy.
    legacy = 2 if connections["legacy"].vendor == "mysql" else 1
    assert link.text.split("\n") == [
        "Cross-DB prefetch",
        f"2 lookups · {3 + legacy} queries (default 1, timeseries 2, legacy {legacy})",
    ]
    link.click()

    table = wait.until(
        lambda d: toolbar_root.find_element(
            By.CSS_SELECTOR, f"#{PANEL_ID} table.crossprefetch-lookups"
        )
    )
    wait.until(lambda d: table.is_displayed())
    screenshot = tmp_path / "crossprefetch-panel.png"
    browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 0

    rows = [
        [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        for row in table.find_elements(By.CSS_SELECTOR, "tbody tr.crossprefetch-lookup-row")
    ]
    assert [cells[:8] + cells[10:] for cells in rows] == [
        [
            "customers",
            "testapp.Customer",
            "default",
            "34",
            "24",
            "10",
            "0",
            "1",
            "0",
            "0",
            "0",
            "20",
        ],
        [
            "regions",
            "testapp.Region",
            "legacy",
            "4",
            "3",
            "1",
            "0",
            "1",
            "0",
            "0",
            "0",
            "42",
        ],
    ]
    assert all(cells[8].endswith(" ms") and cells[9].endswith(" ms") for cells in rows)
    # Every time fits on one line, however narrow the column.
    for row in table.find_elements(By.CSS_SELECTOR, "tbody tr.crossprefetch-lookup-row"):
        for cell in row.find_elements(By.TAG_NAME, "td")[8:10]:
            assert _line_count(browser, cell) == 1, (
                cell.text,
                browser.execute_script(
                    "const s = getComputedStyle(arguments[0]);"
                    "return [s.whiteSpace, s.width, arguments[0].getBoundingClientRect().height,"
                    " Array.from(document.createRange().getClientRects()).length,"
                    " arguments[0].innerHTML];",
                    cell,
                ),
            )


def _line_count(browser: WebDriver, element: Any) -> int:
    """How many lines the text of ``element`` is laid out on."""
    count = browser.execute_script(
        "const range = document.createRange();"
        "range.selectNodeContents(arguments[0]);"
        "return new Set(Array.from(range.getClientRects(), r => Math.round(r.top))).size;",
        element,
    )
    return int(count)


#: The width of each table of the panel, of the panel's scrolling box, and whether either
#: scrolls sideways.
_WIDTHS = """
const box = arguments[0];
const right = box.getBoundingClientRect().right;
return {
  box: [box.scrollWidth, box.clientWidth],
  tables: Array.from(box.querySelectorAll("table"), table => [
    table.className, table.scrollWidth, table.clientWidth,
    table.getBoundingClientRect().right <= right,
  ]),
};
"""


@pytest.mark.django_db(transaction=True, databases=ALL_DATABASES)
def test_panel_fits_a_1280_pixel_window(
    toolbar_server: LiveServer, browser: WebDriver, tmp_path: Path, settings: Settings
) -> None:
    """Every table of the panel, filled past any column's width (five lookups in three
    calls, a name of 160 characters without a space, an N+1, an invalidation the cache
    refused), fits the panel of a 1280-pixel window: nothing scrolls sideways, and the long
    name is there whole, wrapped."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    from tests.panel_urls import LONG_NAME
    from tests.testapp.aggregate_models import Entry

    settings.CACHES = {**settings.CACHES, "down": _unreachable_redis()}
    people = [Customer.objects.create(name=f"Customer {i}") for i in range(4)]
    Entry.objects.create(member_id=people[0].pk, amount=5)
    assert browser.get_window_size()["width"] == 1280
    watched = (_invalidation._state, _invalidation._discovered)
    try:
        browser.get(f"{toolbar_server.url}/wide-panel/")
    finally:
        _invalidation.reset()
        _invalidation._state, _invalidation._discovered = watched
    wait = WebDriverWait(browser, 15)

    toolbar_root = wait.until(lambda d: d.find_element(By.ID, "djDebugRoot").shadow_root)
    link = toolbar_root.find_element(By.CSS_SELECTOR, f"#djDebugPanelList a.{PANEL_ID}")
    wait.until(lambda d: link.is_displayed())
    # default: the rows, 3 of them again one by one, one query for the three lookups that
    # share it, one for the cached lookup (the cache is down), the save; timeseries: the
    # aggregate
    assert link.text.split("\n") == [
        "Cross-DB prefetch",
        "5 lookups \u00b7 8 queries (default 7, timeseries 1) \u00b7 1 N+1",
    ]
    link.click()
    table = wait.until(
        lambda d: toolbar_root.find_element(
            By.CSS_SELECTOR, f"#{PANEL_ID} table.crossprefetch-lookups"
        )
    )
    wait.until(lambda d: table.is_displayed())
    screenshot = tmp_path / "crossprefetch-panel-1280.png"
    browser.save_screenshot(str(screenshot))

    box = toolbar_root.find_element(By.CSS_SELECTOR, f"#{PANEL_ID} .djdt-scroll")
    widths = browser.execute_script(_WIDTHS, box)
    assert [name for name, *_ in widths["tables"]] == [
        "crossprefetch-summary",
        "crossprefetch-repeats",
        "crossprefetch-lookups",
        "crossprefetch-lookup-sql",
        "crossprefetch-failed-invalidations",
    ]
    scroll_width, client_width = widths["box"]
    assert 900 < client_width < 1280
    assert scroll_width <= client_width, widths
    for name, table_scroll, table_client, inside in widths["tables"]:
        assert table_scroll <= table_client, (name, widths)
        assert inside, (name, widths)

    # The long name, whole, on several lines: in the lookups' table and in their SQL's.
    for css_class in ("crossprefetch-lookups", "crossprefetch-lookup-sql"):
        [cell] = [
            cell
            for cell in toolbar_root.find_elements(
                By.CSS_SELECTOR, f"#{PANEL_ID} table.{css_class} td.crossprefetch-name"
            )
            if cell.text == LONG_NAME
        ]
        assert _line_count(browser, cell) > 1, css_class
    rows = [
        [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        for row in table.find_elements(By.CSS_SELECTOR, "tbody tr.crossprefetch-lookup-row")
    ]
    assert [cells[:2] for cells in rows] == [
        ["1", LONG_NAME],
        ["1", "buyers"],
        ["1", "sellers"],
        ["2", "activity"],
        ["3", "cached"],
    ]


#: Where the debug-toolbar how-to's screenshot is written, when asked for.
SCREENSHOT = (
    Path(__file__).resolve().parent.parent / "docs" / "howto" / "debug-toolbar-n-plus-one.png"
)


@pytest.mark.django_db(transaction=True, databases=ALL_DATABASES)
def test_panel_shows_the_n_plus_one_in_a_browser(
    toolbar_server: LiveServer, browser: WebDriver, tmp_path: Path
) -> None:
    """The example's naive endpoint in the browsable API: the panel names the N+1 and the
    serializer methods that send it. ``CROSSPREFETCH_SCREENSHOT=1`` refreshes the how-to's
    screenshot."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    make_shop()
    browser.get(f"{toolbar_server.url}/shop/naive-events/")
    wait = WebDriverWait(browser, 15)

    toolbar_root = wait.until(lambda d: d.find_element(By.ID, "djDebugRoot").shadow_root)
    link = toolbar_root.find_element(By.CSS_SELECTOR, f"#djDebugPanelList a.{PANEL_ID}")
    wait.until(lambda d: link.is_displayed())
    assert link.text.split("\n") == [
        "Cross-DB prefetch",
        "0 lookups · 22 queries (default 20, timeseries 2) · 1 N+1",
    ]
    link.click()

    table = wait.until(
        lambda d: toolbar_root.find_element(
            By.CSS_SELECTOR, f"#{PANEL_ID} table.crossprefetch-repeats"
        )
    )
    wait.until(lambda d: table.is_displayed())
    [cells] = [
        [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")
    ]
    assert cells[:3] == ["default", "shop_customer (shop.Customer)", "20"]
    for function, field, _ in NAIVE_ORIGINS:
        assert f"10 \u00d7 {function} (field {field})" in cells[3]
    assert "serializers.py:" in cells[3]
    assert cells[4] == (
        "customers: CrossDBPrefetch('shop.Customer', key='customer_id', fields=('name', 'tier'))"
    )

    screenshot = tmp_path / SCREENSHOT.name
    browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 0
    if os.environ.get("CROSSPREFETCH_SCREENSHOT") == "1":
        shutil.copyfile(screenshot, SCREENSHOT)


@pytest.mark.django_db(databases=ALL_DATABASES)
def test_panel_shows_requests_that_shared_a_coalesced_query(
    toolbar: type[DebugToolbar],
) -> None:
    panel = _panel(toolbar, RequestFactory().get("/"))
    led = LookupStats("customers", "testapp.Customer", "default", queries=1, coalesced_with=3)
    joined = LookupStats("regions", "testapp.Region", "legacy", coalesced_with=1)
    panel._batches = [[(led, [], []), (joined, [], [])]]
    panel.generate_stats(panel.toolbar.request, HttpResponse())

    assert [row["coalesced_with"] for row in panel.get_stats()["lookups"]] == [3, 1]
    assert lookup_details(panel.content) == [
        "Query shared with: 3 other requests",
        "Query shared with: 1 other request",
    ]


# -- one capture: the testing toolkit's --------------------------------------------------------


@pytest.mark.django_db(databases=ALL_DATABASES)
def test_panel_counts_what_the_testing_toolkit_counts(toolbar: type[DebugToolbar]) -> None:
    """Transaction control is not a query for the panel either: three savepoints are not an
    N+1, and the panel lists exactly the statements ``capture_queries`` lists."""
    from django.db import transaction

    from crossprefetch.testing import capture_queries

    panel = _panel(toolbar, RequestFactory().get("/"))
    panel.enable_instrumentation()
    try:
        with capture_queries() as captured:
            for read in (Customer.objects.count, Customer.objects.exists, Customer.objects.first):
                with transaction.atomic():  # a SAVEPOINT and its RELEASE
                    read()
    finally:
        panel.disable_instrumentation()
    assert [q.sql for q in panel._queries] == [q.sql for q in captured]
    assert len(captured) == 3
    panel.generate_stats(panel.toolbar.request, HttpResponse())
    assert panel.get_stats()["repeats"] == []


@pytest.mark.django_db(databases=ALL_DATABASES, transaction=True)
def test_panel_sees_the_queries_the_pool_sends_for_its_request(
    toolbar: type[DebugToolbar],
) -> None:
    """``aprefetch_cross_db`` with coalescing runs in crossprefetch's own threads; their
    queries are the request's, in its panel."""
    from crossprefetch.loaders import aprefetch_cross_db

    people = [Customer.objects.create(name=f"p{i}") for i in range(4)]
    spec = {
        "customers": CrossDBPrefetch(
            "testapp.Customer", key="customer_id", fields=("name",), coalesce=0.5
        )
    }
    panel = _panel(toolbar, RequestFactory().get("/"))
    request = panel.toolbar.request

    async def view() -> list[Any]:
        return await asyncio.gather(
            *(
                aprefetch_cross_db([SimpleNamespace(customer_id=p.pk)], spec, request=request)
                for p in people
            )
        )

    panel.enable_instrumentation()
    try:
        results = async_to_sync(view)()
    finally:
        panel.disable_instrumentation()
    panel.generate_stats(request, HttpResponse())

    rows = panel.get_stats()["lookups"]
    sent = sum(result["customers"].stats.queries for result in results)
    assert len(rows) == 4
    assert sent >= 1
    assert sum(len(row["sql"]) for row in rows) == sent
    assert panel.get_stats()["queries"] == sent


@pytest.mark.django_db(databases=ALL_DATABASES)
def test_panel_names_the_aggregates_of_an_aggregate_lookup(toolbar: type[DebugToolbar]) -> None:
    from django.db.models import Count, Sum

    from crossprefetch import CrossDBAggregate
    from tests.testapp.models import Entry

    Entry.objects.create(member_id=1, kind="paid")
    panel = _panel(toolbar, RequestFactory().get("/"))
    spec = CrossDBAggregate(
        "testapp.Entry",
        key="id",
        to_field="member_id",
        aggregates={"entries": Count("id"), "spent": Sum("amount")},
    )
    panel.enable_instrumentation()
    try:
        prefetch_cross_db(
            [SimpleNamespace(id=1), SimpleNamespace(id=2)],
            {"activity": spec},
            request=panel.toolbar.request,
        )
    finally:
        panel.disable_instrumentation()
    panel.generate_stats(panel.toolbar.request, HttpResponse())

    (row,) = panel.get_stats()["lookups"]
    assert row["aggregates"] == ["entries = Count(F(id))", "spent = Sum(F(amount))"]
    assert (row["keys_asked"], row["keys_found"], row["queries"]) == (2, 1, 1)
    assert row["missing_keys"] == ["2"]
    assert "GROUP BY" in row["sql"][0]["sql"]
    (details,) = lookup_details(str(panel.content))
    assert details.startswith(
        "Aggregated per key: entries = Count(F(id)), spent = Sum(F(amount)) Missing keys: 2"
    )
