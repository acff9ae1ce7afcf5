"""A hung cache server (SIGSTOP) trips the cache's circuit breaker: the database is read.

A redis-server of the test's own, with a client socket timeout in ``CACHES[...]["OPTIONS"]``:
the first requests each wait that timeout once, then the breaker is open and the cache is
not asked at all, until the trial after ``BREAKER_RESET`` finds it answering again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from crossprefetch import CachePolicy, CrossDBPrefetch, prefetch_cross_db
from crossprefetch._fetch import breaker as breaker
from crossprefetch._fetch import caching as cache_layer
from crossprefetch.lookup import LookupStats
from crossprefetch.testing import assert_num_queries
from tests.servers import RedisServer
from tests.test_failure import NAMES, make_events
from tests.testapp.models import Customer, OrderEvent

pytestmark = pytest.mark.django_db(databases=["default", "timeseries"])

HUNG = "hung"


@pytest.fixture
def cache(redis_server: RedisServer, settings: Any) -> Iterator[RedisServer]:
    settings.CACHES = {
        **settings.CACHES,
        HUNG: {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_server.url,
            "OPTIONS": {"socket_timeout": 0.2, "socket_connect_timeout": 0.2},
        },
    }
    # every read goes to the server: no per-process copies of the entries
    settings.CROSSPREFETCH = {"CACHE_LOCAL_MAX_ENTRIES": 0}
    breaker.caches.reset()
    cache_layer.clear_local()
    yield redis_server
    breaker.caches.reset()


@pytest.fixture
def events() -> list[OrderEvent]:
    Customer.objects.bulk_create(Customer(id=pk, name=name) for pk, name in NAMES.items())
    return make_events()


SPEC = CrossDBPrefetch(
    "testapp.Customer",
    key="customer_id",
    fields=("name",),
    cache=CachePolicy(300, alias=HUNG, invalidate=False),
)


def fetch(events: list[OrderEvent], **queries: int) -> LookupStats:
    with assert_num_queries(**queries):
        lookup = prefetch_cross_db(events, {"customers": SPEC})["customers"]
    assert lookup.get_for(events[0]) == {"name": "Customer 1"}
    return lookup.stats


def test_hung_cache_is_skipped_once_the_breaker_opens(
    cache: RedisServer, events: list[OrderEvent], settings: Any
) -> None:
    fetch(events, default=1, timeseries=0)
    assert fetch(events, default=0).cache_hits == 6

    settings.CROSSPREFETCH = {
        "CACHE_LOCAL_MAX_ENTRIES": 0,
        "BREAKER_FAILURES": 3,
        "BREAKER_RESET": 3600,
    }
    cache.hang()
    seen = [fetch(events, default=1) for _ in range(6)]  # every row from the database
    assert [s.cache_errors for s in seen] == [1, 1, 1, 0, 0, 0]  # a socket timeout each
    assert [s.cache_skipped for s in seen] == [False, False, False, True, True, True]
    assert all(s.cache_hits == 0 for s in seen)
    assert not any(s.degraded for s in seen)

    cache.resume()
    assert fetch(events, default=1).cache_skipped  # open until the reset time
    settings.CROSSPREFETCH = {"CACHE_LOCAL_MAX_ENTRIES": 0, "BREAKER_RESET": 0}
    trial = fetch(events, default=0)
    assert (trial.cache_skipped, trial.cache_hits, trial.cache_errors) == (False, 6, 0)
    assert not breaker.caches.is_open(HUNG)
