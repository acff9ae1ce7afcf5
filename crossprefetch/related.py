"""``prefetch_related_objects``: Django's related-object caches, filled across databases.

A ``ForeignKey(..., db_constraint=False)`` whose target the router sends to another
database is followed by Django one query per object; ``select_related`` would join a table
that is not there. :func:`prefetch_related_objects` fetches each hop of the paths it is
given with one query per database and model, through :func:`~crossprefetch.prefetch_cross_db`,
and puts the rows where Django's descriptors look first: ``ticket.account.region.label``
and ``account.tickets.all()`` then run no query.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from django.db import models
from django.http import HttpRequest

from crossprefetch._cache.policy import CachePolicy
from crossprefetch._related import fetch, hops, tree
from crossprefetch._related.hops import RelationPathError
from crossprefetch.lookup import Lookup
from crossprefetch.spec import CrossDBPrefetch

__all__ = ["RelationPathError", "prefetch_related_objects", "relation_spec", "view_relation_spec"]


def prefetch_related_objects(
    objects: Iterable[models.Model],
    *lookups: str | models.Prefetch[Any],
    request: HttpRequest | None = None,
    cache: float | CachePolicy | None = None,
    on_error: str | None = None,
    timeout: float | None = None,
    coalesce: float | None = None,
) -> dict[str, Lookup]:
    """Fill the related-object caches of ``objects`` along ``lookups``, across databases.

    ``lookups`` are relation paths of the objects' model (``"account"``,
    ``"account__region"``, reverse ``"tickets"``) or :class:`~django.db.models.Prefetch`
    objects (a ``queryset`` of the related model, a ``to_attr``). Each hop costs one query
    per database and model, whatever the number of objects; a null or dangling key reads
    as ``None`` (a forward relation) or no rows (a reverse one). Relations already cached
    (``select_related``, an earlier prefetch) are not fetched again.

    ``cache``, ``on_error``, ``timeout`` and ``coalesce`` apply to every hop, as the
    arguments of :class:`~crossprefetch.CrossDBPrefetch` of the same names. ``request`` is
    passed on for cache scopes. Returns the :class:`~crossprefetch.Lookup` of each path
    fetched (its ``stats`` say what it cost; ``degraded`` whether its database failed).
    """
    objs = list(objects)
    if not objs:
        return {}
    model = type(objs[0])
    if not isinstance(objs[0], models.Model):
        raise TypeError(
            f"prefetch_related_objects: {objs[0]!r} is not a model instance; give model "
            "instances (a list, or a QuerySet)."
        )
    for obj in objs:
        if not isinstance(obj, model):
            raise TypeError(
                f"prefetch_related_objects: the objects mix {model._meta.label} and "
                f"{type(obj).__name__}; give instances of one model."
            )
    options = {
        name: value
        for name, value in (
            ("cache", cache),
            ("on_error", on_error),
            ("timeout", timeout),
            ("coalesce", coalesce),
        )
        if value is not None
    }
    roots = tree.build(model, lookups)
    return fetch.fetch(objs, roots, request=request, options=options)


def relation_spec(model: type[models.Model], name: str) -> CrossDBPrefetch | None:
    """The spec that follows the relation ``name`` of ``model`` into another database, or
    ``None`` if ``name`` is no relation crossprefetch follows, or one within ``model``'s
    database.

    Forward, the foreign key's column against its target field; backward, ``many=True``.
    Filters and orderings by a relation name use it as they would a declared spec.
    """
    try:
        step = hops.hop(model, name)
    except RelationPathError:
        return None
    if not hops.crosses([step]):
        return None
    return _relation_spec(step, step.alias())


def view_relation_spec(view: Any, name: str) -> CrossDBPrefetch | None:
    """:func:`relation_spec` for the model a view lists (a class's ``queryset``; an
    instance's ``get_queryset()``)."""
    queryset = getattr(view, "queryset", None)
    if not isinstance(queryset, models.QuerySet) and not isinstance(view, type):
        get_queryset = getattr(view, "get_queryset", None)
        queryset = get_queryset() if callable(get_queryset) else None
    if not isinstance(queryset, models.QuerySet):
        return None
    return relation_spec(queryset.model, name)


@lru_cache(maxsize=256)
def _relation_spec(step: hops.Hop, alias: str) -> CrossDBPrefetch:
    return CrossDBPrefetch(
        fetch.related_queryset(step, alias, None),
        key=step.local.attname,
        to_field=step.remote.name,
        many=step.many,
    )
