"""Specs resolved for one call: each spec's QuerySet, database, matched fields and keys.

The first step of the data path (specs → **plans** → groups → fetch → lookups → fields):
a :class:`Plan` is one spec as it applies to the objects at hand, with the distinct keys
read off them and normalised to the remote field's type.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from django.core.exceptions import EmptyResultSet, ImproperlyConfigured
from django.db import connections, models
from django.http import HttpRequest

from crossprefetch import _compat
from crossprefetch._keys.normalize import (
    KeyReader,
    Normalizer,
    key_reader,
    normalize_all,
    normalizer,
)
from crossprefetch.lookup import LookupStats
from crossprefetch.spec import CrossDBPrefetch

logger = logging.getLogger("crossprefetch")


@dataclass(eq=False)
class Plan:
    """One spec, resolved for one call: its QuerySet, database, matched fields and keys."""

    name: str
    spec: CrossDBPrefetch
    queryset: models.QuerySet[Any]
    alias: str
    match_fields: tuple[models.Field[Any, Any], ...]
    normalize: Normalizer
    read_key: KeyReader | None = None
    #: the distinct keys as read off the objects
    raw_keys: set[Hashable] = field(default_factory=set)
    #: raw keys whose normalised key differs (``"42"`` -> 42, or INVALID)
    aliases: dict[Hashable, Any] = field(default_factory=dict)
    #: the normalised keys to fetch
    keys: set[Any] = field(default_factory=set)
    stats: LookupStats | None = None
    #: rows already read through this spec, ``{key: row}``: answered without a query
    #: (to-one specs only: a to-many row list could be incomplete)
    known: Mapping[Any, Any] | None = None

    @property
    def match_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.match_fields)

    @cached_property
    def compiled(self) -> tuple[str, str] | None:
        """The QuerySet's SQL and parameters, or ``None``: it is empty or cannot compile alone.

        Compiled at most once per plan, for the group's identity
        (:mod:`crossprefetch._identity`): a manager or a callable source may filter by
        request state, and the SQL is what says so.
        """
        query = self.queryset.query
        if query.is_empty():
            return None
        try:
            sql, params = _compat.compiled(self.queryset, self.alias)
        except EmptyResultSet:
            return None
        except Exception:  # e.g. a reference to an outer query: it only means something there
            logger.debug("%r is not shared: it does not compile alone", self.spec, exc_info=True)
            return None
        return sql, repr(params)

    def empty_rows(self) -> dict[Any, Any]:
        """The plan's rows before any is fetched: every key's empty list for to-many specs."""
        return {k: [] for k in self.keys} if self.spec.many else {}

    def count_found(self, rows: dict[Any, Any]) -> int:
        """How many of the plan's keys have a row (at least one, for to-many specs)."""
        return sum(1 for k in self.keys if rows.get(k)) if self.spec.many else len(rows)


def make_plan(name: str, spec: Any, request: HttpRequest | None) -> Plan:
    """Resolve ``spec`` for this call: refused here when it cannot be fetched at all."""
    if not isinstance(spec, CrossDBPrefetch):
        raise TypeError(
            f"prefetch_cross_db: specs[{name!r}] is {spec!r}, not a CrossDBPrefetch. "
            f"Declare it as {name!r}: CrossDBPrefetch('app_label.Model', key='...')."
        )
    queryset = spec.get_queryset(request)
    if spec.fields is None and not _compat.yields_instances(queryset):
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
    return Plan(
        name=name,
        spec=spec,
        queryset=queryset,
        alias=alias,
        match_fields=match_fields,
        normalize=normalizer(match_fields, connections[alias]),
    )


def collect_keys(objs: Sequence[Any], plans: list[Plan]) -> None:
    """Read each distinct key getter once, then normalise per plan."""
    if not objs:
        return
    seen: dict[Any, tuple[KeyReader, set[Hashable]]] = {}
    for plan in plans:
        key = plan.spec.key
        if key not in seen:
            read = key_reader(key, objs[0])
            seen[key] = (read, _read_all(read, objs, plan))
        plan.read_key, plan.raw_keys = seen[key]
        plan.keys, plan.aliases = normalize_all(
            plan.raw_keys, plan.match_fields, plan.normalize, connections[plan.alias]
        )


def _read_all(read: KeyReader, objs: Sequence[Any], plan: Plan) -> set[Hashable]:
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
