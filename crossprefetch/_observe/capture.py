"""Capture the queries of every database alias during a block: the one rule for what counts,
used by :mod:`crossprefetch.testing` and the debug-toolbar panel alike.

How a query reaches a block
---------------------------
One execute wrapper, :func:`_observe`, sits on every connection of every thread. It is
installed (idempotently, first in the list) on the current thread's connections by
:func:`watch_connections` -- called from ``AppConfig.ready()`` and on entering each block --
and, through ``connection_created``, on every connection any thread opens afterwards. With
no block active it costs one context-variable read per statement.

A block registers itself in a context variable, not on connections, so it sees the queries
of the work it asked for wherever that work runs: the thread of ``sync_to_async`` (asgiref
copies the context), crossprefetch's coalescing pool and any thread of its own, which run
work under ``contextvars.copy_context().run``. A query the leader of a coalesced batch
sends on behalf of requests of other blocks is recorded in theirs too
(:func:`on_behalf_of`), once per block. A thread the code under test starts itself gets a
fresh context and is not observed, as with Django's ``CaptureQueriesContext``.

What counts: every statement sent through a Django cursor (``executemany`` once), except
transaction control (``BEGIN``, ``COMMIT``, ``ROLLBACK``, ``SAVEPOINT``, ``RELEASE``) and
the statements a connection runs while it opens. Outside the ``testing`` package so that
the panel shares it without importing the toolkit.
"""

from __future__ import annotations

import copy
import functools
import inspect
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import Any, TypeVar, overload

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

from crossprefetch import _compat
from crossprefetch._observe.origin import Origin, is_user_file, origin_of
from crossprefetch._suggest import did_you_mean

_F = TypeVar("_F", bound=Callable[..., Any])

__all__ = [
    "CapturedQueries",
    "CapturedQuery",
    "ForbiddenQueryError",
    "QueryCapture",
    "observers",
    "on_behalf_of",
    "watch_connections",
]

_TRANSACTION_CONTROL = re.compile(
    r"\s*(BEGIN|COMMIT|ROLLBACK|END|START\s+TRANSACTION|SAVEPOINT|RELEASE)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class CapturedQuery:
    """One statement sent to a database while a block was observed.

    ``sql`` is the statement as the backend reports it after execution, with
    parameters inlined where the backend can (as in ``connection.queries``);
    ``raw_sql`` and ``params`` are what Django passed to the cursor. For an
    ``executemany`` call, ``many`` is true and ``params`` is the parameter list.
    ``stack`` runs from the ``with`` statement down to the cursor call, most
    recent call last. ``time`` is the seconds the statement took. ``shared`` is true when
    another request's work sent the query for this block too (the leader of a coalesced
    batch this block's request joined): counted here, and sent once.

    ``query["sql"]`` and ``query["time"]`` read like the dicts of Django's
    ``CaptureQueriesContext`` (``time`` then as a ``"%.3f"`` string).
    """

    alias: str
    sql: str
    raw_sql: str
    params: Any
    many: bool
    stack: traceback.StackSummary = field(repr=False, compare=False)
    time: float = field(default=0.0, repr=False, compare=False)
    issuer: Origin | None = field(default=None, repr=False, compare=False)
    shared: bool = field(default=False, compare=False)

    @property
    def origin(self) -> traceback.FrameSummary | None:
        """The innermost frame outside Django, DRF and the standard library: who issued the
        query."""
        frames = _user_frames(self.stack)
        return frames[-1] if frames else None

    def __getitem__(self, key: str) -> Any:
        if key == "time":
            return f"{self.time:.3f}"
        if key in {"alias", "sql", "raw_sql", "params", "many"}:
            return getattr(self, key)
        raise KeyError(
            f"CapturedQuery[{key!r}]: use 'sql' or 'time' (as in Django's captured_queries), "
            "or the attributes alias, sql, raw_sql, params, many, stack, origin."
        )


class CapturedQueries:
    """The queries seen on every alias during a block, available after it ends.

    ``captured["default"]`` lists the queries on one alias (an empty list for a
    configured alias that saw none), ``captured.queries`` all of them in
    execution order, ``captured.count("default")`` or ``captured.count()`` the
    numbers, ``captured.counts`` a ``{alias: count}`` dict. ``len(captured)``,
    ``captured[0]`` (an int or a slice) and iteration cover all aliases in
    execution order, like Django's ``CaptureQueriesContext``;
    ``captured.captured_queries`` is its list of ``{"sql", "time"}`` dicts.
    """

    def __init__(self, aliases: tuple[str, ...]) -> None:
        self.aliases = aliases
        self.queries: list[CapturedQuery] = []

    @overload
    def __getitem__(self, key: str) -> list[CapturedQuery]: ...

    @overload
    def __getitem__(self, key: int) -> CapturedQuery: ...

    @overload
    def __getitem__(self, key: slice) -> list[CapturedQuery]: ...

    def __getitem__(self, key: str | int | slice) -> CapturedQuery | list[CapturedQuery]:
        if isinstance(key, str):
            if key not in self.aliases:
                raise KeyError(_unknown_alias_message(key, self.aliases, "CapturedQueries"))
            return [query for query in self.queries if query.alias == key]
        if isinstance(key, int | slice) and not isinstance(key, bool):
            try:
                return self.queries[key]
            except IndexError:
                raise IndexError(
                    f"CapturedQueries[{key}]: {len(self.queries)} queries were captured "
                    f"({', '.join(f'{a}: {n}' for a, n in self.counts.items())})."
                ) from None
        raise TypeError(
            f"CapturedQueries[{key!r}]: index by database alias (captured['default']), by "
            "position in execution order (captured[0]) or by slice."
        )

    @property
    def captured_queries(self) -> list[dict[str, str]]:
        """``[{"sql": ..., "time": ...}]`` in execution order, as Django's context has it."""
        return [{"sql": query.sql, "time": f"{query.time:.3f}"} for query in self.queries]

    def __iter__(self) -> Iterator[CapturedQuery]:
        return iter(self.queries)

    def __len__(self) -> int:
        return len(self.queries)

    def count(self, alias: str | None = None) -> int:
        """Number of queries on ``alias``, or on every alias when ``alias`` is None."""
        if alias is None:
            return len(self.queries)
        return len(self[alias])

    @property
    def counts(self) -> dict[str, int]:
        """``{alias: number of queries}`` for every configured alias, zeros included."""
        counts = dict.fromkeys(self.aliases, 0)
        for query in self.queries:
            counts[query.alias] += 1
        return counts

    def __repr__(self) -> str:
        return f"<CapturedQueries {self.counts}>"


class ForbiddenQueryError(AssertionError):
    """A query reached an alias that ``forbid_queries`` closed; ``.query`` holds it."""

    def __init__(self, message: str, query: CapturedQuery) -> None:
        super().__init__(message)
        self.query = query

    def __reduce__(self) -> tuple[type[ForbiddenQueryError], tuple[str, CapturedQuery]]:
        return type(self), (str(self), self.query)


@dataclass(frozen=True)
class _Watch:
    """The blocks observing a context: its own, and those its work is shared with.

    Immutable: a context changes its watch by setting a new one, so a copy of the context
    taken by another thread keeps the blocks of the moment it was taken.
    """

    own: tuple[QueryCapture, ...] = ()
    shared: tuple[QueryCapture, ...] = ()

    def all(self) -> tuple[QueryCapture, ...]:
        return self.own + tuple(c for c in self.shared if c not in self.own)


#: The blocks observing the current context; ``None`` (the fast path) when there are none.
_watching: ContextVar[_Watch | None] = ContextVar("crossprefetch_watching", default=None)

#: Whether ``connection_created`` installs the wrapper on every new connection.
#: Invariants of the registry (the wrapper's place on connections): a connection's
#: ``execute_wrappers`` holds ``_observe`` at most once; it is only ever added, by the
#: thread that owns the connection (its ``connection_created``, or ``connections`` of the
#: current thread), so installing needs no lock; ``_receiving`` only goes from False to
#: True, under ``_lock``.
_receiving = False
_lock = threading.Lock()


def watch_connections() -> None:
    """Install the capture's execute wrapper on this thread's connections and on every
    connection opened from now on, in any thread (idempotent)."""
    global _receiving
    if not _receiving:
        with _lock:
            if not _receiving:
                connection_created.connect(_on_connection_created, dispatch_uid=_DISPATCH_UID)
                _receiving = True
    for connection in connections.all():
        _compat.install_execute_wrapper(connection, _observe)


_DISPATCH_UID = "crossprefetch.observe"


def _on_connection_created(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    _compat.install_execute_wrapper(connection, _observe)


def observers() -> tuple[QueryCapture, ...]:
    """The blocks observing the current context: hand them to :func:`on_behalf_of` where
    work done for this context runs in another."""
    watch = _watching.get()
    return () if watch is None else watch.all()


@contextmanager
def on_behalf_of(blocks: Iterable[tuple[QueryCapture, ...]]) -> Iterator[None]:
    """The queries sent in this block are also recorded in ``blocks`` (the
    :func:`observers` of the requests whose work this is, such as a coalesced batch's
    members). A block forbidding an alias is told of the query when it ends; the query
    itself is not refused here, where it is another request's."""
    extra = tuple(c for group in blocks for c in group)
    if not extra:
        yield
        return
    watch = _watching.get() or _Watch()
    shared = watch.shared + tuple(c for c in extra if c not in watch.shared)
    token = _watching.set(_Watch(watch.own, shared))
    try:
        yield
    finally:
        _watching.reset(token)


class QueryCapture:
    """Context manager observing every alias; base of the assertions and the panel.

    On entry it registers itself in the current context (see the module docstring) and
    yields a :class:`CapturedQueries`; on exit it leaves the context, and queries that
    reach it later (from a thread still working for it) are dropped. Blocks nest.

    Also a decorator, of plain and ``async`` functions: each call runs in a block of its
    own (``@assert_num_queries(default=1)``).

    Invariants: ``captured.queries``, ``_violation`` and ``_open`` change only under
    ``_lock`` (queries arrive from every thread working for the block); ``_open`` goes
    from True to False once per block.
    """

    def __init__(
        self,
        *,
        forbidden: tuple[str, ...] = (),
        label: str = "capture_queries",
        issuers: bool = False,
    ) -> None:
        aliases = _configured_aliases()
        for alias in forbidden:
            _check_alias(alias, aliases, label)
        self._forbidden = frozenset(forbidden)
        self._label = label
        #: Record each query's :class:`~crossprefetch._observe.origin.Origin` (N+1, panel).
        self.issuers = issuers
        self._entry_frame: FrameType | None = None
        self._violation: ForbiddenQueryError | None = None
        self._open = False
        self._lock = threading.Lock()
        self.captured = CapturedQueries(aliases)

    def __call__(self, function: _F) -> _F:
        """Use the block as a decorator: every call of ``function`` runs inside a fresh one."""
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                from asgiref.sync import sync_to_async

                __tracebackhide__ = True
                # The async ORM's queries run on sync_to_async's thread: watch its connections.
                await sync_to_async(watch_connections)()
                with self._fresh():
                    return await function(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            with self._fresh():
                return function(*args, **kwargs)

        return run  # type: ignore[return-value]

    def _fresh(self) -> QueryCapture:
        """A block of the same kind and arguments, for one call of a decorated function."""
        block = copy.copy(self)
        block._lock = threading.Lock()
        block._open = False
        return block

    def __enter__(self) -> CapturedQueries:
        watch_connections()
        with self._lock:
            self.captured = CapturedQueries(_configured_aliases())
            self._violation = None
            self._open = True
        self._entry_frame = sys._getframe(1)
        watch = _watching.get() or _Watch()
        _watching.set(_Watch((*watch.own, self), watch.shared))
        return self.captured

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        __tracebackhide__ = True
        watch = _watching.get()
        if watch is not None:
            own = tuple(c for c in watch.own if c is not self)
            _watching.set(_Watch(own, watch.shared) if own or watch.shared else None)
        with self._lock:
            self._open = False
            violation = self._violation
        self._entry_frame = None
        if violation is not None and not isinstance(exc_value, ForbiddenQueryError):
            # The code under test caught the error; the block still fails, on the first one.
            raise violation

    def _forbids(self, alias: str) -> bool:
        return alias in self._forbidden

    def _refuse(self, query: CapturedQuery) -> ForbiddenQueryError:
        """The error for ``query`` on a forbidden alias, kept to be raised on exit."""
        error = ForbiddenQueryError(_forbidden_message(query, self._label), query)
        with self._lock:
            if self._open and self._violation is None:
                self._violation = error
        return error

    def _add(self, query: CapturedQuery) -> None:
        with self._lock:
            if self._open:
                self.captured.queries.append(query)


def _observe(
    execute: Callable[[str, Any, bool, dict[str, Any]], Any],
    sql: str,
    params: Any,
    many: bool,
    context: dict[str, Any],
) -> Any:
    """The execute wrapper on every connection: record the statement in the blocks
    observing the current context, if any."""
    watch = _watching.get()
    if watch is None:
        return execute(sql, params, many, context)
    __tracebackhide__ = True
    return _record(watch, execute, sql, params, many, context)


def _record(
    watch: _Watch,
    execute: Callable[[str, Any, bool, dict[str, Any]], Any],
    sql: str,
    params: Any,
    many: bool,
    context: dict[str, Any],
) -> Any:
    __tracebackhide__ = True
    connection: BaseDatabaseWrapper = context["connection"]
    if (isinstance(sql, str) and _TRANSACTION_CONTROL.match(sql)) or _compat.connecting(
        connection, sys._getframe(2)
    ):
        return execute(sql, params, many, context)
    blocks = watch.all()
    alias = connection.alias
    caller = _compat.cursor_frame(sys._getframe(2))
    frames = list(_walk(caller))
    stacks = {id(block): _stack(frames, block._entry_frame) for block in blocks}
    for block in watch.own:
        if block._forbids(alias):
            query = CapturedQuery(alias, sql, sql, params, many, stacks[id(block)])
            raise block._refuse(query)
    for block in watch.shared:
        if block._forbids(alias) and block not in watch.own:
            block._refuse(CapturedQuery(alias, sql, sql, params, many, stacks[id(block)]))
    issuer = None
    if any(block.issuers for block in blocks):
        issuer = origin_of(caller, params)
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        duration = time.perf_counter() - started
        executed = sql
        if not many:
            try:
                executed = connection.ops.last_executed_query(context["cursor"], sql, params)
            except Exception:  # the raw SQL is good enough for a report
                executed = sql
        text = str(executed or sql)
        for block in blocks:
            block._add(
                CapturedQuery(
                    alias,
                    text,
                    sql,
                    params,
                    many,
                    stacks[id(block)],
                    duration,
                    issuer if block.issuers else None,
                    shared=block not in watch.own,
                )
            )


def _configured_aliases() -> tuple[str, ...]:
    return tuple(connections)


def _unknown_alias_message(alias: str, aliases: tuple[str, ...], function: str) -> str:
    known = ", ".join(repr(name) for name in aliases)
    message = f"{function}: unknown database alias {alias!r}; the configured aliases are {known}."
    return message + did_you_mean(alias, aliases)


def _check_alias(alias: str, aliases: tuple[str, ...], function: str) -> None:
    if alias not in aliases:
        raise ValueError(_unknown_alias_message(alias, aliases, function))


def _walk(frame: FrameType | None) -> Iterator[FrameType]:
    while frame is not None:
        yield frame
        frame = frame.f_back


def _stack(frames: list[FrameType], stop: FrameType | None) -> traceback.StackSummary:
    """``frames`` (innermost first) out to ``stop`` when it is among them, most recent
    call last: a block's stack runs from its ``with`` statement when the query is sent in
    its own thread, from the thread's start otherwise."""
    end = len(frames)
    if stop is not None:
        for index, frame in enumerate(frames):
            if frame is stop:
                end = index + 1
                break
    stack = traceback.StackSummary.extract(
        ((frame, frame.f_lineno) for frame in frames[:end]), lookup_lines=False
    )
    stack.reverse()
    return stack


def _user_frames(stack: traceback.StackSummary) -> list[traceback.FrameSummary]:
    """Frames outside Django, DRF, the debug toolbar, the standard library and this package."""
    return [frame for frame in stack if is_user_file(frame.filename)]


def _forbidden_message(query: CapturedQuery, label: str) -> str:
    lines = [f"Query on {query.alias!r} forbidden by {label}:", f"    {query.raw_sql}"]
    if query.params:
        lines.append(f"    params: {query.params!r}")
    origin = query.origin
    if origin is not None:
        lines.append(
            f'Issued from File "{origin.filename}", line {origin.lineno}, in {origin.name}'
        )
        if origin.line:
            lines.append(f"    {origin.line}")
    frames = traceback.StackSummary.from_list(_user_frames(query.stack))
    if frames:
        lines.append("")
        lines.append("Stack (most recent call last; library frames hidden):")
        lines.append("".join(frames.format()).rstrip("\n"))
    return "\n".join(lines)
