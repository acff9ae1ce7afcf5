"""Query-count assertions over every alias: functions, pytest-style and ``TestCase`` methods."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Protocol

from crossprefetch._observe.capture import QueryCapture, _check_alias, _configured_aliases


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
