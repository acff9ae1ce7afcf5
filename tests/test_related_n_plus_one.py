"""The N+1 detector names a relation across databases read per object, and its fix."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIRequestFactory

from crossprefetch.testing import detect_n_plus_one
from crossprefetch.testing._n_plus_one import NPlusOneError
from tests.related_data import ALL_DATABASES, make_tickets
from tests.testapp import related_views

pytestmark = pytest.mark.django_db(databases=ALL_DATABASES)


def _repeats(view: type) -> NPlusOneError:
    make_tickets()
    with pytest.raises(NPlusOneError) as caught, detect_n_plus_one():
        view.as_view({"get": "list"})(APIRequestFactory().get("/")).render()
    return caught.value


def test_a_serializer_field_needs_nothing_but_the_mixin() -> None:
    error = _repeats(related_views.NaiveTicketViewSet)
    by_table = {repeat.table: repeat for repeat in error.repeats}
    accounts = by_table["testapp_supportaccount"]
    assert accounts.related == (
        "nothing to declare: CrossDBPrefetchMixin on the view fetches "
        "testapp.Ticket.account for the serializer field"
    )
    assert "serve it per page:" in str(error)
    assert "cross_db_fields" not in str(error).split("testapp_salesregion")[0]


def test_a_method_field_needs_cross_db_related() -> None:
    class Forgotten(related_views.MethodTicketViewSet):
        cross_db_related = ()

    error = _repeats(Forgotten)
    (repeat,) = error.repeats
    assert repeat.related == "cross_db_related = ('account',)"
    assert "    cross_db_related = ('account',)" in str(error)
    assert repeat.as_dict()["related"] == repeat.related


def test_a_reverse_relation() -> None:
    error = _repeats(related_views.NaiveSupportAccountViewSet)
    tickets = next(r for r in error.repeats if r.table == "testapp_ticket")
    assert tickets.related is not None
    assert "testapp.SupportAccount.tickets" in tickets.related


def test_the_panel_shows_the_relation_and_its_fix(settings: Any) -> None:
    pytest.importorskip("debug_toolbar")
    from django.test import Client

    from tests import panel_settings
    from tests.test_panels import _clear_toolbar_caches, stored_panel, table_rows

    overrides = panel_settings.overrides(list(settings.INSTALLED_APPS), list(settings.MIDDLEWARE))
    for name, value in overrides.items():
        setattr(settings, name, value)
    settings.ROOT_URLCONF = "tests.related_panel_urls"
    _clear_toolbar_caches()
    from debug_toolbar.toolbar import DebugToolbar

    try:
        make_tickets()
        client = Client()
        response = client.get("/naive/naive-tickets/", headers={"accept": "application/json"})
        assert response.status_code == 200
        stats, _, content = stored_panel(DebugToolbar, client, response)
    finally:
        _clear_toolbar_caches()
    accounts = next(r for r in stats["repeats"] if r["table"] == "testapp_supportaccount")
    assert accounts["related"].startswith("nothing to declare: CrossDBPrefetchMixin")
    rows = table_rows(content, "crossprefetch-repeats")
    assert any(cells[4] == accounts["related"] for cells in rows)
