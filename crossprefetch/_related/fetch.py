"""A tree of relation paths fetched level by level, into Django's related-object caches.

Each level is one :func:`~crossprefetch.prefetch_cross_db` call: every hop of the level
becomes a :class:`~crossprefetch.CrossDBPrefetch` (forward: the foreign key's column
against its target field; backward: the target field against the foreign key, ``many``),
so the hops reaching one model in one database share one query, and the fetch chain
(cache, failure policy, coalescing, key normalisation, huge key sets) serves them all.
The rows then land where Django's own ``prefetch_related_objects`` puts them: a forward
relation's (and a reverse one-to-one's) field cache, a reverse relation's prefetch cache.
Objects whose relation is cached already (``select_related``, an earlier prefetch) are
not fetched again; the next level starts from their cached rows all the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from django.db import models
from django.http import HttpRequest

from crossprefetch import _compat
from crossprefetch._related.hops import Hop
from crossprefetch._related.tree import Node
from crossprefetch.engine import prefetch_cross_db
from crossprefetch.lookup import MISSING, NOT_PREFETCHED, Lookup
from crossprefetch.spec import CrossDBPrefetch

#: ``CrossDBPrefetch`` arguments a caller may give every hop of a call.
OPTIONS = ("cache", "on_error", "timeout", "coalesce")


def fetch(
    objects: Sequence[models.Model],
    roots: list[Node],
    *,
    request: HttpRequest | None = None,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Lookup]:
    """Fill the related-object caches of ``objects`` along ``roots``; the lookups built,
    by path (hops of one level that shared a spec share its lookup)."""
    options = dict(options or {})
    lookups: dict[str, Lookup] = {}
    level = [(node, objects) for node in roots]
    while level:
        _fetch_level(level, request, options, lookups)
        level = [
            (child, below)
            for node, objs in level
            if node.children
            for below in (_related_objects(node, objs),)
            if below
            for child in node.children.values()
        ]
    return lookups


def _fetch_level(
    level: list[tuple[Node, Sequence[models.Model]]],
    request: HttpRequest | None,
    options: dict[str, Any],
    lookups: dict[str, Lookup],
) -> None:
    """One query per database and model for the hops of one level."""
    # nodes of one hop and projection (the same relation reached by two paths) share a spec
    shared: dict[tuple[Any, ...], list[tuple[Node, list[models.Model]]]] = {}
    for node, objs in level:
        pending = [obj for obj in objs if not _filled(node, obj)]
        if not pending:
            continue
        columns = node.needed_columns()
        identity = (
            node.hop,
            id(node.queryset),
            None if columns is None else frozenset(columns),
        )
        shared.setdefault(identity, []).append((node, pending))
    if not shared:
        return
    members = [
        _distinct(obj for _, pending in nodes for obj in pending) for nodes in shared.values()
    ]
    first = [id(obj) for obj in members[0]]
    lone = all([id(obj) for obj in objs] == first for objs in members[1:])
    specs: dict[str, CrossDBPrefetch] = {}
    for (_, _, columns), nodes, objs in zip(shared, shared.values(), members, strict=True):
        node = nodes[0][0]
        key: Any = node.hop.local.attname if lone else _KeyOf(node.hop.local.attname, objs)
        specs[node.path] = _spec(node, objs[0], columns, key, options)
    everything = members[0] if lone else _distinct(obj for objs in members for obj in objs)
    built = prefetch_cross_db(everything, specs, request=request)
    for nodes, name in zip(shared.values(), specs, strict=True):
        lookup = built[name]
        for node, pending in nodes:
            lookups[node.path] = lookup
            _store(node, pending, lookup)


def _spec(
    node: Node,
    sample: models.Model,
    columns: frozenset[str] | None,
    key: Any,
    options: Mapping[str, Any],
) -> CrossDBPrefetch:
    hop = node.hop
    queryset = node.queryset
    if queryset is not None:
        alias = _compat.explicit_db(queryset) or hop.alias(sample)
        source = queryset.using(alias)
    else:
        source = related_queryset(hop, hop.alias(sample), columns)
    return CrossDBPrefetch(source, key=key, to_field=hop.remote.name, many=hop.many, **options)


@lru_cache(maxsize=512)
def related_queryset(
    hop: Hop, alias: str, columns: frozenset[str] | None
) -> models.QuerySet[models.Model]:
    """The related rows of ``hop`` on ``alias``, only ``columns`` of them (kept: a spec
    clones it on each use). Forward, through the base manager, as Django's forward
    descriptors read; backward, through the default manager, as related managers do."""
    model = hop.related_model
    manager = model._base_manager if hop.forward else model._default_manager
    queryset: models.QuerySet[models.Model] = manager.db_manager(alias).all()
    if columns is not None:
        queryset = queryset.only(*sorted(columns))
    return queryset


class _KeyOf:
    """Reads a hop's key off the objects it is followed from, ``None`` off any other object
    of the level (a level mixes the objects of several parents)."""

    __slots__ = ("attname", "members")

    def __init__(self, attname: str, objs: list[models.Model]) -> None:
        self.attname = attname
        self.members = frozenset(map(id, objs))

    def __call__(self, obj: Any) -> Any:
        return getattr(obj, self.attname) if id(obj) in self.members else None

    def __repr__(self) -> str:
        return self.attname


def _distinct(objs: Any) -> list[models.Model]:
    """The objects once each, in order (the same row reached twice is one instance)."""
    return list({id(obj): obj for obj in objs}.values())


def _filled(node: Node, obj: models.Model) -> bool:
    if node.to_attr is not None:
        return node.to_attr in obj.__dict__
    hop = node.hop
    if hop.many:
        return _compat.is_prefetched(obj, hop.cache.cache_name)
    return hop.cache.is_cached(obj)


def _store(node: Node, objs: list[models.Model], lookup: Lookup) -> None:
    """Put each object's rows where Django's related descriptors look first."""
    hop = node.hop
    to_attr = node.to_attr
    get_for = lookup.get_for
    if hop.many:
        field = hop.field
        cache_name = hop.cache.cache_name
        for obj in objs:
            rows = get_for(obj)
            if rows is MISSING or rows is NOT_PREFETCHED:
                rows = []
            for row in rows:
                field.set_cached_value(row, obj)
            if to_attr is not None:
                setattr(obj, to_attr, list(rows))
                continue
            queryset = getattr(obj, hop.name).get_queryset()
            _compat.fill_queryset(queryset, rows)
            _compat.prefetched_objects(obj)[cache_name] = queryset
        return
    # one row or none: forward, or a reverse one-to-one
    back = hop.field.remote_field if hop.forward and hop.field.one_to_one else None
    if not hop.forward:
        back = hop.field  # type: ignore[assignment]
    cache = hop.cache
    for obj in objs:
        row = get_for(obj)
        if row is MISSING or row is NOT_PREFETCHED:
            row = None
        if to_attr is not None:
            setattr(obj, to_attr, row)
        else:
            cache.set_cached_value(obj, row)
        if back is not None and row is not None:
            back.set_cached_value(row, obj)


def _related_objects(node: Node, objs: Sequence[models.Model]) -> list[models.Model]:
    """The rows the objects reach through ``node``, once each: the next level's objects."""
    hop = node.hop
    to_attr = node.to_attr
    found: dict[int, models.Model] = {}
    for obj in objs:
        if to_attr is not None:
            value = obj.__dict__.get(to_attr)
            rows = (value,) if not hop.many else (value or ())
        elif hop.many:
            cached = _compat.prefetched_objects(obj).get(hop.cache.cache_name)
            rows = () if cached is None else cached
        else:
            rows = (hop.cache.get_cached_value(obj, None),)
        for row in rows:
            if row is not None:
                found[id(row)] = row
    return list(found.values())
