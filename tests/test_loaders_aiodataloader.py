"""aiodataloader's own test suite, run against crossprefetch's DataLoader.

Ported from ``test_aiodataloader.py`` of aiodataloader (syrusakbary/aiodataloader, MIT),
one test here per test there, under the same name. Where crossprefetch differs by
design, the test asserts crossprefetch's behaviour and says why. aiodataloader's suite
runs on pytest-asyncio; these run each coroutine in a fresh loop with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from crossprefetch.loaders import DataLoader

AsyncTest = Callable[..., Coroutine[Any, Any, None]]


def in_loop(test: AsyncTest) -> Callable[..., None]:
    """Run an ``async def`` test in a fresh event loop."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


def id_loader(
    resolve: Callable[[list[Any]], Coroutine[Any, Any, list[Any]]] | None = None,
    **options: Any,
) -> tuple[DataLoader[Any, Any], list[list[Any]]]:
    """A loader answering each key with itself (or ``resolve``), and its calls."""
    calls: list[list[Any]] = []

    async def batch_load_fn(keys: list[Any]) -> list[Any]:
        calls.append(keys)
        if resolve is None:
            return keys
        return await resolve(keys)

    return DataLoader(batch_load_fn, **options), calls


async def odd_fails(keys: list[int]) -> list[Any]:
    return [key if key % 2 == 0 else Exception(f"Odd: {key}") for key in keys]


@in_loop
async def test_build_a_simple_data_loader() -> None:
    async def call_fn(keys: list[int]) -> list[int]:
        return keys

    assert await DataLoader(call_fn).load(1) == 1


@in_loop
async def test_can_build_a_data_loader_from_a_partial() -> None:
    async def call_fn(context: dict[int, str], keys: list[int]) -> list[str | None]:
        return [context.get(key) for key in keys]

    loader: DataLoader[int, str | None] = DataLoader(functools.partial(call_fn, {1: "one"}))
    assert await loader.load(1) == "one"


@in_loop
async def test_supports_loading_multiple_keys_in_one_call() -> None:
    loader, _ = id_loader()
    assert await loader.load_many([1, 2]) == [1, 2]
    assert await loader.load_many([]) == []


@in_loop
async def test_batches_multiple_requests() -> None:
    loader, calls = id_loader()
    assert await asyncio.gather(loader.load(1), loader.load(2)) == [1, 2]
    assert calls == [[1, 2]]


@in_loop
async def test_batches_multiple_requests_with_max_batch_sizes() -> None:
    loader, calls = id_loader(max_batch_size=2)
    assert await asyncio.gather(loader.load(1), loader.load(2), loader.load(3)) == [1, 2, 3]
    assert calls == [[1, 2], [3]]


@in_loop
async def test_coalesces_identical_requests() -> None:
    loader, calls = id_loader()
    promise1 = loader.load(1)
    promise2 = loader.load(1)
    # By design: aiodataloader hands both callers one future (promise1 == promise2), so
    # one caller cancelling it cancels the other's load too. Each caller of a pending key
    # gets a future of its own here; the key is still loaded once.
    assert promise1 is not promise2
    assert await asyncio.gather(promise1, promise2) == [1, 1]
    assert calls == [[1]]


@in_loop
async def test_caches_repeated_requests() -> None:
    loader, calls = id_loader()
    assert await asyncio.gather(loader.load("A"), loader.load("B")) == ["A", "B"]
    assert calls == [["A", "B"]]
    assert await asyncio.gather(loader.load("A"), loader.load("C")) == ["A", "C"]
    assert calls == [["A", "B"], ["C"]]
    assert await asyncio.gather(*map(loader.load, "ABC")) == ["A", "B", "C"]
    assert calls == [["A", "B"], ["C"]]


@in_loop
async def test_clears_single_value_in_loader() -> None:
    loader, calls = id_loader()
    assert await asyncio.gather(loader.load("A"), loader.load("B")) == ["A", "B"]
    loader.clear("A")
    assert await asyncio.gather(loader.load("A"), loader.load("B")) == ["A", "B"]
    assert calls == [["A", "B"], ["A"]]


@in_loop
async def test_clears_all_values_in_loader() -> None:
    loader, calls = id_loader()
    assert await asyncio.gather(loader.load("A"), loader.load("B")) == ["A", "B"]
    loader.clear_all()
    assert await asyncio.gather(loader.load("A"), loader.load("B")) == ["A", "B"]
    assert calls == [["A", "B"], ["A", "B"]]


@in_loop
async def test_allows_priming_the_cache() -> None:
    loader, calls = id_loader()
    loader.prime("A", "A")
    assert await asyncio.gather(loader.load("A"), loader.load("B")) == ["A", "B"]
    assert calls == [["B"]]


@in_loop
async def test_does_not_prime_keys_that_already_exist() -> None:
    loader, calls = id_loader()
    loader.prime("A", "X")
    assert await loader.load("A") == "X"
    assert await loader.load("B") == "B"
    loader.prime("A", "Y")
    loader.prime("B", "Y")
    assert await loader.load("A") == "X"
    assert await loader.load("B") == "B"
    assert calls == [["B"]]


@in_loop
async def test_resolves_to_error_to_indicate_failure() -> None:
    loader, calls = id_loader(odd_fails)
    with pytest.raises(Exception, match=r"^Odd: 1$"):
        await loader.load(1)
    assert await loader.load(2) == 2
    assert calls == [[1], [2]]


@in_loop
async def test_can_represent_failures_and_successes_simultaneously() -> None:
    loader, calls = id_loader(odd_fails)
    promise1, promise2 = loader.load(1), loader.load(2)
    with pytest.raises(Exception, match=r"^Odd: 1$"):
        await promise1
    assert await promise2 == 2
    assert calls == [[1, 2]]


@in_loop
async def test_does_not_attempt_to_set_cancelled_future() -> None:
    handled: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: handled.append(context))
    gate: asyncio.Future[None] = loop.create_future()

    async def call_fn(keys: list[int]) -> list[int]:
        await gate
        return keys

    promise = DataLoader(call_fn).load(1)
    promise.cancel()
    gate.set_result(None)
    with pytest.raises(asyncio.CancelledError):
        await promise
    await asyncio.sleep(0.001)  # time for the loop to call the exception handler, if any
    assert handled == []


@in_loop
async def test_caches_failed_fetches() -> None:
    async def every_key_fails(keys: list[int]) -> list[Any]:
        return [Exception(f"Error: {key}") for key in keys]

    loader, calls = id_loader(every_key_fails)
    for _ in range(2):
        with pytest.raises(Exception, match=r"^Error: 1$"):
            await loader.load(1)
    assert calls == [[1]]


@in_loop
async def test_caches_failed_fetches_2() -> None:
    loader, calls = id_loader()
    loader.prime(1, Exception("Error: 1"))
    with pytest.raises(Exception, match=r"^Error: 1$"):
        await loader.load(1)
    assert calls == []


@in_loop
async def test_batches_loads_occuring_within_promises() -> None:
    loader, calls = id_loader()

    async def load_b_1() -> str:
        return await load_b_2()

    async def load_b_2() -> str:
        return await loader.load("B")  # type: ignore[no-any-return]

    assert await asyncio.gather(loader.load("A"), load_b_1()) == ["A", "B"]
    assert calls == [["A", "B"]]


@in_loop
async def test_catches_error_if_loader_resolver_fails() -> None:
    error = Exception("AOH!")

    def do_resolve(keys: list[Any]) -> Coroutine[Any, Any, list[Any]]:
        raise error

    loader, _ = id_loader(do_resolve)
    with pytest.raises(Exception, match="AOH!") as raised:
        await loader.load("A1")
    assert raised.value is error


@in_loop
async def test_can_call_a_loader_from_a_loader() -> None:
    deep_loader, deep_calls = id_loader()

    async def do_resolve(keys: list[str]) -> list[str]:
        return list(await deep_loader.load(tuple(keys)))

    a_loader, a_calls = id_loader(do_resolve)
    b_loader, b_calls = id_loader(do_resolve)
    loads = [a_loader.load("A1"), b_loader.load("B1"), a_loader.load("A2"), b_loader.load("B2")]
    assert await asyncio.gather(*loads) == ["A1", "B1", "A2", "B2"]
    assert a_calls == [["A1", "A2"]]
    assert b_calls == [["B1", "B2"]]
    assert deep_calls == [[("A1", "A2"), ("B1", "B2")]]


@in_loop
async def test_dataloader_clear_with_missing_key_works() -> None:
    loader, _ = id_loader()
    assert loader.clear("A1") is loader


@in_loop
async def test_load_no_key() -> None:
    loader, _ = id_loader()
    with pytest.raises(TypeError):
        loader.load()  # type: ignore[call-arg]


@in_loop
async def test_load_none() -> None:
    loader, _ = id_loader()
    with pytest.raises(TypeError):
        loader.load(None)
