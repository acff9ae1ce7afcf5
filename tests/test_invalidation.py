"""The write watcher on every connection, the discovery under its lock, and invalidation
writes through the cache's circuit breaker: real threads with their own connections, a real
redis-server of the test's own hung with SIGSTOP.

The tests are transactional: a thread's write commits, and bumps its model's generation at
once, as in production.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.cache import caches
from django.db import connections, router

from crossprefetch import CachePolicy, CrossDBPrefetch, prefetch_cross_db, signals
from crossprefetch._cache import invalidation as _invalidation
from crossprefetch._fetch import breaker
from crossprefetch._fetch import caching as cache_layer
from crossprefetch.cache import failed_invalidations
from crossprefetch.testing import assert_num_queries
from tests import discovery_urls
from tests.conftest import ALL_DATABASES, Scenario, make_scenario
from tests.servers import RedisServer
from tests.testapp.models import Customer, Region

pytestmark = pytest.mark.django_db(databases=ALL_DATABASES, transaction=True)

CUSTOMERS_DB = router.db_for_write(Customer)
WAIT = 30  # seconds: the bound of every wait on another thread


@pytest.fixture(autouse=True)
def _nothing_watched(settings: Any) -> Iterator[str]:
    """A key prefix of the test's own; nothing watched, no discovery pending, restored after."""
    prefix = f"cp-test-{uuid.uuid4().hex[:12]}"
    settings.CROSSPREFETCH = {"CACHE_PREFIX": prefix}
    watched = (_invalidation._state, _invalidation._discovered)
    _invalidation.reset()
    _invalidation._discovered = True
    cache_layer.clear_local()
    yield prefix
    _invalidation.reset()
    _invalidation._state, _invalidation._discovered = watched
    caches["default"].clear()


@pytest.fixture
def data() -> Scenario:
    return make_scenario()


class Worker(threading.Thread):
    """A thread of its own (so connections of its own) running ``target``; errors re-raised."""

    def __init__(self, target: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.target = target
        self.error: BaseException | None = None
        self.finished = threading.Event()

    def run(self) -> None:
        try:
            self.target()
        except BaseException as exc:
            self.error = exc
        finally:
            connections.close_all()
            self.finished.set()

    def result(self) -> None:
        self.join(WAIT)
        assert not self.is_alive(), "the thread did not finish in time"
        if self.error is not None:
            raise self.error


def cached_names(data: Scenario, alias: str = "default") -> dict[int, str]:
    spec = CrossDBPrefetch(
        "testapp.Customer",
        key="customer_id",
        fields=("name",),
        cache=CachePolicy(300, alias=alias),
    )
    lookup = prefetch_cross_db(data.events, {"customers": spec})["customers"]
    return {key: row["name"] for key, row in dict(lookup).items()}


def generation(label: str, alias: str = "default") -> Any:
    return caches[alias].get(_invalidation.generation_key(label))


# The watcher is on every connection ------------------------------------------------------


def test_every_connection_has_the_watcher_from_the_moment_it_opens() -> None:
    assert not _invalidation.tracked().tables  # nothing is watched
    seen: dict[str, bool] = {}

    def open_all() -> None:
        for alias in ALL_DATABASES:
            connection = connections[alias]
            connection.ensure_connection()
            seen[alias] = _invalidation._WATCHER in connection.execute_wrappers

    worker = Worker(open_all)
    worker.start()
    worker.result()
    assert seen == dict.fromkeys(ALL_DATABASES, True)


def test_a_connection_opened_before_any_model_is_watched_invalidates(data: Scenario) -> None:
    """A persistent connection of another thread, opened while nothing was watched, sees
    the write it sends after a cached spec was used: the next lookup reads the database."""
    opened, write, written = threading.Event(), threading.Event(), threading.Event()
    customer = next(c for c in data.customers if any(e.customer_id == c.pk for e in data.events))
    reconnected: list[bool] = []

    def writer() -> None:
        connection = connections[CUSTOMERS_DB]
        connection.ensure_connection()
        raw = connection.connection
        opened.set()
        assert write.wait(WAIT)
        Customer.objects.filter(pk=customer.pk).update(name="Renamed in another thread")
        reconnected.append(connection.connection is not raw)
        written.set()

    worker = Worker(writer)
    worker.start()
    assert opened.wait(WAIT)
    assert not _invalidation.tracked().tables

    with assert_num_queries(**{CUSTOMERS_DB: 1}):
        assert cached_names(data)[customer.pk] == customer.name
    with assert_num_queries(**{CUSTOMERS_DB: 0}):  # warm
        cached_names(data)

    write.set()
    worker.result()
    assert reconnected == [False]  # the write went through the connection opened first
    with assert_num_queries(**{CUSTOMERS_DB: 1}):
        assert cached_names(data)[customer.pk] == "Renamed in another thread"


def test_a_connection_opened_while_the_discovery_runs_is_watched_and_waits_for_it(
    data: Scenario, settings: Any
) -> None:
    settings.ROOT_URLCONF = "tests.discovery_urls"
    _invalidation.reset()  # the discovery is due: the next write runs it
    discovery_urls.READING.clear()
    discovery_urls.GATE.clear()
    customer = data.customers[0]
    watched_at_open: list[bool] = []

    def first_writer() -> None:  # its write starts the discovery, which blocks on the gate
        Region.objects.filter(pk=-1).update(name="nothing")

    def second_writer() -> None:  # a new connection while the discovery runs
        connection = connections[CUSTOMERS_DB]
        connection.ensure_connection()
        watched_at_open.append(_invalidation._WATCHER in connection.execute_wrappers)
        Customer.objects.filter(pk=customer.pk).update(name="Written during the discovery")

    first = Worker(first_writer)
    first.start()
    try:
        assert discovery_urls.READING.wait(WAIT)
        second = Worker(second_writer)
        second.start()
        time.sleep(0.3)
        # its row is written, but it waits for the discovery before judging the statement
        assert not second.finished.is_set()
        assert generation("testapp.customer") is None
    finally:
        discovery_urls.GATE.set()
    first.result()
    second.result()
    assert watched_at_open == [True]
    assert _invalidation.tracked().aliases["testapp.customer"] == {"default"}
    assert generation("testapp.customer") is not None  # the second write invalidated
    assert generation("testapp.region") is None  # not a cached model


def test_statements_sent_by_the_discovery_do_not_wait_for_it(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.ROOT_URLCONF = "tests.discovery_urls"
    _invalidation.reset()
    discovery_urls.GATE.set()
    discovery_urls.WRITE.set()  # reading the view's specs sends an UPDATE
    try:
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, "crossprefetch"):
            Region.objects.filter(pk=-1).update(name="nothing")
        elapsed = time.monotonic() - started
    finally:
        discovery_urls.WRITE.clear()
    assert elapsed < _invalidation._DISCOVERY_WAIT / 2  # it did not wait for itself
    assert not caplog.records
    assert _invalidation._discovered
    assert "testapp.customer" in _invalidation.tracked().aliases


# Invalidation through the cache's circuit breaker ----------------------------------------

HUNG = "hung"
TIMEOUT = 0.5  # the client's socket timeout


@pytest.fixture
def hung_cache(redis_server: RedisServer, settings: Any, _nothing_watched: str) -> RedisServer:
    settings.CACHES = {
        **settings.CACHES,
        HUNG: {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_server.url,
            "OPTIONS": {"socket_timeout": TIMEOUT, "socket_connect_timeout": TIMEOUT},
        },
    }
    settings.CROSSPREFETCH = {
        "CACHE_PREFIX": _nothing_watched,
        "BREAKER_FAILURES": 3,
        "BREAKER_RESET": 3600,
    }
    return redis_server


def test_invalidations_skip_a_hung_cache_once_its_breaker_opens(
    hung_cache: RedisServer, data: Scenario, settings: Any
) -> None:
    cached_names(data, HUNG)  # Customer is watched, its generation lives in the hung cache
    customer = data.customers[0]
    errors: list[BaseException] = []

    def receiver(sender: Any, alias: str, error: BaseException, **kwargs: Any) -> None:
        errors.append(error)

    before = failed_invalidations().get(HUNG, 0)
    signals.invalidation_failed.connect(receiver)
    hung_cache.hang()
    try:
        durations = []
        for number in range(13):
            started = time.monotonic()
            customer.name = f"Saved {number}"
            customer.save()
            durations.append(time.monotonic() - started)
    finally:
        hung_cache.resume()
        signals.invalidation_failed.disconnect(receiver)

    # three saves wait for the client's timeout, which opens the breaker; the rest do not
    assert all(d >= TIMEOUT * 0.8 for d in durations[:3]), durations
    assert all(d < TIMEOUT / 2 for d in durations[3:]), durations
    assert breaker.caches.is_open(HUNG)
    assert Customer.objects.get(pk=customer.pk).name == "Saved 12"  # every write went through
    # every skipped bump is a failed invalidation, as one the cache raised
    assert failed_invalidations()[HUNG] == before + 13
    assert not any(isinstance(e, ConnectionError) for e in errors[:3])
    assert all(isinstance(e, ConnectionError) for e in errors[3:])
    assert "circuit breaker is open" in str(errors[-1])

    settings.CROSSPREFETCH = {**settings.CROSSPREFETCH, "BREAKER_RESET": 0}
    customer.name = "After the trial"
    customer.save()  # the trial: the cache answers again, the breaker closes
    assert not breaker.caches.is_open(HUNG)
    assert failed_invalidations()[HUNG] == before + 13
    assert generation("testapp.customer", HUNG) is not None
