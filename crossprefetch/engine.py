"""``prefetch_cross_db``: one query per remote group for the keys of the objects at hand.

The data path, top to bottom: specs → plans (:mod:`crossprefetch._plans`: each spec
resolved, its keys read and normalised) → groups (:mod:`crossprefetch._groups`: plans that
can share a query) → fetch (:mod:`crossprefetch._fetch`: a chain of layers, the database
query at the bottom) → lookups (:class:`~crossprefetch.Lookup`, one per spec) → fields.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import FieldError, ImproperlyConfigured
from django.http import HttpRequest

from crossprefetch import _compat, signals
from crossprefetch._fetch import chain
from crossprefetch._groups import Group, group_plans
from crossprefetch._keys import normalize
from crossprefetch._observe import activity
from crossprefetch._plans import Plan, collect_keys, make_plan
from crossprefetch._suggest import did_you_mean
from crossprefetch.lookup import Lookup, LookupStats
from crossprefetch.spec import CrossDBPrefetch

logger = logging.getLogger("crossprefetch")


def prefetch_cross_db(
    objects: Iterable[Any],
    specs: Mapping[str, CrossDBPrefetch],
    *,
    request: HttpRequest | None = None,
    known: Mapping[str, Mapping[Any, Any]] | None = None,
) -> dict[str, Lookup]:
    """Fetch, for every spec, the remote rows that ``objects`` reference.

    Collects the distinct non-null keys of ``objects``, normalises them to the remote
    field's type, and queries each remote database once per group of specs that share
    database, model, filter and matched field. Returns ``{name: Lookup}``; put it in a
    serializer's context for :class:`~crossprefetch.ContextLookupField` to read.

    ``request`` is passed to callable sources (per-tenant QuerySets) and cache scopes.

    ``known`` holds rows already read through a spec, ``{name: {key: row}}``, each row as
    the spec makes them (a dict of its ``fields``): their keys are not fetched again. The
    filter backend passes the rows its remote query read, so a filtered page costs one
    remote query. Only to-one specs take them.
    """
    if not isinstance(specs, Mapping):
        raise TypeError(
            f"prefetch_cross_db(specs={specs!r}): specs must be a dict of "
            "{name: CrossDBPrefetch(...)}."
        )
    objs = objects if isinstance(objects, list | tuple) else list(objects)
    plans = [make_plan(name, spec, request) for name, spec in specs.items()]
    if known:
        for plan in plans:
            if not plan.spec.many:
                plan.known = known.get(plan.name)
    collect_keys(objs, plans)
    lookups: dict[str, Lookup] = {}
    for group in group_plans(plans, request):
        try:
            fetched = _fetch(group)
        except FieldError as exc:
            raise _field_error(group, request, exc) from exc
        for plan, rows in zip(group.plans, fetched, strict=True):
            lookups[plan.name] = _lookup(plan, rows)
    if objs and signals.lookups_prefetched.receivers:
        signals.lookups_prefetched.send(sender=prefetch_cross_db, lookups=lookups, request=request)
    return lookups


def _field_error(
    group: Group, request: HttpRequest | None, error: FieldError
) -> ImproperlyConfigured:
    """Name the spec (and the view) whose ``fields=`` the database could not resolve.

    The checks see the fields of model sources; a QuerySet or callable source (its
    annotations, its model known per request) can only fail here.
    """
    view = _view_label(request)
    for plan in group.plans:
        for name in plan.spec.fields or ():
            try:
                plan.queryset.values_list(name)
            except FieldError:
                choices = [
                    *(f.name for f in plan.queryset.model._meta.concrete_fields),
                    *plan.queryset.query.annotations,
                ]
                hint = did_you_mean(name.split("__", 1)[0], choices)
                return ImproperlyConfigured(
                    f"{view}cross_db_fields[{plan.name!r}] = {plan.spec!r}: fields names "
                    f"{name!r}, which {plan.queryset.model._meta.label} cannot resolve "
                    f"({error}).{hint} List fields or annotations of the remote QuerySet in "
                    "fields."
                )
    names = ", ".join(repr(plan.name) for plan in group.plans)
    return ImproperlyConfigured(f"{view}cross_db_fields[{names}]: {error}")


def _view_label(request: HttpRequest | None) -> str:
    """``"module.View: "`` for the view serving ``request``, or ``""``."""
    path = _compat.view_path(getattr(request, "resolver_match", None))
    if path is None:
        view = (getattr(request, "parser_context", None) or {}).get("view")
        if view is not None:
            path = f"{type(view).__module__}.{type(view).__qualname__}"
    return f"{path}: " if path else ""


def _fetch(group: Group) -> list[dict[Any, Any]]:
    """Run the group through the fetch chain; each plan's stats record what it cost."""
    first = group.first
    for plan in group.plans:
        plan.stats = LookupStats(
            name=plan.name,
            model=first.queryset.model._meta.label,
            alias=first.alias,
            keys_asked=len(plan.keys),
            keys_invalid=sum(1 for k in plan.aliases.values() if k is normalize.INVALID),
            shared_with=[p.name for p in group.plans if p is not plan],
        )
    started = time.perf_counter()
    with activity.fetching(tuple(plan.name for plan in group.plans)):  # for query capture
        fetched = chain.fetch(group)
    elapsed = (time.perf_counter() - started) * 1000
    degraded = fetched.degraded
    for plan, rows in zip(group.plans, fetched.rows, strict=True):
        assert plan.stats is not None
        plan.stats.queries = fetched.queries
        plan.stats.time_ms = elapsed
        plan.stats.keys_found = plan.count_found(rows)
        plan.stats.degraded = plan.name in degraded
    return fetched.rows


def _lookup(plan: Plan, rows: dict[Any, Any]) -> Lookup:
    stats = plan.stats or LookupStats(
        name=plan.name, model=plan.queryset.model._meta.label, alias=plan.alias
    )
    if stats.keys_asked and logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "lookup %r: %d key(s) asked, %d found, %d quer%s on %r",
            plan.name,
            stats.keys_asked,
            stats.keys_found,
            stats.queries,
            "y" if stats.queries == 1 else "ies",
            stats.alias,
        )
    return Lookup(
        plan.name,
        plan.spec,
        rows,
        plan.raw_keys,
        plan.aliases,
        plan.read_key,
        plan.normalize,
        stats,
    )
