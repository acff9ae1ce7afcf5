"""Plans that can share one query, and the :class:`Group` the fetch chain is given.

The third step of the data path (specs → plans → **groups** → fetch → lookups → fields).
Two specs ``buyer`` and ``seller`` that both read ``Customer.pk`` on ``default`` are one
group: one query with the union of their keys.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from django.db import models
from django.http import HttpRequest

from crossprefetch import _compat
from crossprefetch._cache.policy import CachePolicy
from crossprefetch._fetch.base import Fetched
from crossprefetch._fetch.errors import Failure
from crossprefetch._identity import Identity, identify, plan_shape, run_shape
from crossprefetch._plans import Plan
from crossprefetch.conf import conf
from crossprefetch.spec import CrossDBPrefetch


@dataclass(eq=False)
class Group:
    """What one fetch is asked: plans sharing database, model, filter and matched fields.

    The members agree on everything the query depends on, so the first one speaks for the
    group; each keeps its own keys and receives its own rows.
    """

    plans: list[Plan]
    request: HttpRequest | None = None

    @property
    def first(self) -> Plan:
        return self.plans[0]

    @property
    def spec(self) -> CrossDBPrefetch:
        return self.plans[0].spec

    @property
    def queryset(self) -> models.QuerySet[Any]:
        return self.plans[0].queryset

    @property
    def alias(self) -> str:
        return self.plans[0].alias

    @property
    def match_names(self) -> tuple[str, ...]:
        return self.plans[0].match_names

    @property
    def cache(self) -> CachePolicy | None:
        return self.plans[0].spec.cache

    @cached_property
    def identity(self) -> Identity | None:
        """What the group's answer depends on, computed once (the SQL compiled once) and read
        by every layer that shares answers; ``None``: the group shares nothing."""
        return identify(self.plans[0], self.request)

    @cached_property
    def keys(self) -> set[Any]:
        """The union of the members' keys: what the query asks for."""
        plans = self.plans
        return plans[0].keys if len(plans) == 1 else set().union(*(p.keys for p in plans))

    def empty_rows(self) -> list[dict[Any, Any]]:
        return [plan.empty_rows() for plan in self.plans]

    # What the layers that do not read keys ask (:class:`~crossprefetch._fetch.base.Unit`)

    @property
    def empty(self) -> bool:
        return not self.keys

    @property
    def size(self) -> int:
        return len(self.keys)

    @property
    def names(self) -> list[str]:
        return [plan.name for plan in self.plans]

    kind = "lookups"
    outcome = "their keys read as missing"

    def window(self) -> float | None:
        """The shortest ``coalesce`` window of the specs; ``None`` when one says never."""
        default = conf.COALESCE
        windows = [default if p.spec.coalesce is None else p.spec.coalesce for p in self.plans]
        if any(not w for w in windows):
            return None
        return min(w for w in windows if w)

    def degraded(self, failure: Failure) -> Fetched:
        """No rows for any plan: every key reads as missing; the plans say why."""
        for plan in self.plans:
            stats = plan.stats
            if stats is not None:
                stats.breaker_open = failure.breaker_open
                stats.error = str(failure)
        return Fetched(self.empty_rows(), 0, frozenset(p.name for p in self.plans))

    def combined(self, members: Sequence[Group]) -> Group:
        """One query for the keys of every member."""
        return self.with_plans([p for g in members for p in g.plans])

    def shares(self, fetched: Fetched, members: Sequence[Group]) -> list[Fetched]:
        """Each member's rows: the plans' results in order; model instances copied for every
        member but the first, so no two requests share a mutable object."""
        rows = fetched.rows
        shared: list[Fetched] = []
        start = 0
        for position, member in enumerate(members):
            end = start + len(member.plans)
            own = rows[start:end]
            shared.append(Fetched(own if position == 0 else _copies(member.plans, own)))
            start = end
        return shared

    def coalesced_with(self, others: int) -> None:
        for plan in self.plans:
            if plan.stats is not None:
                plan.stats.coalesced_with = others

    def narrowed(self, keys: Mapping[Plan, set[Any]]) -> Group:
        """The same group asking only ``keys[plan]`` of the members named in ``keys``.

        For a layer that answers part of the keys itself: the cache, for its hits.
        """
        return self.with_plans([replace(p, keys=keys[p]) for p in self.plans if p in keys])

    def with_plans(self, plans: list[Plan]) -> Group:
        """The same query for ``plans`` (which agree with this group's): same identity."""
        group = Group(plans, self.request)
        group.identity = self.identity
        return group


def group_plans(plans: list[Plan], request: HttpRequest | None = None) -> list[Group]:
    """Plans that can share one query: same database, model, filter and matched fields.

    Specs naming a model share its default manager; QuerySet and callable sources are
    compared by their compiled SQL, which is only computed when a candidate shares the rest
    (and then serves as the group's identity too). A shared query has one failure policy
    and one timeout, so the specs must agree on them.
    """
    coarse: dict[tuple[Hashable, ...], list[Plan]] = {}
    for plan in plans:
        coarse.setdefault((*plan_shape(plan), *run_shape(plan)), []).append(plan)
    groups: list[Group] = []
    for members in coarse.values():
        if len(members) == 1:
            groups.append(Group(members, request))
            continue
        by_filter: dict[Hashable, list[Plan]] = {}
        for plan in members:
            by_filter.setdefault(_filter(plan), []).append(plan)
        groups.extend(Group(same, request) for same in by_filter.values())
    return groups


def _filter(plan: Plan) -> Hashable:
    """What must match for two specs to share a query: SQL, parameters, prefetches."""
    if isinstance(plan.spec.source, type | str) and _compat.group_by(plan.queryset) is None:
        return "<default manager>"
    queryset = plan.queryset
    sql = plan.compiled
    if sql is None:  # empty, or does not compile alone: a group of its own
        return id(queryset)
    return (*sql, repr(_compat.prefetch_lookups(queryset)))


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
