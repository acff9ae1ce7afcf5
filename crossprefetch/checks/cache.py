"""System checks for the ``cache=`` of the specs declared by views.

:func:`check_spec_cache` is run by :mod:`crossprefetch.checks` for every spec of every
view of the URLconf; :func:`check_cache_deploy` is a ``--deploy`` check. Ids are listed in
the docs and never reused.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.db import models

from crossprefetch._fetch.caching import loads_related
from crossprefetch.spec import CrossDBPrefetch

_PER_PROCESS = "django.core.cache.backends.locmem.LocMemCache"


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


def check_cache_deploy(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``check --deploy``: invalidation through a per-process cache stays in its process."""
    from crossprefetch._cache.invalidation import declared_views

    messages: list[checks.CheckMessage] = []
    for view, spec_name, spec in declared_views():
        policy = spec.cache
        if policy is None or not policy.invalidate:
            continue
        backend = settings.CACHES.get(policy.alias, {}).get("BACKEND")
        if backend != _PER_PROCESS:
            continue
        view_name = f"{view.__module__}.{view.__qualname__}"
        messages.append(
            checks.Warning(
                f"{view_name}.cross_db_fields[{spec_name!r}]: cache {policy.alias!r} is a "
                "LocMemCache, private to each process: a row written by one process is not "
                f"invalidated in the others, which serve it for up to {policy.timeout:g} s.",
                hint="Point the CachePolicy at a cache all processes share (Redis, "
                "Memcached), or run a single process.",
                obj=view_name,
                id="crossprefetch.W102",
            )
        )
    return messages
