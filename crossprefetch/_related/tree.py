"""The relation paths of one call, as a tree: each node a hop, with the columns it reads.

``"account"``, ``"account__region"`` and ``"tickets"`` of a ticket's model make two roots
(``account`` with the child ``region``, and ``tickets``). A node's columns are the fields
of its model that are read (``None``: whole rows), plus what the query and the next hops
need: the primary key, the matched field, the keys of the children.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import models

from crossprefetch._related.hops import SEP, Hop, RelationPathError, hop


@dataclass(eq=False)
class Node:
    """One hop of one path, with where its rows go and which of their columns are read."""

    hop: Hop
    #: the path from the root objects, through attribute names (``"account__region"``)
    path: str
    #: the attribute the rows land in: the relation itself, or a ``Prefetch``'s ``to_attr``
    attr: str
    to_attr: str | None = None
    #: the caller's QuerySet of the related model (a ``Prefetch``'s), or ``None``
    queryset: models.QuerySet[Any] | None = None
    #: names of the related model's fields read; ``None``: every column
    columns: set[str] | None = field(default_factory=set)
    children: dict[str, Node] = field(default_factory=dict)

    def needed_columns(self) -> set[str] | None:
        """The columns to select: those read, the matched field, the children's keys."""
        if self.columns is None:
            return None
        names = set(self.columns)
        names.add(self.hop.remote.name)
        for child in self.children.values():
            names.add(child.hop.local.name)
        return names


def build(
    model: type[models.Model],
    lookups: Iterable[Any],
    columns: Mapping[str, set[str] | None] | None = None,
) -> list[Node]:
    """The tree of ``lookups`` (paths and ``Prefetch`` objects) from ``model``.

    Paths named in ``lookups`` read whole rows; ``columns`` adds paths read only in part
    (``{"account": {"name"}, "account__region": {"label"}}``), as serializer inference
    finds them. Raises :class:`~crossprefetch._related.hops.RelationPathError` for a name
    that is no relation, and ``ValueError`` for a ``Prefetch`` that contradicts another.
    """
    roots: dict[str, Node] = {}
    for lookup in lookups:
        if isinstance(lookup, str):
            _add(model, roots, lookup, None, None, None)
        elif isinstance(lookup, models.Prefetch):
            _add(model, roots, lookup.prefetch_through, lookup.queryset, lookup.to_attr, None)
        else:
            raise TypeError(
                f"{lookup!r} is not a relation path: give paths such as 'account__region' "
                "or django.db.models.Prefetch('account', queryset=...)."
            )
    for path, read in (columns or {}).items():
        _add(model, roots, path, None, None, read if read is None else set(read))
    return list(roots.values())


def _add(
    model: type[models.Model],
    roots: dict[str, Node],
    path: str,
    queryset: models.QuerySet[Any] | None,
    to_attr: str | None,
    columns: set[str] | None,
) -> None:
    if not isinstance(path, str) or not path or not all(path.split(SEP)):
        raise RelationPathError(
            f"{path!r} is not a relation path: name relations joined by '__', as in "
            "'account__region'."
        )
    names = path.split(SEP)
    level = roots
    current = model
    done: list[str] = []
    for depth, name in enumerate(names):
        last = depth == len(names) - 1
        attr = to_attr if last and to_attr else name
        node = level.get(attr)
        if node is None:
            step = level[name].hop if name in level else _hop(current, name, path, done)
            node = Node(step, SEP.join([*done, attr]), attr)
            level[attr] = node
        if last:
            _merge(node, queryset, to_attr, columns)
        elif columns is None:
            node.columns = None  # a path given by the caller reads whole rows at every hop
        done.append(attr)
        current = node.hop.related_model
        level = node.children


def _hop(model: type[models.Model], name: str, path: str, done: list[str]) -> Hop:
    try:
        return hop(model, name, path)
    except RelationPathError as exc:
        closest = SEP.join([*done, exc.closest]) if exc.closest else None
        raise RelationPathError(str(exc), closest) from None


def _merge(
    node: Node,
    queryset: models.QuerySet[Any] | None,
    to_attr: str | None,
    columns: set[str] | None,
) -> None:
    """What one more lookup of the same path asks of its node."""
    if queryset is not None:
        if not issubclass(queryset.model, node.hop.related_model):
            raise ValueError(
                f"Prefetch({node.path!r}, queryset=...): the QuerySet is of "
                f"{queryset.model._meta.label}, but {node.hop.label} leads to "
                f"{node.hop.related_model._meta.label}."
            )
        if node.queryset is not None and node.queryset is not queryset:
            raise ValueError(
                f"{node.path!r} is given two QuerySets; give one Prefetch per path "
                "(or a to_attr to each)."
            )
        node.queryset = queryset
        node.columns = None  # the caller's QuerySet says what it selects
    node.to_attr = to_attr or node.to_attr
    if columns is None:
        node.columns = None
    elif node.columns is not None:
        node.columns |= columns
