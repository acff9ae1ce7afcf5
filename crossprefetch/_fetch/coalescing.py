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

A request does not coalesce (it queries alone, at once) when its connection to the
remote database is inside an atomic block: its transaction may have written rows that
other connections cannot see, hold a snapshot or locks of its own, or roll back. Nor
when the QuerySet locks rows (``select_for_update()``) or does not compile on its own.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from django.db import connections

from crossprefetch._cache import store
from crossprefetch._fetch.base import Fetch, Fetched
from crossprefetch._groups import Group
from crossprefetch._observe import capture
from crossprefetch._plans import Plan
from crossprefetch.conf import conf

#: A batch whose union reaches this many keys is closed at once; later arrivals start the
#: next batch. Larger unions would only make one query slower for everyone in it.
MAX_SHARED_KEYS = 10_000


@dataclass(eq=False)
class _Batch:
    """The members of one shared query, and its outcome once the leader has run it."""

    members: list[Group]
    keys: int
    #: The query-capture blocks of each member's context, which the shared query is for.
    observers: list[tuple[Any, ...]] = field(default_factory=list)
    closed: bool = False
    full: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    rows: list[list[dict[Any, Any]]] = field(default_factory=list)
    queries: int = 0
    error: BaseException | None = None


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
        identity = _identity(group)
        if identity is None:
            return self.inner(group)
        with _lock:
            batch = _open.get(identity)
            if batch is None or batch.closed:
                batch = _open[identity] = _Batch([group], len(group.keys))
                index = -1
            else:
                index = len(batch.members)
                batch.members.append(group)
                batch.observers.append(capture.observers())
                batch.keys += len(group.keys)
                if batch.keys >= MAX_SHARED_KEYS:
                    _close(identity, batch)
                    batch.full.set()
        if index < 0:
            return self._lead(identity, batch, window)
        return _join(batch, index)

    def _lead(self, identity: Hashable, batch: _Batch, window: float) -> Fetched:
        """Wait for joiners, close the batch, run its query and share the rows."""
        batch.full.wait(window)
        with _lock:
            _close(identity, batch)
        members = batch.members
        try:
            combined = Group([p for g in members for p in g.plans], members[0].request)
            with capture.on_behalf_of(batch.observers):  # the joiners' blocks count it too
                fetched = self.inner(combined)
            rows = fetched.rows
            start = 0
            for position, member in enumerate(members):
                end = start + len(member.plans)
                own = rows[start:end]
                batch.rows.append(own if position == 0 else _copies(member.plans, own))
                start = end
            batch.queries = fetched.queries
        except BaseException as exc:
            batch.error = exc
            raise
        finally:
            batch.done.set()
        _count(members[0], len(members) - 1)
        return Fetched(batch.rows[0], batch.queries)


def _close(identity: Hashable, batch: _Batch) -> None:
    """No more joiners (called with the lock held)."""
    batch.closed = True
    if _open.get(identity) is batch:
        del _open[identity]


def _join(batch: _Batch, index: int) -> Fetched:
    batch.done.wait()
    member = batch.members[index]
    if batch.error is not None:
        raise _own_error(batch.error)
    _count(member, len(batch.members) - 1)
    return Fetched(batch.rows[index], 0)


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


def _identity(group: Group) -> Hashable | None:
    """What must be equal for two requests' groups to share a query; ``None``: query alone."""
    first = group.first
    alias = first.alias
    if connections[alias].in_atomic_block:
        return None
    queryset = first.queryset
    if queryset.query.select_for_update:
        return None
    try:
        sql, params = queryset.query.get_compiler(using=alias).as_sql()
    except Exception:  # empty, or does not compile alone: nothing to share
        return None
    spec = first.spec
    fields = spec.fields
    policy = group.cache
    return (
        alias,
        spec.error_policy(),  # the shared query runs under the leader's policy and timeout
        spec.statement_timeout(),
        queryset.model._meta.label,
        first.match_names,
        sql,
        repr(params),
        repr(getattr(queryset, "_prefetch_related_lookups", ())),
        fields if fields is not None and any("__" in name for name in fields) else None,
        policy,
        None if policy is None else store.scope_value(policy, group.request),
    )


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
