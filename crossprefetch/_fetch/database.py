"""The bottom of the fetch chain: one query (or as few as the backend allows) per group.

Only the union of the projected fields plus the matched field leaves the database; each
row is placed in the result of every plan that asked for its key. The statements run with
the spec's ``timeout`` enforced by the server, in a scope a failure cannot leave aborted
(:mod:`crossprefetch._fetch.timeouts`), and by the client's deadline
(:mod:`crossprefetch._fetch.deadline`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import Any

from django.db import connections, models

from crossprefetch._fetch import deadline
from crossprefetch._fetch.base import Fetched
from crossprefetch._groups import Group
from crossprefetch._keys import matching, normalize, sql
from crossprefetch._plans import Plan


def query_database(group: Group) -> Fetched:
    """The rows of the group's keys for each of its plans; no query without keys."""
    keys = group.keys
    if not keys:
        return Fetched(group.empty_rows())
    plans = group.plans
    first = group.first
    queryset = group.queryset
    if not any(p.spec.many for p in plans) and normalize.is_unique(
        first.match_fields, queryset.model
    ):
        queryset = queryset.order_by()
    spec = first.spec

    def fetch() -> Fetched:
        if matching.matched_by_database(first.match_fields, connections[group.alias]):
            return _fetch_matched(plans, queryset, first.match_names, list(keys))
        if any(p.spec.fields is None for p in plans):
            return _fetch_instances(plans, queryset, first.match_names, list(keys))
        return _fetch_values(plans, queryset, first.match_names, list(keys))

    degrade = spec.error_policy() == "degrade"
    return deadline.run(first.alias, spec.statement_timeout(), fetch, isolate=degrade)


def _fetch_values(
    plans: list[Plan],
    queryset: models.QuerySet[Any],
    match_names: tuple[str, ...],
    keys: list[Any],
) -> Fetched:
    """Projected specs: select only the union of their fields plus the matched field."""
    columns: list[str] = []
    for plan in plans:
        for name in plan.spec.fields or ():
            if name not in columns:
                columns.append(name)
    columns += [name for name in match_names if name not in columns]
    read_match = itemgetter(*(columns.index(name) for name in match_names))
    pickers = [_picker([columns.index(name) for name in p.spec.fields or ()]) for p in plans]
    results = [plan.empty_rows() for plan in plans]
    queries = 0
    lone = plans[0]
    single = len(plans) == 1 and not lone.spec.many and pickers[0] is _whole_row
    for part in sql.filtered_by_keys(queryset, match_names, keys):
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
            for plan, pick, result in zip(plans, pickers, results, strict=True):
                if key in plan.keys:
                    _place(
                        plan,
                        result,
                        key,
                        dict(zip(plan.spec.fields or (), pick(row), strict=False)),
                    )
    return Fetched(results, queries)


def _fetch_instances(
    plans: list[Plan],
    queryset: models.QuerySet[Any],
    match_names: tuple[str, ...],
    keys: list[Any],
) -> Fetched:
    """At least one spec wants model instances; projected specs read their fields off them."""
    match_fields = plans[0].match_fields
    read_match = (
        (lambda obj, a=match_fields[0].attname: getattr(obj, a))
        if len(match_fields) == 1
        else (lambda obj: tuple(getattr(obj, f.attname) for f in match_fields))
    )
    model = queryset.model
    projections: list[tuple[tuple[str, ...], list[str]] | None] = []
    for plan in plans:
        if plan.spec.fields is None:
            projections.append(None)
        else:
            attnames = [model._meta.get_field(n).attname for n in plan.spec.fields]
            projections.append((plan.spec.fields, attnames))
    results = [plan.empty_rows() for plan in plans]
    queries = 0
    for part in sql.filtered_by_keys(queryset, match_names, keys):
        queries += 1
        for obj in part:
            key = read_match(obj)
            for plan, projection, result in zip(plans, projections, results, strict=True):
                if key in plan.keys:
                    row = (
                        obj
                        if projection is None
                        else {n: getattr(obj, a) for n, a in zip(*projection, strict=True)}
                    )
                    _place(plan, result, key, row)
    return Fetched(results, queries)


def _fetch_matched(
    plans: list[Plan],
    queryset: models.QuerySet[Any],
    match_names: tuple[str, ...],
    keys: list[Any],
) -> Fetched:
    """Keys the database matches by its own rule (see ``_matching``): each row comes with
    the position of the key it matched, and is placed under that key, not its own value."""
    instances = any(p.spec.fields is None for p in plans)
    columns: list[str] = []
    for plan in plans:
        for name in plan.spec.fields or ():
            if name not in columns:
                columns.append(name)
    meta = queryset.model._meta
    pickers = [_matched_picker(plan.spec.fields, instances, columns, meta) for plan in plans]
    results = [plan.empty_rows() for plan in plans]
    queries = 0
    for part, positions, offset in sql.joined_with_keys(queryset, match_names, keys):
        queries += 1
        rows: Iterable[tuple[Any, int]]
        if instances:
            rows = ((obj, obj.__dict__.pop(sql.MATCHED_KEY)) for obj in part)
        else:
            rows = ((row, row[-1]) for row in part.values_list(*columns, sql.MATCHED_KEY))
        for row, position in rows:
            for key in positions.keys_at(offset + position):
                for plan, pick, result in zip(plans, pickers, results, strict=True):
                    if key in plan.keys:
                        _place(plan, result, key, pick(row))
    return Fetched(results, queries)


def _matched_picker(
    fields: tuple[str, ...] | None, instances: bool, columns: list[str], meta: Any
) -> Callable[[Any], Any]:
    """A plan's row out of the group's: the instance itself, or a dict of its fields read
    off the instance or the values row (a new dict for each key the row matched)."""
    if fields is None:
        return lambda obj: obj
    if instances:
        attnames = [meta.get_field(name).attname for name in fields]
        return lambda obj: {n: getattr(obj, a) for n, a in zip(fields, attnames, strict=True)}
    positions = [columns.index(name) for name in fields]
    return lambda row: {n: row[i] for n, i in zip(fields, positions, strict=True)}


def _place(plan: Plan, result: dict[Any, Any], key: Any, row: Any) -> None:
    """Add a row to a plan's result: appended for to-many, else the first row of a key."""
    if plan.spec.many:
        result[key].append(row)
    elif key not in result:
        result[key] = row


def _whole_row(row: tuple[Any, ...]) -> Sequence[Any]:
    return row  # zip() stops at the spec's last field


def _picker(positions: list[int]) -> Callable[[tuple[Any, ...]], Sequence[Any]]:
    """Pick a spec's columns out of the group's row; the row itself when they lead it."""
    if positions == list(range(len(positions))):
        return _whole_row
    return lambda row: [row[i] for i in positions]
