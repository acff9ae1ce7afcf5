"""The relations a model can follow one hop at a time, and the path a name designates.

A hop is a ForeignKey or OneToOneField followed forward (``ticket.account``: one row or
none per object) or backward (``account.tickets``: a list of rows per object;
``account.settings`` for a one-to-one: one row or none). Many-to-many relations, generic
relations and multi-column foreign objects are not hops: their rows are not reached by
one column of one table.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from django.db import models, router
from django.db.models.fields.mixins import FieldCacheMixin

from crossprefetch._suggest import closest

#: Separates the relations of a path, as in Django's lookups.
SEP = "__"


class RelationPathError(ValueError):
    """A relation path names something that is not a relation crossprefetch can follow."""

    def __init__(self, message: str, closest: str | None = None) -> None:
        super().__init__(message)
        #: the nearest path that exists, for checks and hints (``None`` when none is near)
        self.closest = closest


@dataclass(frozen=True, eq=False)
class Hop:
    """One relation of ``model``, as ``getattr(obj, name)`` reads it."""

    #: the model the relation is followed from
    model: type[models.Model]
    #: the attribute on ``model``: the field's name, or the reverse accessor's name
    name: str
    #: the model at the other end
    related_model: type[models.Model]
    #: the ForeignKey (or OneToOneField) itself, on ``model`` forward, on ``related_model``
    #: backward
    field: models.ForeignKey[Any, Any]
    forward: bool
    #: backward through a ForeignKey: a list of rows per object
    many: bool
    #: the column of ``model`` holding the key: the foreign key forward, its target backward
    local: models.Field[Any, Any]
    #: the field of ``related_model`` the key is matched against
    remote: models.Field[Any, Any]
    #: where Django caches a single related object (forward, or a reverse one-to-one)
    cache: FieldCacheMixin
    #: the name of the relation in a query's lookups (``filter(<query_name>__...)``)
    query_name: str

    @property
    def label(self) -> str:
        return f"{self.model._meta.label}.{self.name}"

    def alias(self, instance: models.Model | None = None) -> str:
        """The database the router reads the related rows from, as Django's related
        descriptors ask it: with the object the relation is followed from as a hint."""
        if instance is None:
            return router.db_for_read(self.related_model)
        return router.db_for_read(self.related_model, instance=instance)


@dataclass(frozen=True)
class Relations:
    """The hops of one model by name, and why other names are no hop."""

    hops: dict[str, Hop]
    #: relations that are not hops (many-to-many, generic), with the reason
    refused: dict[str, str]
    #: every other field name, for suggestions
    others: tuple[str, ...]


@cache
def relations(model: type[models.Model]) -> Relations:
    """Every hop of ``model`` (computed once per model class)."""
    hops: dict[str, Hop] = {}
    refused: dict[str, str] = {}
    others: list[str] = []
    for field in model._meta.get_fields(include_hidden=False):
        if not field.is_relation:
            others.append(field.name)
            continue
        if field.many_to_many:
            accessor = None if field.concrete else getattr(field, "get_accessor_name", None)
            refused[str(accessor() if accessor else field.name)] = (
                "a many-to-many relation (its rows are joined through a table)"
            )
            continue
        if field.concrete:
            if isinstance(field, models.ForeignKey):
                target = field.target_field
                hops[field.name] = Hop(
                    model=model,
                    name=field.name,
                    related_model=field.related_model,
                    field=field,
                    forward=True,
                    many=False,
                    local=field,
                    remote=target,
                    cache=field,
                    query_name=field.name,
                )
            else:
                refused[field.name] = "not a ForeignKey (a multi-column foreign object)"
            continue
        fk = getattr(field, "field", None)
        accessor = field.get_accessor_name() if hasattr(field, "get_accessor_name") else None
        if (
            isinstance(fk, models.ForeignKey)
            and accessor
            and (field.one_to_many or field.one_to_one)
        ):
            hops[accessor] = Hop(
                model=model,
                name=accessor,
                related_model=fk.model,
                field=fk,
                forward=False,
                many=bool(field.one_to_many),
                local=fk.target_field,
                remote=fk,
                cache=field,  # type: ignore[arg-type]
                query_name=fk.related_query_name(),
            )
        elif accessor:
            refused[accessor] = "a generic relation"
        else:
            refused[field.name] = "a generic relation"
    return Relations(hops, refused, tuple(others))


def hop(model: type[models.Model], name: str, path: str = "") -> Hop:
    """The hop ``name`` of ``model``; :class:`RelationPathError` naming the closest one."""
    found = relations(model)
    try:
        return found.hops[name]
    except KeyError:
        pass
    where = f"{model._meta.label}.{name}"
    whole = f" (in {path!r})" if path and path != name else ""
    reason = found.refused.get(name)
    if reason is not None:
        raise RelationPathError(
            f"{where}{whole} is {reason}, which crossprefetch does not follow across "
            "databases; follow it with Django's prefetch_related() in its own database."
        )
    if name in found.others or name == "pk":
        raise RelationPathError(
            f"{where}{whole} is not a relation: follow a ForeignKey, a OneToOneField or a "
            "reverse relation."
        )
    close = closest(name, found.hops, cutoff=0.3)
    names = ", ".join(sorted(found.hops)) or "none"
    raise RelationPathError(
        f"{model._meta.label} has no relation {name!r}{whole}"
        + (f"; did you mean {close!r}?" if close else ".")
        + f" Its relations: {names}.",
        close,
    )


def resolve(model: type[models.Model], path: str) -> list[Hop]:
    """The hops of ``path`` (``"account__region"``) from ``model``.

    Raises :class:`RelationPathError` whose ``closest`` is the nearest existing path.
    """
    if not isinstance(path, str) or not path or not all(path.split(SEP)):
        raise RelationPathError(
            f"{path!r} is not a relation path: name relations joined by '__', as in "
            "'account__region'."
        )
    hops: list[Hop] = []
    current = model
    done: list[str] = []
    for name in path.split(SEP):
        try:
            step = hop(current, name, path)
        except RelationPathError as exc:
            closest = SEP.join([*done, exc.closest]) if exc.closest else None
            raise RelationPathError(str(exc), closest) from None
        hops.append(step)
        done.append(name)
        current = step.related_model
    return hops


def crosses(hops: list[Hop], alias: str | None = None) -> bool:
    """Whether following ``hops`` reads from another database at some hop.

    ``alias`` is the database of the objects the path starts from (the router's for their
    model when ``None``); each further hop starts from the database of the one before.
    """
    source = alias if alias is not None else router.db_for_read(hops[0].model)
    for step in hops:
        target = step.alias()
        if target != source:
            return True
        source = target
    return False


def crossing_paths(
    model: type[models.Model], paths: list[str], alias: str | None = None
) -> set[str]:
    """Those of ``paths`` that cross a database, and the paths leading to them.

    A path that stays in one database is left to Django (``select_related``); a path that
    reaches another database is served whole, the hops before and after the crossing
    included (their rows are needed to go on, or are as far away as the crossing's).
    """
    kept: set[str] = set()
    for path in paths:
        if path in kept or not crosses(resolve(model, path), alias):
            continue
        names = path.split(SEP)
        kept.update(SEP.join(names[: depth + 1]) for depth in range(len(names)))
    return kept
