"""Which database errors are outages, which are bugs, and the queries never sent.

The failure policy degrades a group only when its database is *out*, not when the query is
wrong. The DB-API's exception classes say which, the way Django raises them:

* **outage** — :exc:`~django.db.OperationalError` (refused or lost connection, cancelled
  statement, a server-side or client-side timeout: a deadline's error is one too) and
  :exc:`~django.db.InterfaceError` (a connection already closed): degraded, and counted by
  the alias's circuit breaker;
* **bug** — :exc:`~django.db.ProgrammingError` (a missing table or column, bad SQL),
  :exc:`~django.db.DataError`, :exc:`~django.db.IntegrityError` and
  :exc:`~django.db.NotSupportedError`: raised even under ``on_error="degrade"`` and never
  counted, since degrading would hide a mistake that no waiting can repair. SQLite reports
  a missing table or bad SQL as an ``OperationalError`` with the result code
  ``SQLITE_ERROR``, and mysqlclient an unknown column or function (MariaDB/MySQL error
  1054, 1305, ...) as an ``OperationalError`` too: those are bugs as well;
* **other** — any other :exc:`~django.db.DatabaseError` (a corrupted SQLite file,
  ``InternalError``): degraded, as the spec asks, but not counted as an outage.

:class:`Refused` is the error of a query the fetch chain did not send at all (its breaker is
open, its bulkhead is full): degraded, never counted, never logged as a failure.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Literal

from django.db import (
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
)

Kind = Literal["outage", "bug", "other"]

_BUGS = (ProgrammingError, DataError, IntegrityError, NotSupportedError)
_OUTAGES = (OperationalError, InterfaceError)
#: SQLite's primary result code for an SQL error or a missing table or column
_SQLITE_ERROR = 1
#: MariaDB/MySQL server errors that mysqlclient raises as ``OperationalError`` but that say
#: the query is wrong: an unknown or ambiguous column, a GROUP BY the server refuses, an
#: unknown function or wrong arguments to one, collations that cannot be compared, a view
#: that no longer matches its tables.
_MYSQL_SQL_ERRORS = frozenset(
    {1052, 1054, 1055, 1056, 1066, 1111, 1140, 1247, 1267, 1271, 1305, 1356, 1582, 1583, 1630}
)


def kind(error: DatabaseError) -> Kind:
    """What ``error`` says about its database: out, a bug of the query, or neither."""
    if isinstance(error, Refused):
        return "other"
    if isinstance(error, _BUGS) or _sql_error(error):
        return "bug"
    if isinstance(error, _OUTAGES):
        return "outage"
    return "other"


def _sql_error(error: DatabaseError) -> bool:
    """A driver's error that the DB-API class calls operational but is the query's fault.

    SQLite's "no such table", "no such column", syntax errors: ``SQLITE_ERROR`` (the
    ``sqlite_errorcode`` attribute exists from Python 3.11); mysqlclient's server errors of
    :data:`_MYSQL_SQL_ERRORS`. Django re-raises the driver's error as its own, the driver's
    as ``__cause__`` (and the coalescing layer each member's copy with the shared error as
    its cause).
    """
    cause = error.__cause__
    for _ in range(3):  # the driver's error is at most two causes away
        if cause is None or not isinstance(cause, DatabaseError):
            break
        cause = cause.__cause__
    if isinstance(cause, sqlite3.Error):
        return getattr(cause, "sqlite_errorcode", None) == _SQLITE_ERROR
    if cause is not None and type(cause).__module__.startswith("MySQLdb"):
        code = cause.args[0] if cause.args else None
        return code in _MYSQL_SQL_ERRORS
    return False


class Refused(DatabaseError):
    """The query was not sent to its database; the message says why, naming the alias.

    Built from the message alone, like any exception, so that the coalescing layer can copy
    it for each request of a batch.
    """


class BreakerOpen(Refused):
    """The alias's circuit breaker is open, and this request is not its trial."""


class BulkheadFull(Refused):
    """``MAX_CONCURRENT`` queries of degrading specs are in flight on the alias already."""


@dataclass(frozen=True)
class Failure:
    """Why a unit degraded, as the failure policy hands it to
    :meth:`~crossprefetch._fetch.base.Unit.degraded`.

    ``summary`` may reach a client (a filter's 503): the exception's class
    (``OperationalError``), or what refused the query (``circuit breaker open on 'events'``).
    ``detail`` is the server's own words, for the log, the panel and ``LookupStats.error``
    only.
    """

    summary: str
    detail: str = ""
    breaker_open: bool = False

    @classmethod
    def of(cls, exc: DatabaseError, *, breaker_open: bool = False) -> Failure:
        if isinstance(exc, Refused):
            return cls(str(exc), breaker_open=breaker_open)
        return cls(type(exc).__name__, str(exc).strip(), breaker_open)

    def __str__(self) -> str:
        return f"{self.summary}: {self.detail}" if self.detail else self.summary


def breaker_open(alias: str) -> BreakerOpen:
    return BreakerOpen(f"circuit breaker open on {alias!r}")


def bulkhead_full(alias: str, in_flight: int) -> BulkheadFull:
    return BulkheadFull(f"bulkhead full: {in_flight} queries in flight on {alias!r}")
