"""Query-count assertions over every alias: functions, pytest-style and ``TestCase`` methods.

Three call styles, told apart by their first arguments:

- per alias (crossprefetch's own): ``assert_num_queries(default=1, timeseries=2)``, the dict
  form ``assert_num_queries({"time-series": 2})``, ``total=``, ``info=``;
- pytest-django's, for one alias: ``assert_num_queries(3)``,
  ``assert_num_queries(3, connection=connections["legacy"], info="...")``,
  ``assert_num_queries(num=3, using="legacy")``;
- Django's callable form: ``assert_num_queries(3, func, *args, using="legacy", **kwargs)``
  (or a dict of counts per alias then ``func``) runs ``func(*args, **kwargs)`` in the block
  and returns what it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, TypeVar, overload

from django.db import DEFAULT_DB_ALIAS
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils.connection import ConnectionProxy

from crossprefetch import _test_run
from crossprefetch._observe.capture import QueryCapture, _check_alias, _configured_aliases

_T = TypeVar("_T")

#: Keyword arguments of pytest-django's call style; an alias of one of these names is
#: given in the dict form.
_PYTEST_DJANGO_KEYWORDS = frozenset({"num", "connection", "info", "using"})


class _QueryCountAssertion(QueryCapture):
    """Compares the captured counts with the expectations when the block ends."""

    def __init__(
        self,
        function: str,
        expected: Mapping[str, int],
        *,
        total: int | None,
        info: str | None,
        exact: bool,
        failure: type[BaseException] | None = None,
    ) -> None:
        super().__init__(label=function)
        self._expected = _expectations(function, expected, total, exact)
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
            # Under pytest (with crossprefetch's plugin) a failure as pytest.fail() raises
            # it, as pytest-django's fixtures do; it is an AssertionError all the same.
            raise (self._failure or _test_run.assertion_failure)(message)

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


@dataclass
class _Call:
    """One call of an assertion, whatever its style: the block and what to run in it."""

    expected: dict[str, int]
    total: int | None = None
    info: str | None = None
    function: Callable[..., Any] | None = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


def _parse(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Call:
    """Tell the call styles apart (see the module docstring) and check their arguments."""
    if args and _is_count(args[0]):
        return _single_alias(name, args[0], args[1:], kwargs)
    if not args and "num" in kwargs and _is_count(kwargs["num"]):
        rest = dict(kwargs)
        return _single_alias(name, rest.pop("num"), (), rest)
    expected = args[0] if args else None
    if expected is not None and not isinstance(expected, Mapping):
        raise TypeError(
            f"{name}({expected!r}, ...): the expected number of queries is an int (on one "
            "alias, 'default' unless using= or connection= names another), a dict "
            "{alias: count}, or keywords per alias (default=1, timeseries=2)."
        )
    if len(args) > 1:
        if not callable(args[1]):
            raise TypeError(
                f"{name}: after the dict of counts, the only positional argument is a "
                f"function to run in the block (Django's callable form), got {args[1]!r}."
            )
        return _Call(dict(expected or {}), function=args[1], args=args[2:], kwargs=kwargs)
    per_alias = dict(kwargs)
    total = per_alias.pop("total", None)
    info = per_alias.pop("info", None)
    misplaced = sorted(_PYTEST_DJANGO_KEYWORDS & per_alias.keys())
    if misplaced:
        raise TypeError(
            f"{name}: {', '.join(f'{key}=' for key in misplaced)} go(es) with a single "
            f"number of queries, as in pytest-django ({name}(1, using='legacy')); for "
            f"counts per alias give keywords or a dict ({name}({{'legacy': 1}}))."
        )
    merged = dict(expected or {})
    for alias in per_alias:
        if alias in merged:
            raise TypeError(f"{name}: alias {alias!r} given both in the dict and by keyword.")
    merged.update(per_alias)
    return _Call(merged, total=total, info=info)


def _single_alias(name: str, num: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Call:
    """pytest-django's ``(num, connection=None, info=None, *, using=None)`` or Django's
    ``(num, func, *args, using=..., **kwargs)``: a count on one alias."""
    if args and callable(args[0]) and not _is_connection(args[0]):
        rest = dict(kwargs)
        alias = _alias_of(name, None, rest.pop("using", None))
        return _Call({alias: num}, function=args[0], args=args[1:], kwargs=rest)
    if len(args) > 2:
        raise TypeError(
            f"{name}({num}, ...): with one number of queries, the positional arguments are "
            "connection and info (pytest-django's), or a function and its arguments "
            f"(Django's); got {len(args)} others."
        )
    options = dict(zip(("connection", "info"), args, strict=False))
    for key, value in kwargs.items():
        if key not in {"connection", "info", "using"}:
            raise TypeError(
                f"{name}({num}, ...): unexpected keyword {key}=. With one number of queries "
                "the keywords are connection=, info= and using= (pytest-django's); for "
                f"counts per alias give keywords only ({name}(default=1, timeseries=2))."
            )
        if key in options:
            raise TypeError(f"{name}: {key} given both by position and by keyword.")
        options[key] = value
    alias = _alias_of(name, options.get("connection"), options.get("using"))
    return _Call({alias: num}, info=options.get("info"))


def _alias_of(name: str, connection: Any, using: Any) -> str:
    if connection is not None and using is not None:
        raise ValueError(
            f'{name}: the "connection" and "using" parameters cannot be used together '
            "(as in pytest-django): give one of them."
        )
    if connection is not None:
        if not _is_connection(connection):
            raise TypeError(
                f"{name}(connection={connection!r}): connection is a Django database "
                "connection (django.db.connection, connections['alias']); or give "
                "using='alias'."
            )
        alias: str = connection.alias
        return alias
    if using is not None and not isinstance(using, str):
        raise TypeError(f"{name}(using={using!r}): using is a database alias, a str.")
    return DEFAULT_DB_ALIAS if using is None else using


def _is_connection(value: object) -> bool:
    """A ``DatabaseWrapper``, or ``django.db.connection`` (a proxy to the default one)."""
    return isinstance(value, BaseDatabaseWrapper | ConnectionProxy)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _run(
    name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    exact: bool,
    failure: type[BaseException] | None = None,
) -> Any:
    call = _parse(name, args, kwargs)
    block = _QueryCountAssertion(
        name, call.expected, total=call.total, info=call.info, exact=exact, failure=failure
    )
    if call.function is None:
        return block
    __tracebackhide__ = True
    with block:
        return call.function(*call.args, **call.kwargs)


class AssertNumQueries(Protocol):
    """The type of :func:`assert_num_queries`, :func:`assert_max_num_queries` and their fixtures."""

    @overload
    def __call__(
        self,
        expected: Mapping[str, int] | None = None,
        /,
        *,
        total: int | None = None,
        info: str | None = None,
        **per_alias: int,
    ) -> QueryCapture: ...

    @overload
    def __call__(
        self,
        num: int,
        /,
        connection: BaseDatabaseWrapper | None = None,
        info: str | None = None,
        *,
        using: str | None = None,
    ) -> QueryCapture: ...

    @overload
    def __call__(
        self,
        expected: int | Mapping[str, int],
        function: Callable[..., _T],
        /,
        *args: Any,
        **kwargs: Any,
    ) -> _T: ...


@overload
def assert_num_queries(
    expected: Mapping[str, int] | None = None,
    /,
    *,
    total: int | None = None,
    info: str | None = None,
    **per_alias: int,
) -> QueryCapture: ...


@overload
def assert_num_queries(
    num: int,
    /,
    connection: BaseDatabaseWrapper | None = None,
    info: str | None = None,
    *,
    using: str | None = None,
) -> QueryCapture: ...


@overload
def assert_num_queries(
    expected: int | Mapping[str, int], function: Callable[..., _T], /, *args: Any, **kwargs: Any
) -> _T: ...


def assert_num_queries(*args: Any, **kwargs: Any) -> Any:
    """Fail unless the block performs exactly these numbers of queries per alias.

    ``assert_num_queries(default=1, timeseries=2)`` or, for aliases that are not
    Python identifiers (or are named ``total``, ``info``, ``num``, ``connection`` or
    ``using``), the dict form ``assert_num_queries({"default": 1, "time-series": 2})``.
    Aliases not named are observed and reported but not asserted, unless ``total=`` (the
    number of queries on every alias together) covers them. ``info`` is appended to the
    failure message. The block yields a :class:`CapturedQueries`.

    pytest-django's call style counts one alias: ``assert_num_queries(3)`` on
    ``default``, ``assert_num_queries(3, connection=connection)`` or
    ``assert_num_queries(num=3, using="legacy", info="...")``. Django's callable form runs
    a function in the block: ``assert_num_queries(1, client.get, "/events/",
    using="default")`` (every other keyword goes to the function) returns its result;
    ``assert_num_queries({"default": 1, "timeseries": 1}, client.get, "/events/")``
    asserts several aliases so.

    A failure raises ``AssertionError``; under pytest, with crossprefetch's plugin, it
    raises :class:`crossprefetch.pytest_plugin.QueryCountFailed`, which is both
    ``pytest.fail.Exception`` (as pytest-django's fixtures fail) and ``AssertionError``.
    """
    return _run("assert_num_queries", args, kwargs, exact=True)


@overload
def assert_max_num_queries(
    expected: Mapping[str, int] | None = None,
    /,
    *,
    total: int | None = None,
    info: str | None = None,
    **per_alias: int,
) -> QueryCapture: ...


@overload
def assert_max_num_queries(
    num: int,
    /,
    connection: BaseDatabaseWrapper | None = None,
    info: str | None = None,
    *,
    using: str | None = None,
) -> QueryCapture: ...


@overload
def assert_max_num_queries(
    expected: int | Mapping[str, int], function: Callable[..., _T], /, *args: Any, **kwargs: Any
) -> _T: ...


def assert_max_num_queries(*args: Any, **kwargs: Any) -> Any:
    """Like :func:`assert_num_queries`, with every number an upper bound."""
    return _run("assert_max_num_queries", args, kwargs, exact=False)


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

            def test_detail(self):
                self.assertNumQueriesPerAlias(1, self.client.get, "/events/1/")

    They take every call style of :func:`assert_num_queries`, Django's callable form
    included. Failures raise the test case's ``failureException``.
    """

    def assertNumQueriesPerAlias(self, *args: Any, **kwargs: Any) -> Any:
        """See :func:`assert_num_queries`."""
        failure = self._failure_exception()
        return _run("assertNumQueriesPerAlias", args, kwargs, exact=True, failure=failure)

    def assertMaxNumQueriesPerAlias(self, *args: Any, **kwargs: Any) -> Any:
        """See :func:`assert_max_num_queries`."""
        failure = self._failure_exception()
        return _run("assertMaxNumQueriesPerAlias", args, kwargs, exact=False, failure=failure)

    def assertNoQueries(self, *aliases: str) -> QueryCapture:
        """See :func:`forbid_queries`."""
        return forbid_queries(*aliases)

    def _failure_exception(self) -> type[AssertionError]:
        failure = getattr(self, "failureException", AssertionError)
        return failure if issubclass(failure, AssertionError) else AssertionError


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
    expected: Mapping[str, int],
    total: int | None,
    exact: bool,
) -> dict[str, int]:
    merged = dict(expected)
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
