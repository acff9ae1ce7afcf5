"""Query-count assertions that watch every database alias at once.

Django's ``assertNumQueries`` and pytest-django's ``django_assert_num_queries``
observe one connection per call, so a test of a cross-database endpoint needs
one nested block per alias and still misses queries on the aliases it did not
name. The context managers here observe every alias in ``DATABASES`` with a
single block:

.. code-block:: python

    from crossprefetch.testing import assert_num_queries, forbid_queries

    with assert_num_queries(default=1, timeseries=1):
        client.get("/events/")

    with forbid_queries("default"):
        serializer.data

They work by installing an execute wrapper on the ``DatabaseWrapper`` of every
alias (see ``BaseDatabaseWrapper.execute_wrapper``). The wrapper lives on the
Django object, not on the DB-API connection, so a connection that is opened
lazily inside the block is observed too, and nothing is connected eagerly.

What counts as a query: every statement sent through a Django cursor
(``execute`` and ``executemany``, the latter counted once, as Django does),
except transaction control (``BEGIN``, ``COMMIT``, ``ROLLBACK``,
``SAVEPOINT``, ``RELEASE SAVEPOINT``). Those depend on the backend (SQLite
sends ``BEGIN`` as SQL, PostgreSQL does not) and on whether the test runs in
``TestCase`` or ``TransactionTestCase``, so leaving them out makes a count the
same everywhere. Nor are the statements a connection runs while it opens
(the backend's own setup, such as MySQL's ``SET SQL_AUTO_IS_NULL = 0``, and
``connection_created`` receivers): Django's ``CaptureQueriesContext`` opens the
connection before it starts counting, and a lazily opened connection here
counts the same. Like Django's own assertions, only the current thread's
connections are observed.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
import sysconfig
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from types import FrameType, TracebackType
from typing import Any, Protocol

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

__all__ = [
    "AssertNumQueries",
    "CapturedQueries",
    "CapturedQuery",
    "CrossDBQueryAssertionsMixin",
    "ForbiddenQueryError",
    "QueryCapture",
    "assert_max_num_queries",
    "assert_num_queries",
    "capture_queries",
    "forbid_queries",
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
    recent call last.
    """

    alias: str
    sql: str
    raw_sql: str
    params: Any
    many: bool
    stack: traceback.StackSummary = field(repr=False, compare=False)

    @property
    def origin(self) -> traceback.FrameSummary | None:
        """The innermost frame outside Django and the standard library: who issued the query."""
        frames = _user_frames(self.stack)
        return frames[-1] if frames else None


class CapturedQueries:
    """The queries seen on every alias during a block, available after it ends.

    ``captured["default"]`` lists the queries on one alias (an empty list for a
    configured alias that saw none), ``captured.queries`` all of them in
    execution order, ``captured.count("default")`` or ``captured.count()`` the
    numbers, ``captured.counts`` a ``{alias: count}`` dict. ``len(captured)``
    and iteration cover all aliases, like Django's ``CaptureQueriesContext``.
    """

    def __init__(self, aliases: tuple[str, ...]) -> None:
        self.aliases = aliases
        self.queries: list[CapturedQuery] = []

    def __getitem__(self, alias: str) -> list[CapturedQuery]:
        if alias not in self.aliases:
            raise KeyError(_unknown_alias_message(alias, self.aliases, "CapturedQueries"))
        return [query for query in self.queries if query.alias == alias]

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
    """

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
        stack = _stack(_cursor_caller(sys._getframe(1)), self._entry_frame)
        if alias in self._forbidden:
            query = CapturedQuery(alias, sql, sql, params, many, stack)
            error = ForbiddenQueryError(_forbidden_message(query, self._label), query)
            if self._violation is None:
                self._violation = error
            raise error
        try:
            return execute(sql, params, many, context)
        finally:
            executed = sql
            if not many:
                try:
                    executed = connection.ops.last_executed_query(context["cursor"], sql, params)
                except Exception:  # the raw SQL is good enough for a report
                    executed = sql
            self.captured.queries.append(
                CapturedQuery(alias, str(executed or sql), sql, params, many, stack)
            )


class _QueryCountAssertion(QueryCapture):
    """Compares the captured counts with the expectations when the block ends."""

    def __init__(
        self,
        function: str,
        expected: Mapping[str, int] | None,
        per_alias: Mapping[str, int],
        *,
        total: int | None,
        info: str | None,
        exact: bool,
        failure: type[AssertionError] = AssertionError,
    ) -> None:
        super().__init__(label=function)
        self._expected = _expectations(function, expected, per_alias, total, exact)
        self._total = total
        self._info = info
        self._exact = exact
        self._failure = failure

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        __tracebackhide__ = True
        super().__exit__(exc_type, exc_value, exc_tb)
        if exc_type is not None:
            return
        message = self._failure_message()
        if message is not None:
            raise self._failure(message)

    def _failed(self, expected: int, performed: int) -> bool:
        return performed != expected if self._exact else performed > expected

    def _failure_message(self) -> str | None:
        counts = self.captured.counts
        or_less = "" if self._exact else " or less"
        lines = [
            _expectation_line(expected, or_less, f"on {alias!r}", counts[alias])
            for alias, expected in self._expected.items()
            if self._failed(expected, counts[alias])
        ]
        performed = len(self.captured)
        if self._total is not None and self._failed(self._total, performed):
            lines.append(_expectation_line(self._total, or_less, "in total", performed))
        if not lines:
            return None
        if self._info:
            lines.append(self._info)
        for alias in self.captured.aliases:
            lines.append("")
            lines.extend(self._alias_report(alias))
        return "\n".join(lines)

    def _alias_report(self, alias: str) -> list[str]:
        queries = self.captured[alias]
        if alias in self._expected:
            note = f"expected {'' if self._exact else 'at most '}{self._expected[alias]}"
        elif self._total is not None:
            note = "counted in the total"
        else:
            note = "not asserted"
        header = f"Queries on {alias!r} ({len(queries)}, {note}):"
        if not queries:
            return [f"{header} none"]
        lines = [header, "=" * len(header)]
        width = len(str(len(queries)))
        for number, query in enumerate(queries, start=1):
            prefix = f"{number:>{width}}. "
            text = query.sql + (" [executemany]" if query.many else "")
            lines.append(prefix + text.replace("\n", "\n" + " " * len(prefix)))
        return lines


class AssertNumQueries(Protocol):
    """The type of :func:`assert_num_queries`, :func:`assert_max_num_queries` and their fixtures."""

    def __call__(
        self,
        expected: Mapping[str, int] | None = None,
        /,
        *,
        total: int | None = None,
        info: str | None = None,
        **per_alias: int,
    ) -> QueryCapture: ...


def assert_num_queries(
    expected: Mapping[str, int] | None = None,
    /,
    *,
    total: int | None = None,
    info: str | None = None,
    **per_alias: int,
) -> QueryCapture:
    """Fail unless the block performs exactly these numbers of queries per alias.

    ``assert_num_queries(default=1, timeseries=2)`` or, for aliases that are not
    Python identifiers (or are named ``total`` or ``info``), the dict form
    ``assert_num_queries({"default": 1, "time-series": 2})``. Aliases not named
    are observed and reported but not asserted, unless ``total=`` (the number
    of queries on every alias together) covers them. ``info`` is appended to
    the failure message. The block yields a :class:`CapturedQueries`.
    """
    return _QueryCountAssertion(
        "assert_num_queries", expected, per_alias, total=total, info=info, exact=True
    )


def assert_max_num_queries(
    expected: Mapping[str, int] | None = None,
    /,
    *,
    total: int | None = None,
    info: str | None = None,
    **per_alias: int,
) -> QueryCapture:
    """Like :func:`assert_num_queries`, with every number an upper bound."""
    return _QueryCountAssertion(
        "assert_max_num_queries", expected, per_alias, total=total, info=info, exact=False
    )


def forbid_queries(*aliases: str) -> QueryCapture:
    """Raise :class:`ForbiddenQueryError` at the first query on ``aliases`` (every alias if none).

    The error carries the SQL and the frame that issued it, and is raised
    before the statement reaches the database. If the code under test catches
    it, the block raises it again on exit. Queries on other aliases are
    captured in the yielded :class:`CapturedQueries`.
    """
    label = f"forbid_queries({', '.join(map(repr, aliases))})"
    return QueryCapture(forbidden=aliases or _configured_aliases(), label=label)


def capture_queries() -> QueryCapture:
    """Observe every alias without asserting anything; yields :class:`CapturedQueries`."""
    return QueryCapture()


class CrossDBQueryAssertionsMixin:
    """The assertions of this module as methods, for ``TestCase`` and ``APITestCase``.

    .. code-block:: python

        class EventTests(CrossDBQueryAssertionsMixin, APITestCase):
            databases = {"default", "timeseries"}

            def test_list(self):
                with self.assertNumQueriesPerAlias(default=1, timeseries=1):
                    self.client.get("/events/")

    Failures raise the test case's ``failureException``.
    """

    def assertNumQueriesPerAlias(
        self,
        expected: Mapping[str, int] | None = None,
        /,
        *,
        total: int | None = None,
        info: str | None = None,
        **per_alias: int,
    ) -> QueryCapture:
        """See :func:`assert_num_queries`."""
        return _QueryCountAssertion(
            "assertNumQueriesPerAlias",
            expected,
            per_alias,
            total=total,
            info=info,
            exact=True,
            failure=self._failure_exception(),
        )

    def assertMaxNumQueriesPerAlias(
        self,
        expected: Mapping[str, int] | None = None,
        /,
        *,
        total: int | None = None,
        info: str | None = None,
        **per_alias: int,
    ) -> QueryCapture:
        """See :func:`assert_max_num_queries`."""
        return _QueryCountAssertion(
            "assertMaxNumQueriesPerAlias",
            expected,
            per_alias,
            total=total,
            info=info,
            exact=False,
            failure=self._failure_exception(),
        )

    def assertNoQueries(self, *aliases: str) -> QueryCapture:
        """See :func:`forbid_queries`."""
        return forbid_queries(*aliases)

    def _failure_exception(self) -> type[AssertionError]:
        failure = getattr(self, "failureException", AssertionError)
        return failure if issubclass(failure, AssertionError) else AssertionError


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


def _check_count(function: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"{function}: the number of queries for {name} must be an int, got {value!r}."
        )
    if value < 0:
        raise ValueError(f"{function}: the number of queries for {name} cannot be negative.")
    return value


def _expectations(
    function: str,
    expected: Mapping[str, int] | None,
    per_alias: Mapping[str, int],
    total: int | None,
    exact: bool,
) -> dict[str, int]:
    merged = dict(expected or {})
    for alias in per_alias:
        if alias in merged:
            raise TypeError(f"{function}: alias {alias!r} given both in the dict and by keyword.")
    merged.update(per_alias)
    if not merged and total is None:
        raise TypeError(
            f"{function}: give the expected number of queries per alias "
            f"(e.g. default=1), a dict of them, or total=."
        )
    aliases = _configured_aliases()
    for alias, count in merged.items():
        _check_alias(alias, aliases, function)
        _check_count(function, repr(alias), count)
    if total is not None:
        _check_count(function, "total", total)
        if exact and total < sum(merged.values()):
            raise ValueError(
                f"{function}: total={total} is less than the sum of the per-alias "
                f"expectations ({sum(merged.values())})."
            )
    return merged


def _expectation_line(expected: int, or_less: str, where: str, performed: int) -> str:
    verb = "was" if performed == 1 else "were"
    return f"Expected to perform {expected} queries{or_less} {where} but {performed} {verb} done"


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


def _cursor_caller(frame: FrameType) -> FrameType:
    """The frame of Django's cursor that runs the wrappers, whatever wrappers sit between.

    Other execute wrappers (crossprefetch's own cache invalidation, django-read-only, ...)
    may run before this one; their frames say nothing about who issued the query.
    """
    current: FrameType | None = frame
    while current is not None:
        if current.f_code.co_name == "_execute_with_wrappers":
            return current
        current = current.f_back
    return frame


def _stack(frame: FrameType, stop: FrameType | None) -> traceback.StackSummary:
    stack = traceback.StackSummary.extract(_walk(frame, stop), lookup_lines=False)
    stack.reverse()
    return stack


@cache
def _library_paths() -> tuple[str, ...]:
    import asgiref
    import django

    paths = {
        os.path.dirname(django.__file__),
        os.path.dirname(asgiref.__file__),
        sysconfig.get_paths()["stdlib"],
        sysconfig.get_paths()["platstdlib"],
    }
    return tuple(os.path.join(path, "") for path in paths)


def _user_frames(stack: traceback.StackSummary) -> list[traceback.FrameSummary]:
    """Frames outside Django, asgiref, the standard library and this module."""
    library = _library_paths()
    return [
        frame
        for frame in stack
        if frame.filename != __file__ and not frame.filename.startswith(library)
    ]


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
        lines.append("Stack (most recent call last; Django and standard library frames hidden):")
        lines.append("".join(frames.format()).rstrip("\n"))
    return "\n".join(lines)
