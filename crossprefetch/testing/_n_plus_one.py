"""``detect_n_plus_one``: fail when one SQL shape repeats on an alias past a threshold."""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType

from crossprefetch._observe.capture import QueryCapture, _check_alias, _configured_aliases
from crossprefetch._observe.repeats import Query, Repeat, find_repeats, report
from crossprefetch.conf import conf


class NPlusOneError(AssertionError):
    """Raised by :func:`detect_n_plus_one`; ``.repeats`` lists what repeated."""

    def __init__(self, message: str, repeats: list[Repeat]) -> None:
        super().__init__(message)
        self.repeats = repeats

    def __reduce__(self) -> tuple[type[NPlusOneError], tuple[str, list[Repeat]]]:
        return type(self), (str(self), self.repeats)


class NPlusOneDetector(QueryCapture):
    """The block (or decorated function) of :func:`detect_n_plus_one`."""

    def __init__(self, threshold: int | None, aliases: tuple[str, ...]) -> None:
        super().__init__(label="detect_n_plus_one", issuers=True)
        if threshold is not None and (
            isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1
        ):
            raise ValueError(
                f"detect_n_plus_one(threshold={threshold!r}): the threshold is how many times "
                "one SQL shape may run on an alias, an int of at least 1."
            )
        configured = _configured_aliases()
        for alias in aliases:
            _check_alias(alias, configured, "detect_n_plus_one")
        self.threshold = threshold
        self.aliases = aliases
        self.repeats: list[Repeat] = []

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
        threshold = conf.N_PLUS_ONE_THRESHOLD if self.threshold is None else self.threshold
        queries = [
            Query(q.alias, q.sql, q.raw_sql, q.issuer)
            for q in self.captured.queries
            if not self.aliases or q.alias in self.aliases
        ]
        self.repeats = find_repeats(queries, threshold)
        if self.repeats:
            raise NPlusOneError(report(self.repeats, threshold), self.repeats)


def detect_n_plus_one(
    threshold: int | None = None, *, aliases: Iterable[str] = ()
) -> NPlusOneDetector:
    """Fail when one SQL shape (parameters stripped) runs more than ``threshold`` times on a
    database alias: the signature of a query per row.

    Every alias is watched at once (or only those in ``aliases=``). The :class:`NPlusOneError` names
    the alias, the table, the count, the code that issued the queries (the serializer
    method or field, file and line) and the ``CrossDBPrefetch`` that would fetch the rows
    once. ``threshold`` defaults to ``CROSSPREFETCH["N_PLUS_ONE_THRESHOLD"]`` (2). A
    context manager yielding :class:`CapturedQueries`, and a decorator.
    """
    return NPlusOneDetector(threshold, tuple(aliases))
