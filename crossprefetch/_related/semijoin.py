"""Narrowing a list by the rows its relations reach in other databases: a semi-join by hand.

``filter(account__region__label="Europe")`` would join tables of three databases. Here the
condition runs where its table lives; the matching keys go back, hop by hop, as ONE
parameter (:class:`~crossprefetch._keys.keyset.KeyIn`) to the database of the hop before,
each database answering with one query the hops that stay in it. The listed objects'
count and page are then exact, as the filters of :mod:`crossprefetch.filters` make them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connections, models

from crossprefetch._keys import values
from crossprefetch._keys.keyset import KeyIn
from crossprefetch._related.hops import SEP, Hop
from crossprefetch.conf import conf


class TooManyKeys(ValueError):
    """More remote rows match than ``CROSSPREFETCH["MAX_FILTER_KEYS"]``."""


def narrow(
    queryset: models.QuerySet[Any],
    hops: Sequence[Hop],
    lookup: str,
    value: Any,
    *,
    negate: bool = False,
) -> models.QuerySet[Any]:
    """The objects of ``queryset`` whose row at the end of ``hops`` has ``lookup=value``
    (``"label__icontains"``, say); with ``negate``, those whose row has not, or that reach
    no row at all (a null or dangling key), as Django's ``exclude()`` over a join answers.

    Raises :class:`TooManyKeys` rather than sending a truncated key set.
    """
    narrowed: models.QuerySet[Any] = queryset.filter(
        condition(hops, lookup, value, queryset.db, negate=negate)
    )
    return narrowed


def condition(
    hops: Sequence[Hop], lookup: str, value: Any, alias: str, *, negate: bool = False
) -> models.Q:
    """The condition on the listed objects (in ``alias``) that :func:`narrow` applies."""
    column = hops[0].local.attname
    keys = _local(hops[0].local, matching_keys(hops, lookup, value), alias)
    if negate:
        if not keys:
            return models.Q()
        return models.Q(**{f"{column}__isnull": True}) | ~models.Q(KeyIn(column, keys))
    if not keys:
        return models.Q(pk__in=[])
    return models.Q(KeyIn(column, keys))


def matching_keys(hops: Sequence[Hop], lookup: str, value: Any) -> list[Any]:
    """The values of ``hops[0].local`` whose row at the end of ``hops`` matches: one query
    per database the path enters."""
    first = hops[0]
    alias = first.alias()
    joined = 1
    while joined < len(hops) and hops[joined].alias() == alias:
        joined += 1
    prefix = SEP.join(step.query_name for step in hops[1:joined])
    rest = hops[joined:]
    where: models.Q
    if rest:
        keys = _local(rest[0].local, matching_keys(rest, lookup, value), alias)
        if not keys:
            return []
        where = models.Q(KeyIn(_join(prefix, rest[0].local.attname), keys))
    else:
        where = models.Q(**{_join(prefix, lookup): value})
    rows = first.related_model._base_manager.db_manager(alias).filter(where).order_by()
    match = first.remote.attname
    keys_of = rows.values_list(match, flat=True)
    if prefix or not first.remote.unique:
        keys_of = keys_of.distinct()
    limit = conf.MAX_FILTER_KEYS
    found = [key for key in keys_of[: limit + 1] if key is not None]
    if len(found) > limit:
        raise TooManyKeys(
            f"more than {limit:,} rows of {first.related_model._meta.label} match "
            f'(CROSSPREFETCH["MAX_FILTER_KEYS"]); narrow the filter.'
        )
    return found


def _join(prefix: str, name: str) -> str:
    return f"{prefix}{SEP}{name}" if prefix else name


def _local(field: models.Field[Any, Any], keys: list[Any], alias: str) -> list[Any]:
    """The keys as ``field`` holds them in ``alias``, by the rules of every key sent to a
    database; those it cannot hold are dropped (they match no object)."""
    return values.local_keys(keys, field, connections[alias])
