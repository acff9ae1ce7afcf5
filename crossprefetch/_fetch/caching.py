"""The cache layer of the fetch chain: serve a group's keys from the cache, pass the misses down.

(And :class:`ReadCacheLayer`: a filter's or an ordering's rows, as one entry.)

For a group of specs sharing one :class:`~crossprefetch.CachePolicy`, a request costs one
``get_many`` (the generations of the models the specs read, plus the entries this process
does not hold already), at most one query for the keys that missed, and one ``set_many``
writing those back.

An entry is ``(generations, payload, not_after)``, plain data only: the payload is the row
dict of a projected spec, the concrete field values of a model instance, a list of either
for ``many=True``, or ``None`` / ``[]`` for a reference with no row (negative caching).
``generations`` are the tokens of the models the rows were read from, taken before they
were read; a write replaces a token, which makes every older entry a miss in every process
sharing the cache (see :mod:`crossprefetch._cache.invalidation`). ``not_after`` is the wall-clock
time the entry expires, so a copy of it outlives the cache's own entry by no more.

Each process also keeps the entries it read or wrote in a bounded dict (the *local* layer,
``CACHE_LOCAL_MAX_ENTRIES``). They obey the same rule: used only while their generations
are the current ones, read from the shared cache on every request, and until
``not_after``. A warm request then reads one key per model from the shared cache, however
many keys the page has.

A cache that raises never fails a request: the keys are read from the database, the
failure is counted in :attr:`~crossprefetch.LookupStats.cache_errors` and logged at most
once per ``CACHE_ERROR_LOG_INTERVAL`` per cache alias. A cache that keeps failing (a hung
server makes each call wait for the client's socket timeout) trips its circuit breaker
(:mod:`crossprefetch._fetch.breaker`): the cache is then skipped, and the database read, until
one trial ``BREAKER_RESET`` seconds later.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.core.cache import BaseCache
from django.core.exceptions import ImproperlyConfigured
from django.db import models

from crossprefetch import _compat
from crossprefetch._cache import invalidation
from crossprefetch._cache.store import get_cache, key_head, key_prefix, key_suffix, report_error
from crossprefetch._fetch import breaker
from crossprefetch._fetch.base import Fetch, Fetched
from crossprefetch._groups import Group
from crossprefetch._plans import Plan
from crossprefetch.conf import conf

if TYPE_CHECKING:
    from crossprefetch._fetch.reads import Read
    from crossprefetch.cache import CachePolicy

#: Wall-clock time, shared by all processes: entries expire at a date.
_now = time.time


# The local layer ----------------------------------------------------------------------------

_local: dict[tuple[str, Any], tuple[Any, Any, float]] = {}
_local_lock = threading.Lock()


def _remember(entries: dict[tuple[str, Any], tuple[Any, Any, float]]) -> None:
    limit = conf.CACHE_LOCAL_MAX_ENTRIES
    if limit <= 0 or not entries:
        return
    with _local_lock:
        _local.update(entries)
        excess = len(_local) - limit
        if excess > 0:  # the oldest first: dicts keep insertion order
            for old in list(_local)[:excess]:
                del _local[old]


def clear_local() -> None:
    """Empty this process's local layer (for tests)."""
    with _local_lock:
        _local.clear()


def _copy(payload: Any) -> Any:
    """A row the caller may change without changing what the local layer holds."""
    if type(payload) is dict:
        return payload.copy()
    if type(payload) is list:
        return [row.copy() if type(row) is dict else row for row in payload]
    return payload


# The cached fetch ---------------------------------------------------------------------------


@dataclass
class _Entries:
    """One plan's keys, and what the local layer and the shared cache held for them."""

    plan: Plan
    head: str
    result: dict[Any, Any]
    local: dict[Any, tuple[Any, Any, float]] = field(default_factory=dict)
    remote: dict[str, Any] = field(default_factory=dict)  # cache key -> remote key
    hits: int = 0
    missing: set[Any] = field(default_factory=set)


class CacheLayer:
    """Serve what the cache holds; pass only the misses down the chain, then store them."""

    def __init__(self, inner: Fetch) -> None:
        self.inner = inner

    def __call__(self, group: Group) -> Fetched:
        policy = group.cache
        if policy is None:
            return self.inner(group)
        for plan in group.plans:
            _refuse_unsafe(plan, policy)
        if not group.keys:
            return Fetched(group.empty_rows())
        return _fetch_cached(group, policy, self.inner)


def _fetch_cached(group: Group, policy: CachePolicy, inner: Fetch) -> Fetched:
    """Rows per plan, from the cache where it has them, from the next layer for the rest."""
    plans = group.plans
    first = group.first
    identity = group.identity
    labels: tuple[str, ...] | None = ()
    if identity is not None:
        labels = _labels(first.queryset, _projection_paths(plans), policy)
    if identity is None or labels is None:
        fetched = inner(group)
        _set_stats(plans, [0] * len(plans), errors=0)
        return fetched

    cache = get_cache(policy.alias)
    prefix = key_prefix()
    now = _now()
    entries = [_entries(plan, prefix, policy.version, identity.rows, now) for plan in plans]
    generation_keys = [invalidation.generation_key(label) for label in labels]
    wanted = generation_keys + [k for e in entries for k in e.remote]
    errors = 0
    found: dict[str, Any] = {}
    permit = breaker.caches.allow(policy.alias)
    skipped = permit is None
    usable = not skipped
    if permit is not None and not wanted:
        breaker.caches.release(permit)  # every key was local: the cache was not asked
    elif permit is not None:
        try:
            found = cache.get_many(wanted)
        except Exception as exc:
            _failed(permit, "get_many", exc)
            errors += 1
            usable = False
        else:
            breaker.caches.success(permit)
    generations: tuple[int, ...] | None = ()
    if permit is not None and usable and generation_keys:
        generations, failed = _generations(cache, permit, generation_keys, found)
        errors += failed
        usable = generations is not None
    remembered: dict[tuple[str, Any], tuple[Any, Any, float]] = {}
    for e in entries:
        if usable or not generation_keys:  # without generations, local entries need none
            _read(e, found if usable else {}, generations, now, remembered)
        else:
            e.missing = set(e.plan.keys)

    missed = [e for e in entries if e.missing]
    queries = 0
    degraded: frozenset[str] = frozenset()
    if missed:
        fetched = inner(group.narrowed({e.plan: e.missing for e in missed}))
        queries = fetched.queries
        degraded = fetched.degraded
        to_write: dict[str, Any] = {}
        ttl = _timeout(policy)
        for e, rows in zip(missed, fetched.rows, strict=True):
            e.result.update(rows)
            if usable and e.plan.name not in degraded:  # a failed read is not "no row"
                _collect(e, rows, generations, policy, now, ttl, to_write, remembered)
        if to_write and permit is not None:
            errors += _write(cache, permit, to_write, ttl)
    _remember(remembered)
    _set_stats(plans, [e.hits for e in entries], errors=errors, skipped=skipped)
    return Fetched([e.result for e in entries], queries, degraded)


class ReadCacheLayer:
    """A read's rows (:mod:`crossprefetch._fetch.reads`) from the cache when its spec caches.

    The whole answer is one entry, ``(generations, rows, not_after)``, keyed by the read's
    identity (its SQL, alias, tenant state and scope); it is valid while the generations of
    the models the read depends on are the current ones, so a write to them invalidates it
    as it does the rows of lookups. A cache that fails or is skipped by its breaker only
    sends the read to the database.
    """

    def __init__(self, inner: Fetch) -> None:
        self.inner = inner

    def __call__(self, read: Read) -> Fetched:
        policy = read.spec.cache
        if policy is None:
            return self.inner(read)
        identity = read.identity  # compiled only for a spec that caches
        if identity is None:
            return self.inner(read)
        labels = _labels(read.rows, (), policy)
        if labels is None:
            return self.inner(read)
        permit = breaker.caches.allow(policy.alias)
        if permit is None:
            return self.inner(read)
        cache = get_cache(policy.alias)
        key = key_head(key_prefix(), policy.version, (*identity.rows, "read")) + "rows"
        generation_keys = [invalidation.generation_key(label) for label in labels]
        try:
            found = cache.get_many([*generation_keys, key])
        except Exception as exc:
            _failed(permit, "get_many", exc)
            return self.inner(read)
        breaker.caches.success(permit)
        generations, _ = _generations(cache, permit, generation_keys, found)
        if generations is None:
            return self.inner(read)
        now = _now()
        entry = found.get(key)
        if (
            type(entry) is tuple
            and len(entry) == 3
            and entry[0] == generations
            and type(entry[1]) is list
            and isinstance(entry[2], float | int)
            and entry[2] > now
        ):
            return Fetched(list(entry[1]))
        fetched = self.inner(read)
        ttl = _timeout(policy)
        _write(cache, permit, {key: (generations, fetched.rows, now + ttl)}, ttl)
        return fetched


def _labels(
    queryset: models.QuerySet[Any], paths: Iterable[str], policy: CachePolicy
) -> tuple[str, ...] | None:
    """The generations an entry of ``queryset``'s rows depends on (none without
    invalidation); ``None``: this transaction wrote such rows, the cache cannot know them."""
    if not policy.invalidate:
        return ()
    dependencies = invalidation.dependencies(queryset, paths)
    invalidation.track(dependencies, policy.alias)
    labels = invalidation.labels(dependencies)
    return None if invalidation.pending(labels) else labels


def _refuse_unsafe(plan: Plan, policy: CachePolicy) -> None:
    spec = plan.spec
    source = spec.source
    if policy.scope is None and callable(source) and not isinstance(source, type | models.QuerySet):
        raise ImproperlyConfigured(
            f"{spec!r} ({plan.name!r}) caches rows of a QuerySet built by a "
            "callable(request), so they may differ between requests, but its CachePolicy "
            "has no scope: one user's or tenant's rows could be served to another. Give "
            "CachePolicy(..., scope=lambda request: <tenant id>), or a constant scope if "
            "the rows are the same for every request."
        )
    if spec.fields is None and loads_related(plan.queryset):
        raise ImproperlyConfigured(
            f"{spec!r} ({plan.name!r}) caches model instances of a QuerySet with "
            "select_related() or prefetch_related(); cached instances carry their own "
            "field values only, so each related object would cost a query per row. "
            "Project the related values with fields=('name', 'region__name', ...) or "
            "drop the cache."
        )


def loads_related(queryset: models.QuerySet[Any]) -> bool:
    """Whether the QuerySet attaches related objects that a cached instance would lose."""
    return bool(queryset.query.select_related) or bool(_compat.prefetch_lookups(queryset))


def _projection_paths(plans: list[Plan]) -> list[str]:
    return [name for plan in plans for name in plan.spec.fields or () if "__" in name]


def _entries(
    plan: Plan, prefix: str, version: int | str, rows: tuple[Any, ...], now: float
) -> _Entries:
    """Split the plan's keys between the local layer and the shared cache.

    ``rows`` is the group's :attr:`Identity.rows <crossprefetch._identity.Identity.rows>`,
    the same in every process; the plan adds its own projection.
    """
    head = key_head(prefix, version, (*rows, plan.spec.fields, plan.spec.many))
    e = _Entries(plan, head, plan.empty_rows())
    local = _local
    for key in plan.keys:
        entry = local.get((head, key))
        if entry is not None and entry[2] > now:
            e.local[key] = entry
        else:
            e.remote[head + key_suffix(key)] = key
    return e


def _generations(
    cache: BaseCache, permit: breaker.Permit, generation_keys: list[str], found: dict[str, Any]
) -> tuple[Any, int]:
    """The current token of each model; a model seen for the first time gets one."""
    absent = [k for k in generation_keys if type(found.get(k)) is not int]
    if absent:
        try:
            for key in absent:
                token = invalidation.new_token()
                if cache.add(key, token, timeout=None):
                    found[key] = token
                else:  # another process has just added one: read it
                    found[key] = cache.get(key)
        except Exception as exc:
            _failed(permit, "add", exc)
            return None, 1
    generations = tuple(found.get(k) for k in generation_keys)
    if not all(type(g) is int for g in generations):
        return None, 0
    return generations, 0


def _read(
    e: _Entries,
    found: dict[str, Any],
    generations: Any,
    now: float,
    remembered: dict[tuple[str, Any], tuple[Any, Any, float]],
) -> None:
    """Take the valid entries; the other keys are missing."""
    plan = e.plan
    rebuild = _rebuilder(plan) if plan.spec.fields is None else _copy
    head = e.head
    candidates: list[tuple[Any, Any, bool]] = [(k, v, False) for k, v in e.local.items()]
    candidates += [(key, found.get(cache_key), True) for cache_key, key in e.remote.items()]
    for key, entry, from_remote in candidates:
        if (
            type(entry) is not tuple
            or len(entry) != 3
            or entry[0] != generations
            or not isinstance(entry[2], float | int)
            or entry[2] <= now
        ):
            e.missing.add(key)
            continue
        payload = entry[1]
        if payload is not None:
            try:
                payload = rebuild(payload)
            except Exception:  # an entry this model can no longer read (a column dropped)
                e.missing.add(key)
                continue
        e.hits += 1
        if payload:  # None or [] means no remote row
            e.result[key] = payload
        if from_remote:
            remembered[(head, key)] = entry


def _rebuilder(plan: Plan) -> Callable[[Any], Any]:
    model = plan.queryset.model
    alias = plan.alias
    attnames = [f.attname for f in model._meta.concrete_fields]

    def instance(values: dict[str, Any]) -> models.Model:
        names = [n for n in attnames if n in values]
        obj: models.Model = model.from_db(alias, names, [values[n] for n in names])
        if len(names) != len(values):
            for name, value in values.items():
                if name not in obj.__dict__:
                    setattr(obj, name, value)  # annotations
        return obj

    if plan.spec.many:
        return lambda payload: [instance(values) for values in payload]
    return instance


def _payload(plan: Plan, rows: Any) -> Any:
    """What is stored for one key: plain values, never a pickled model instance."""
    if plan.spec.fields is not None:
        return _copy(rows)
    model = plan.queryset.model
    names = [f.attname for f in model._meta.concrete_fields]
    query = plan.queryset.query
    names += [*query.annotation_select, *query.extra_select]

    def values(obj: models.Model) -> dict[str, Any]:
        loaded = obj.__dict__
        return {n: loaded[n] for n in names if n in loaded}

    if plan.spec.many:
        return [values(obj) for obj in rows]
    return values(rows)


def _collect(
    e: _Entries,
    rows: dict[Any, Any],
    generations: Any,
    policy: CachePolicy,
    now: float,
    ttl: int,
    to_write: dict[str, Any],
    remembered: dict[tuple[str, Any], tuple[Any, Any, float]],
) -> None:
    """The entries to write for the keys the database answered."""
    plan = e.plan
    head = e.head
    until = now + ttl
    negative_until = now + _negative_timeout(policy)
    for key in e.missing:
        row = rows.get(key)
        if row:
            entry = (generations, _payload(plan, row), until)
        elif negative_until > now:
            entry = (generations, [] if plan.spec.many else None, negative_until)
        else:
            continue
        to_write[head + key_suffix(key)] = entry
        remembered[(head, key)] = entry


def _negative_timeout(policy: CachePolicy) -> float:
    seconds = policy.negative_timeout
    if seconds is None:
        seconds = conf.CACHE_NEGATIVE_TIMEOUT
    return max(0.0, min(seconds, policy.timeout))


def _timeout(policy: CachePolicy) -> int:
    seconds = policy.timeout
    if policy.jitter:
        seconds *= random.uniform(1 - policy.jitter, 1 + policy.jitter)
    return max(1, round(seconds))


def _write(cache: BaseCache, permit: breaker.Permit, data: dict[str, Any], ttl: int) -> int:
    try:
        failed = cache.set_many(data, timeout=ttl)
    except Exception as exc:
        _failed(permit, "set_many", exc)
        return 1
    if failed:
        report_error(
            permit.alias, "set_many", RuntimeError(f"{len(failed)} key(s) were not stored")
        )
        return 1
    return 0


def _failed(permit: breaker.Permit, operation: str, exc: Exception) -> None:
    """A cache call raised: count it against the cache's breaker, and log it (rate-limited)."""
    breaker.caches.failure(permit)
    report_error(permit.alias, operation, exc)


def _set_stats(plans: list[Plan], hits: list[int], *, errors: int, skipped: bool = False) -> None:
    for plan, plan_hits in zip(plans, hits, strict=True):
        stats = plan.stats
        if stats is None:
            continue
        stats.cache_hits = plan_hits
        stats.cache_misses = len(plan.keys) - plan_hits
        stats.cache_errors = errors
        stats.cache_skipped = skipped
