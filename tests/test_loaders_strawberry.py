"""strawberry's DataLoader tests, run against crossprefetch's DataLoader.

Ported from ``tests/test_dataloaders.py`` of strawberry-graphql/strawberry (MIT), one
test here per test there, under the same name; pytest-mock's ``Mock(side_effect=idx)`` is
a :class:`Calls` recorder here. Where crossprefetch differs by design, the test asserts
crossprefetch's behaviour and says why. The last tests check what strawberry's own
DataLoader does with cancelled loads (``Batch._on_future_done`` and ``dispatch_batch`` in
strawberry 0.341's ``strawberry/dataloader.py``), which that suite does not test.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from crossprefetch.loaders import DataLoader
from tests.test_loaders_aiodataloader import in_loop


class Calls:
    """A batch function answering each key with itself, recording every call's keys."""

    def __init__(self) -> None:
        self.calls: list[list[Any]] = []

    async def __call__(self, keys: list[Any]) -> list[Any]:
        self.calls.append(list(keys))
        return keys


async def idx(keys: list[Any]) -> list[Any]:
    return keys


async def non_empty(keys: list[Any]) -> list[Any]:
    assert keys, "At least one key must be specified"
    return keys


@in_loop
async def test_loading() -> None:
    loader = DataLoader(idx)
    assert [await loader.load(1), await loader.load(2), await loader.load(3)] == [1, 2, 3]
    assert await loader.load_many([1, 2, 3, 4, 5, 6]) == [1, 2, 3, 4, 5, 6]


@in_loop
async def test_gathering() -> None:
    batch = Calls()
    loader = DataLoader(batch)
    assert await asyncio.gather(loader.load(1), loader.load(2), loader.load(3)) == [1, 2, 3]
    assert batch.calls == [[1, 2, 3]]


@in_loop
async def test_max_batch_size() -> None:
    batch = Calls()
    loader = DataLoader(batch, max_batch_size=2)
    assert await asyncio.gather(loader.load(1), loader.load(2), loader.load(3)) == [1, 2, 3]
    assert batch.calls == [[1, 2], [3]]


@in_loop
async def test_error() -> None:
    async def fails(keys: list[int]) -> list[Any]:
        return [ValueError("no 1")]

    with pytest.raises(ValueError, match="no 1"):
        await DataLoader(fails).load(1)


@in_loop
async def test_error_and_values() -> None:
    async def two_only(keys: list[int]) -> list[Any]:
        return [2] if keys == [2] else [ValueError("not 2")]

    loader = DataLoader(two_only)
    with pytest.raises(ValueError, match="not 2"):
        await loader.load(1)
    assert await loader.load(2) == 2


@in_loop
async def test_when_raising_error_in_loader() -> None:
    async def raises(keys: list[int]) -> list[int]:
        raise ValueError("batch failed")

    loader = DataLoader(raises)
    with pytest.raises(ValueError, match="batch failed"):
        await loader.load(1)
    with pytest.raises(ValueError, match="batch failed"):
        await asyncio.gather(loader.load(1), loader.load(2), loader.load(3))


@in_loop
async def test_returning_wrong_number_of_results() -> None:
    async def two(keys: list[int]) -> list[int]:
        return [1, 2]

    # By design: strawberry raises its own WrongNumberOfResultsReturned ("expected: 1,
    # received: 2"); crossprefetch raises ValueError (its word for a value of the right
    # type that is wrong), naming the loader, the counts and the fix.
    with pytest.raises(ValueError, match=r"returned 2 value\(s\) for 1 key\(s\)"):
        await DataLoader(two).load(1)


@in_loop
async def test_caches_by_id() -> None:
    batch = Calls()
    loader = DataLoader(batch, cache=True)
    a = loader.load(1)
    b = loader.load(1)
    # By design: strawberry hands both callers one future (a == b), so one caller
    # cancelling it cancels the other's load too; here each caller of a pending key has
    # a future of its own, and the key is still loaded once.
    assert a is not b
    assert await a == 1
    assert await b == 1
    assert batch.calls == [[1]]


@in_loop
async def test_caches_by_id_when_loading_many() -> None:
    batch = Calls()
    loader = DataLoader(batch, cache=True)
    a = loader.load(1)
    b = loader.load(1)
    assert a is not b  # by design, as in test_caches_by_id
    assert await asyncio.gather(a, b) == [1, 1]
    assert batch.calls == [[1]]


@in_loop
async def test_cache_disabled() -> None:
    batch = Calls()
    loader = DataLoader(batch, cache=False)
    a = loader.load(1)
    b = loader.load(1)
    assert a != b
    assert await a == 1
    assert await b == 1
    assert batch.calls == [[1, 1]]


@in_loop
async def test_cache_disabled_immediate_await() -> None:
    batch = Calls()
    loader = DataLoader(batch, cache=False)
    assert await loader.load(1) == await loader.load(1)
    assert batch.calls == [[1], [1]]


def test_works_when_created_in_a_different_loop() -> None:
    batch = Calls()
    loader = DataLoader(batch, cache=False)

    async def run() -> Any:
        return await loader.load(1)

    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(run()) == 1
    finally:
        loop.close()
    assert batch.calls == [[1]]


@in_loop
async def test_prime() -> None:
    loader = DataLoader(non_empty)

    # Basic behavior intact
    assert await loader.load(1) == 1

    # Prime doesn't override a value
    loader.prime(1, 1.1)
    loader.prime(2, 2.1)
    assert await loader.load(1) == 1
    assert await loader.load(2) == 2.1

    # Unless you tell it to
    loader.prime(1, 1.2, force=True)
    loader.prime(2, 2.2, force=True)
    assert await loader.load(1) == 1.2
    assert await loader.load(2) == 2.2

    # Priming settles pending loads, but not the cached values handed out already
    c2 = loader.load(2)  # in the cache
    c3 = loader.load(3)  # pending
    loader.prime_many({2: 2.3, 3: 3.3}, force=True)
    assert await c2 == 2.2
    assert await c3 == 3.3

    # If every key of a batch is primed, the batch function is never called (non_empty)
    c4 = loader.load(4)
    loader.prime_many({4: 4.4})
    assert await c4 == 4.4

    # Let the last batch start, although every one of its keys was primed
    await asyncio.sleep(0)


@in_loop
async def test_prime_nocache() -> None:
    loader = DataLoader(non_empty, cache=False)

    # Without a cache, a primed value is not kept
    loader.prime(1, 1.1)
    assert await loader.load(1) == 1

    # but it settles a pending load of its key
    b1 = loader.load(2)
    loader.prime(2, 2.2)
    assert await b1 == 2.2

    await asyncio.sleep(0)


def numbered() -> Any:
    """A batch function answering ``(key, number of the call)``."""
    batch_num = 0

    async def idx(keys: list[int]) -> list[tuple[int, int]]:
        nonlocal batch_num
        batch_num += 1
        return [(key, batch_num) for key in keys]

    return idx


@in_loop
async def test_clear() -> None:
    loader = DataLoader(numbered())
    assert await loader.load_many([1, 2, 3]) == [(1, 1), (2, 1), (3, 1)]
    loader.clear(1)
    assert await loader.load_many([1, 2, 3]) == [(1, 2), (2, 1), (3, 1)]
    loader.clear_many([1, 2])
    assert await loader.load_many([1, 2, 3]) == [(1, 3), (2, 3), (3, 1)]
    loader.clear_all()
    assert await loader.load_many([1, 2, 3]) == [(1, 4), (2, 4), (3, 4)]


@in_loop
async def test_clear_nocache() -> None:
    loader = DataLoader(numbered(), cache=False)
    assert await loader.load_many([1, 2, 3]) == [(1, 1), (2, 1), (3, 1)]
    loader.clear(1)
    assert await loader.load_many([1, 2, 3]) == [(1, 2), (2, 2), (3, 2)]
    loader.clear_many([1, 2])
    assert await loader.load_many([1, 2, 3]) == [(1, 3), (2, 3), (3, 3)]
    loader.clear_all()
    assert await loader.load_many([1, 2, 3]) == [(1, 4), (2, 4), (3, 4)]


@in_loop
async def test_dont_dispatch_cancelled() -> None:
    async def slow(keys: list[int]) -> list[int]:
        await asyncio.sleep(0.2)
        return keys

    loader = DataLoader(slow)
    value_a = await loader.load(1)
    value_b = loader.load(2)
    value_b.cancel()  # by hand
    value_c = loader.load(3)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(value_c, 0.1)  # by the timeout
    value_d = await loader.load(4)
    assert (value_a, value_d) == (1, 4)

    # 2 can still be loaded: a new future is created for it
    assert await loader.load_many([1, 2, 3, 4, 5, 6]) == [1, 2, 3, 4, 5, 6]
    with pytest.raises(asyncio.CancelledError):
        value_b.result()
    with pytest.raises(asyncio.CancelledError):
        value_c.result()

    # The cancelled futures are not reused
    assert [await loader.load(key) for key in (1, 2, 3, 4)] == [1, 2, 3, 4]


class CustomCache(dict[Any, "asyncio.Future[Any]"]):
    """strawberry's ``TestCache``: here a mutable mapping, the interface of ``cache_map``."""


@in_loop
async def test_cache_override() -> None:
    # By design: strawberry's cache_map is an AbstractCache (get/set/delete/clear, keys
    # passed through cache_key_fn by the cache); crossprefetch's is aiodataloader's, a
    # mutable mapping of cache keys to futures. The behaviour checked is the same.
    custom_cache = CustomCache()
    loader = DataLoader(idx, cache_map=custom_cache)

    await loader.load(1)
    await loader.load(2)
    await loader.load(3)
    assert len(custom_cache) == 3
    assert [await custom_cache[key] for key in (1, 2, 3)] == [1, 2, 3]

    loader.clear(1)
    assert sorted(custom_cache) == [2, 3]
    loader.clear_all()
    assert not custom_cache

    await loader.load(1)
    await loader.load(2)
    await loader.load(3)
    loader.clear_many([1, 2])
    assert list(custom_cache) == [3]
    assert await loader.load(3) == 3

    loader.prime(3, 4)
    assert await custom_cache[3] == 3
    loader.prime(3, 4, True)
    assert await custom_cache[3] == 4

    with pytest.raises(TypeError, match="unhashable type: 'list'"):
        await loader.load([1, 2, 3])

    data = await loader.load((1, 2, 3))
    assert await custom_cache[(1, 2, 3)] == data


@in_loop
async def test_custom_cache_key_fn() -> None:
    def custom_cache_key(key: list[Any]) -> str:
        return ",".join(str(k) for k in key)

    loader = DataLoader(idx, cache_key_fn=custom_cache_key)
    assert await loader.load([1, 2, "test"]) == [1, 2, "test"]


@in_loop
async def test_user_class_custom_cache_key_fn() -> None:
    class CustomData:
        def __init__(self, custom_id: int, name: str) -> None:
            self.id = custom_id
            self.name = name

    loader = DataLoader(idx, cache_key_fn=lambda key: key.id)
    data1 = await loader.load(CustomData(1, "Nick"))
    assert await loader.load(CustomData(1, "Nick")) is data1
    assert await loader.load(CustomData(2, "Jane")) is not data1


# strawberry's handling of cancelled loads, beyond its suite ------------------------------


@in_loop
async def test_a_batch_whose_every_load_was_cancelled_is_not_called() -> None:
    batch = Calls()
    loader = DataLoader(batch)
    loads = [loader.load(1), loader.load(2)]
    for load in loads:
        load.cancel()
    await asyncio.sleep(0.01)
    assert batch.calls == []
    assert await loader.load(1) == 1  # and the key loads again


@in_loop
async def test_a_running_batch_whose_every_load_is_cancelled_is_cancelled() -> None:
    started, stopped = asyncio.Event(), asyncio.Event()

    async def hangs(keys: list[int]) -> list[int]:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            stopped.set()
            raise
        return keys

    loader = DataLoader(hangs)
    loads = [loader.load(1), loader.load(2)]
    await started.wait()
    for load in loads:
        load.cancel()
    await asyncio.wait_for(stopped.wait(), 5)


@in_loop
async def test_a_running_batch_is_not_cancelled_while_a_load_waits() -> None:
    release = asyncio.Event()
    batch = Calls()

    async def gated(keys: list[int]) -> list[int]:
        await release.wait()
        return await batch(keys)

    loader = DataLoader(gated)
    impatient, patient = loader.load(1), loader.load(2)
    await asyncio.sleep(0.01)
    impatient.cancel()
    await asyncio.sleep(0.01)
    release.set()
    assert await patient == 2
    assert batch.calls == [[1, 2]]
