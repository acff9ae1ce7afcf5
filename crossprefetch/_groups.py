"""Plans that can share one query, and the :class:`Group` the fetch chain is given.

The third step of the data path (specs → plans → **groups** → fetch → lookups → fields).
Two specs ``buyer`` and ``seller`` that both read ``Customer.pk`` on ``default`` are one
group: one query with the union of their keys.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from django.db import models
from django.http import HttpRequest

from crossprefetch import _compat
from crossprefetch._cache.policy import CachePolicy
from crossprefetch._identity import Identity, identify, plan_shape, run_shape
from crossprefetch._plans import Plan
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
