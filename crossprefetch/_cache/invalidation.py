"""Invalidation: a write to a cached model, in any process, is seen by every process.

Every cached model has a *generation*: a random token stored in the cache, next to the
entries (``<prefix>:gen:<app_label.model>``). An entry records the tokens of the models it
was read from; an entry whose tokens are not the current ones is a miss. A write replaces
the token, so every process sharing the cache misses the model's entries from its next
request on, whatever their scope or filter, with no list of keys to delete.

Writes are seen at the SQL level, by an execute wrapper on every database connection: a
statement other than a ``SELECT`` naming the table of a cached model (in any letter case,
quoted or schema-qualified, see :mod:`crossprefetch._cache.written_tables`), sent through Django
(``save()``, ``delete()``, ``QuerySet.update()``, ``bulk_create()``, ``bulk_update()``,
raw SQL or psycopg ``sql.Composed`` on ``connection.cursor()``), replaces the token. Inside a
transaction the token is replaced when it commits (a rolled back write changes nothing),
and until then the transaction's own lookups of that model bypass the cache, so they see
the transaction's writes and never store them.

In a ``TestCase`` (whose transaction never commits), writes count as committed at once.

The watcher is on every connection of every thread from the moment it opens, whether or not
a table is watched yet: a ``SELECT`` costs it one ``str.startswith``, and any other statement
one look at the watched tables, which cannot be missed by a connection opened too early.

A process must know which models are cached to watch their tables. It learns it from the
specs it uses, from the views of the URLconf and from
``CROSSPREFETCH["CACHE_INVALIDATE_MODELS"]``: the *discovery*, run once per process, under a
lock, before the first statement other than a ``SELECT`` is classified (so a worker that only
writes learns it too), never while a connection is being set up. Writes crossprefetch cannot
see (SQL outside Django, other services, database cascades) need
:func:`crossprefetch.cache.invalidate`.

Generations are written through the cache's circuit breaker
(:mod:`crossprefetch._fetch.breaker`, the one the cache layer reads through): a hung cache
costs the first writes one client timeout each, then none while the breaker is open; every
invalidation skipped or failed meanwhile is reported as failed.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import FieldDoesNotExist
from django.db import connections, models, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

from crossprefetch import _compat, signals
from crossprefetch._cache import store, written_tables
from crossprefetch._compat import install_execute_wrapper
from crossprefetch._fetch import breaker
from crossprefetch.conf import conf

logger = logging.getLogger("crossprefetch")

_DUMMY_CACHE = "django.core.cache.backends.dummy.DummyCache"


@dataclass(frozen=True)
class _Tracking:
    """Which tables are watched and where their generations live; replaced, never mutated."""

    tables: Mapping[str, frozenset[str]] = field(default_factory=dict)  # db_table -> labels
    aliases: Mapping[str, frozenset[str]] = field(default_factory=dict)  # label -> caches
    #: the tables' names in lower case, longest first (None: nothing watched)
    names: tuple[str, ...] | None = None
    #: ``db_table.lower()`` -> labels
    folded: Mapping[str, frozenset[str]] = field(default_factory=dict)


# ``_state`` is replaced whole under ``_lock``, never mutated: the watcher reads it without the
# lock. ``_discovered`` turns True once, under ``_discovery_lock``, after the discovery has
# tracked everything it found; a thread finding it False waits for the lock (at most
# ``_DISCOVERY_WAIT`` seconds) rather than classify a write against an incomplete ``_state``.
_state = _Tracking()
_lock = threading.Lock()
_discovered = False
_discovery_lock = threading.Lock()
#: the thread running the discovery: statements it sends meanwhile do not wait for it
_discovering = threading.local()
_DISCOVERY_WAIT = 10.0


# What a spec's rows depend on ----------------------------------------------------------------


def dependencies(queryset: models.QuerySet[Any], paths: Iterable[str]) -> frozenset[type[Any]]:
    """The concrete models whose rows a spec's cached rows are read from.

    The model itself, its multi-table parents, every table the (compiled) QuerySet joins
    for its filters, and the models that projected paths such as ``region__name`` cross.
    """
    model = queryset.model
    found: set[type[models.Model]] = set()
    _add(found, model)
    index = _table_index()
    for table in _compat.joined_tables(queryset):
        joined = index.get(table)
        if joined is not None:
            _add(found, joined)
    for path in paths:
        current: type[models.Model] = model
        for part in path.split("__"):
            try:
                related = current._meta.get_field(part).related_model
            except FieldDoesNotExist:
                break
            if not isinstance(related, type):
                break
            current = related
            _add(found, current)
    return frozenset(found)


def _add(found: set[type[models.Model]], model: type[models.Model]) -> None:
    concrete = model._meta.concrete_model
    assert concrete is not None
    found.add(concrete)
    found.update(concrete._meta.get_parent_list())


@cache
def _table_index() -> dict[str, type[models.Model]]:
    return {m._meta.db_table: m for m in apps.get_models(include_auto_created=True)}


def labels(dependencies: Iterable[type[models.Model]]) -> tuple[str, ...]:
    """The generation names of ``dependencies``, in a stable order."""
    return tuple(sorted(m._meta.label_lower for m in dependencies))


def generation_key(label: str) -> str:
    if len(label) > 100:
        label = hashlib.blake2b(label.encode(), digest_size=16).hexdigest()
    return f"{store.key_prefix()}:gen:{label}"


def new_token() -> int:
    """A generation: random, so a token lost with an evicted key never comes back."""
    return secrets.randbits(62)


# Which models are watched --------------------------------------------------------------------


def track(dependencies: Iterable[type[models.Model]], alias: str) -> None:
    """Watch the tables of ``dependencies``; their generations live in cache ``alias``."""
    global _state
    dependencies = tuple(dependencies)
    state = _state
    if all(alias in state.aliases.get(m._meta.label_lower, ()) for m in dependencies):
        return
    with _lock:
        tables = dict(_state.tables)
        aliases = dict(_state.aliases)
        for model in dependencies:
            label = model._meta.label_lower
            aliases[label] = aliases.get(label, frozenset()) | {alias}
            table = model._meta.db_table
            tables[table] = tables.get(table, frozenset()) | {label}
        _state = _Tracking(tables, aliases, *written_tables.watched_names(tables))


def tracked() -> _Tracking:
    """What this process watches (for tests and debugging)."""
    return _state


def reset() -> None:
    """Forget what is watched, and that the discovery ran (for tests).

    The watchers stay on the connections: with nothing watched they pass statements through.
    """
    global _state, _discovered
    with _discovery_lock, _lock:
        _state = _Tracking()
        _discovered = False


def track_spec(spec: Any) -> bool:
    """Watch the model of a declared spec, if it is cached and known without a request."""
    policy = spec.cache
    source = spec.source
    if policy is None or not policy.invalidate:
        return False
    if callable(source) and not isinstance(source, type | models.QuerySet):
        return False  # its model is known on first use only
    queryset = spec.get_queryset(None)
    try:  # compiling fills in the joins of its filters
        _compat.compiled(queryset)
    except Exception:
        logger.debug("%r does not compile on its own", queryset, exc_info=True)
    paths = [name for name in spec.fields or () if "__" in name]
    track(dependencies(queryset, paths), policy.alias)
    return True


def discover() -> None:
    """Watch the cached models of the URLconf's views and of ``CACHE_INVALIDATE_MODELS``.

    Runs once per process, under a lock, when the first statement that may write is
    classified (or :func:`invalidate` is called) after the app registry is ready: before
    any write is judged, and outside the setup of any connection. A thread arriving while
    another discovers waits for it, at most ``_DISCOVERY_WAIT`` seconds; statements sent
    by the discovery itself (compiling a QuerySet may ask the server its version) do not.
    """
    global _discovered
    if _discovered or getattr(_discovering, "active", False):
        return
    if not _discovery_lock.acquire(timeout=_DISCOVERY_WAIT):
        logger.warning(
            "crossprefetch: waited %g s for another thread to find the cached models of the "
            "URLconf; this statement is judged against the models known so far.",
            _DISCOVERY_WAIT,
        )
        return
    try:
        if _discovered:
            return
        _discovering.active = True
        try:
            _discover()
        finally:
            _discovering.active = False
        _discovered = True
    finally:
        _discovery_lock.release()


def _discover() -> None:
    from crossprefetch._urls import has_urlconf

    for label in conf.CACHE_INVALIDATE_MODELS:
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            logger.warning(
                "crossprefetch: CROSSPREFETCH['CACHE_INVALIDATE_MODELS'] names %r, which "
                "is not an installed model ('app_label.ModelName').",
                label,
            )
            continue
        for alias in shared_caches():
            track(_own_tables(model), alias)
    if not has_urlconf():  # a worker, a benchmark, a script: said once, as no fault
        logger.info(
            "crossprefetch: no ROOT_URLCONF, so no views to find cached specs in; writes "
            "invalidate the models of the specs this process uses, from their first use, "
            "and those of CROSSPREFETCH['CACHE_INVALIDATE_MODELS']."
        )
    for _view, _name, spec in declared_views():
        try:
            track_spec(spec)
        except Exception:  # a misdeclared spec is the system checks' business
            logger.debug("cannot watch the model of %r", spec, exc_info=True)


def declared_views() -> Iterator[tuple[type, str, Any]]:
    """``(view, name, spec)`` for every spec declared by a view of the URLconf."""
    from crossprefetch._urls import declaring_views
    from crossprefetch.spec import CrossDBPrefetch

    try:
        views = list(declaring_views())
    except Exception:
        logger.warning(
            "crossprefetch: the URLconf could not be imported to find the cached specs of "
            "its views; writes to their models invalidate from their first use on.",
            exc_info=True,
        )
        return
    for view in views:
        specs = getattr(view, "cross_db_fields", None)
        if isinstance(specs, Mapping):
            for name, spec in specs.items():
                if isinstance(spec, CrossDBPrefetch):
                    yield view, str(name), spec


def shared_caches() -> list[str]:
    return [
        alias
        for alias, options in settings.CACHES.items()
        if options.get("BACKEND") != _DUMMY_CACHE
    ]


def _own_tables(model: type[models.Model]) -> frozenset[type[models.Model]]:
    found: set[type[models.Model]] = set()
    _add(found, model)
    return frozenset(found)


# Seeing writes -------------------------------------------------------------------------------


class _WriteWatcher:
    """Execute wrapper: after a statement that writes a watched table, bump its model."""

    def __call__(
        self,
        execute: Callable[..., Any],
        sql: Any,
        params: Any,
        many: bool,
        context: dict[str, Any],
    ) -> Any:
        result = execute(sql, params, many, context)
        if type(sql) is str and sql.startswith("SELECT"):
            return result
        if not _discovered:
            _discover_before_judging()
        state = _state
        if state.names is not None:
            connection = context["connection"]
            text = written_tables.as_text(sql, connection)
            if text is not None:
                hit = written_tables.written(text, state.names, state.folded, connection.vendor)
                if hit:
                    schedule(connection, hit)
        return result


_WATCHER = _WriteWatcher()


def _discover_before_judging() -> None:
    """The discovery, from the watcher: it never fails the statement that triggered it."""
    if not apps.ready:
        return
    try:
        discover()
    except Exception:
        logger.exception("crossprefetch: could not find the cached models of the URLconf")


def install(connection: BaseDatabaseWrapper) -> None:
    """Watch ``connection``'s statements (idempotent), first of its execute wrappers."""
    install_execute_wrapper(connection, _WATCHER)


def _on_connection_created(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    install(connection)


def connect() -> None:
    """Called from ``AppConfig.ready()``: watch every connection, open now or later."""
    connection_created.connect(_on_connection_created, dispatch_uid="crossprefetch.watch")
    for connection in connections.all(initialized_only=True):
        install(connection)


# Bumping generations -------------------------------------------------------------------------


class _Bump:
    """An ``on_commit`` callback replacing the generations of the models a transaction wrote."""

    def __init__(self, labels: frozenset[str]) -> None:
        self.labels = set(labels)
        self.__qualname__ = "crossprefetch invalidation"

    def __call__(self) -> None:
        bump(self.labels)


def _open_transaction(connection: BaseDatabaseWrapper) -> bool:
    """Whether ``connection`` is in a transaction that will commit or roll back later.

    The transaction a ``TestCase`` wraps each test in never commits: writes inside it count
    as committed (Django's ``durable=True`` check makes the same exception), so tests see
    the cache behave as in production, where their rows would be committed.
    """
    if not connection.in_atomic_block:
        return False
    return not _compat.in_testcase_transaction(connection)


def schedule(connection: BaseDatabaseWrapper, labels: frozenset[str]) -> None:
    """Bump ``labels`` when ``connection``'s transaction commits, or now outside one."""
    if not _open_transaction(connection):
        bump(labels)
        return
    savepoints = set(connection.savepoint_ids)
    for sids, func in reversed(_compat.on_commit_callbacks(connection)):
        if isinstance(func, _Bump) and sids == savepoints:
            func.labels |= labels  # one bump per model per transaction, however many writes
            return
    connection.on_commit(_Bump(labels), robust=True)


def pending(labels: Iterable[str]) -> bool:
    """Whether a transaction of this thread wrote rows of ``labels`` and has not committed."""
    wanted = set(labels)
    if not wanted:
        return False
    for connection in connections.all(initialized_only=True):
        if _open_transaction(connection):
            for _, func in _compat.on_commit_callbacks(connection):
                if isinstance(func, _Bump) and not wanted.isdisjoint(func.labels):
                    return True
    return False


def bump(labels: Iterable[str]) -> None:
    """Replace the generations of ``labels`` in every cache holding them; never raises."""
    try:
        aliases = _state.aliases
        by_alias: dict[str, dict[str, int]] = {}
        for label in labels:
            for alias in aliases.get(label, ()):
                by_alias.setdefault(alias, {})[generation_key(label)] = new_token()
    except Exception as exc:  # a misconfigured prefix; lookups report it loudly
        logger.error("crossprefetch: cannot invalidate %s: %s", sorted(labels), exc)
        return
    for alias, data in by_alias.items():
        permit = breaker.caches.allow(alias)
        if permit is None:
            _undelivered(alias, labels, _BreakerOpen(f"cache {alias!r} skipped: {_OPEN}"))
            continue
        try:
            failed = caches[alias].set_many(data, timeout=None)
        except Exception as exc:
            breaker.caches.failure(permit)
            _undelivered(alias, labels, exc)
            continue
        breaker.caches.success(permit)  # it answered, even if it refused keys
        if failed:
            _undelivered(alias, labels, RuntimeError(f"{len(failed)} generation(s) not stored"))


_OPEN = "its circuit breaker is open after repeated failures"


class _BreakerOpen(ConnectionError):
    """The error reported for an invalidation skipped because the cache's breaker is open."""


_failures: dict[str, int] = {}
_failures_lock = threading.Lock()


def _undelivered(alias: str, labels: Iterable[str], exc: BaseException) -> None:
    """Log, count and signal an invalidation that did not reach cache ``alias``.

    Logged at ERROR every time, not rate-limited like read failures: each one names models
    whose old rows other processes may still serve, which a read failure never causes.
    """
    models = sorted(label for label in labels if alias in _state.aliases.get(label, ()))
    with _failures_lock:
        _failures[alias] = _failures.get(alias, 0) + 1
    logger.error(
        "crossprefetch: the invalidation of %s could not be written to cache %r (%s: %s); "
        "processes sharing that cache may serve rows cached before the write until they "
        "expire. Once the cache answers again, call crossprefetch.cache.invalidate() for "
        "these models if its entries survived.",
        ", ".join(models),
        alias,
        type(exc).__name__,
        exc,
    )
    try:
        signals.invalidation_failed.send(sender=bump, alias=alias, models=models, error=exc)
    except Exception:  # a receiver's bug must not fail the write
        logger.exception("crossprefetch: a receiver of invalidation_failed raised")


def failed_invalidations() -> dict[str, int]:
    """See :func:`crossprefetch.cache.failed_invalidations`."""
    with _failures_lock:
        return dict(_failures)


def invalidate(model: type[models.Model] | str, *, using: str | None = None) -> None:
    """See :func:`crossprefetch.cache.invalidate`."""
    if isinstance(model, str):
        model = apps.get_model(model)
    if apps.ready:
        discover()
    own = _own_tables(model)
    names = labels(own)
    aliases = set().union(*(_state.aliases.get(label, frozenset()) for label in names))
    for alias in aliases or shared_caches():
        track(own, alias)
    schedule(connections[using or router.db_for_write(model)], frozenset(names))
