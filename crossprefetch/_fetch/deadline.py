"""The client's deadline: a remote query answers within its ``timeout``, whatever the server.

The server-side timeout (:mod:`crossprefetch._fetch.timeouts`) stops a slow statement, but
a server that does not read its socket (a stopped process, a frozen host: TCP still
accepts, nothing answers) never reads it; nor does it bound connecting, or waiting for a
connection of Django's PostgreSQL pool. psycopg's cancel goes through the same dead server,
and ``tcp_user_timeout`` does not fire on a loopback connection. So the client keeps its own
deadline, ``timeout`` plus :data:`GRACE`:

* **Outside a transaction**, the query runs on a worker thread of the alias
  (:mod:`crossprefetch._fetch.workers`), with the worker's own connection; the request
  waits for it until the deadline. Connecting, waiting for the pool and the query are all
  inside it. Past the deadline, the worker connection's socket is shut down, so the worker's
  blocked read fails at once, and the connection is closed: never handed out again (a pool
  discards a connection whose socket is gone). The request gets :exc:`DeadlineExceeded`.
* **Inside an atomic block** on the alias, or on a connection that carries a tenant
  (``schema_name``, ``tenant``, ``CONNECTION_SCOPE``: a worker's connection would not), the
  query must run on the request's own connection: it runs on the request's thread, and a
  watchdog shuts that connection's socket at the deadline. The transaction is then lost,
  as it would be to any outage; the atomic block's owner sees the error, at the latest
  when the block ends (where Django's attempt to connect again fails at once). Outside a
  transaction the cut connection is closed.

SQLite has no server to hang and no socket: its queries run inline, under the server-side
limit alone. So do queries of specs without a ``timeout``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

from django.db import OperationalError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from crossprefetch._fetch import timeouts, workers
from crossprefetch._identity import connection_scope

T = TypeVar("T")

#: Seconds the client waits beyond ``timeout``: the server's own timeout fires first when
#: the server is alive, and its error says more than the client's.
GRACE = 0.02


class DeadlineExceeded(OperationalError):
    """The database did not answer within the spec's ``timeout``: its connection was closed.

    An ``OperationalError``: an outage, degraded and counted by the circuit breaker."""


def run(alias: str, seconds: float | None, work: Callable[[], T], *, isolate: bool) -> T:
    """``work()`` (queries on ``alias``) under the server's timeout of ``seconds`` and the
    client's deadline of ``seconds`` + :data:`GRACE`."""
    connection = connections[alias]
    if not seconds or not _has_socket(connection):
        with timeouts.statement_scope(alias, seconds, isolate=isolate):
            return work()
    deadline = seconds + GRACE
    if connection.in_atomic_block or connection_scope(connection) is not None:
        return _watched(connection, deadline, lambda: _scoped(alias, seconds, work, isolate))
    try:
        return workers.run(alias, lambda: _scoped(alias, seconds, work, isolate), deadline)
    except workers.Abandoned as exc:
        raise _exceeded(alias, seconds) from exc


def _scoped(alias: str, seconds: float, work: Callable[[], T], isolate: bool) -> T:
    with timeouts.statement_scope(alias, seconds, isolate=isolate):
        return work()


def _watched(connection: BaseDatabaseWrapper, deadline: float, work: Callable[[], T]) -> T:
    """``work()`` on this thread's connection, whose socket a watchdog shuts at the deadline.

    ``state`` under ``lock``: ``"running"`` until the work ends (``"done"``) or the watchdog
    fires first (``"cut"``); the socket is shut only while ``"running"``. A cut connection
    is closed (never used again) unless an atomic block is open on it: its owner then sees
    the transaction lost, and Django closes the connection when the block ends.
    """
    lock = threading.Lock()
    state = ["running"]

    def cut() -> None:
        with lock:
            if state[0] != "running":
                return
            state[0] = "cut"
            workers.shut_down(connection)

    watchdog = threading.Timer(deadline, cut)
    watchdog.daemon = True
    watchdog.start()
    error: Exception | None = None
    try:
        return work()
    except Exception as exc:
        error = exc
        raise
    finally:
        watchdog.cancel()
        with lock:
            cut_off = state[0] == "cut"
            state[0] = "done"
        if cut_off:
            exceeded = _exceeded(connection.alias, deadline - GRACE)
            if connection.in_atomic_block:
                _refuse_next_connect(connection, exceeded)
            else:
                with contextlib.suppress(Exception):
                    connection.close()
            if error is not None:
                raise exceeded from error


def _refuse_next_connect(connection: BaseDatabaseWrapper, error: DeadlineExceeded) -> None:
    """Make the next ``connect()`` of this thread's ``connection`` raise ``error`` at once.

    A connection cut inside an atomic block stays open to its owner, who must see the
    transaction lost; when the outermost block ends, Django closes the broken connection
    and connects again to turn autocommit back on, to the hung server, where connecting
    never ends. That one attempt fails at once instead, out of the block; the next connects
    as usual. (Were the block to end without connecting, the thread's next connect would
    fail once.)
    """

    def refuse() -> None:
        del connection.connect  # the class's method again
        raise error

    connection.connect = refuse  # type: ignore[method-assign]


def _has_socket(connection: BaseDatabaseWrapper) -> bool:
    return connection.vendor != "sqlite"


def _exceeded(alias: str, seconds: float) -> DeadlineExceeded:
    return DeadlineExceeded(
        f"database {alias!r} did not answer within the timeout ({seconds:g} s); the "
        "connection was closed"
    )
