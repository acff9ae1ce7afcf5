"""Where a lookup's statements run: a time limit the database enforces, and a scope they
cannot leave broken.

The time limit is the server's own, so that a slow reference database costs at most that
long and the statement stops running there too:

* PostgreSQL: ``statement_timeout``, set with ``set_config(..., is_local => true)`` inside
  a transaction (or a savepoint when one is open already) that ends with the block, so it
  never applies to the connection's later statements;
* MariaDB: ``SET STATEMENT max_statement_time=N FOR SELECT ...``; MySQL: the
  ``MAX_EXECUTION_TIME`` optimizer hint; both rewrite only this block's ``SELECT`` s;
* SQLite: a progress handler that aborts the statement once the time has passed,
  removed before the block returns.

Other backends run without a limit. Inside an atomic block the statements also run in a
savepoint, rolled back when they fail: a failed or cancelled statement would otherwise
leave a PostgreSQL transaction aborted, refusing every later statement of the request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from typing import Any

from django.db import DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

#: SQLite virtual-machine steps between two looks at the clock (well under a millisecond).
_SQLITE_STEPS = 10_000


@contextmanager
def statement_scope(alias: str, seconds: float | None, *, isolate: bool) -> Iterator[None]:
    """Run the block's statements on ``alias`` with at most ``seconds`` of server time.

    ``isolate``: in an atomic block, run them in a savepoint even without a time limit, so
    that a failure leaves the transaction as it was (the failure policy is to go on).
    """
    if not seconds and not isolate:
        yield
        return
    connection = connections[alias]
    postgres = bool(seconds) and connection.vendor == "postgresql"
    if not connection.in_atomic_block:
        if postgres:  # a transaction of its own holds the local setting
            assert seconds is not None
            with transaction.atomic(using=alias):
                try:
                    _set_local_timeout(connection, seconds)
                    yield
                except BaseException:
                    _close_if_broken(connection)
                    raise
            return
        with _limit(connection, seconds):
            yield
        return
    sid = connection.savepoint()
    try:
        if postgres:
            assert seconds is not None
            _set_local_timeout(connection, seconds)
        with nullcontext() if postgres else _limit(connection, seconds):
            yield
    except BaseException:
        _rollback_quietly(connection, sid)
        raise
    if sid is not None:
        if postgres:  # releasing the savepoint would keep the setting until the commit
            connection.savepoint_rollback(sid)
        connection.savepoint_commit(sid)


def _set_local_timeout(connection: BaseDatabaseWrapper, seconds: float) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('statement_timeout', %s, true)", [f"{_milliseconds(seconds)}ms"]
        )


def _close_if_broken(connection: BaseDatabaseWrapper) -> None:
    """Close a connection whose socket is gone (shut by the client's deadline, or the server
    died) while the block's transaction is still open: Django's atomic block then ends with
    the connection closed, where it would otherwise connect again to turn autocommit back on
    (and wait for a hung server). psycopg 3's ``broken``, psycopg2's ``closed``."""
    raw: Any = connection.connection
    if raw is not None and (getattr(raw, "broken", False) or getattr(raw, "closed", False)):
        connection.close()


def _rollback_quietly(connection: BaseDatabaseWrapper, sid: str | None) -> None:
    """Roll back to the savepoint; a connection too broken for that raises its own error."""
    if sid is None:
        return
    with suppress(DatabaseError):  # the server is gone: the statement's own error says more
        connection.savepoint_rollback(sid)


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _limit(connection: BaseDatabaseWrapper, seconds: float | None) -> Any:
    """A context in which the backend limits each statement's time, where it can."""
    if not seconds:
        return nullcontext()
    if connection.vendor == "mysql":
        return connection.execute_wrapper(_mysql_limit(connection, seconds))
    if connection.vendor == "sqlite":
        return _sqlite_deadline(connection, seconds)
    return nullcontext()


def _mysql_limit(connection: BaseDatabaseWrapper, seconds: float) -> Callable[..., Any]:
    if getattr(connection, "mysql_is_mariadb", False):
        prefix = f"SET STATEMENT max_statement_time={seconds:g} FOR "

        def rewrite(sql: str) -> str:
            return prefix + sql
    else:
        hint = f"SELECT /*+ MAX_EXECUTION_TIME({_milliseconds(seconds)}) */"

        def rewrite(sql: str) -> str:
            return hint + sql[len("SELECT") :]

    def wrapper(
        execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        if sql[:6].upper() == "SELECT":
            sql = rewrite(sql)
        return execute(sql, params, many, context)

    return wrapper


@contextmanager
def _sqlite_deadline(connection: BaseDatabaseWrapper, seconds: float) -> Iterator[None]:
    """Abort the block's statements once ``seconds`` have passed; never a statement after it.

    A progress handler, which SQLite calls from the running statement itself every so many
    virtual-machine steps: unlike ``interrupt()`` from a timer, it cannot fire before the
    statement starts (and be lost) on a machine too busy to start it in time.
    """
    connection.ensure_connection()
    raw = connection.connection
    deadline = time.monotonic() + seconds

    def past_deadline() -> int:
        return 1 if time.monotonic() >= deadline else 0

    raw.set_progress_handler(past_deadline, _SQLITE_STEPS)
    try:
        yield
    finally:
        raw.set_progress_handler(None, _SQLITE_STEPS)
