"""Worker threads per database alias, each with its own connection: where a query waits for
a server, so that the request does not have to (:mod:`crossprefetch._fetch.deadline`).

A request hands a job to an idle worker of the alias (or a new one) and waits for it until
its deadline. A worker runs one job at a time, in a copy of the request's context (so the
query captures of :mod:`crossprefetch._observe` count its queries), on its own
thread-local Django connection, kept between jobs (returned to Django's pool after each
job when the alias has one, closed after each job in a test run). When the request's own
connection of the alias logs its queries (``DEBUG``, ``CaptureQueriesContext``,
``assertNumQueries``), the job's queries are logged in it too, as if it had sent them.
Past the deadline the request abandons the job: the worker's socket is shut down, its
blocked read fails, and the worker closes that connection before it takes another job —
an abandoned connection is never used again.

Workers are daemon threads; one idle for :data:`IDLE_SECONDS` closes its connection and
ends. At most :data:`MAX_BUSY` are busy per alias: a server that hangs in the middle of
connecting (where no socket can be shut yet) holds its workers until it answers or dies,
and past that many, jobs are refused at once rather than starting more threads.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import queue
import socket
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from crossprefetch._fetch import errors
from crossprefetch._test_run import running_tests

T = TypeVar("T")

#: Seconds an idle worker waits for a job before it closes its connection and ends.
IDLE_SECONDS = 30.0

#: Whether workers close their connection after each job in a test run (see ``_after``); a
#: test of a connection kept open across a hang sets it false.
CLOSE_IN_TESTS = True

#: Busy workers per alias at most; a job over it is refused (:class:`errors.BulkheadFull`).
MAX_BUSY = 64


class Abandoned(Exception):
    """The deadline passed before the worker answered; its connection is being closed."""


class _Job:
    """One call. ``state`` moves ``queued`` → ``running`` → ``done``, or to ``abandoned``
    from ``queued`` or ``running``; every move is made under ``lock``, and the socket of
    ``connection`` is shut only while the job is ``running`` and under that lock, so a
    worker that has moved on to another job is never cut."""

    def __init__(self, work: Callable[[], Any], log_to: BaseDatabaseWrapper | None) -> None:
        self.work = work
        #: The request's connection whose ``queries_log`` gets the job's queries, or ``None``.
        self.log_to = log_to
        self.context = contextvars.copy_context()
        self.lock = threading.Lock()
        self.state = "queued"
        self.connection: BaseDatabaseWrapper | None = None
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class _Worker(threading.Thread):
    def __init__(self, workers: _Workers) -> None:
        super().__init__(name=f"crossprefetch-{workers.alias}", daemon=True)
        self.workers = workers
        self.jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()

    def run(self) -> None:
        alias = self.workers.alias
        try:
            while True:
                try:
                    job = self.jobs.get(timeout=IDLE_SECONDS)
                except queue.Empty:
                    if self.workers.retire(self):
                        return
                    continue
                if job is _STOP:
                    return
                self._do(job, connections[alias])
                if not self.workers.rest(self):
                    return
        finally:
            with contextlib.suppress(Exception):
                connections[alias].close()

    def _do(self, job: _Job, connection: BaseDatabaseWrapper) -> None:
        with job.lock:
            if job.state == "abandoned":  # the request gave up while the job waited
                job.done.set()
                return
            job.state = "running"
            job.connection = connection
        logged = _start_log(connection) if job.log_to is not None else None
        try:
            job.result = job.context.run(job.work)
        except BaseException as exc:  # handed to the request, which raises it
            job.error = exc
        finally:
            with job.lock:
                abandoned = job.state == "abandoned"
                if logged is not None:
                    sent = _end_log(connection, logged)
                    if job.log_to is not None and not abandoned:  # the request still waits
                        job.log_to.queries_log.extend(sent)
                job.state = "done"
            job.done.set()
            _after(connection, abandoned)


def _start_log(connection: BaseDatabaseWrapper) -> tuple[bool, deque[dict[str, Any]]]:
    """Log the job's queries apart: what to restore after it."""
    saved = (connection.force_debug_cursor, connection.queries_log)
    connection.force_debug_cursor = True
    connection.queries_log = deque(maxlen=connection.queries_limit)
    return saved


def _end_log(
    connection: BaseDatabaseWrapper, saved: tuple[bool, deque[dict[str, Any]]]
) -> deque[dict[str, Any]]:
    """The queries the job sent; the connection logs as before."""
    sent = connection.queries_log
    connection.force_debug_cursor, connection.queries_log = saved
    return sent


def _after(connection: BaseDatabaseWrapper, abandoned: bool) -> None:
    """Close a connection that was cut or broke; give a pooled one back to its pool. In a
    test run, close it after every job: a test database cannot be dropped while a worker
    holds a connection to it."""
    with contextlib.suppress(Exception):
        pooled = connection.settings_dict.get("OPTIONS", {}).get("pool")
        if abandoned or pooled or (CLOSE_IN_TESTS and running_tests()):
            connection.close()
        elif connection.errors_occurred:
            connection.errors_occurred = False
            if connection.connection is not None and not connection.is_usable():
                connection.close()


class _Workers:
    """The workers of one alias. Invariants (under ``_lock``): every worker is in ``_idle``
    (waiting on its queue, which is empty) or counted in ``_busy`` (running or about to
    run exactly one job), never both; ``_busy <= MAX_BUSY``."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._busy = 0

    def submit(self, job: _Job) -> None:
        with self._lock:
            if self._idle:
                worker = self._idle.pop()
            elif self._busy >= MAX_BUSY:
                raise errors.bulkhead_full(self.alias, self._busy)
            else:
                worker = _Worker(self)
                worker.start()
            self._busy += 1
            worker.jobs.put(job)

    def rest(self, worker: _Worker) -> bool:
        """The worker finished its job: it waits for the next one."""
        with self._lock:
            self._busy -= 1
            self._idle.append(worker)
        return True

    def retire(self, worker: _Worker) -> bool:
        """The worker was idle for ``IDLE_SECONDS``: it ends unless a job was just given it."""
        with self._lock:
            if worker not in self._idle or not worker.jobs.empty():
                return False
            self._idle.remove(worker)
            return True

    def retire_all(self) -> None:
        """End the idle workers (their connections close); busy ones end after their job."""
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.jobs.put(_STOP)


_STOP = _Job(lambda: None, None)
_STOP.state = "abandoned"

_by_alias: dict[str, _Workers] = {}
_by_alias_lock = threading.Lock()


def run(alias: str, work: Callable[[], T], deadline: float) -> T:
    """``work()`` on a worker of ``alias``; raises :exc:`Abandoned` past ``deadline`` seconds
    (the worker's connection then closed), else what ``work`` raised."""
    workers = _by_alias.get(alias)
    if workers is None:
        with _by_alias_lock:
            workers = _by_alias.setdefault(alias, _Workers(alias))
    origin = connections[alias]  # the request's own; no connection is opened
    job = _Job(work, origin if origin.queries_logged else None)
    workers.submit(job)
    if not job.done.wait(deadline):
        with job.lock:
            if job.state != "done":
                if job.state == "running" and job.connection is not None:
                    shut_down(job.connection)
                job.state = "abandoned"
                raise Abandoned(alias)
    if job.error is not None:
        raise job.error
    result: T = job.result
    return result


def reset() -> None:
    """End every idle worker, closing its connection (for tests that change ``DATABASES``)."""
    with _by_alias_lock:
        every = list(_by_alias.values())
        _by_alias.clear()
    for workers in every:
        workers.retire_all()


def shut_down(connection: BaseDatabaseWrapper) -> None:
    """Shut the socket of ``connection``'s DB-API connection, if it has one: a read blocked
    on it returns at once, and the driver marks the connection broken."""
    fd = _fileno(connection)
    if fd is None:
        return
    with contextlib.suppress(OSError):
        duplicate = socket.socket(fileno=os.dup(fd))
        try:
            duplicate.shutdown(socket.SHUT_RDWR)
        finally:
            duplicate.close()


def _fileno(connection: BaseDatabaseWrapper) -> int | None:
    """The socket of the driver's connection: psycopg 3's ``pgconn.socket``, psycopg2's and
    mysqlclient's ``fileno()``."""
    raw: Any = connection.connection
    if raw is None:
        return None
    with contextlib.suppress(Exception):
        pgconn = getattr(raw, "pgconn", None)
        if pgconn is not None:
            return int(pgconn.socket)
        return int(raw.fileno())
    return None
