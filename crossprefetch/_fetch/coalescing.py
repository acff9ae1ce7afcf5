"""The coalescing layer of the fetch chain: concurrent requests share one query.

Under a threaded server, requests of one process that look up the same group (database,
model, compiled filter and parameters, matched fields, to-many joins, failure policy and
timeout, cache scope) within a few milliseconds of each other can be answered by one
query with the union of their keys. The first request to arrive becomes the *leader* of a
batch: it waits up to the spec's ``coalesce`` window for others to *join*, closes the
batch, runs the query on its own connection, and hands each member the rows of its own
keys (model instances are copied, so no two requests share a mutable object). A member
never sees another's keys. Requests reading the same rows for a filter or an ordering
(:mod:`crossprefetch._fetch.reads`) share one query the same way, each receiving the rows.

The layer sits directly above the database, below the cache, so a batch asks only for
what the members' caches missed, and below the failure policy: an error of the shared
query is raised in every member's thread, where its own ``on_error`` decides.

Which requests may share a batch is the group's :class:`~crossprefetch._identity.Identity`,
the one the cache keys its entries by: same SQL and parameters, same alias, same tenant
state of the connection. A request does not coalesce (it queries alone, at once) when its
group has none (the QuerySet is empty, locks rows or does not compile alone), or when its
connection to the remote database is inside an atomic block: its transaction may have
written rows that other connections cannot see, hold a snapshot or locks of its own, or
roll back.

No request waits for another longer than its own deadline: a leader interrupted anywhere
(a signal handler raising, as a server's request timeout does) still closes its batch
and wakes its members, who then query alone; a member whose leader is stuck gives up
after its window plus its spec's ``timeout`` and :data:`LEADER_GRACE` (or :data:`MAX_WAIT`
without a timeout) and queries alone.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError

from crossprefetch._fetch.base import Fetch, Fetched, Unit
from crossprefetch._observe import capture

#: A batch whose union reaches this many keys is closed at once; later arrivals start the
#: next batch. Larger unions would only make one query slower for everyone in it.
MAX_SHARED_KEYS = 10_000

#: Seconds a member waits for the shared query beyond its window when its spec has no
#: ``timeout``: then it queries alone. About a server's own request timeout.
MAX_WAIT = 30.0

#: Seconds a member waits beyond its window and ``timeout`` for a leader whose query used
#: the whole timeout to hand over its outcome (the database's cancel, the leader's thread
#: being scheduled): without it, members of a batch whose query times out would give up
#: just before its answer and each send the query again, to a database already failing.
LEADER_GRACE = 0.25


@dataclass(eq=False)
class _Batch:
    """The members of one shared query, and its outcome once the leader has run it.

    Invariants (``_lock`` guards ``_open`` and every batch's ``members``, ``observers`` and
    ``size``; nothing else writes them):

    - ``_open[identity]`` is the one batch of that identity still taking members; a batch
      leaves ``_open`` when it is closed, and never returns to it.
    - Members are added only while the batch is open, so once closed its ``members`` and
      ``observers`` no longer change, and the leader reads them without the lock.
    - The leader registers its batch and completes it in one ``try/finally``: whatever
      interrupts it (a signal handler raising, an error), ``done`` is set, exactly once,
      after the batch is closed. ``answers`` / ``error`` are written by the leader alone,
      before ``done``; members read them only after ``done``.
    - ``answers is None and error is None`` once ``done``: the leader did not complete the
      query (it was interrupted); members then query alone.
    - Every wait is bounded: the leader waits for members at most its window, a member
      waits for the outcome at most its own deadline.
    """

    members: list[Unit]
    #: the members' sizes summed (a group's: its keys)
    size: int
    #: The query-capture blocks of each member's context, which the shared query is for.
    observers: list[tuple[Any, ...]] = field(default_factory=list)
    full: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    #: each member's answer, set at once when the shared query succeeded
    answers: list[Fetched] | None = None
    queries: int = 0
    #: the shared query's database error, which every member raises
    error: DatabaseError | None = None


_open: dict[Hashable, _Batch] = {}
_lock = threading.Lock()


class CoalesceLayer:
    """Share one query between the concurrent requests asking the same unit."""

    def __init__(self, inner: Fetch) -> None:
        self.inner = inner

    def __call__(self, unit: Unit) -> Fetched:
        window = unit.window()
        if not window or unit.empty or unit.size >= MAX_SHARED_KEYS:
            return self.inner(unit)
        identity = unit.identity
        if identity is None or not identity.coalesce:
            return self.inner(unit)
        key = identity.key
        mine = _Batch([unit], unit.size)
        joined: tuple[_Batch, int] | None = None
        try:  # from registering a batch to completing it: no batch outlives its leader
            with _lock:
                joined = _join_open(key, unit)
                if joined is None:
                    _open[key] = mine
            if joined is None:
                return self._lead(key, mine, window)
        finally:
            if joined is None:
                _complete(key, mine)
        batch, index = joined
        timeout = unit.spec.statement_timeout()
        fetched = _wait(
            key, batch, index, window + (timeout + LEADER_GRACE if timeout else MAX_WAIT)
        )
        return self.inner(unit) if fetched is None else fetched

    def _lead(self, key: Hashable, batch: _Batch, window: float) -> Fetched:
        """Wait for members, close the batch, run its query and share the rows."""
        batch.full.wait(window)
        with _lock:
            _close(key, batch)
        members = batch.members
        leader = members[0]
        leader.coalesced_with(len(members) - 1)
        combined = leader.combined(members) if len(members) > 1 else leader
        try:
            with capture.on_behalf_of(batch.observers):  # the members' blocks count it too
                fetched = self.inner(combined)
        except DatabaseError as exc:  # the query's own failure: every member's answer
            batch.error = exc
            raise
        shared = leader.shares(fetched, members) if len(members) > 1 else [fetched]
        batch.queries = fetched.queries
        batch.answers = shared
        return Fetched(shared[0].rows, fetched.queries, shared[0].degraded)


def _join_open(key: Hashable, unit: Unit) -> tuple[_Batch, int] | None:
    """Join the open batch of ``key``, if any: the batch and this member's place in it.

    Called with the lock held.
    """
    batch = _open.get(key)
    if batch is None:
        return None
    index = len(batch.members)
    batch.members.append(unit)
    batch.observers.append(capture.observers())
    batch.size += unit.size
    if batch.size >= MAX_SHARED_KEYS:
        _close(key, batch)
        batch.full.set()
    return batch, index


def _close(key: Hashable, batch: _Batch) -> None:
    """No more members (called with the lock held; closing twice is harmless)."""
    if _open.get(key) is batch:
        del _open[key]


def _complete(key: Hashable, batch: _Batch) -> None:
    """The leader is done, whatever happened: close the batch and wake its members."""
    try:
        with _lock:
            _close(key, batch)
    finally:
        batch.done.set()


def _wait(key: Hashable, batch: _Batch, index: int, timeout: float) -> Fetched | None:
    """A member's answer: its rows, the shared error, or ``None`` to query alone.

    ``None`` when the leader was interrupted before the query completed, or when it has not
    answered by this member's deadline (then the batch takes no one else either).
    """
    if not batch.done.wait(timeout):
        with _lock:
            _close(key, batch)
        return None
    member = batch.members[index]
    if batch.error is not None:
        member.coalesced_with(len(batch.members) - 1)
        raise _own_error(batch.error)
    answers = batch.answers
    if answers is None or index >= len(answers):  # interrupted, or joined as it completed
        return None
    member.coalesced_with(len(batch.members) - 1)
    answer = answers[index]
    return Fetched(answer.rows, 0, answer.degraded)


def _own_error(error: BaseException) -> BaseException:
    """The shared query's error, as an exception of this thread (tracebacks are per raise)."""
    try:
        mine = copy.copy(error)
    except Exception:
        return error
    mine.__cause__ = error
    mine.__traceback__ = None
    return mine
