"""The bulkhead: at most ``MAX_CONCURRENT`` queries of degrading specs in flight per alias.

Two requests hold their queries in flight on a PostgreSQL server of the test session's own
(an advisory lock the test holds); a third degrading request degrades at once with every
primary row, a raising one is not limited, and every place is given back however the query
ended: the count in flight returns to 0.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest
from django.db import ProgrammingError, connections
from rest_framework.test import APIClient

from crossprefetch import CrossDBPrefetch, prefetch_cross_db
from crossprefetch._fetch import breaker, bulkhead
from crossprefetch.testing import assert_num_queries
from tests.failure_urls import REFERENCE
from tests.servers import PostgresServer
from tests.test_failure import NAMES, make_events, spec
from tests.test_outages import Held, cancelled_spec, held_spec, in_thread, server, wait_until
from tests.testapp.models import OrderEvent

if TYPE_CHECKING:
    pass

__all__ = ["server"]  # the fixture, shared with test_outages

pytestmark = pytest.mark.django_db(databases=["default", "timeseries"])


@pytest.fixture
def events() -> list[OrderEvent]:
    return make_events()


def test_over_the_limit_a_degrading_request_degrades_at_once(
    server: PostgresServer,
    events: list[OrderEvent],
    settings: Any,
    api: APIClient,
) -> None:
    settings.CROSSPREFETCH = {"MAX_CONCURRENT": {REFERENCE: 2}}
    with Held() as lock:
        holding = [
            in_thread(
                lambda: prefetch_cross_db(events, {"customers": held_spec()}),
            )
            for _ in range(2)
        ]
        try:
            wait_until(lambda: bulkhead.databases.in_flight(REFERENCE) == 2)

            started = time.monotonic()
            with assert_num_queries(default=0, timeseries=1, **{REFERENCE: 0}):
                response = api.get("/reference/events/")
            assert time.monotonic() - started < 2  # at once, not after the held queries
            assert response.status_code == 200
            assert response["Crossprefetch-Degraded"] == "customers"
            assert [row["id"] for row in response.json()] == [e.id for e in events]

            lookup = prefetch_cross_db(events, {"customers": spec()})["customers"]
            assert lookup.degraded
            assert lookup.stats.error == "bulkhead full: 2 queries in flight on 'reference'"
            assert not lookup.stats.breaker_open
            assert lookup.stats.queries == 0

            # raise-mode specs are not limited: they have asked to wait
            with assert_num_queries(**{REFERENCE: 1}):
                raising = prefetch_cross_db(events, {"customers": spec(on_error="raise")})
            assert raising["customers"].get_for(events[0]) == {"name": NAMES[1]}
            assert bulkhead.databases.in_flight(REFERENCE) == 2
            # nor is another alias
            elsewhere = CrossDBPrefetch(
                "testapp.Customer", key="customer_id", fields=("name",), on_error="degrade"
            )
            assert not prefetch_cross_db(events, {"customers": elsewhere})["customers"].degraded
        finally:
            lock.release()
            for thread, _ in holding:
                thread.join(30)
    for _, outcome in holding:
        (result,) = outcome
        assert result["customers"].get_for(events[0]) == {"name": NAMES[1]}
    assert bulkhead.databases.in_flight(REFERENCE) == 0
    assert breaker.databases.failures(REFERENCE) == 0  # a full bulkhead is not an outage
    assert not prefetch_cross_db(events, {"customers": spec()})["customers"].degraded


def test_one_number_limits_every_alias(
    server: PostgresServer,
    events: list[OrderEvent],
    settings: Any,
) -> None:
    settings.CROSSPREFETCH = {"MAX_CONCURRENT": 1}
    with Held() as lock:
        thread, outcome = in_thread(lambda: prefetch_cross_db(events, {"customers": held_spec()}))
        try:
            wait_until(lambda: bulkhead.databases.in_flight(REFERENCE) == 1)
            lookup = prefetch_cross_db(events, {"customers": spec()})["customers"]
            assert lookup.stats.error == "bulkhead full: 1 queries in flight on 'reference'"
        finally:
            lock.release()
            thread.join(30)
    assert not outcome[0]["customers"].degraded
    assert bulkhead.databases.in_flight(REFERENCE) == 0


@pytest.mark.parametrize("ending", ["success", "outage", "bug", "interrupted"])
def test_the_place_is_given_back_however_the_query_ends(
    server: PostgresServer, events: list[OrderEvent], ending: str
) -> None:
    if ending == "success":
        assert not prefetch_cross_db(events, {"customers": spec()})["customers"].degraded
    elif ending == "outage":
        assert prefetch_cross_db(events, {"customers": cancelled_spec()})["customers"].degraded
    elif ending == "bug":
        with connections[REFERENCE].cursor() as cursor:
            cursor.execute("DROP TABLE testapp_customer")
        with pytest.raises(ProgrammingError):
            prefetch_cross_db(events, {"customers": spec()})
    else:

        class Interrupted(BaseException):
            """A request timeout's signal handler, raising in the middle of the query."""

        def interrupt(*args: Any) -> Any:
            raise Interrupted

        with (
            connections[REFERENCE].execute_wrapper(interrupt),
            pytest.raises(Interrupted),
        ):
            prefetch_cross_db(events, {"customers": spec()})
    assert bulkhead.databases.in_flight(REFERENCE) == 0
