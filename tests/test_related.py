"""``crossprefetch.prefetch_related_objects``: Django's caches filled across databases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import caches
from django.core.exceptions import ObjectDoesNotExist
from django.db import connections
from django.db.models import Prefetch
from django.test.utils import CaptureQueriesContext

from crossprefetch import CachePolicy, prefetch_related_objects
from crossprefetch._related import hops
from crossprefetch.related import RelationPathError, relation_spec
from crossprefetch.testing import assert_num_queries
from tests.related_data import ALL_DATABASES, make_tickets
from tests.testapp.models import SalesRegion, SupportAccount, Ticket

pytestmark = pytest.mark.django_db(databases=ALL_DATABASES)


def _get(obj: Any, name: str) -> Any:
    """``getattr``, a missing related row read as ``None``: Django raises DoesNotExist for
    a dangling key (or a reverse one-to-one without a row); crossprefetch caches None."""
    if obj is None:
        return None
    try:
        return getattr(obj, name)
    except ObjectDoesNotExist:
        return None


def _label(region: SalesRegion | None) -> str | None:
    return None if region is None else region.label


def _ticket_view(ticket: Ticket) -> tuple[Any, ...]:
    account = _get(ticket, "account")
    return (
        ticket.subject,
        _get(account, "name"),
        _label(_get(account, "region")),
        _label(_get(ticket, "region")),
    )


def _account_view(account: SupportAccount) -> tuple[Any, ...]:
    region = _get(account, "region")
    return (
        account.name,
        [(t.subject, _label(_get(t, "region"))) for t in account.tickets.all()],
        _label(region),
        None if region is None else [a.name for a in region.accounts.all()],
        _get(_get(account, "settings"), "locale"),
    )


def _naive(read: Callable[[Any], Any], objects: list[Any]) -> list[Any]:
    """What Django answers reading each relation of each object with a query of its own."""
    return [read(type(obj).objects.get(pk=obj.pk)) for obj in objects]


#: paths of tickets, and the queries each database answers for them
TICKET_PATHS = [
    (("account",), {"default": 1}),
    (("account__region",), {"default": 1, "legacy": 1}),
    # a hop per level: tickets' regions, then accounts' regions (both on legacy)
    (("account__region", "region"), {"default": 1, "legacy": 2}),
    (("account__settings",), {"default": 1, "legacy": 1}),
    # the parent is in the tickets' own database; the regions of accounts and of parents
    # are one level down both, so one query
    (("account__region", "parent__region"), {"default": 1, "timeseries": 1, "legacy": 1}),
]


@pytest.mark.parametrize(("paths", "queries"), TICKET_PATHS)
def test_ticket_paths(paths: tuple[str, ...], queries: dict[str, int]) -> None:
    make_tickets()
    tickets = list(Ticket.objects.order_by("id"))
    with assert_num_queries(**{alias: queries.get(alias, 0) for alias in ALL_DATABASES}):
        prefetch_related_objects(tickets, *paths)
    with assert_num_queries(total=0):
        ours = [[_follow(t, path) for path in paths] for t in tickets]
    fresh = list(Ticket.objects.order_by("id"))  # read one query at a time
    assert ours == [[_follow(t, path) for path in paths] for t in fresh]
    assert any(value is not None for row in ours for value in row)


def _follow(obj: Any, path: str) -> str | None:
    """The row at the end of ``path``, as text; ``None`` for a null or dangling key."""
    for name in path.split("__"):
        if obj is None:
            return None
        try:
            obj = getattr(obj, name)
        except ObjectDoesNotExist:
            return None
    return None if obj is None else f"{type(obj).__name__} {obj.pk}"


def test_every_relation_as_django_reads_it_one_at_a_time() -> None:
    make_tickets()
    tickets = list(Ticket.objects.order_by("id"))
    with assert_num_queries(default=1, legacy=2, timeseries=0):
        prefetch_related_objects(tickets, "account__region", "region")
    with assert_num_queries(total=0):
        ours = [_ticket_view(t) for t in tickets]
    assert ours == _naive(_ticket_view, tickets)
    assert ours[9][1] is None  # a dangling account reads as None
    assert ours[7][1] is None  # a null one too


def test_reverse_relations() -> None:
    data = make_tickets()
    SupportAccount.objects.create(name="Quiet", region_id="EU")  # no tickets, no settings
    accounts = list(SupportAccount.objects.order_by("id"))
    with assert_num_queries(default=1, timeseries=1, legacy=3):
        prefetch_related_objects(accounts, "tickets__region", "region__accounts", "settings")
    with assert_num_queries(total=0):
        ours = [_account_view(a) for a in accounts]
    assert ours == _naive(_account_view, accounts)
    assert any(view[1] == [] for view in ours)  # accounts without tickets: no rows
    assert any(view[1] for view in ours)
    with assert_num_queries(total=0):
        # each ticket knows its account without a query, as after Django's prefetch
        assert all(t.account is a for a in accounts for t in a.tickets.all())
        assert all(a.settings.account is a for a in accounts if _get(a, "settings"))
    assert len(data.settings) == sum(1 for view in ours if view[-1] is not None)


def test_a_second_call_finds_everything_cached() -> None:
    make_tickets()
    tickets = list(Ticket.objects.all())
    prefetch_related_objects(tickets, "account__region")
    with assert_num_queries(total=0):
        prefetch_related_objects(tickets, "account__region")
    # a further hop starts from the rows cached already
    with assert_num_queries(timeseries=1, default=0, legacy=0):
        prefetch_related_objects(tickets, "account__tickets")
    with assert_num_queries(total=0):
        assert {t.account.tickets.all()[0].account_id for t in tickets if t.account} == {
            t.account_id for t in tickets if t.account
        }


def test_relations_cached_by_django_are_not_fetched_again() -> None:
    make_tickets()
    tickets = list(Ticket.objects.select_related("parent").order_by("id"))
    with assert_num_queries(timeseries=0, default=1, legacy=0):
        prefetch_related_objects(tickets, "parent__account")
    with assert_num_queries(total=0):
        assert [t.parent.account.name for t in tickets if t.parent and t.parent.account]


def test_prefetch_objects_with_a_queryset_and_to_attr() -> None:
    make_tickets()
    accounts = list(SupportAccount.objects.order_by("id"))
    open_tickets = Prefetch(
        "tickets", queryset=Ticket.objects.filter(status="open"), to_attr="open_tickets"
    )
    with assert_num_queries(timeseries=1, legacy=1, default=0):
        prefetch_related_objects(accounts, open_tickets, "open_tickets__region")
    with assert_num_queries(total=0):
        got = [[(t.subject, _label(t.region)) for t in a.open_tickets] for a in accounts]
    expected = [
        [(t.subject, _label(_region(t))) for t in a.tickets.filter(status="open")]
        for a in SupportAccount.objects.order_by("id")
    ]
    assert got == expected
    assert any(got)


def _region(ticket: Ticket) -> SalesRegion | None:
    try:
        return ticket.region
    except SalesRegion.DoesNotExist:
        return None


def test_a_forward_prefetch_queryset_selects_what_it_says() -> None:
    make_tickets()
    tickets = list(Ticket.objects.order_by("id"))
    with CaptureQueriesContext(connections["default"]) as captured:
        prefetch_related_objects(
            tickets, Prefetch("account", queryset=SupportAccount.objects.only("name"))
        )
    (query,) = captured.captured_queries
    assert '"notes"' not in query["sql"].replace("`", '"')
    assert "tier" not in query["sql"]
    with assert_num_queries(total=0):
        assert {t.account.name for t in tickets if t.account}


def test_a_prefetch_queryset_of_another_model_is_refused() -> None:
    make_tickets()
    with pytest.raises(ValueError, match=r"QuerySet is of testapp.Ticket.*SupportAccount"):
        prefetch_related_objects(
            list(Ticket.objects.all()), Prefetch("account", queryset=Ticket.objects.all())
        )


def test_through_the_cache_of_the_fetch_chain() -> None:
    make_tickets()
    policy = CachePolicy(60, alias="default")
    tickets = list(Ticket.objects.order_by("id"))
    try:
        with assert_num_queries(default=1, legacy=1):
            prefetch_related_objects(tickets, "account__region", cache=policy)
        again = list(Ticket.objects.order_by("id"))
        with assert_num_queries(default=0, legacy=0, timeseries=0):
            lookups = prefetch_related_objects(again, "account__region", cache=policy)
        assert lookups["account"].stats.cache_hits > 0
        assert [_ticket_view(t)[:3] for t in again] == [_ticket_view(t)[:3] for t in tickets]
    finally:
        caches["default"].clear()


def test_the_lookups_say_what_each_hop_cost() -> None:
    make_tickets(tickets=20, accounts=5)
    lookups = prefetch_related_objects(list(Ticket.objects.all()), "account__region")
    assert set(lookups) == {"account", "account__region"}
    account = lookups["account"].stats
    assert (account.alias, account.model, account.queries) == (
        "default",
        "testapp.SupportAccount",
        1,
    )
    assert lookups["account__region"].stats.alias == "legacy"


def test_nothing_to_do() -> None:
    with assert_num_queries(total=0):
        assert prefetch_related_objects([], "account") == {}
        tickets = [Ticket(subject="unsaved")]  # a null key: no query
        prefetch_related_objects(tickets, "account__region")
    assert tickets[0].account is None


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("acount", r"testapp.Ticket has no relation 'acount'.*did you mean 'account'\?"),
        ("account__regoin", r"SupportAccount has no relation 'regoin'.*did you mean 'region'"),
        ("subject", r"Ticket.subject is not a relation"),
        ("account__", r"not a relation path"),
    ],
)
def test_a_path_that_does_not_exist(path: str, message: str) -> None:
    with pytest.raises(RelationPathError, match=message) as caught:
        prefetch_related_objects([Ticket(subject="x")], path)
    if "did you mean" in message:
        assert caught.value.closest in {"account", "account__region"}


def test_many_to_many_is_not_followed() -> None:
    with pytest.raises(RelationPathError, match=r"User.groups is a many-to-many relation"):
        hops.hop(User, "groups")


def test_objects_of_one_model() -> None:
    with pytest.raises(TypeError, match=r"mix testapp.Ticket and SupportAccount"):
        prefetch_related_objects([Ticket(), SupportAccount()], "account")
    with pytest.raises(TypeError, match=r"not a model instance"):
        prefetch_related_objects([{"account_id": 1}], "account")  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"not a relation path"):
        prefetch_related_objects([Ticket()], 42)  # type: ignore[arg-type]


def test_relation_spec() -> None:
    spec = relation_spec(Ticket, "account")
    assert spec is not None
    assert (spec.key, spec.to_field, spec.many) == ("account_id", ("id",), False)
    assert spec.get_queryset().db == "default"
    region = relation_spec(SupportAccount, "region")
    assert region is not None
    assert (region.key, region.to_field) == ("region_id", ("code",))
    reverse = relation_spec(SupportAccount, "tickets")
    assert reverse is not None
    assert (reverse.key, reverse.to_field, reverse.many) == ("id", ("account",), True)
    assert reverse.get_queryset().db == "timeseries"
    assert relation_spec(Ticket, "subject") is None


def test_crossing() -> None:
    assert hops.crosses(hops.resolve(Ticket, "account"))
    assert not hops.crosses(hops.resolve(Ticket, "parent"))
    assert hops.crosses(hops.resolve(Ticket, "parent__account"))
    assert hops.crossing_paths(Ticket, ["parent", "parent__account", "parent__parent"]) == {
        "parent",
        "parent__account",
    }
