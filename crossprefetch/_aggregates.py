"""What a filter on an aggregate of remote rows keeps, as a join in one database would.

In one database, ``Customer.objects.annotate(events=Count("events")).filter(events__lte=0)``
keeps the customers without events: through the ``LEFT JOIN`` their count is ``0``. A
filter on a :class:`~crossprefetch.aggregate.CrossDBAggregate` must agree, yet the remote
database only sees the keys that have rows: it cannot say "keep the keys you have never
heard of". So the rule is decided here, before the remote query:

* an object without remote rows takes each aggregate's value over no rows
  (:meth:`~crossprefetch.aggregate.CrossDBAggregate.empty_value`: ``0`` for a count, the
  aggregate's ``default=``, else ``None``, which, as SQL's ``NULL``, only ``isnull``
  matches);
* when that value fails the filters, the remote query returns the keys whose aggregates
  pass (``HAVING <filters>``) and the list keeps those;
* when it passes, the remote query returns the keys whose aggregates FAIL
  (``HAVING NOT (<filters>)``) and the list keeps every object but those: the objects
  without rows, null keys included, stay.

The complement cannot meet a ``NULL`` aggregate: a value over no rows that passes a
comparison is not ``None``, so the aggregate is a count or has a ``default=`` (wrapped in
``Coalesce``), and neither is ever ``NULL``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

from django.core.exceptions import ImproperlyConfigured
from django.db import models

from crossprefetch.aggregate import CrossDBAggregate

#: The lookups a filter on an aggregate takes.
LOOKUPS: Final = ("exact", "in", "gt", "gte", "lt", "lte", "isnull")

_COMPARE: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "exact": operator.eq,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
    "in": lambda value, values: value in values,
}


@dataclass(frozen=True)
class Narrowing:
    """The remote query of a filter on aggregates, and what the list does with its keys."""

    #: the conditions of the remote (grouped) query: its ``HAVING``
    conditions: list[models.Q]
    #: ``True``: keep every object but those whose key the query returns (the complement)
    exclude: bool


def filter_field(
    spec: CrossDBAggregate, name: str, where: str, lookup: str, queryset: models.QuerySet[Any]
) -> models.Field[Any, Any]:
    """The field the values of a filter on aggregate ``name`` are parsed as.

    :raises ImproperlyConfigured: the spec computes no aggregate ``name``, or the lookup is
        not one a filter on an aggregate takes (:data:`LOOKUPS`).
    """
    if name not in spec.aggregates:
        raise ImproperlyConfigured(
            f"{where}: {spec!r} computes no aggregate {name!r}; filter on one of "
            f"{', '.join(map(repr, spec.aggregates))}."
        )
    if lookup not in LOOKUPS:
        raise ImproperlyConfigured(
            f"{where}: the lookup {lookup!r} does not apply to the aggregate {name!r}; use "
            f"one of {', '.join(LOOKUPS)}."
        )
    return spec.output_field(name, queryset)


def passes_without_rows(spec: CrossDBAggregate, tests: Iterable[tuple[str, str, Any]]) -> bool:
    """Whether an object without remote rows passes every ``(aggregate, lookup, value)``.

    Each aggregate takes its value over no rows; ``None`` compares as SQL's ``NULL``.
    """
    for name, lookup, value in tests:
        empty = spec.empty_value(name)
        if lookup == "isnull":
            passed = (empty is None) is bool(value)
        elif empty is None:
            passed = False
        else:
            try:
                passed = bool(_COMPARE[lookup](empty, value))
            except TypeError as exc:
                raise ImproperlyConfigured(
                    f"{spec!r}: the aggregate {name!r} over no rows is {empty!r}, which cannot "
                    f"be compared with {value!r} ({exc}); give the aggregate a default= of "
                    "the type it yields."
                ) from exc
        if not passed:
            return False
    return True


def narrowing(
    spec: CrossDBAggregate, conditions: Sequence[models.Q], existence: set[bool]
) -> Narrowing | None:
    """The remote query answering filters on ``spec``'s aggregates; ``None``: no object.

    ``conditions`` are the filters as the filter backend builds them, one
    ``Q(**{"<aggregate>__<lookup>": value})`` each; ``existence`` the answers of the
    filters on whether an object has remote rows at all (``isnull`` without a field).
    """
    tests = [_test(condition) for condition in conditions]
    if len(existence) > 1:
        return None  # without rows, and with
    if existence == {False}:
        return Narrowing(list(conditions), exclude=False)
    empty_passes = passes_without_rows(spec, tests)
    if existence == {True}:
        return Narrowing([], exclude=True) if empty_passes else None
    if empty_passes:
        return Narrowing([~models.Q(*conditions)], exclude=True)
    return Narrowing(list(conditions), exclude=False)


def _test(condition: models.Q) -> tuple[str, str, Any]:
    ((path, value),) = cast("list[tuple[str, Any]]", condition.children)
    name, _, lookup = path.rpartition("__")
    return name, lookup, value
