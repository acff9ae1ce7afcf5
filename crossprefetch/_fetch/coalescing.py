"""The coalescing layer of the fetch chain: concurrent requests share one query.

Under a threaded server, requests of one process that look up the same group (database,
model, compiled filter and parameters, matched fields, to-many joins, failure policy and
timeout, cache scope) within a few milliseconds of each other can be answered by one
query with the union of their keys. The first request to arrive becomes the *leader* of a
batch: it waits up to the spec's ``coalesce`` window for others to *join*, closes the
batch, runs the query on its own connection, and hands each member the rows of its own
keys (model instances are copied, so no two requests share a mutable object). A member
never sees another's keys.

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

from crossprefetch._fetch.base import Fetch, Fetched
from crossprefetch._groups import Group
from crossprefetch._observe import capture
from crossprefetch._plans import Plan
from crossprefetch.conf import conf

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
    ``keys``; nothing else writes them):

    - ``_open[identity]`` is the one batch of that identity still taking members; a batch
      leaves ``_open`` when it is closed, and never returns to it.
    - Members are added only while the batch is open, so once closed its ``members`` and
      ``observers`` no longer change, and the leader reads them without the lock.
    - The leader registers its batch and completes it in one ``try/finally``: whatever
      interrupts it (a signal handler raising, an error), ``done`` is set, exactly once,
      after the batch is closed. ``rows`` / ``error`` are written by the leader alone,
      before ``done``; members read them only after ``done``.
    - ``rows is None and error is None`` once ``done``: the leader did not complete the
      query (it was interrupted); members then query alone.
    - Every wait is bounded: the leader waits for members at most its window, a member
      waits for the outcome at most its own deadline.
    """

    members: list[Group]
    keys: int
    #: The query-capture blocks of each member's context, which the shared query is for.
    observers: list[tuple[Any, ...]] = field(default_factory=list)
    full: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    #: each member's rows, set at once when the shared query succeeded
    rows: list[list[dict[Any, Any]]] | None = None
    queries: int = 0
    #: the shared query's database error, which every member raises
    error: DatabaseError | None = None


_open: dict[Hashable, _Batch] = {}
_lock = threading.Lock()


class CoalesceLayer:
    """Share one query between the concurrent requests asking the same group."""

    def __init__(self, inner: Fetch) -> None:
        self.inner = inner

    def __call__(self, group: Group) -> Fetched:
        window = _window(group)
        if not window or not group.keys or len(group.keys) >= MAX_SHARED_KEYS:
            return self.inner(group)
        identity = group.identity
        if identity is None or not identity.coalesce:
            return self.inner(group)
        key = identity.key
        mine = _Batch([group], len(group.keys))
        joined: tuple[_Batch, int] | None = None
        try:  # from registering a batch to completing it: no batch outlives its leader
            with _lock:
                joined = _join_open(key, group)
                if joined is None:
                    _open[key] = mine
            if joined is None:
                return self._lead(key, mine, window)
        finally:
            if joined is None:
                _complete(key, mine)
        batch, index = joined
        timeout = group.spec.statement_timeout()
        fetched = _wait(
            key, batch, index, window + (timeout + LEADER_GRACE if timeout else MAX_WAIT)
        )
        return self.inner(group) if fetched is None else fetched

    def _lead(self, key: Hashable, batch: _Batch, window: float) -> Fetched:
        """Wait for members, close the batch, run its query and share the rows."""
        batch.full.wait(window)
        with _lock:
            _close(key, batch)
        members = batch.members
        _count(members[0], len(members) - 1)
        combined = members[0].with_plans([p for g in members for p in g.plans])
        try:
            with capture.on_behalf_of(batch.observers):  # the members' blocks count it too
                fetched = self.inner(combined)
        except DatabaseError as exc:  # the query's own failure: every member's answer
            batch.error = exc
            raise
        rows = fetched.rows
        shared: list[list[dict[Any, Any]]] = []
        start = 0
        for position, member in enumerate(members):
            end = start + len(member.plans)
            own = rows[start:end]
            shared.append(own if position == 0 else _copies(member.plans, own))
            start = end
        batch.queries = fetched.queries
        batch.rows = shared
        return Fetched(shared[0], fetched.queries)


def _join_open(key: Hashable, group: Group) -> tuple[_Batch, int] | None:
    """Join the open batch of ``key``, if any: the batch and this member's place in it.

    Called with the lock held.
    """
    batch = _open.get(key)
    if batch is None:
        return None
    index = len(batch.members)
    batch.members.append(group)
    batch.observers.append(capture.observers())
    batch.keys += len(group.keys)
    if batch.keys >= MAX_SHARED_KEYS:
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
        _count(member, len(batch.members) - 1)
        raise _own_error(batch.error)
    rows = batch.rows
    if rows is None or index >= len(rows):  # interrupted, or joined as it was completing
        return None
    _count(member, len(batch.members) - 1)
    return Fetched(rows[index], 0)


def _count(member: Group, others: int) -> None:
    for plan in member.plans:
        if plan.stats is not None:
            plan.stats.coalesced_with = others


def _window(group: Group) -> float | None:
    """The shortest window of the group's specs; ``None`` or ``0`` when one says never."""
    default = conf.COALESCE
    windows = [default if p.spec.coalesce is None else p.spec.coalesce for p in group.plans]
    if any(not w for w in windows):
        return None
    return min(w for w in windows if w)


def _copies(plans: list[Plan], rows: list[dict[Any, Any]]) -> list[dict[Any, Any]]:
    """The rows a joiner gets: its own model instances, never the leader's objects."""
    if all(plan.spec.fields is not None for plan in plans):
        return rows  # row dicts are built per plan already
    own: list[dict[Any, Any]] = []
    for plan, result in zip(plans, rows, strict=True):
        if plan.spec.fields is not None:
            own.append(result)
        elif plan.spec.many:
            own.append({k: [copy.copy(obj) for obj in objs] for k, objs in result.items()})
        else:
            own.append({k: copy.copy(obj) for k, obj in result.items()})
    return own


def _own_error(error: BaseException) -> BaseException:
    """The shared query's error, as an exception of this thread (tracebacks are per raise)."""
    try:
        mine = copy.copy(error)
    except Exception:
        return error
    mine.__cause__ = error
    mine.__traceback__ = None
    return mine
