"""System checks for the ``cache=`` of the specs declared by views.

:func:`check_spec_cache` is run by :mod:`crossprefetch.checks` for every spec of every
view of the URLconf. A process-local cache (``LocMemCache``) under invalidation is reported
once: by :func:`check_process_local_caches` (W103) whenever ``DEBUG`` is False, the settings
of a deployment, where other processes write (not in a test run); by
:func:`check_cache_deploy` (W102, ``--deploy`` only) when ``DEBUG`` is True. Ids are listed
in the docs and never reused.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core import checks
from django.core.cache.backends.locmem import LocMemCache
from django.db import models
from django.utils.module_loading import import_string

from crossprefetch._compat import test_environment_active
from crossprefetch._fetch.caching import loads_related
from crossprefetch.spec import CrossDBPrefetch


def check_spec_cache(
    view_name: str, spec_name: str, spec: CrossDBPrefetch
) -> list[checks.CheckMessage]:
    """Check the cache policy of one spec; ``view_name`` is the view's dotted path."""
    policy = spec.cache
    if policy is None:
        return []
    where = f"{view_name}.cross_db_fields[{spec_name!r}]"
    messages: list[checks.CheckMessage] = []
    if policy.alias not in settings.CACHES:
        messages.append(
            checks.Error(
                f"{where}: CachePolicy(alias={policy.alias!r}) names no cache of settings.CACHES.",
                hint=f"Use one of: {', '.join(map(repr, settings.CACHES)) or 'none defined'}.",
                obj=view_name,
                id="crossprefetch.E101",
            )
        )
    source = spec.source
    if policy.scope is None and callable(source) and not isinstance(source, type | models.QuerySet):
        messages.append(
            checks.Warning(
                f"{where}: the rows come from a callable(request), so they may differ between "
                "requests (users, tenants), but the CachePolicy has no scope; the lookup "
                "raises ImproperlyConfigured rather than risk serving one tenant's cached "
                "rows to another.",
                hint="Give CachePolicy(..., scope=lambda request: request.tenant.id) (what the "
                "rows depend on), or a constant scope if they are the same for every request.",
                obj=view_name,
                id="crossprefetch.W101",
            )
        )
    if spec.fields is None and isinstance(source, models.QuerySet) and loads_related(source):
        messages.append(
            checks.Error(
                f"{where}: caches model instances of a QuerySet with select_related() or "
                "prefetch_related(); cached instances keep their own field values only, so "
                "every related object would cost a query per row.",
                hint="Project what the serializer reads with fields=('name', "
                "'region__name', ...), or drop the cache.",
                obj=view_name,
                id="crossprefetch.E102",
            )
        )
    return messages


def check_process_local_caches(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """With ``DEBUG`` False, a cache private to each process misses other processes' writes.

    Not in a test run (Django's test environment set up, which turns ``DEBUG`` off): its
    one process writes what it reads, and a ``LocMemCache`` is the usual test cache.
    """
    if settings.DEBUG or test_environment_active():
        return []
    return [
        checks.Warning(
            f"{where}: cache {alias!r} is a {backend}, private to this process, and DEBUG is "
            "False: a row written by another process (another worker of the server, a task "
            "queue, a management command) is not invalidated in this one, which serves it for "
            f"up to {timeout:g} s.",
            hint="Point the CachePolicy at a cache all processes share (Redis, Memcached). If "
            "one process does all the writing and serving, silence crossprefetch.W103 in "
            "SILENCED_SYSTEM_CHECKS.",
            obj=where.partition(".cross_db_fields")[0],
            id="crossprefetch.W103",
        )
        for where, alias, backend, timeout in _process_local_specs()
    ]


def check_cache_deploy(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``check --deploy`` with ``DEBUG`` True: W103's finding, which W103 itself reports
    when ``DEBUG`` is False (once, either way)."""
    if not settings.DEBUG:
        return []
    return [
        checks.Warning(
            f"{where}: cache {alias!r} is a {backend}, private to each process: a row written "
            "by one process is not invalidated in the others, which serve it for up to "
            f"{timeout:g} s.",
            hint="Point the CachePolicy at a cache all processes share (Redis, "
            "Memcached), or run a single process.",
            obj=where.partition(".cross_db_fields")[0],
            id="crossprefetch.W102",
        )
        for where, alias, backend, timeout in _process_local_specs()
    ]


def _process_local_specs() -> Iterator[tuple[str, str, str, float]]:
    """``(where, cache alias, backend name, timeout)`` of each invalidating spec cached in a
    cache private to its process: ``LocMemCache`` or a subclass."""
    from crossprefetch._cache.invalidation import declared_views

    for view, spec_name, spec in declared_views():
        policy = spec.cache
        if policy is None or not policy.invalidate:
            continue
        backend = _backend(settings.CACHES.get(policy.alias, {}).get("BACKEND"))
        if backend is None or not issubclass(backend, LocMemCache):
            continue
        where = f"{view.__module__}.{view.__qualname__}.cross_db_fields[{spec_name!r}]"
        yield where, policy.alias, backend.__name__, policy.timeout


def _backend(path: Any) -> type | None:
    """The class of a ``CACHES`` backend; ``None`` if it cannot be imported (Django says why)."""
    if not isinstance(path, str):
        return None
    try:
        backend = import_string(path)
    except ImportError:
        return None
    return backend if isinstance(backend, type) else None
