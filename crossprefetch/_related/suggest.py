"""Which relation a repeated query follows, for the N+1 detector and the panel.

A query repeated per object ``SELECT … FROM account WHERE id = %s``, issued while a
ticket's ``account_id`` held the value, is ``ticket.account`` read one object at a time;
``SELECT … FROM ticket WHERE account_id = %s`` while an account's ``id`` held it is
``account.tickets``. When that relation crosses a database, the fix is a relation path
(``cross_db_related``), or nothing at all when a serializer field reads it (the mixin
infers it), rather than a hand-written spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.db import models

from crossprefetch._related.hops import crosses, relations


@dataclass(frozen=True)
class RelationFix:
    """The relation a repeated query follows, and how crossprefetch serves it."""

    #: the relation's name on the objects it is read from (``"account"``)
    path: str
    #: ``app_label.Model`` of those objects
    model: str
    #: a serializer field (not a ``SerializerMethodField``) reads it: the mixin infers it
    inferred: bool

    def describe(self) -> str:
        """One line: what to declare (or not) on the view."""
        if self.inferred:
            return (
                f"nothing to declare: CrossDBPrefetchMixin on the view fetches {self.model}."
                f"{self.path} for the serializer field"
            )
        return f"cross_db_related = ({self.path!r},)"


def relation_fix(
    queried: Any, column: str, origin_model: str | None, keys: frozenset[str], field_class: Any
) -> RelationFix | None:
    """The relation of ``origin_model`` whose one-object read is a query of ``queried``
    matched on ``column`` with a value held in ``keys``; ``None`` unless it crosses a
    database."""
    if origin_model is None or not keys:
        return None
    try:
        source: type[models.Model] = apps.get_model(origin_model)
    except (LookupError, ValueError):
        return None
    for hop in relations(source).hops.values():
        if (
            hop.related_model is queried
            and hop.remote.column == column
            and hop.local.attname in keys
            and crosses([hop])
        ):
            inferred = field_class is not None and field_class != "SerializerMethodField"
            return RelationFix(hop.name, origin_model, inferred)
    return None
