"""A read that is not by keys: the rows a remote filter or ordering needs.

A filter asks the spec's database which rows pass its conditions; an ordering asks for the
rows' order. Neither is a lookup by keys, yet each is a query to the same database under the
same spec, with the same promises: its ``timeout`` (enforced by the server and by the
client's deadline), its alias's circuit breaker and bulkhead, coalescing with identical
reads of concurrent requests, and its cache when the spec caches. So a :class:`Read` goes
through the same layers as a group of lookups (:data:`crossprefetch._fetch.chain.READ_LAYERS`),
the layers that read keys aside, and :func:`query_read` is its bottom.

What differs is the answer when the database is out: a lookup degrades to its default, but
a list filtered without its filter would be a wrong answer, so a degrading read raises
:exc:`Unavailable`, which the filter backends answer with a 503 naming the filters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import islice
from typing import Any, NoReturn

from django.db import connections, models
from django.http import HttpRequest

from crossprefetch import _compat
from crossprefetch._fetch import deadline
from crossprefetch._fetch.base import Fetched
from crossprefetch._fetch.errors import Failure
from crossprefetch._identity import Identity, identify_read
from crossprefetch.conf import conf
from crossprefetch.spec import CrossDBPrefetch


class Unavailable(Exception):
    """The database of a degrading read is out (or was not asked): there are no rows to
    filter or order by. The message, which a client may see, names the alias and the kind
    of failure (``OperationalError``, ``circuit breaker open on 'events'``), never the
    server's own words; ``error`` holds them, as the log does."""

    def __init__(self, read: Read, failure: Failure) -> None:
        super().__init__(f"database {read.alias!r} failed ({failure.summary})")
        self.read = read
        self.error = str(failure)


@dataclass(eq=False)
class Read:
    """The first ``limit`` rows of ``rows`` (a ``values_list()`` QuerySet, not flat), read
    through ``spec`` for the filters or orderings named ``filters``."""

    rows: models.QuerySet[Any]
    spec: CrossDBPrefetch
    limit: int
    filters: tuple[str, ...]
    request: HttpRequest | None = None

    @property
    def alias(self) -> str:
        return self.rows.db

    @cached_property
    def identity(self) -> Identity | None:
        return identify_read(self.rows, self.spec, self.limit, self.request)

    # The rest of :class:`~crossprefetch._fetch.base.Unit`

    empty = False
    size = 1
    kind = "filters"
    outcome = "their lists answer 503"

    @property
    def names(self) -> tuple[str, ...]:
        return self.filters

    def window(self) -> float | None:
        window = self.spec.coalesce
        return (conf.COALESCE if window is None else window) or None

    def degraded(self, failure: Failure) -> NoReturn:
        raise Unavailable(self, failure)

    def combined(self, members: Sequence[Read]) -> Read:
        return self  # same identity, same rows

    def shares(self, fetched: Fetched, members: Sequence[Read]) -> list[Fetched]:
        """The same rows for every member, each in a list of its own (rows are tuples)."""
        return [fetched] + [Fetched(list(fetched.rows)) for _ in members[1:]]

    def coalesced_with(self, others: int) -> None:
        pass  # a read has no LookupStats


def query_read(read: Read) -> Fetched:
    """The bottom of the read chain: one query, under the spec's ``timeout`` and deadline."""
    spec = read.spec
    degrade = spec.error_policy() == "degrade"
    rows = deadline.run(
        read.alias,
        spec.statement_timeout(),
        lambda: at_most(read.rows, read.limit),
        isolate=degrade,
    )
    return Fetched(rows, 1)


def at_most(rows: models.QuerySet[Any], count: int) -> list[tuple[Any, ...]]:
    """The first ``count`` rows of a ``values_list()`` QuerySet (not ``flat``).

    Read in one fetch rather than Django's chunks of 100: a filter's remote query returns
    thousands of rows, and the chunks cost more than the rows. An ordered query on SQLite
    is read without ``LIMIT``, stopping after ``count`` rows: with a ``LIMIT``, SQLite sorts
    into a B-tree instead of its (faster) sorter.
    """
    if rows.query.order_by and connections[rows.db].vendor == "sqlite":
        read = rows.iterator(chunk_size=_CHUNK)
        try:
            return list(islice(read, count))
        finally:  # closes the cursor now, not when the generator is collected
            close = getattr(read, "close", None)
            if close is not None:
                close()
    limited = rows[:count]
    return _compat.values_list_rows(limited, count)


#: Rows per fetch when reading without ``LIMIT``.
_CHUNK = 2_000
