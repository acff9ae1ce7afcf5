"""crossprefetch.loaders: DataLoader semantics, ModelLoader queries, aprefetch_cross_db.

The DataLoader tests need no database and run their coroutines with ``asyncio.run``. The
database tests run theirs with ``async_to_sync``: Django's async ORM and the loaders'
``sync_to_async(thread_sensitive=True)`` then run the queries in the test's own thread,
inside the test transaction, where ``assert_num_queries`` observes them.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from typing import Any, TypeVar

import pytest
from asgiref.sync import async_to_sync
from django.core.exceptions import ImproperlyConfigured
from django.test import AsyncRequestFactory

from crossprefetch import CrossDBPrefetch, prefetch_cross_db
from crossprefetch.loaders import DataLoader, ModelLoader, aprefetch_cross_db
from crossprefetch.testing import assert_num_queries
from tests.conftest import ALL_DATABASES, Scenario
from tests.testapp.models import Customer, OrderEvent

T = TypeVar("T")


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(main())


def run_in_django(main: Callable[[], Awaitable[T]]) -> T:
    return async_to_sync(main)()


class Recorder:
    """A batch function that records the keys of each call and maps each key by ``value``."""

    def __init__(self, value: Callable[[Any], Any] = lambda key: key * 10) -> None:
        self.value = value
        self.calls: list[list[Any]] = []

    async def __call__(self, keys: list[Any]) -> list[Any]:
        self.calls.append(list(keys))
        return [self.value(key) for key in keys]


async def resolve(loader: DataLoader[Any, Any], key: Any, hops: int = 0) -> Any:
    """A resolver: awaits ``hops`` other things before loading its key."""
    for _ in range(hops):
        await asyncio.sleep(0)
    return await loader.load(key)


# DataLoader: batching --------------------------------------------------------------------


def test_concurrent_loads_make_one_batch_call() -> None:
    batch = Recorder()

    async def main() -> tuple[list[Any], list[Any]]:
        loader = DataLoader(batch)
        many = loader.load_many([5, 6])
        one = await asyncio.gather(*(resolve(loader, key) for key in range(5)))
        return list(one), await many

    assert run(main) == ([0, 10, 20, 30, 40], [50, 60])
    assert batch.calls == [[5, 6, 0, 1, 2, 3, 4]]


def test_loads_after_a_batch_make_another_batch() -> None:
    batch = Recorder()

    async def main() -> None:
        loader = DataLoader(batch)
        assert await loader.load(1) == 10
        assert await loader.load_many([2, 3]) == [20, 30]

    run(main)
    assert batch.calls == [[1], [2, 3]]


def test_batch_false_calls_once_per_key() -> None:
    batch = Recorder()

    async def main() -> list[Any]:
        loader = DataLoader(batch, batch=False)
        return await loader.load_many([1, 2, 3])

    assert run(main) == [10, 20, 30]
    assert batch.calls == [[1], [2], [3]]


@pytest.mark.parametrize(
    ("max_batch_size", "calls"),
    [
        (None, [[0, 1, 2, 3, 4, 5, 6]]),
        (7, [[0, 1, 2, 3, 4, 5, 6]]),
        (3, [[0, 1, 2], [3, 4, 5], [6]]),
        (1, [[0], [1], [2], [3], [4], [5], [6]]),
    ],
)
def test_max_batch_size_splits_a_batch(max_batch_size: int | None, calls: list[list[int]]) -> None:
    batch = Recorder()

    async def main() -> list[Any]:
        return await DataLoader(batch, max_batch_size=max_batch_size).load_many(range(7))

    assert run(main) == [0, 10, 20, 30, 40, 50, 60]
    assert sorted(batch.calls) == calls


def test_batch_window_collects_loads_made_over_several_ticks() -> None:
    def loads(window: float) -> list[list[Any]]:
        batch = Recorder()

        async def late(loader: DataLoader[Any, Any]) -> Any:
            await asyncio.sleep(0.01)
            return await loader.load(99)

        async def main() -> list[Any]:
            loader = DataLoader(batch, batch_window=window)
            return await asyncio.gather(
                *(resolve(loader, key, hops=key) for key in range(6)), late(loader)
            )

        assert run(main) == [0, 10, 20, 30, 40, 50, 990]
        return batch.calls

    assert loads(0.25) == [[0, 1, 2, 3, 4, 5, 99]]
    assert len(loads(0)) > 2


def test_options_can_be_class_attributes_of_a_subclass() -> None:
    class SmallBatches(DataLoader[int, str]):
        max_batch_size = 2
        calls: list[list[int]]

        async def batch_load_fn(self, keys: list[int]) -> list[str]:
            self.calls.append(keys)
            return [str(key) for key in keys]

    async def main() -> tuple[list[str], list[list[int]]]:
        loader = SmallBatches()
        loader.calls = []
        return await loader.load_many([1, 2, 3]), loader.calls

    values, calls = run(main)
    assert values == ["1", "2", "3"]
    assert sorted(calls) == [[1, 2], [3]]


# DataLoader: cache -----------------------------------------------------------------------


def test_cache_shares_one_entry_per_key() -> None:
    batch = Recorder()

    async def main() -> None:
        entries: dict[Any, Any] = {}
        loader = DataLoader(batch, cache_map=entries)
        first, again = loader.load(1), loader.load(1)
        assert first is not again  # one future per caller, one entry per key
        assert list(entries) == [1]
        assert await asyncio.gather(first, again) == [10, 10]
        assert await loader.load_many([1, 2, 1]) == [10, 20, 10]
        assert await loader.load(2) == 20

    run(main)
    assert batch.calls == [[1], [2]]


# DataLoader: cancellation ----------------------------------------------------------------


def test_a_cancelled_load_never_cancels_another_caller_of_the_same_key() -> None:
    release = asyncio.Event()
    batch = Recorder()

    async def slow(keys: list[Any]) -> list[Any]:
        await release.wait()
        return await batch(keys)

    async def main() -> None:
        loader = DataLoader(slow)
        impatient, patient = loader.load(1), loader.load(1)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(impatient, 0.01)  # cancels the impatient caller's future
        assert impatient.cancelled()
        release.set()
        assert await patient == 10
        assert await loader.load(1) == 10  # the entry was not poisoned either

    run(main)
    assert batch.calls == [[1]]


def test_a_cancelled_batch_leaves_no_cancelled_entry() -> None:
    started = asyncio.Event()
    batch = Recorder()
    calls = 0

    async def first_hangs(keys: list[Any]) -> list[Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            started.set()
            await asyncio.sleep(3600)
        return await batch(keys)

    async def main() -> None:
        loader = DataLoader(first_hangs)
        waiting = loader.load(1)
        await started.wait()
        for task in list(loader._tasks):
            task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert await loader.load(1) == 10

    run(main)
    assert batch.calls == [[1]]


def test_a_late_caller_keeps_a_running_batch_alive_when_the_first_gives_up() -> None:
    started, release = asyncio.Event(), asyncio.Event()
    batch = Recorder()

    async def gated(keys: list[Any]) -> list[Any]:
        started.set()
        await release.wait()
        return await batch(keys)

    async def main() -> None:
        loader = DataLoader(gated)
        first = loader.load(1)
        await started.wait()
        late = loader.load(1)  # joins the running batch
        first.cancel()
        await asyncio.sleep(0.01)  # the batch would be cancelled now if late were not counted
        release.set()
        assert await late == 10
        assert await loader.load(1) == 10  # answered once, memoised

    run(main)
    assert batch.calls == [[1]]


def test_a_key_whose_first_caller_gave_up_is_joined_not_sent_twice() -> None:
    batch = Recorder()

    async def main() -> None:
        loader = DataLoader(batch)
        first, second = loader.load(1), loader.load(1)
        first.cancel()
        third = loader.load(1)  # the key is still pending for the second caller
        assert await asyncio.gather(second, third) == [10, 10]
        assert not loader._joiners

    run(main)
    assert batch.calls == [[1]]


def test_keys_nobody_waits_for_are_not_sent() -> None:
    batch = Recorder()

    async def main() -> None:
        loader = DataLoader(batch, max_batch_size=2)
        loads = {key: loader.load(key) for key in range(1, 6)}
        loads[2].cancel()
        loads[3].cancel()
        assert await asyncio.gather(loads[1], loads[4], loads[5]) == [10, 40, 50]
        assert await loader.load(2) == 20  # a cancelled load leaves its key loadable

    run(main)
    assert batch.calls == [[1, 4], [5], [2]]


def test_prime_settles_a_load_waiting_in_the_queue() -> None:
    batch = Recorder()

    async def main() -> None:
        loader = DataLoader(batch)
        waiting, joined, other = loader.load(1), loader.load(1), loader.load(2)
        assert loader.prime(1, "primed") is loader
        assert waiting.result() == joined.result() == "primed"  # settled at once
        assert await other == 20
        assert await loader.load(1) == "primed"

    run(main)
    assert batch.calls == [[2]]  # key 1 was never sent


def test_prime_settles_a_load_in_flight_and_a_batch_nobody_waits_for_stops() -> None:
    started, stopped = asyncio.Event(), asyncio.Event()

    async def hangs(keys: list[Any]) -> list[Any]:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            stopped.set()
            raise
        return keys

    async def main() -> None:
        loader = DataLoader(hangs)
        waiting = loader.load(1)
        await started.wait()
        loader.prime(1, "primed")
        assert await waiting == "primed"
        await asyncio.wait_for(stopped.wait(), 5)
        assert await loader.load(1) == "primed"  # the cancelled batch did not uncache it

    run(main)


def test_prime_an_exception_fails_the_waiting_loads() -> None:
    batch = Recorder()

    async def main() -> None:
        loader = DataLoader(batch)
        waiting = loader.load(1)
        loader.prime_many({1: LookupError("gone")})
        with pytest.raises(LookupError, match="gone"):
            await waiting

    run(main)
    assert batch.calls == []


def test_prime_after_the_first_caller_gave_up_settles_the_others() -> None:
    batch = Recorder()

    async def main() -> None:
        loader = DataLoader(batch)
        first, second = loader.load(1), loader.load(1)
        first.cancel()
        loader.prime(1, "primed")
        assert second.result() == "primed"
        assert await loader.load(1) == "primed"

    run(main)
    assert batch.calls == []


def test_many_callers_cancelling_at_random_never_disturb_the_others() -> None:
    """Real timers, real cancellation: whoever did not give up gets its key's value."""
    generator = random.Random(20)
    batch = Recorder()

    async def slow(keys: list[Any]) -> list[Any]:
        await asyncio.sleep(generator.uniform(0, 0.004))
        return await batch(keys)

    async def caller(loader: DataLoader[int, int], key: int, patience: float) -> Any:
        await asyncio.sleep(generator.uniform(0, 0.004))
        try:
            return await asyncio.wait_for(loader.load(key), patience)
        except asyncio.TimeoutError:
            return "gave up"

    outcomes: list[Any] = []

    async def main() -> None:
        loader = DataLoader(slow, max_batch_size=7)
        for _ in range(20):
            plan = [
                (generator.randrange(12), generator.choice([0.0005, 0.002, 5])) for _ in range(40)
            ]
            results = await asyncio.gather(*(caller(loader, k, p) for k, p in plan))
            for (key, patience), result in zip(plan, results, strict=True):
                assert result == key * 10 or (result == "gave up" and patience < 5)
            outcomes.extend(results)
            loader.clear_all()
        await asyncio.sleep(0.02)
        assert not loader._joiners
        assert not loader._tasks
        assert not loader._queue

    run(main)
    assert 0 < outcomes.count("gave up") < len(outcomes)  # both kinds of caller were seen


def test_cache_false_loads_every_time() -> None:
    batch = Recorder()

    async def main() -> None:
        loader = DataLoader(batch, cache=False)
        assert loader.load(1) is not loader.load(1)
        await asyncio.sleep(0.01)
        assert await loader.load_many([2, 2]) == [20, 20]
        assert await loader.load(2) == 20

    run(main)
    assert batch.calls == [[1, 1], [2, 2], [2]]


def test_prime_clear_and_clear_all() -> None:
    batch = Recorder()

    async def main() -> None:
        loader = DataLoader(batch)
        assert loader.prime(1, "primed").prime(1, "ignored") is loader
        assert await loader.load_many([1, 2]) == ["primed", 20]
        assert loader.clear(1) is loader
        assert await loader.load_many([1, 2]) == [10, 20]
        assert loader.clear_all() is loader
        assert await loader.load_many([1, 2]) == [10, 20]
        loader.prime(3, LookupError("gone"))
        with pytest.raises(LookupError, match="gone"):
            await loader.load(3)

    run(main)
    assert batch.calls == [[2], [1], [1, 2]]


@pytest.mark.parametrize("argument", ["get_cache_key", "cache_key_fn"])
def test_custom_cache_key(argument: str) -> None:
    batch = Recorder(str.upper)

    async def main() -> list[Any]:
        options: dict[str, Any] = {argument: str.lower}
        loader: DataLoader[str, str] = DataLoader(batch, **options)
        return await loader.load_many(["a", "A", "b"])

    assert run(main) == ["A", "A", "B"]
    assert batch.calls == [["a", "b"]]


def test_get_cache_key_can_be_a_method_of_a_subclass() -> None:
    class CaseInsensitive(DataLoader[str, str]):
        def get_cache_key(self, key: str) -> Hashable:
            return key.lower()

    batch = Recorder(str.upper)

    async def main() -> list[str]:
        return await CaseInsensitive(batch).load_many(["x", "X"])

    assert run(main) == ["X", "X"]
    assert batch.calls == [["x"]]


def test_cache_map_holds_the_futures() -> None:
    cache_map: dict[Hashable, asyncio.Future[Any]] = {}

    async def main() -> None:
        loader = DataLoader(Recorder(), cache_map=cache_map)
        await loader.load(4)
        assert cache_map[4].result() == 40

    run(main)


def test_a_loader_outliving_its_event_loop_starts_afresh() -> None:
    batch = Recorder()
    loader = DataLoader(batch)

    async def main() -> Any:
        return await loader.load(1)

    assert (run(main), run(main)) == (10, 10)
    assert batch.calls == [[1], [1]]


# DataLoader: errors ----------------------------------------------------------------------


def test_an_exception_as_a_value_fails_that_key_only() -> None:
    problem = KeyError("no 2")
    batch = Recorder(lambda key: problem if key == 2 else key)

    async def main() -> None:
        loader = DataLoader(batch)
        results = await asyncio.gather(*map(loader.load, [1, 2, 3]), return_exceptions=True)
        assert results == [1, problem, 3]
        with pytest.raises(KeyError):  # cached, like a value
            await loader.load(2)

    run(main)
    assert batch.calls == [[1, 2, 3]]


def test_a_failing_batch_fails_every_load_and_is_not_cached() -> None:
    calls: list[list[int]] = []

    async def flaky(keys: list[int]) -> list[int]:
        calls.append(keys)
        if len(calls) == 1:
            raise ConnectionError("database went away")
        return keys

    async def main() -> None:
        loader = DataLoader(flaky)
        results = await asyncio.gather(loader.load(1), loader.load(2), return_exceptions=True)
        assert [str(r) for r in results] == ["database went away"] * 2
        assert await loader.load_many([1, 2]) == [1, 2]

    run(main)
    assert calls == [[1, 2], [1, 2]]


class Broken(DataLoader[int, Any]):
    """Returns whatever the test put in ``returned``."""

    returned: Any = None

    async def batch_load_fn(self, keys: list[int]) -> Any:
        return self.returned


@pytest.mark.parametrize(
    ("returned", "error", "message"),
    [
        ([1], ValueError, r"<Broken>: batch_load_fn returned 1 value\(s\) for 2 key\(s\)"),
        ([1, 2, 3], ValueError, r"returned 3 value\(s\) for 2 key\(s\).*Keys: \[1, 2\]"),
        ({1: "a", 2: "b"}, TypeError, r"<Broken>: batch_load_fn returned a dict.*found\.get"),
        (None, TypeError, r"<Broken>: batch_load_fn returned None; return a list"),
        ("ab", TypeError, r"returned 'ab'; return a list"),
        ({1, 2}, TypeError, r"returned \{1, 2\}; return a list"),
    ],
)
def test_a_bad_batch_result_fails_every_load_naming_the_loader(
    returned: Any, error: type[Exception], message: str
) -> None:
    async def main() -> None:
        loader = Broken()
        loader.returned = returned
        for future in (loader.load(1), loader.load(2)):
            with pytest.raises(error, match=message):
                await future

    run(main)


def test_a_sync_batch_function_is_named_in_the_error() -> None:
    def not_async(keys: list[int]) -> list[int]:
        return keys

    async def main() -> None:
        with pytest.raises(TypeError, match=r"of .*not_async>: batch_load_fn returned list"):
            await DataLoader(not_async).load(1)  # type: ignore[arg-type]

    run(main)


def loader_with(**options: Any) -> Callable[[], Any]:
    return lambda: DataLoader(Recorder(), **options)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        # a wrong type: TypeError
        (lambda: DataLoader(), TypeError, r"DataLoader\(\) needs a batch function"),
        (
            lambda: DataLoader(42),  # type: ignore[arg-type]
            TypeError,
            r"batch_load_fn must be an async function",
        ),
        (loader_with(max_batch_size="10"), TypeError, r"max_batch_size='10'\): give a whole"),
        (loader_with(max_batch_size=2.5), TypeError, "max_batch_size=2.5"),
        (loader_with(max_batch_size=True), TypeError, "max_batch_size=True"),
        (loader_with(batch_window="1ms"), TypeError, r"batch_window='1ms'\): give a number"),
        (loader_with(batch="yes"), TypeError, r"batch='yes'\): give True or False"),
        (loader_with(cache=1), TypeError, r"cache=1\): give True or False"),
        (loader_with(get_cache_key="id"), TypeError, r"get_cache_key='id'\): give a function"),
        (loader_with(cache_key_fn=42), TypeError, "get_cache_key=42"),
        (loader_with(cache_map=[]), TypeError, r"cache_map=\[\]\): give a mutable mapping"),
        (loader_with(get_cache_key=str, cache_key_fn=str), TypeError, "not both"),
        (
            lambda: ModelLoader(Customer, batch_load_fn=Recorder()),
            TypeError,
            "use DataLoader",
        ),
        (lambda: ModelLoader(Customer, many="yes"), TypeError, "ModelLoader: .*many='yes'"),
        (lambda: ModelLoader(Customer, timeout="1"), TypeError, "ModelLoader: .*timeout='1'"),
        # the right type, a wrong value: ValueError
        (loader_with(max_batch_size=0), ValueError, r"max_batch_size=0\): give a positive"),
        (loader_with(batch_window=-1), ValueError, "batch_window=-1"),
        (loader_with(batch_window=float("inf")), ValueError, "batch_window=inf"),
        (loader_with(batch_window=float("nan")), ValueError, "batch_window=nan"),
        (
            lambda: ModelLoader(Customer, on_error="ignore"),
            ValueError,
            "ModelLoader: .*on_error='ignore'",
        ),
    ],
)
def test_misconfigured_loaders_fail_at_construction(
    make: Callable[[], Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        make()


def test_prime_and_clear_check_their_arguments() -> None:
    async def main() -> None:
        loader = DataLoader(Recorder())
        with pytest.raises(TypeError, match=r"prime\(force='yes'\): give True or False"):
            loader.prime(1, 10, force="yes")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"prime_many\(\[1\]\): give a mapping"):
            loader.prime_many([1])  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"clear_many\('ab'\): give an iterable"):
            loader.clear_many("ab")

    run(main)


def test_load_checks_its_arguments() -> None:
    loader = DataLoader(Recorder())
    with pytest.raises(RuntimeError, match="must be called from a coroutine"):
        loader.load(1)

    async def main() -> None:
        with pytest.raises(TypeError, match=r"load\(None\): a key cannot be None"):
            loader.load(None)
        with pytest.raises(TypeError, match="give an iterable of keys"):
            loader.load_many("abc")
        assert await loader.load_many([]) == []

    run(main)


# ModelLoader -----------------------------------------------------------------------------

pytest_db = pytest.mark.django_db(databases=ALL_DATABASES)


@pytest_db
def test_model_loader_one_query_for_concurrent_loads_with_string_keys(
    scenario: Scenario,
) -> None:
    first, second = scenario.customers[:2]
    keys: list[Any] = [str(first.pk), first.pk, f" {second.pk}", "abc", 10**9, 2**70]

    async def main() -> list[Any]:
        loader = ModelLoader(Customer)
        return await asyncio.gather(*(resolve(loader, key) for key in keys))

    with assert_num_queries(default=1, timeseries=0, legacy=0) as captured:
        rows = run_in_django(main)
    assert rows == [first, first, second, None, None, None]
    assert [row.name for row in rows[:3]] == [first.name, first.name, second.name]
    params = captured["default"][0].params
    sent = params[0] if len(params) == 1 and isinstance(params[0], list) else params
    assert sorted(sent) == [first.pk, second.pk, 10**9]  # one IN list, or one array


@pytest_db
def test_model_loader_string_and_integer_keys_share_a_cache_entry(scenario: Scenario) -> None:
    pk = scenario.customers[0].pk

    async def main() -> None:
        entries: dict[Any, Any] = {}
        loader = ModelLoader(Customer, fields=("name",), cache_map=entries)
        same = [loader.load(str(pk)), loader.load(pk)]
        assert list(entries) == [pk]
        others = [loader.load("x"), loader.load("y")]
        assert list(entries) == [pk, "x", "y"]
        row = {"name": scenario.customers[0].name}
        assert await asyncio.gather(*same, *others) == [row, row, None, None]
        assert await loader.load(f"{pk}") == {"name": scenario.customers[0].name}

    run_in_django(main)


def by_customer(scenario: Scenario, customer_id: Any) -> list[dict[str, Any]]:
    return [
        {"id": e.pk, "event_type": e.event_type}
        for e in sorted(scenario.events, key=lambda e: (-e.timestamp.timestamp(), -e.pk))
        if e.customer_id == customer_id
    ]


@pytest_db
def test_model_loader_many_lists_rows_in_the_querysets_order(scenario: Scenario) -> None:
    ids = [c.pk for c in scenario.customers[:4]]
    keys = [*map(str, ids), 10**9, "x"]

    async def main() -> list[Any]:
        loader = ModelLoader(
            OrderEvent, to_field="customer_id", fields=("id", "event_type"), many=True
        )
        return await loader.load_many(keys)

    with assert_num_queries(default=0, timeseries=1, legacy=0):
        rows = run_in_django(main)
    assert rows == [*(by_customer(scenario, pk) for pk in ids), [], []]
    assert all(rows[:4])
    assert rows[-1] is not rows[-2]


#: (scenario, loader, hops, queries per alias, loads answered) for 10 concurrent loads of
#: string pks of existing customers, each resolver awaiting up to ``hops`` other things
#: first (``hops`` 2: deeper than one loop turn). The ``legacy`` copy of Customer is empty.
LOADER_QUERIES: list[tuple[str, Callable[[], ModelLoader], int, dict[str, int], int]] = [
    ("pk", lambda: ModelLoader(Customer), 0, {"default": 1}, 10),
    ("model string", lambda: ModelLoader("testapp.Customer"), 0, {"default": 1}, 10),
    ("projection", lambda: ModelLoader(Customer, fields=("name",)), 0, {"default": 1}, 10),
    ("explicit alias", lambda: ModelLoader(Customer, using="legacy"), 0, {"legacy": 1}, 0),
    ("max_batch_size", lambda: ModelLoader(Customer, max_batch_size=4), 0, {"default": 3}, 10),
    ("no batching", lambda: ModelLoader(Customer, batch=False), 0, {"default": 10}, 10),
    ("nested, no window", lambda: ModelLoader(Customer), 2, {"default": 2}, 10),
    ("nested, window", lambda: ModelLoader(Customer, batch_window=0.01), 2, {"default": 1}, 10),
    ("queryset", lambda: ModelLoader(Customer.objects.filter(tier="gold")), 0, {"default": 1}, 3),
    (
        "reverse, many",
        lambda: ModelLoader(OrderEvent, to_field="customer_id", many=True),
        0,
        {"timeseries": 1},
        8,  # customers[7] and customers[9] have no event
    ),
]


@pytest.mark.parametrize(
    ("name", "make", "hops", "queries", "found"),
    LOADER_QUERIES,
    ids=[row[0] for row in LOADER_QUERIES],
)
@pytest_db
def test_model_loader_queries_per_alias(
    scenario: Scenario,
    name: str,
    make: Callable[[], ModelLoader],
    hops: int,
    queries: dict[str, int],
    found: int,
) -> None:
    ids = [c.pk for c in scenario.customers[:10]]

    async def main() -> list[Any]:
        loader = make()
        return await asyncio.gather(
            *(resolve(loader, str(pk), hops=i % (hops + 1)) for i, pk in enumerate(ids))
        )

    expected: dict[str, Any] = {alias: queries.get(alias, 0) for alias in ALL_DATABASES}
    with assert_num_queries(**expected):
        rows = run_in_django(main)
    assert len(rows) == len(ids)
    assert sum(1 for row in rows if row) == found


@pytest_db
def test_model_loader_keeps_the_querysets_filter(scenario: Scenario) -> None:
    inactive, active = scenario.customers[:2]
    Customer.objects.filter(pk=inactive.pk).update(is_active=False)

    async def main() -> list[Any]:
        loader = ModelLoader(Customer.objects.filter(is_active=True), fields=("name",))
        return await loader.load_many([inactive.pk, active.pk])

    assert run_in_django(main) == [None, {"name": active.name}]


@pytest_db
def test_model_loader_rejects_a_field_the_model_lacks(scenario: Scenario) -> None:
    async def main() -> None:
        with pytest.raises(ImproperlyConfigured, match="has no field 'nickname'"):
            await ModelLoader(Customer, to_field="nickname").load(1)

    run_in_django(main)


def test_model_loader_repr() -> None:
    assert repr(ModelLoader(Customer)) == "ModelLoader('testapp.Customer')"
    assert repr(
        ModelLoader("testapp.OrderEvent", to_field="customer_id", fields=("id",), many=True)
    ) == ("ModelLoader('testapp.OrderEvent', to_field='customer_id', fields=('id',), many=True)")


# aprefetch_cross_db ----------------------------------------------------------------------

SPECS = {
    "customers": CrossDBPrefetch(Customer, key="customer_id", fields=("name", "tier")),
    "sellers": CrossDBPrefetch("testapp.Customer", key="seller_id"),
    "history": CrossDBPrefetch(OrderEvent, key="customer_id", to_field="customer_id", many=True),
}


def test_aprefetch_cross_db_is_importable_from_the_package() -> None:
    import crossprefetch
    from crossprefetch import aprefetch_cross_db as exported

    assert exported is aprefetch_cross_db
    assert "aprefetch_cross_db" in crossprefetch.__all__
    assert "aprefetch_cross_db" in dir(crossprefetch)


@pytest_db
@pytest.mark.parametrize("source", ["list", "queryset", "async generator"])
def test_aprefetch_cross_db_equals_the_sync_function(scenario: Scenario, source: str) -> None:
    events = scenario.events[:40]
    with assert_num_queries(default=1, timeseries=1, legacy=0):
        expected = prefetch_cross_db(events, SPECS)

    async def objects() -> Any:
        for event in events:
            yield event

    async def main() -> Any:
        if source == "list":
            return await aprefetch_cross_db(events, SPECS)
        if source == "queryset":
            return await aprefetch_cross_db(
                OrderEvent.objects.filter(pk__in=[e.pk for e in events]), SPECS
            )
        return await aprefetch_cross_db(objects(), SPECS)

    with assert_num_queries(default=1, timeseries=1 + (source == "queryset"), legacy=0):
        lookups = run_in_django(main)
    assert lookups.keys() == expected.keys()
    for name, lookup in lookups.items():
        assert dict(lookup) == dict(expected[name])
        assert [lookup.get_for(e) for e in events] == [expected[name].get_for(e) for e in events]
    assert lookups["customers"].stats.queries == 1


@pytest_db
def test_aprefetch_cross_db_from_an_async_view(scenario: Scenario) -> None:
    request = AsyncRequestFactory().get("/events/")

    async def view() -> list[Any]:
        events = [e async for e in OrderEvent.objects.order_by("pk")[:10]]
        specs = {"customers": SPECS["customers"]}
        customers = (await aprefetch_cross_db(events, specs, request=request))["customers"]
        return [customers.get(e.customer_id) for e in events]

    with assert_num_queries(default=1, timeseries=1):
        rows = run_in_django(view)
    by_pk: dict[Any, Any] = {c.pk: {"name": c.name, "tier": c.tier} for c in scenario.customers}
    events = sorted(scenario.events, key=lambda e: e.pk)[:10]
    assert rows == [by_pk.get(e.customer_id) for e in events]
