"""Batching for async code: ``DataLoader``, ``ModelLoader`` and ``aprefetch_cross_db``.

:func:`~crossprefetch.prefetch_cross_db` needs every object up front. GraphQL-style
resolvers do not have them: each resolver asks for one key, concurrently with its
siblings. A :class:`DataLoader` collects the keys asked for while the event loop runs
the other resolvers and hands them to one batch function, so N resolvers cost one
query. :class:`ModelLoader` is that batch function for a Django model, built on the
engine. :func:`aprefetch_cross_db` is the engine itself, awaitable from an async view.

The interface is aiodataloader's (``load``, ``load_many``, ``prime``, ``clear``,
``clear_all``, ``batch``, ``max_batch_size``, ``cache``, ``get_cache_key`` /
``cache_key_fn``, ``cache_map``, subclasses defining ``batch_load_fn``), with strawberry's
``prime_many``, ``clear_many`` and ``prime(..., force=True)``, so code written for either
keeps working; plus ``batch_window`` to collect loads over a few milliseconds. Both
suites run against it (``tests/test_loaders_aiodataloader.py``,
``tests/test_loaders_strawberry.py``); its overhead is measured beside theirs by the
example's ``manage.py benchmark_loaders``.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
from collections.abc import (
    AsyncIterable,
    Awaitable,
    Callable,
    Hashable,
    Iterable,
    Mapping,
    MutableMapping,
    Sequence,
)
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections, connections
from django.db.models import Aggregate
from django.http import HttpRequest

from crossprefetch._identity import connection_scope
from crossprefetch._keys.normalize import INVALID, Normalizer, normalizer
from crossprefetch.aggregate import CrossDBAggregate
from crossprefetch.conf import conf
from crossprefetch.engine import prefetch_cross_db
from crossprefetch.lookup import MISSING, Lookup
from crossprefetch.spec import CrossDBPrefetch

__all__ = ["DataLoader", "ModelLoader", "aprefetch_cross_db"]

KeyT = TypeVar("KeyT")
ValueT = TypeVar("ValueT")

BatchLoadFn = Callable[[list[KeyT]], Awaitable[Sequence[ValueT | Exception]]]
#: A load waiting for its batch: the key, and the future of the key's first caller (the head)
_Slot = tuple[Any, "asyncio.Future[Any]"]


class DataLoader(Generic[KeyT, ValueT]):
    """Coalesce the ``load(key)`` calls of concurrent coroutines into batch calls.

    Every key loaded while the event loop runs the other ready coroutines (or, with
    ``batch_window``, within that many seconds of the first load) is passed, in one list,
    to ``batch_load_fn(keys)``. It must return a sequence of the same length, value ``i``
    for key ``i``; an exception in that sequence fails the load of its key alone, an
    exception raised by the function fails every load of the batch.

    Loads are memoised per loader: loading a key twice runs it once, so a loader is meant
    to live for one request (a cache across requests would serve stale rows, and rows
    another user may not see). ``cache=False`` turns memoisation off.

    Unlike aiodataloader and strawberry, two callers loading one key while it is pending
    get two futures: a caller cancelling its load (a timeout, a client gone) never cancels
    another caller waiting on the same key, and never leaves a cancelled entry behind, so
    the next load of the key runs again. A load answered already returns the cached
    future itself, as theirs do (a done future cannot be cancelled). Keys nobody waits for
    any more when their batch starts are not sent to the batch function, and a running
    batch nobody waits for any more (every load cancelled or primed) is cancelled.

    :param batch_load_fn: ``async def batch_load_fn(keys: list) -> Sequence``; or define
        it as a method of a subclass.
    :param batch: ``False`` calls the batch function once per load (one key each).
    :param max_batch_size: split larger batches into calls of at most this many keys.
    :param cache: memoise loads by their cache key.
    :param get_cache_key: ``key -> hashable`` identity of a key in the cache (say, a
        normalised id); ``cache_key_fn`` is the same parameter under the name other
        DataLoader implementations use. The key itself by default.
    :param cache_map: the mapping holding the memoised futures, if you want to share or
        inspect it; a new ``dict`` by default.
    :param batch_window: seconds to keep collecting loads after the first one of a batch.
        ``0`` (the default) dispatches as soon as the loop has run the coroutines that were
        ready, which batches siblings resolved together; a few milliseconds also batch
        loads made deeper in coroutines that await something else first.

    ``batch``, ``max_batch_size``, ``cache`` and ``batch_window`` may also be set as
    class attributes of a subclass; an argument given to ``__init__`` wins. An argument
    of the wrong type raises :class:`TypeError`, a value out of range :class:`ValueError`.
    """

    batch: bool = True
    max_batch_size: int | None = None
    cache: bool = True
    batch_window: float = 0.0

    # State, touched from the loop's thread only (no lock: asyncio runs one callback at a
    # time, and no method awaits between reading and writing it):
    # - ``_cache[cache_key]`` is a future: while the key is pending, the head of its slot
    #   (the future of the key's first caller); once answered, a done future holding the
    #   answer, handed to every later caller (a done future cannot be cancelled).
    # - ``_queue`` holds the slots of the batch not started yet; a slot whose head and
    #   joiners are all done (cancelled, or settled by ``prime``) is dropped when it starts.
    # - ``_joiners[head]`` are the futures of the later callers of a pending head's key;
    #   popped whenever the slot is answered, failed, cancelled or dropped.
    # - ``_batches`` are the batches running now.

    def __init__(
        self,
        batch_load_fn: BatchLoadFn[KeyT, ValueT] | None = None,
        *,
        batch: bool | None = None,
        max_batch_size: int | None = None,
        cache: bool | None = None,
        get_cache_key: Callable[[KeyT], Hashable] | None = None,
        cache_key_fn: Callable[[KeyT], Hashable] | None = None,
        cache_map: MutableMapping[Hashable, asyncio.Future[ValueT]] | None = None,
        batch_window: float | None = None,
    ) -> None:
        name = type(self).__name__
        if batch_load_fn is not None:
            if not callable(batch_load_fn):
                raise TypeError(
                    f"{name}(batch_load_fn={batch_load_fn!r}): batch_load_fn must be an "
                    "async function taking a list of keys."
                )
            self._batch_load_fn: BatchLoadFn[KeyT, ValueT] = batch_load_fn
        elif type(self).batch_load_fn is not DataLoader.batch_load_fn:
            self._batch_load_fn = self.batch_load_fn
        else:
            raise TypeError(
                f"{name}() needs a batch function: pass DataLoader(batch_load_fn) or define "
                "`async def batch_load_fn(self, keys)` in a subclass."
            )
        if get_cache_key is not None and cache_key_fn is not None:
            raise TypeError(
                f"{name}(): give get_cache_key or cache_key_fn, not both; they are the same "
                "parameter."
            )
        key_fn = get_cache_key if get_cache_key is not None else cache_key_fn
        if key_fn is not None and not callable(key_fn):
            raise TypeError(
                f"{name}(get_cache_key={key_fn!r}): give a function of the key returning "
                "its identity in the cache, such as str.lower."
            )
        if key_fn is None and type(self).get_cache_key is not DataLoader.get_cache_key:
            key_fn = self.get_cache_key
        #: ``None``: the key is its own cache key (no call per load)
        self._cache_key: Callable[[KeyT], Hashable] | None = key_fn
        if cache_map is not None and not isinstance(cache_map, MutableMapping):
            raise TypeError(
                f"{name}(cache_map={cache_map!r}): give a mutable mapping, such as a dict."
            )
        if batch is not None:
            self.batch = batch
        if max_batch_size is not None:
            self.max_batch_size = max_batch_size
        if cache is not None:
            self.cache = cache
        if batch_window is not None:
            self.batch_window = batch_window
        self._validate_options()
        self._cache: MutableMapping[Hashable, asyncio.Future[ValueT]] = (
            cache_map if cache_map is not None else {}
        )
        self._queue: list[_Slot] = []
        self._joiners: dict[asyncio.Future[Any], list[asyncio.Future[Any]]] = {}
        self._batches: set[_Batch] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Running batch tasks, referenced so that the loop does not garbage-collect them.
        self._tasks: set[asyncio.Task[None]] = set()

    def _validate_options(self) -> None:
        name = type(self).__name__
        for option in ("batch", "cache"):
            value = getattr(self, option)
            if not isinstance(value, bool):
                raise TypeError(f"{name}({option}={value!r}): give True or False.")
        size = self.max_batch_size
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int):
                raise TypeError(
                    f"{name}(max_batch_size={size!r}): give a whole number of keys, or None "
                    "for no limit."
                )
            if size < 1:
                raise ValueError(
                    f"{name}(max_batch_size={size!r}): give a positive number of keys, or "
                    "None for no limit."
                )
        window = self.batch_window
        if isinstance(window, bool) or not isinstance(window, int | float):
            raise TypeError(
                f"{name}(batch_window={window!r}): give a number of seconds, such as 0.002."
            )
        if not 0 <= window < float("inf"):
            raise ValueError(
                f"{name}(batch_window={window!r}): give a number of seconds >= 0, such as 0.002."
            )

    def __repr__(self) -> str:
        function = self._batch_load_fn
        label = getattr(function, "__qualname__", None) or repr(function)
        if type(self) is DataLoader:
            return f"<DataLoader of {label}>"
        return f"<{type(self).__name__}>"

    # The interface ----------------------------------------------------------------------

    async def batch_load_fn(self, keys: list[KeyT]) -> Sequence[ValueT | Exception]:
        """Return one value (or exception) per key, in the order of ``keys``.

        Override in a subclass, or pass the function to the constructor.
        """
        raise NotImplementedError

    def get_cache_key(self, key: KeyT) -> Hashable:
        """The identity of ``key`` in the cache: the key itself unless overridden."""
        return key

    def load(self, key: KeyT) -> asyncio.Future[ValueT]:
        """A future for the value of ``key``, resolved when its batch has run.

        While the key is pending each call gets a future of its own: cancelling it (a
        timeout, a client gone) never cancels another caller waiting on the same key, and
        the key stays loadable.
        """
        if key is None:
            raise TypeError(
                f"{self!r}.load(None): a key cannot be None; test for a null reference "
                "before loading it."
            )
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = self._running_loop("load")  # raises the explanation
        if loop is not self._loop:
            self._running_loop("load")
        if self.cache:
            cache_key = key if self._cache_key is None else self._cache_key(key)
            cache = self._cache
            entry = cache.get(cache_key)
            if entry is not None:
                if not entry.done():
                    return self._join(loop, entry)
                if not entry.cancelled():
                    return entry
                if self._waiting_joiners(entry):  # its first caller gave up, others wait
                    return self._join(loop, entry)
            future: asyncio.Future[ValueT] = loop.create_future()
            cache[cache_key] = future
        else:
            future = loop.create_future()
        queue = self._queue
        queue.append((key, future))
        if len(queue) == 1:
            self._schedule(loop)
        return future

    def load_many(self, keys: Iterable[KeyT]) -> asyncio.Future[list[ValueT]]:
        """A future for the values of ``keys``, in order; the loads are batched together.

        Fails with the first failing key's exception, like :func:`asyncio.gather`.
        """
        if isinstance(keys, str | bytes) or not isinstance(keys, Iterable):
            raise TypeError(
                f"{self!r}.load_many({keys!r}): give an iterable of keys, such as a list."
            )
        futures = [self.load(key) for key in keys]
        if not futures:
            done: asyncio.Future[list[ValueT]] = self._running_loop("load_many").create_future()
            done.set_result([])
            return done
        return asyncio.gather(*futures)

    def prime(
        self, key: KeyT, value: ValueT | Exception, force: bool = False
    ) -> DataLoader[KeyT, ValueT]:
        """Give ``key`` the answer ``value``, for rows obtained another way (a list query).

        Loads of ``key`` still waiting get ``value`` at once (a key nobody else waits for
        is then not sent to the batch function), and later loads get it from the cache,
        unless the key was answered already: ``force=True`` replaces that answer too. An
        exception primes a failed load, as ``load`` would cache it. Returns the loader,
        for chaining.
        """
        return self.prime_many({key: value}, force)

    def prime_many(
        self, data: Mapping[KeyT, ValueT | Exception], force: bool = False
    ) -> DataLoader[KeyT, ValueT]:
        """:meth:`prime` every ``key: value`` of ``data``. Returns the loader."""
        if not isinstance(data, Mapping):
            raise TypeError(
                f"{self!r}.prime_many({data!r}): give a mapping of keys to values, such as a dict."
            )
        if not isinstance(force, bool):
            raise TypeError(f"{self!r}.prime(force={force!r}): give True or False.")
        loop = self._running_loop("prime")
        if self.cache:
            cache = self._cache
            for key, value in data.items():
                cache_key = key if self._cache_key is None else self._cache_key(key)
                entry = cache.get(cache_key)
                if entry is not None and not entry.cancelled():
                    if entry.done() and not force:
                        continue
                    if not entry.done():
                        _settle(entry, value)
                for joiner in self._joiners.pop(entry, ()) if entry is not None else ():
                    _settle(joiner, value)
                if entry is None or entry.cancelled() or force:
                    cache[cache_key] = _answered(loop, value)
        else:  # no cache to find them in: the loads waiting in the queue and running batches
            wanted = {self._identity(key): value for key, value in data.items()}
            slots = [*self._queue, *(s for b in self._batches for s in b.slots)]
            for key, head in slots:
                value_of = self._identity(key)
                if value_of in wanted:
                    _settle(head, wanted[value_of])
        return self

    def clear(self, key: KeyT) -> DataLoader[KeyT, ValueT]:
        """Forget the cached value of ``key`` (after writing it, say). Returns the loader."""
        self._cache.pop(self._identity(key), None)
        return self

    def clear_many(self, keys: Iterable[KeyT]) -> DataLoader[KeyT, ValueT]:
        """Forget the cached values of ``keys``. Returns the loader."""
        if isinstance(keys, str | bytes) or not isinstance(keys, Iterable):
            raise TypeError(
                f"{self!r}.clear_many({keys!r}): give an iterable of keys, such as a list."
            )
        for key in keys:
            self.clear(key)
        return self

    def clear_all(self) -> DataLoader[KeyT, ValueT]:
        """Forget every cached value. Returns the loader."""
        self._cache.clear()
        return self

    # Loading ----------------------------------------------------------------------------

    def _identity(self, key: KeyT) -> Hashable:
        return key if self._cache_key is None else self._cache_key(key)

    def _running_loop(self, method: str) -> asyncio.AbstractEventLoop:
        """The running loop, which must be the one of the futures already handed out."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                f"{self!r}.{method}() must be called from a coroutine running in an event loop."
            ) from None
        if self._loop is None or (self._loop is not loop and self._loop.is_closed()):
            if self._loop is not None:  # the previous loop is gone, and its futures with it
                self._cache.clear()
                self._queue.clear()
                self._joiners.clear()
                self._batches.clear()
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError(
                f"{self!r} is used from two event loops; its futures belong to the first. "
                "Create one loader per request (per event loop), not one per process."
            )
        return loop

    def _join(
        self, loop: asyncio.AbstractEventLoop, head: asyncio.Future[Any]
    ) -> asyncio.Future[ValueT]:
        """A future of its own for a caller of a pending key, answered with the head."""
        mine: asyncio.Future[ValueT] = loop.create_future()
        joiners = self._joiners.get(head)
        if joiners is None:
            self._joiners[head] = [mine]
        else:
            joiners.append(mine)
        return mine

    def _waiting_joiners(self, head: asyncio.Future[Any]) -> bool:
        return any(not joiner.done() for joiner in self._joiners.get(head, ()))

    # Dispatching ------------------------------------------------------------------------

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        """The first load of a new queue: run the queue when the loop gets to it."""
        if not self.batch:
            slots, self._queue = self._queue, []
            self._track(loop, self._run_batch(slots))
        elif self.batch_window > 0:
            loop.call_later(self.batch_window, self._start_dispatch)
        else:
            loop.call_soon(self._start_dispatch)

    def _start_dispatch(self) -> None:
        """Run the queue in a task of its own; the queue is taken when the task starts.

        Starting a task from a ``call_soon`` callback leaves the coroutines that became
        ready meanwhile one more turn to add their keys: the same timing as aiodataloader.
        """
        assert self._loop is not None
        self._track(self._loop, self._run_batch(None))

    def _track(self, loop: asyncio.AbstractEventLoop, coroutine: Any) -> None:
        task = loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _split(self, queue: list[_Slot], size: int) -> None:
        """Run a queue longer than ``max_batch_size`` as batches of that size, concurrently."""
        queue = [slot for slot in queue if self._waited_for(slot)]
        assert self._loop is not None
        for start in range(0, len(queue), size):
            self._track(self._loop, self._run_batch(queue[start : start + size]))

    def _waited_for(self, slot: _Slot) -> bool:
        """Whether a caller still waits for the slot's key; forgets the slot if none does."""
        head = slot[1]
        if not head.done():
            return True
        if self._waiting_joiners(head):
            return True
        self._joiners.pop(head, None)
        return False

    async def _run_batch(self, queue: list[_Slot] | None) -> None:
        """Call the batch function for the slots of ``queue`` (``None``: the loader's queue)."""
        if queue is None:
            queue, self._queue = self._queue, []
            size = self.max_batch_size
            if size and len(queue) > size:
                self._split(queue, size)
                return
        task = asyncio.current_task()
        assert task is not None
        batch = _Batch(self, task)
        gone = batch.gone
        context = batch.context
        joiners = self._joiners
        keys: list[Any] = []
        slots = batch.slots
        waiting = 0
        for slot in queue:  # the hot loop: one pass, no call when nothing was cancelled
            head = slot[1]
            if head.done() and not self._waited_for(slot):
                continue
            if not head.done():
                head.add_done_callback(gone, context=context)
                waiting += 1
            if joiners and head in joiners:
                for joiner in joiners[head]:
                    if not joiner.done():
                        joiner.add_done_callback(gone, context=context)
                        waiting += 1
            keys.append(slot[0])
            slots.append(slot)
        if not slots:
            return  # every caller gave up, or was primed: no call at all
        batch.waiting = waiting
        self._batches.add(batch)
        try:
            result = self._batch_load_fn(keys)
            if not inspect.isawaitable(result):
                raise TypeError(
                    f"{self!r}: batch_load_fn returned {type(result).__name__}, not an "
                    "awaitable; define it with `async def`."
                )
            values = self._checked(await result, keys)
        except asyncio.CancelledError:
            self._abandon(batch)
            raise
        except Exception as exc:
            self._fail(batch, exc)
            return
        finally:
            self._batches.discard(batch)
            batch.over = True
        self._answer(batch, values)

    def _checked(self, result: Any, keys: list[KeyT]) -> list[Any]:
        """``result`` as a list of one value per key, or an error saying what to return."""
        values: list[Any]
        if type(result) is list:
            values = result
        else:
            if isinstance(result, Mapping):
                raise TypeError(
                    f"{self!r}: batch_load_fn returned a {type(result).__name__}; return a "
                    "list with one value per key, in the order of the keys: "
                    "`return [found.get(key) for key in keys]`."
                )
            if isinstance(result, str | bytes | set | frozenset) or not isinstance(
                result, Iterable
            ):
                raise TypeError(
                    f"{self!r}: batch_load_fn returned {result!r}; return a list with one "
                    "value per key, in the order of the keys."
                )
            values = list(result)
        if len(values) != len(keys):
            raise ValueError(
                f"{self!r}: batch_load_fn returned {len(values)} value(s) for {len(keys)} "
                f"key(s); return exactly one value (None, or an exception, for a key with "
                f"none) per key, in the order of the keys. Keys: {keys!r}."
            )
        return values

    def _answer(self, batch: _Batch, values: list[Any]) -> None:
        """Give each waiting caller its key's value; the cache keeps the answered heads."""
        gone = batch.gone
        joiners = self._joiners
        for (key, head), value in zip(batch.slots, values, strict=True):
            head.remove_done_callback(gone)
            if not head.done():
                if isinstance(value, Exception):
                    head.set_exception(value)
                else:
                    head.set_result(value)
            elif head.cancelled():  # its caller gave up: keep the answer for the next ones
                self._recache(key, head, value)
            if joiners and head in joiners:
                for joiner in joiners.pop(head):
                    joiner.remove_done_callback(gone)
                    _settle(joiner, value)

    def _fail(self, batch: _Batch, error: Exception) -> None:
        """Fail every waiting load of ``batch``, uncached so that a later load retries."""
        for key, head in batch.slots:
            self._uncache(key, head)
            for future in (head, *self._joiners.pop(head, ())):
                future.remove_done_callback(batch.gone)
                _settle(future, error)

    def _abandon(self, batch: _Batch) -> None:
        """The batch's task was cancelled: cancel the loads still waiting, uncached."""
        for key, head in batch.slots:
            self._uncache(key, head)
            for future in (head, *self._joiners.pop(head, ())):
                future.remove_done_callback(batch.gone)
                future.cancel()

    def _recount(self, batch: _Batch) -> None:
        """No counted caller of ``batch`` waits: count the late joiners, or cancel it."""
        if batch.over:
            return
        late = [
            joiner
            for _, head in batch.slots
            for joiner in self._joiners.get(head, ())
            if not joiner.done()
        ]
        for joiner in late:
            joiner.add_done_callback(batch.gone, context=batch.context)
        batch.waiting = len(late)
        if not late:
            batch.task.cancel()

    def _recache(self, key: KeyT, head: asyncio.Future[Any], value: Any) -> None:
        if self.cache:
            cache_key = self._identity(key)
            if self._cache.get(cache_key) is head:
                assert self._loop is not None
                self._cache[cache_key] = _answered(self._loop, value)

    def _uncache(self, key: KeyT, head: asyncio.Future[Any]) -> None:
        """Forget ``head`` unless it holds an answer (primed while its batch ran)."""
        if self.cache and not (head.done() and not head.cancelled()):
            cache_key = self._identity(key)
            if self._cache.get(cache_key) is head:
                del self._cache[cache_key]


class _Batch:
    """One call of the batch function: its slots, its task, and how many callers wait.

    ``waiting`` counts the callers' futures given a ``gone`` callback when the batch
    started; each one done (cancelled, or primed) decrements it, and at zero the loader
    counts the callers who joined since or, if there are none, cancels the task.
    """

    __slots__ = ("context", "loader", "over", "slots", "task", "waiting")

    def __init__(self, loader: DataLoader[Any, Any], task: asyncio.Task[Any]) -> None:
        self.loader = loader
        self.task = task
        #: one context for every ``gone`` callback, instead of a copy per future
        self.context = contextvars.copy_context()
        self.slots: list[_Slot] = []
        self.waiting = 0
        self.over = False

    def gone(self, future: asyncio.Future[Any]) -> None:
        self.waiting -= 1
        if self.waiting <= 0:
            self.loader._recount(self)


def _settle(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        if isinstance(value, Exception):
            future.set_exception(value)
        else:
            future.set_result(value)


def _answered(loop: asyncio.AbstractEventLoop, value: Any) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = loop.create_future()
    _settle(future, value)
    return future


class ModelLoader(DataLoader[Any, Any]):
    """A :class:`DataLoader` of a model's rows by a field: one query per batch of keys.

    ``await loader.load(42)`` is the row whose ``to_field`` is 42 (a model instance, or a
    dict of ``fields``), or ``None`` if there is none; with ``many=True`` it is the list
    of rows holding 42, in the QuerySet's order (``[]`` if none).

    The batch function is the engine of :func:`~crossprefetch.prefetch_cross_db`, run
    through ``sync_to_async``: the keys are normalised to the field's type (``"42"``
    finds pk 42, ``"abc"`` finds nothing and is never sent to the database), huge batches
    are split as the backend's parameter limit requires, and only the projected columns
    are selected. The default cache key is the normalised key, so ``load("42")`` and
    ``load(42)`` share one future.

    :param model_or_queryset: a model class, an ``"app_label.Model"`` string, or a
        QuerySet (its filters and ordering are kept).
    :param to_field: the field matched against the keys; a tuple for composite keys,
        which are then loaded as tuples.
    :param fields: a projection: rows become dicts of these fields.
    :param using: the database alias; the QuerySet's own (the router's) by default.
    :param many: ``True`` loads every row holding the key (reverse references).
    :param aggregates: ``{name: aggregate}`` (``Count("id")``, ``Sum("amount")``, ...):
        ``load(42)`` is then the dict of the aggregates of the rows whose ``to_field`` is
        42, computed in one grouped query per batch, or ``None`` if there are none; see
        :class:`~crossprefetch.CrossDBAggregate`. Not with ``fields`` or ``many``.
    :param on_error: ``"degrade"`` loads every key of a batch whose database fails as
        missing (``None``, or ``[]``) instead of failing its loads; see
        :class:`~crossprefetch.CrossDBPrefetch`.
    :param timeout: seconds after which the database cancels a batch's query.
    :param loader_kwargs: :class:`DataLoader` options: ``max_batch_size``, ``cache``,
        ``batch_window``, ...
    """

    def __init__(
        self,
        model_or_queryset: Any,
        *,
        to_field: str | Sequence[str] = "pk",
        fields: Sequence[str] | None = None,
        using: str | None = None,
        many: bool = False,
        on_error: str | None = None,
        timeout: float | None = None,
        aggregates: Mapping[str, Aggregate] | None = None,
        **loader_kwargs: Any,
    ) -> None:
        if "batch_load_fn" in loader_kwargs:
            raise TypeError(
                "ModelLoader(batch_load_fn=...): a ModelLoader's batch function is its "
                "query; use DataLoader for a batch function of your own."
            )
        if aggregates is not None and (fields is not None or many):
            raise TypeError(
                "ModelLoader(aggregates=...) loads the aggregates of each key's rows; it "
                "takes neither fields= nor many=True."
            )
        try:
            self.spec: CrossDBPrefetch = (
                CrossDBPrefetch(
                    model_or_queryset,
                    key=_identity,
                    to_field=to_field,
                    fields=fields,
                    using=using,
                    many=many,
                    on_error=on_error,
                    timeout=timeout,
                )
                if aggregates is None
                else CrossDBAggregate(
                    model_or_queryset,
                    key=_identity,
                    to_field=to_field,
                    aggregates=aggregates,
                    using=using,
                    on_error=on_error,
                    timeout=timeout,
                )
            )
        except (TypeError, ValueError) as exc:  # the spec names the argument and the fix
            raise type(exc)(f"{type(self).__name__}: {exc}") from None
        self._normalize: Normalizer | None = None
        super().__init__(**loader_kwargs)

    def __repr__(self) -> str:
        spec = self.spec
        parts = [repr(spec.source_label)]
        if spec.to_field != ("pk",):
            to_field = spec.to_field[0] if len(spec.to_field) == 1 else spec.to_field
            parts.append(f"to_field={to_field!r}")
        if isinstance(spec, CrossDBAggregate):
            parts.append(f"aggregates={dict(spec.aggregates)!r}")
        elif spec.fields is not None:
            parts.append(f"fields={spec.fields!r}")
        if spec.using is not None:
            parts.append(f"using={spec.using!r}")
        if spec.many:
            parts.append("many=True")
        if spec.on_error is not None:
            parts.append(f"on_error={spec.on_error!r}")
        if spec.timeout is not None:
            parts.append(f"timeout={spec.timeout!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def get_cache_key(self, key: Any) -> Hashable:
        """The key as the field would hold it, so that ``"42"`` and ``42`` share an entry.

        A key the field cannot hold (``"abc"`` for an integer) stays itself: it will load
        as missing, and must not share an entry with another invalid key.
        """
        normalize = self._normalize
        if normalize is None:
            queryset = self.spec.get_queryset(None)
            fields = self.spec.get_match_fields(queryset.model)
            normalize = self._normalize = normalizer(fields, connections[queryset.db])
        normalized = normalize(key)
        if normalized is None or normalized is INVALID:
            return key  # type: ignore[no-any-return]
        return normalized  # type: ignore[no-any-return]

    async def batch_load_fn(self, keys: list[Any]) -> list[Any]:
        """Query the batch's keys in one query per database (more if the backend's limit
        on parameters requires it), in the request's thread like the async ORM."""
        lookups = await sync_to_async(prefetch_cross_db, thread_sensitive=True)(
            keys, {repr(self): self.spec}
        )
        lookup: Lookup = lookups[repr(self)]
        values: list[Any] = []
        for key in keys:
            row = lookup.get_for(key)
            if row is MISSING:
                values.append([] if self.spec.many else None)
            else:
                values.append(list(row) if self.spec.many else row)
        return values


def _identity(key: Any) -> Any:
    """The key getter of a loader's spec: the loaded keys are the keys themselves."""
    return key


async def aprefetch_cross_db(
    objects: Iterable[Any] | AsyncIterable[Any],
    specs: Mapping[str, CrossDBPrefetch],
    *,
    request: HttpRequest | None = None,
) -> dict[str, Lookup]:
    """:func:`~crossprefetch.prefetch_cross_db` for async views: ``await`` it.

    The engine runs in ``sync_to_async(thread_sensitive=True)``, which is what Django's
    own async ORM methods (``aget``, ``acount``, async iteration) do: Django's database
    connections belong to a thread, and the thread-sensitive executor is the one thread
    where the request's synchronous code (middleware, ``atomic`` blocks, the test
    transaction) runs, so the lookups see the same connections and transactions. Its
    queries are one per remote group, exactly as in the sync function; an async rewrite
    would issue the same queries through the same thread, one hop per query instead of
    one per call.

    With coalescing (``coalesce=`` or ``CROSSPREFETCH["COALESCE"]``), no transaction open
    in that thread and no tenant state on its connections (see :doc:`/howto/tenants`),
    the engine runs in a pool of threads of its own instead, so that
    concurrent calls of one event loop, which would otherwise wait for each other on the
    one thread, share their queries. Those threads treat each call as Django treats a
    request: their connections are closed before and after it unless ``CONN_MAX_AGE``
    keeps them.

    ``objects`` may be a list, a QuerySet (evaluated in that thread, where synchronous
    ORM access is allowed) or an async iterable, which is collected first.
    """
    if isinstance(objects, AsyncIterable) and not isinstance(objects, Iterable):
        objects = [obj async for obj in objects]
    if _coalesces(specs) and not await sync_to_async(_bound_to_thread, thread_sensitive=True)():
        return await sync_to_async(
            _prefetch_alone, thread_sensitive=False, executor=_coalescing_executor()
        )(objects, specs, request)
    return await sync_to_async(prefetch_cross_db, thread_sensitive=True)(
        objects, specs, request=request
    )


def _coalesces(specs: Mapping[str, CrossDBPrefetch]) -> bool:
    if not isinstance(specs, Mapping):
        return False  # the engine says what is wrong
    default = conf.COALESCE
    return any(
        (default if spec.coalesce is None else spec.coalesce)
        for spec in specs.values()
        if isinstance(spec, CrossDBPrefetch)
    )


def _bound_to_thread() -> bool:
    """Whether the lookups must use this thread's connections: a transaction is open on one,
    or one carries a tenant state (a ``search_path``), which another thread's would lack."""
    return any(
        c.in_atomic_block or connection_scope(c) is not None
        for c in connections.all(initialized_only=True)
    )


def _prefetch_alone(
    objects: Iterable[Any], specs: Mapping[str, CrossDBPrefetch], request: HttpRequest | None
) -> dict[str, Lookup]:
    close_old_connections()
    try:
        return prefetch_cross_db(objects, specs, request=request)
    finally:
        close_old_connections()


_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _coalescing_executor() -> ThreadPoolExecutor:
    """The threads coalescing calls run in: enough for every request of a busy process."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=_COALESCING_THREADS, thread_name_prefix="crossprefetch"
            )
        return _executor


#: Concurrent coalescing calls per process; more wait for a thread.
_COALESCING_THREADS = 64
