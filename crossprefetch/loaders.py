"""Batching for async code: ``DataLoader``, ``ModelLoader`` and ``aprefetch_cross_db``.

:func:`~crossprefetch.prefetch_cross_db` needs every object up front. GraphQL-style
resolvers do not have them: each resolver asks for one key, concurrently with its
siblings. A :class:`DataLoader` collects the keys asked for while the event loop runs
the other resolvers and hands them to one batch function, so N resolvers cost one
query. :class:`ModelLoader` is that batch function for a Django model, built on the
engine. :func:`aprefetch_cross_db` is the engine itself, awaitable from an async view.

The interface is aiodataloader's (``load``, ``load_many``, ``prime``, ``clear``,
``clear_all``, ``batch``, ``max_batch_size``, ``cache``, ``get_cache_key`` /
``cache_key_fn``, ``cache_map``, subclasses defining ``batch_load_fn``), so code written
for it keeps working, plus ``batch_window`` to collect loads over a few milliseconds.
"""

from __future__ import annotations

import asyncio
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
_Entry = tuple[Any, "asyncio.Future[Any]"]


class DataLoader(Generic[KeyT, ValueT]):
    """Coalesce the ``load(key)`` calls of concurrent coroutines into batch calls.

    Every key loaded while the event loop runs the other ready coroutines (or, with
    ``batch_window``, within that many seconds of the first load) is passed, in one list,
    to ``batch_load_fn(keys)``. It must return a sequence of the same length, value ``i``
    for key ``i``; an exception in that sequence fails the load of its key alone, an
    exception raised by the function fails every load of the batch.

    Loads are memoised per loader: loading a key twice runs it once, so a loader is meant
    to live for one request (a cache across requests would serve stale rows, and rows
    another user may not see). ``cache=False`` turns memoisation off. Unlike
    aiodataloader, each ``load`` returns a future of its own that follows the key's one
    entry: a caller cancelling its load (a timeout, a client gone) never cancels another
    caller waiting on the same key, and a cancelled batch leaves no entry behind, so the
    next load of its keys runs again.

    :param batch_load_fn: ``async def batch_load_fn(keys: list) -> Sequence``; or define
        it as a method of a subclass.
    :param batch: ``False`` calls the batch function once per load (one key each).
    :param max_batch_size: split larger batches into calls of at most this many keys.
    :param cache: memoise loads by their cache key.
    :param get_cache_key: ``key -> hashable`` identity of a key in the cache (say, a
        normalised id); ``cache_key_fn`` is the same parameter under the name other
        DataLoader implementations use. The key itself by default.
    :param cache_map: the mapping holding the memoised entries, if you want to share or
        inspect it; a new ``dict`` by default.
    :param batch_window: seconds to keep collecting loads after the first one of a batch.
        ``0`` (the default) dispatches as soon as the loop has run the coroutines that were
        ready, which batches siblings resolved together; a few milliseconds also batch
        loads made deeper in coroutines that await something else first.

    ``batch``, ``max_batch_size``, ``cache`` and ``batch_window`` may also be set as
    class attributes of a subclass; an argument given to ``__init__`` wins.
    """

    batch: bool = True
    max_batch_size: int | None = None
    cache: bool = True
    batch_window: float = 0.0

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
        if batch_load_fn is not None:
            if not callable(batch_load_fn):
                raise TypeError(
                    f"{type(self).__name__}(batch_load_fn={batch_load_fn!r}): batch_load_fn "
                    "must be an async function taking a list of keys."
                )
            self._batch_load_fn: BatchLoadFn[KeyT, ValueT] = batch_load_fn
        elif type(self).batch_load_fn is not DataLoader.batch_load_fn:
            self._batch_load_fn = self.batch_load_fn
        else:
            raise TypeError(
                f"{type(self).__name__}() needs a batch function: pass "
                "DataLoader(batch_load_fn) or define `async def batch_load_fn(self, keys)` "
                "in a subclass."
            )
        if get_cache_key is not None and cache_key_fn is not None:
            raise TypeError(
                f"{type(self).__name__}(): give get_cache_key or cache_key_fn, not both; "
                "they are the same parameter."
            )
        self._cache_key: Callable[[KeyT], Hashable] = (
            get_cache_key or cache_key_fn or self.get_cache_key
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
        self._queue: list[_Entry] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Running batch tasks, referenced so that the loop does not garbage-collect them.
        self._tasks: set[asyncio.Task[None]] = set()

    def _validate_options(self) -> None:
        name = type(self).__name__
        size = self.max_batch_size
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ValueError(
                f"{name}(max_batch_size={size!r}): give a positive number of keys, or None "
                "for no limit."
            )
        window = self.batch_window
        if (
            isinstance(window, bool)
            or not isinstance(window, int | float)
            or not 0 <= window < float("inf")
        ):
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

        Each call gets a future of its own, following the key's one entry: cancelling it
        (a timeout, a client gone) never cancels another caller waiting on the same key,
        and the entry stays usable for later loads.
        """
        if key is None:
            raise TypeError(
                f"{self!r}.load(None): a key cannot be None; test for a null reference "
                "before loading it."
            )
        loop = self._running_loop("load")
        if self.cache:
            cache_key = self._cache_key(key)
            entry = self._cache.get(cache_key)
            if entry is None or entry.cancelled():
                entry = self._cache[cache_key] = loop.create_future()
                self._enqueue(loop, key, entry)
        else:
            entry = loop.create_future()
            self._enqueue(loop, key, entry)
        return _follow(loop, entry)

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

    def prime(self, key: KeyT, value: ValueT | Exception) -> DataLoader[KeyT, ValueT]:
        """Put ``value`` in the cache for ``key`` unless the key is cached already.

        Use it for rows obtained another way (a list query), so that later loads of their
        keys need no batch. An exception primes a failed load, as ``load`` would cache it.
        Returns the loader, for chaining.
        """
        cache_key = self._cache_key(key)
        if cache_key not in self._cache:
            future: asyncio.Future[ValueT] = self._running_loop("prime").create_future()
            if isinstance(value, Exception):
                future.set_exception(value)
            else:
                future.set_result(value)
            self._cache[cache_key] = future
        return self

    def clear(self, key: KeyT) -> DataLoader[KeyT, ValueT]:
        """Forget the cached value of ``key`` (after writing it, say). Returns the loader."""
        self._cache.pop(self._cache_key(key), None)
        return self

    def clear_all(self) -> DataLoader[KeyT, ValueT]:
        """Forget every cached value. Returns the loader."""
        self._cache.clear()
        return self

    # Dispatching ------------------------------------------------------------------------

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
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError(
                f"{self!r} is used from two event loops; its futures belong to the first. "
                "Create one loader per request (per event loop), not one per process."
            )
        return loop

    def _enqueue(
        self, loop: asyncio.AbstractEventLoop, key: KeyT, future: asyncio.Future[ValueT]
    ) -> None:
        self._queue.append((key, future))
        if len(self._queue) > 1:
            return  # a dispatch is already scheduled for this queue
        if not self.batch:
            entries, self._queue = self._queue, []
            self._track(self._run_batch(entries))
        elif self.batch_window > 0:
            loop.call_later(self.batch_window, self._start_dispatch)
        else:
            loop.call_soon(self._start_dispatch)

    def _start_dispatch(self) -> None:
        """Run the queue in a task of its own; the queue is taken when the task starts.

        Starting a task from a ``call_soon`` callback leaves the coroutines that became
        ready meanwhile one more turn to add their keys: the same timing as aiodataloader.
        """
        self._track(self._dispatch())

    def _track(self, coroutine: Any) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dispatch(self) -> None:
        queue, self._queue = self._queue, []
        size = self.max_batch_size
        if not size or len(queue) <= size:
            await self._run_batch(queue)
            return
        for start in range(0, len(queue), size):
            self._track(self._run_batch(queue[start : start + size]))

    async def _run_batch(self, entries: list[_Entry]) -> None:
        keys = [key for key, _ in entries]
        try:
            values = await self._call_batch_load_fn(keys)
        except asyncio.CancelledError:
            for key, future in entries:
                self._uncache(key, future)
                future.cancel()
            raise
        except Exception as exc:
            self._fail(entries, exc)
            return
        for (_, future), value in zip(entries, values, strict=True):
            if future.done():
                continue
            if isinstance(value, Exception):
                future.set_exception(value)
            else:
                future.set_result(value)

    async def _call_batch_load_fn(self, keys: list[KeyT]) -> list[Any]:
        result = self._batch_load_fn(keys)
        if not inspect.isawaitable(result):
            raise TypeError(
                f"{self!r}: batch_load_fn returned {type(result).__name__}, not an awaitable; "
                "define it with `async def`."
            )
        values = await result
        if isinstance(values, Mapping):
            raise TypeError(
                f"{self!r}: batch_load_fn returned a {type(values).__name__}; return a list "
                "with one value per key, in the order of the keys: "
                "`return [found.get(key) for key in keys]`."
            )
        if isinstance(values, str | bytes | set | frozenset) or not isinstance(values, Iterable):
            raise TypeError(
                f"{self!r}: batch_load_fn returned {values!r}; return a list with one value "
                "per key, in the order of the keys."
            )
        values = list(values)
        if len(values) != len(keys):
            raise ValueError(
                f"{self!r}: batch_load_fn returned {len(values)} value(s) for {len(keys)} "
                f"key(s); return exactly one value (None, or an exception, for a key with "
                f"none) per key, in the order of the keys. Keys: {keys!r}."
            )
        return values

    def _fail(self, entries: list[_Entry], error: Exception) -> None:
        """Reject every load of a failed batch, and uncache them so a later load retries."""
        for key, future in entries:
            self._uncache(key, future)
            if not future.done():
                future.set_exception(error)

    def _uncache(self, key: KeyT, future: asyncio.Future[Any]) -> None:
        if self.cache:
            cache_key = self._cache_key(key)
            if self._cache.get(cache_key) is future:
                del self._cache[cache_key]


def _follow(loop: asyncio.AbstractEventLoop, entry: asyncio.Future[Any]) -> asyncio.Future[Any]:
    """A caller's own future, settled as ``entry`` is; cancelling it leaves ``entry`` alone."""
    mine: asyncio.Future[Any] = loop.create_future()

    def settle(source: asyncio.Future[Any]) -> None:
        if mine.done():
            return
        if source.cancelled():
            mine.cancel()
        elif (error := source.exception()) is not None:
            mine.set_exception(error)
        else:
            mine.set_result(source.result())

    if entry.done():
        settle(entry)
    else:
        entry.add_done_callback(settle)
        mine.add_done_callback(lambda _: entry.remove_done_callback(settle))
    return mine


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

    With coalescing (``coalesce=`` or ``CROSSPREFETCH["COALESCE"]``) and no transaction
    open in that thread, the engine runs in a pool of threads of its own instead, so that
    concurrent calls of one event loop, which would otherwise wait for each other on the
    one thread, share their queries. Those threads treat each call as Django treats a
    request: their connections are closed before and after it unless ``CONN_MAX_AGE``
    keeps them.

    ``objects`` may be a list, a QuerySet (evaluated in that thread, where synchronous
    ORM access is allowed) or an async iterable, which is collected first.
    """
    if isinstance(objects, AsyncIterable) and not isinstance(objects, Iterable):
        objects = [obj async for obj in objects]
    if _coalesces(specs) and not await sync_to_async(_in_transaction, thread_sensitive=True)():
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


def _in_transaction() -> bool:
    return any(c.in_atomic_block for c in connections.all(initialized_only=True))


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
