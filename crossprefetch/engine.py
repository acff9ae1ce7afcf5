"""``prefetch_cross_db``: one query per remote group for the keys of the objects at hand."""

from __future__ import annotations

import difflib
import logging
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from django.core.exceptions import FieldError, ImproperlyConfigured
from django.db import connections, models
from django.db.models.query import ModelIterable
from django.http import HttpRequest

from crossprefetch import _caching, _keys, _sql, signals
from crossprefetch.lookup import Lookup, LookupStats
from crossprefetch.spec import CrossDBPrefetch

logger = logging.getLogger("crossprefetch")


@dataclass(eq=False)
class _Plan:
    """One spec, resolved for one call: its QuerySet, database, matched fields and keys."""

    name: str
    spec: CrossDBPrefetch
    queryset: models.QuerySet[Any]
    alias: str
    match_fields: tuple[models.Field[Any, Any], ...]
    normalize: _keys.Normalizer
    read_key: _keys.KeyReader | None = None
    #: the distinct keys as read off the objects
    raw_keys: set[Hashable] = field(default_factory=set)
    #: raw keys whose normalised key differs (``"42"`` -> 42, or INVALID)
    aliases: dict[Hashable, Any] = field(default_factory=dict)
    #: the normalised keys to fetch
    keys: set[Any] = field(default_factory=set)
    stats: LookupStats | None = None

    @property
    def match_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.match_fields)


def prefetch_cross_db(
    objects: Iterable[Any],
    specs: Mapping[str, CrossDBPrefetch],
    *,
    request: HttpRequest | None = None,
) -> dict[str, Lookup]:
    """Fetch, for every spec, the remote rows that ``objects`` reference.

    Collects the distinct non-null keys of ``objects``, normalises them to the remote
    field's type, and queries each remote database once per group of specs that share
    database, model, filter and matched field. Returns ``{name: Lookup}``; put it in a
    serializer's context for :class:`~crossprefetch.ContextLookupField` to read.

    ``request`` is passed to callable sources (per-tenant QuerySets) and cache scopes.
    """
    if not isinstance(specs, Mapping):
        raise TypeError(
            f"prefetch_cross_db(specs={specs!r}): specs must be a dict of "
            "{name: CrossDBPrefetch(...)}."
        )
    objs = objects if isinstance(objects, list | tuple) else list(objects)
    plans = [_plan(name, spec, request) for name, spec in specs.items()]
    _collect_keys(objs, plans)
    lookups: dict[str, Lookup] = {}
    for group in _groups(plans):
        try:
            fetched = _fetch_group(group, request)
        except FieldError as exc:
            raise _field_error(group, request, exc) from exc
        for plan, rows in zip(group, fetched, strict=True):
            lookups[plan.name] = _lookup(plan, rows)
    if objs and signals.lookups_prefetched.receivers:
        signals.lookups_prefetched.send(sender=prefetch_cross_db, lookups=lookups, request=request)
    return lookups


def _plan(name: str, spec: Any, request: HttpRequest | None) -> _Plan:
    if not isinstance(spec, CrossDBPrefetch):
        raise TypeError(
            f"prefetch_cross_db: specs[{name!r}] is {spec!r}, not a CrossDBPrefetch. "
            f"Declare it as {name!r}: CrossDBPrefetch('app_label.Model', key='...')."
        )
    queryset = spec.get_queryset(request)
    if spec.fields is None and not issubclass(queryset._iterable_class, ModelIterable):
        raise ImproperlyConfigured(
            f"{spec!r} ({name!r}): the source is a values()/values_list() QuerySet, so its "
            "rows are not model instances. Give the spec fields=(...) instead, and drop "
            "values() from the QuerySet."
        )
    model = queryset.model
    match_fields = spec.get_match_fields(model)
    alias = queryset.db
    if alias not in connections:
        raise ImproperlyConfigured(
            f"{spec!r} ({name!r}): database alias {alias!r} is not in settings.DATABASES "
            f"({', '.join(connections)})."
        )
    return _Plan(
        name=name,
        spec=spec,
        queryset=queryset,
        alias=alias,
        match_fields=match_fields,
        normalize=_keys.normalizer(match_fields, connections[alias]),
    )


def _field_error(
    group: list[_Plan], request: HttpRequest | None, error: FieldError
) -> ImproperlyConfigured:
    """Name the spec (and the view) whose ``fields=`` the database could not resolve.

    The checks see the fields of model sources; a QuerySet or callable source (its
    annotations, its model known per request) can only fail here.
    """
    view = _view_label(request)
    for plan in group:
        for name in plan.spec.fields or ():
            try:
                plan.queryset.values_list(name)
            except FieldError:
                choices = [
                    *(f.name for f in plan.queryset.model._meta.concrete_fields),
                    *plan.queryset.query.annotations,
                ]
                close = difflib.get_close_matches(name.split("__", 1)[0], choices, n=1)
                return ImproperlyConfigured(
                    f"{view}cross_db_fields[{plan.name!r}] = {plan.spec!r}: fields names "
                    f"{name!r}, which {plan.queryset.model._meta.label} cannot resolve "
                    f"({error}). "
                    + (f"Did you mean {close[0]!r}? " if close else "")
                    + "List fields or annotations of the remote QuerySet in fields."
                )
    names = ", ".join(repr(plan.name) for plan in group)
    return ImproperlyConfigured(f"{view}cross_db_fields[{names}]: {error}")


def _view_label(request: HttpRequest | None) -> str:
    """``"module.View: "`` for the view serving ``request``, or ``""``."""
    match = getattr(request, "resolver_match", None)
    path = getattr(match, "_func_path", None)
    if path is None:
        view = (getattr(request, "parser_context", None) or {}).get("view")
        if view is not None:
            path = f"{type(view).__module__}.{type(view).__qualname__}"
    return f"{path}: " if path else ""


def _collect_keys(objs: Sequence[Any], plans: list[_Plan]) -> None:
    """Read each distinct key getter once, then normalise per plan."""
    if not objs:
        return
    seen: dict[Any, tuple[_keys.KeyReader, set[Hashable]]] = {}
    for plan in plans:
        key = plan.spec.key
        if key not in seen:
            read = _keys.key_reader(key, objs[0])
            seen[key] = (read, _read_all(read, objs, plan))
        plan.read_key, plan.raw_keys = seen[key]
        plan.keys, plan.aliases = _keys.normalize_all(
            plan.raw_keys, plan.match_fields, plan.normalize, connections[plan.alias]
        )


def _read_all(read: _keys.KeyReader, objs: Sequence[Any], plan: _Plan) -> set[Hashable]:
    try:
        return set(map(read, objs))
    except (AttributeError, KeyError) as exc:
        raise ImproperlyConfigured(
            f"{plan.spec!r} ({plan.name!r}): cannot read key {plan.spec.key!r} from "
            f"{type(objs[0]).__name__} objects ({exc}). key must be an attribute path of "
            "the objects being serialized, a tuple of paths, or a callable(obj)."
        ) from exc
    except TypeError as exc:
        raise TypeError(
            f"{plan.spec!r} ({plan.name!r}): the keys read from {type(objs[0]).__name__} "
            f"objects are not hashable ({exc}); a composite key must be a tuple."
        ) from exc


def _groups(plans: list[_Plan]) -> list[list[_Plan]]:
    """Plans that can share one query: same database, model, filter and matched fields.

    Specs naming a model share its default manager; QuerySet and callable sources are
    compared by their compiled SQL, which is only computed when a candidate shares the rest.
    """
    coarse: dict[tuple[Any, ...], list[_Plan]] = {}
    for plan in plans:
        fields = plan.spec.fields
        identity = (
            plan.alias,
            plan.queryset.model,
            plan.match_names,
            # projections that follow relations (to-many joins) share only when identical
            fields if fields is not None and any("__" in name for name in fields) else None,
            plan.spec.cache,
        )
        coarse.setdefault(identity, []).append(plan)
    groups: list[list[_Plan]] = []
    for members in coarse.values():
        if len(members) == 1:
            groups.append(members)
            continue
        by_filter: dict[tuple[str, ...], list[_Plan]] = {}
        for plan in members:
            by_filter.setdefault(_filter_identity(plan), []).append(plan)
        groups.extend(by_filter.values())
    return groups


def _filter_identity(plan: _Plan) -> tuple[str, ...]:
    """What must match for two specs to share a query: SQL, parameters, prefetches."""
    if isinstance(plan.spec.source, type | str):
        return ("<default manager>",)
    queryset = plan.queryset
    if queryset.query.is_empty():
        return ("<empty>",)
    try:
        sql, params = queryset.query.get_compiler(using=plan.alias).as_sql()
    except Exception:  # a QuerySet that cannot compile alone gets a group of its own
        return (f"<{id(queryset)}>",)
    prefetches = getattr(queryset, "_prefetch_related_lookups", ())
    return (sql, repr(params), repr(prefetches))


def _is_unique(fields: tuple[models.Field[Any, Any], ...], model: type[models.Model]) -> bool:
    if len(fields) == 1:
        return bool(fields[0].unique)
    names = {f.name for f in fields}
    meta = model._meta
    together = [set(t) for t in meta.unique_together]
    together += [set(c.fields) for c in meta.total_unique_constraints if not c.condition]
    pk = meta.pk
    if pk is not None and getattr(pk, "fields", None):
        together.append({f.name for f in pk.fields})
    return names in together


def _fetch_group(group: list[_Plan], request: HttpRequest | None = None) -> list[dict[Any, Any]]:
    """Run the group's query (or queries, when a key set must be split); rows per plan.

    A cached group reads the cache first and queries only the keys it misses.
    """
    first = group[0]
    stats = [
        LookupStats(
            name=plan.name,
            model=first.queryset.model._meta.label,
            alias=first.alias,
            keys_asked=len(plan.keys),
            keys_invalid=sum(1 for k in plan.aliases.values() if k is _keys.INVALID),
            shared_with=[p.name for p in group if p is not plan],
        )
        for plan in group
    ]
    for plan, plan_stats in zip(group, stats, strict=True):
        plan.stats = plan_stats
    keys = first.keys if len(group) == 1 else set().union(*(p.keys for p in group))
    if first.spec.cache is not None:
        return _caching.fetch_group(group, keys, request, _query_group)
    if not keys:
        return _empty_results(group)

    started = time.perf_counter()
    rows_per_plan, queries = _query_group(group, keys)
    elapsed = (time.perf_counter() - started) * 1000
    for plan, plan_rows in zip(group, rows_per_plan, strict=True):
        assert plan.stats is not None
        plan.stats.queries = queries
        plan.stats.time_ms = elapsed
        plan.stats.keys_found = count_found(plan, plan_rows)
    return rows_per_plan


def _query_group(group: list[_Plan], keys: set[Any]) -> tuple[list[dict[Any, Any]], int]:
    """The rows of ``keys`` for each plan of the group, and how many queries it took."""
    first = group[0]
    queryset = first.queryset
    if not any(p.spec.many for p in group) and _is_unique(first.match_fields, queryset.model):
        queryset = queryset.order_by()
    if any(p.spec.fields is None for p in group):
        return _fetch_instances(group, queryset, first.match_names, list(keys))
    return _fetch_values(group, queryset, first.match_names, list(keys))


def _fetch_values(
    group: list[_Plan],
    queryset: models.QuerySet[Any],
    match_names: tuple[str, ...],
    keys: list[Any],
) -> tuple[list[dict[Any, Any]], int]:
    """Projected specs: select only the union of their fields plus the matched field."""
    columns: list[str] = []
    for plan in group:
        for name in plan.spec.fields or ():
            if name not in columns:
                columns.append(name)
    columns += [name for name in match_names if name not in columns]
    read_match = itemgetter(*(columns.index(name) for name in match_names))
    pickers = [_picker([columns.index(name) for name in p.spec.fields or ()]) for p in group]
    results = _empty_results(group)
    queries = 0
    lone = group[0]
    single = len(group) == 1 and not lone.spec.many and pickers[0] is _whole_row
    for part in _sql.filtered_by_keys(queryset, match_names, keys):
        queries += 1
        if single:
            # one projected spec: a comprehension, and the first row of a key wins
            names = lone.spec.fields or ()
            found = {
                read_match(row): dict(zip(names, row, strict=False))
                for row in reversed(part.values_list(*columns))
            }
            found.update(results[0])
            results[0] = found
            continue
        for row in part.values_list(*columns):
            key = read_match(row)
            for plan, pick, result in zip(group, pickers, results, strict=True):
                if key in plan.keys:
                    _place(
                        plan,
                        result,
                        key,
                        dict(zip(plan.spec.fields or (), pick(row), strict=False)),
                    )
    return results, queries


def _place(plan: _Plan, result: dict[Any, Any], key: Any, row: Any) -> None:
    """Add a row to a plan's result: appended for to-many, else the first row of a key."""
    if plan.spec.many:
        result[key].append(row)
    elif key not in result:
        result[key] = row


def _fetch_instances(
    group: list[_Plan],
    queryset: models.QuerySet[Any],
    match_names: tuple[str, ...],
    keys: list[Any],
) -> tuple[list[dict[Any, Any]], int]:
    """At least one spec wants model instances; projected specs read their fields off them."""
    match_fields = group[0].match_fields
    read_match = (
        (lambda obj, a=match_fields[0].attname: getattr(obj, a))
        if len(match_fields) == 1
        else (lambda obj: tuple(getattr(obj, f.attname) for f in match_fields))
    )
    model = queryset.model
    projections: list[tuple[tuple[str, ...], list[str]] | None] = []
    for plan in group:
        if plan.spec.fields is None:
            projections.append(None)
        else:
            attnames = [model._meta.get_field(n).attname for n in plan.spec.fields]
            projections.append((plan.spec.fields, attnames))
    results = _empty_results(group)
    queries = 0
    for part in _sql.filtered_by_keys(queryset, match_names, keys):
        queries += 1
        for obj in part:
            key = read_match(obj)
            for plan, projection, result in zip(group, projections, results, strict=True):
                if key in plan.keys:
                    row = (
                        obj
                        if projection is None
                        else {n: getattr(obj, a) for n, a in zip(*projection, strict=True)}
                    )
                    _place(plan, result, key, row)
    return results, queries


def empty_result(plan: _Plan) -> dict[Any, Any]:
    """A plan's rows before any is fetched: every key's empty list for to-many specs."""
    return {k: [] for k in plan.keys} if plan.spec.many else {}


def _empty_results(group: list[_Plan]) -> list[dict[Any, Any]]:
    return [empty_result(plan) for plan in group]


def count_found(plan: _Plan, rows: dict[Any, Any]) -> int:
    """How many of the plan's keys have a row (at least one, for to-many specs)."""
    return sum(1 for k in plan.keys if rows.get(k)) if plan.spec.many else len(rows)


def _whole_row(row: tuple[Any, ...]) -> Sequence[Any]:
    return row  # zip() stops at the spec's last field


def _picker(positions: list[int]) -> Callable[[tuple[Any, ...]], Sequence[Any]]:
    """Pick a spec's columns out of the group's row; the row itself when they lead it."""
    if positions == list(range(len(positions))):
        return _whole_row
    return lambda row: [row[i] for i in positions]


def _lookup(plan: _Plan, rows: dict[Any, Any]) -> Lookup:
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
