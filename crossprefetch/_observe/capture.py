"""Capture the queries of every database alias during a block: the base of
:mod:`crossprefetch.testing`'s assertions and N+1 detection.

Outside the ``testing`` package so that its modules share it without importing each
other through the package."""

from __future__ import annotations

import difflib
import functools
import inspect
import re
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import Any, TypeVar, overload

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from crossprefetch._observe.origin import Origin, cursor_caller, is_user_file, origin_of

_F = TypeVar("_F", bound=Callable[..., Any])

__all__ = [
    "CapturedQueries",
    "CapturedQuery",
    "ForbiddenQueryError",
    "QueryCapture",
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
    recent call last. ``time`` is the seconds the statement took.

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


class QueryCapture:
    """Context manager observing every alias; base of the assertions.

    On entry it installs one execute wrapper on every alias of ``connections``
    and yields a :class:`CapturedQueries`; on exit it removes the wrapper by
    identity, so blocks nest and other wrappers are left alone.

    Also a decorator, of plain and ``async`` functions: each call runs in a block
    of its own (``@assert_num_queries(default=1)``).
    """

    #: Record each query's :class:`~crossprefetch._observe.origin.Origin` (N+1 detection).
    _record_issuers = False

    def __init__(self, *, forbidden: tuple[str, ...] = (), label: str = "capture_queries") -> None:
        aliases = _configured_aliases()
        for alias in forbidden:
            _check_alias(alias, aliases, label)
        self._forbidden = frozenset(forbidden)
        self._label = label
        self._entry_frame: FrameType | None = None
        self._wrapped: list[BaseDatabaseWrapper] = []
        self._violation: ForbiddenQueryError | None = None
        self.captured = CapturedQueries(aliases)

    def __call__(self, function: _F) -> _F:
        """Use the block as a decorator: every call of ``function`` runs inside it."""
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                # Entered and left on the thread where Django runs the async ORM's queries
                # (sync_to_async's thread-sensitive thread), whose connections they use.
                from asgiref.sync import sync_to_async

                __tracebackhide__ = True
                await sync_to_async(self.__enter__)()
                try:
                    result = await function(*args, **kwargs)
                except BaseException as exc:
                    await sync_to_async(self.__exit__)(type(exc), exc, exc.__traceback__)
                    raise
                await sync_to_async(self.__exit__)(None, None, None)
                return result

            return run_async  # type: ignore[return-value]

        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            with self:
                return function(*args, **kwargs)

        return run  # type: ignore[return-value]

    def __enter__(self) -> CapturedQueries:
        self.captured = CapturedQueries(_configured_aliases())
        self._violation = None
        self._entry_frame = sys._getframe(1)
        self._wrapped = [connections[alias] for alias in self.captured.aliases]
        for connection in self._wrapped:
            connection.execute_wrappers.append(self._wrapper)
        return self.captured

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        __tracebackhide__ = True
        for connection in self._wrapped:
            wrappers = connection.execute_wrappers
            for index in range(len(wrappers) - 1, -1, -1):
                if wrappers[index] == self._wrapper:
                    del wrappers[index]
                    break
        self._wrapped = []
        self._entry_frame = None
        if self._violation is not None and not isinstance(exc_value, ForbiddenQueryError):
            # The code under test caught the error; the block still fails, on the first one.
            raise self._violation

    def _wrapper(
        self,
        execute: Callable[[str, Any, bool, dict[str, Any]], Any],
        sql: str,
        params: Any,
        many: bool,
        context: dict[str, Any],
    ) -> Any:
        __tracebackhide__ = True
        connection: BaseDatabaseWrapper = context["connection"]
        if (isinstance(sql, str) and _TRANSACTION_CONTROL.match(sql)) or _opening(connection):
            return execute(sql, params, many, context)
        alias = connection.alias
        caller = cursor_caller(sys._getframe(1))
        stack = _stack(caller, self._entry_frame)
        if alias in self._forbidden:
            query = CapturedQuery(alias, sql, sql, params, many, stack)
            error = ForbiddenQueryError(_forbidden_message(query, self._label), query)
            if self._violation is None:
                self._violation = error
            raise error
        issuer = origin_of(caller, params, self._entry_frame) if self._record_issuers else None
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
            self.captured.queries.append(
                CapturedQuery(
                    alias, str(executed or sql), sql, params, many, stack, duration, issuer
                )
            )


def _configured_aliases() -> tuple[str, ...]:
    return tuple(connections)


def _unknown_alias_message(alias: str, aliases: tuple[str, ...], function: str) -> str:
    known = ", ".join(repr(name) for name in aliases)
    message = f"{function}: unknown database alias {alias!r}; the configured aliases are {known}."
    close = difflib.get_close_matches(alias, aliases, n=1)
    if close:
        message += f" Did you mean {close[0]!r}?"
    return message


def _check_alias(alias: str, aliases: tuple[str, ...], function: str) -> None:
    if alias not in aliases:
        raise ValueError(_unknown_alias_message(alias, aliases, function))


def _opening(connection: BaseDatabaseWrapper) -> bool:
    """Whether ``connection`` is inside its own ``connect()``: a statement sent now sets
    up the new connection (``init_connection_state``, ``connection_created`` receivers)."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_name == "connect" and frame.f_locals.get("self") is connection:
            return True
        frame = frame.f_back
    return False


def _walk(frame: FrameType | None, stop: FrameType | None) -> Iterator[tuple[FrameType, int]]:
    while frame is not None:
        yield frame, frame.f_lineno
        if frame is stop:
            return
        frame = frame.f_back


def _stack(frame: FrameType, stop: FrameType | None) -> traceback.StackSummary:
    stack = traceback.StackSummary.extract(_walk(frame, stop), lookup_lines=False)
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
