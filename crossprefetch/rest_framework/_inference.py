"""Which relations a serializer reads through, and which columns of their rows it reads.

Read off the bound fields of the serializer about to render (``serializer.fields``, which
DRF builds for rendering anyway): a field whose ``source`` goes through a ForeignKey or a
reverse relation (``"account.name"``, a nested ``RegionSerializer(source="account.region")``,
``TicketSerializer(many=True, source="tickets")``, a ``SlugRelatedField`` or a
``PrimaryKeyRelatedField`` reading through one) gives the relation path and the fields it
reads there. What a field cannot say (a property, a method, ``str()`` of a row) reads whole
rows; a ``SerializerMethodField`` says nothing at all (name its relations in
``cross_db_related``).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from rest_framework import relations, serializers

from crossprefetch._related.hops import SEP
from crossprefetch._related.hops import relations as model_relations

#: ``{path: names of the fields read on the path's model}``; ``None``: whole rows.
Columns = dict[str, set[str] | None]


def related_columns(
    serializer: serializers.BaseSerializer[Any], model: type[models.Model]
) -> Columns:
    """Every relation path ``serializer`` reads through from ``model``, with its columns."""
    found: Columns = {}
    _walk(serializer, model, (), found)
    return found


def _walk(
    serializer: serializers.BaseSerializer[Any],
    model: type[models.Model],
    prefix: tuple[str, ...],
    found: Columns,
) -> None:
    child: Any = serializer
    if isinstance(serializer, serializers.ListSerializer):
        child = serializer.child
    fields = getattr(child, "fields", None)
    if fields is None:
        return
    for field in fields.values():
        if field.write_only:
            continue
        attrs = field.source_attrs
        if not attrs:  # source="*": the same object
            if isinstance(field, serializers.BaseSerializer):
                _walk(field, model, prefix, found)
            continue
        _read(field, attrs, model, prefix, found)


def _read(
    field: Any,
    attrs: list[str],
    model: type[models.Model],
    prefix: tuple[str, ...],
    found: Columns,
) -> None:
    """What ``field`` reads along ``attrs`` from an object of ``model`` at ``prefix``."""
    current = model
    path = prefix
    for depth, attr in enumerate(attrs):
        step = model_relations(current).hops.get(attr)
        if step is None:
            _column(found, path, current, attr)
            return
        _need(found, path, step.local.name)
        last = depth == len(attrs) - 1
        if last and step.forward and _reads_key_only(field):
            return  # DRF reads the key column alone (PKOnlyObject)
        path = (*path, attr)
        current = step.related_model
        found.setdefault(SEP.join(path), set())
        if last:
            _row(field, current, path, found)


def _row(field: Any, model: type[models.Model], path: tuple[str, ...], found: Columns) -> None:
    """What ``field`` reads of the row(s) a relation led it to."""
    if isinstance(field, serializers.BaseSerializer):
        _walk(field, model, path, found)
        return
    relation = field.child_relation if isinstance(field, relations.ManyRelatedField) else field
    if isinstance(relation, relations.SlugRelatedField):
        _column(found, path, model, relation.slug_field)
    elif isinstance(relation, relations.HyperlinkedRelatedField):
        _column(found, path, model, relation.lookup_field)
    elif isinstance(relation, relations.PrimaryKeyRelatedField):
        _column(found, path, model, "pk")
    else:  # str() of the row, or a field of its own: every column may be read
        found[SEP.join(path)] = None


def _reads_key_only(field: Any) -> bool:
    return isinstance(field, relations.RelatedField) and field.use_pk_only_optimization()


def _need(found: Columns, path: tuple[str, ...], name: str) -> None:
    """A column the next hop needs on the rows at ``path`` (none at the root)."""
    if path:
        columns = found.setdefault(SEP.join(path), set())
        if columns is not None:
            columns.add(name)


def _column(found: Columns, path: tuple[str, ...], model: type[models.Model], attr: str) -> None:
    """``attr`` read on the rows at ``path``: a column, or anything (whole rows)."""
    if not path:
        return  # the serialized objects themselves: not crossprefetch's to fetch
    key = SEP.join(path)
    columns = found.setdefault(key, set())
    if columns is None:
        return
    if attr == "pk":
        pk = model._meta.pk
        assert pk is not None
        columns.add(pk.name)
        return
    try:
        field = model._meta.get_field(attr)
    except FieldDoesNotExist:
        found[key] = None  # a property or a method: it may read any column
        return
    if getattr(field, "concrete", False) and not field.many_to_many:
        columns.add(field.name)
    else:
        found[key] = None
