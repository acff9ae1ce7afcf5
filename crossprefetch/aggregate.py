"""``CrossDBAggregate``: per-object aggregates of rows that live in another database.

The grouped QuerySet ``source.values(to_field).annotate(**aggregates)`` is, for the rest of
crossprefetch, "rows keyed by ``to_field``": one row per key, holding one value per
aggregate. So an aggregate spec is a :class:`~crossprefetch.CrossDBPrefetch` whose QuerySet
is grouped and whose ``fields`` are the aggregates' names, and the whole data path (plans,
groups, the fetch chain with its cache, failure policy and coalescing, the key filters of
huge key sets) serves it unchanged: the page's keys go into ``WHERE``, the database groups
the matching rows, one query per page.

An object none of whose key's rows exist reads as missing (the field's ``default``); a
filter compares it as the aggregate over no rows (:meth:`CrossDBAggregate.empty_value`), as
``annotate()`` through a ``LEFT JOIN`` in one database would.
"""

from __future__ import annotations

import datetime as dt
import keyword
from collections.abc import Mapping, Sequence
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldError, ImproperlyConfigured
from django.db import models
from django.http import HttpRequest

from crossprefetch import _compat
from crossprefetch._cache.policy import CachePolicy
from crossprefetch._suggest import closest
from crossprefetch.spec import CrossDBPrefetch, KeyGetter, Source

#: The values an aggregate's ``default=`` may be: what the value over no rows is compared as.
_LITERALS = (int, float, Decimal, str, bool, dt.date, dt.time, dt.timedelta)


class CrossDBAggregate(CrossDBPrefetch):
    """Aggregates, per serialized object, of the rows that reference it in another database.

    ``CrossDBAggregate("shop.OrderEvent", key="id", to_field="customer_id",
    aggregates={"events": Count("id"), "spent": Sum("amount")})`` in a view's
    ``cross_db_fields`` under the name ``"activity"`` gives each customer of the page its
    number of events and their total, read by ``ContextLookupField("activity", "events",
    default=0)``: one grouped query per page (``WHERE customer_id IN (<the page's keys>)
    GROUP BY customer_id``), through the same cache, failure policy, timeout and
    coalescing as any spec.

    A customer without events has no row: its fields render their ``default`` (give counts
    ``default=0``). Filters (``CrossDBFilter("activity", "events", lookup_expr="gte")``) and
    orderings (``cross_db_ordering_fields``) read the same aggregates, with exact counts.

    :param source: the rows aggregated: a model class, an ``"app_label.Model"`` string, a
        QuerySet (its filters are kept; its ordering is not, since it would split the
        groups), or ``callable(request) -> QuerySet`` for per-request scoping.
    :param key: where each serialized object holds the value its rows reference (usually
        ``"id"``); as for :class:`~crossprefetch.CrossDBPrefetch`.
    :param to_field: the field of the source holding that reference (``"customer_id"``);
        the rows are grouped by it. A tuple for a composite key.
    :param aggregates: ``{name: aggregate}``: Django's ``Count``, ``Sum``, ``Avg``,
        ``Min``, ``Max`` (or any other ``Aggregate``), with ``distinct=``, ``filter=Q(...)``
        and ``default=`` as Django takes them.
    :param using: the database alias of the source; ``None`` for the router's.
    :param cache: per-key caching of the aggregates, as for
        :class:`~crossprefetch.CrossDBPrefetch`.
    :param on_error: ``"raise"`` or ``"degrade"`` when the database fails, as for
        :class:`~crossprefetch.CrossDBPrefetch`.
    :param timeout: seconds after which the database cancels the grouped query.
    :param coalesce: seconds concurrent requests wait to share the grouped query.
    :raises TypeError: an argument of the wrong type (an aggregate that is not a Django
        ``Aggregate``).
    :raises ValueError: an argument of the right type with a value it cannot take (a name
        Django cannot annotate, a field the source model does not have).
    """

    __slots__ = ("aggregates",)

    aggregates: Mapping[str, models.Aggregate]

    def __init__(
        self,
        source: Source,
        *,
        key: KeyGetter,
        to_field: str | Sequence[str],
        aggregates: Mapping[str, models.Aggregate],
        using: str | None = None,
        cache: float | CachePolicy | None = None,
        on_error: str | None = None,
        timeout: float | None = None,
        coalesce: float | None = None,
    ) -> None:
        checked = _validate_aggregates(aggregates)
        names = (to_field,) if isinstance(to_field, str) else tuple(to_field)
        clash = sorted(set(checked).intersection(names))
        if clash:
            raise ValueError(
                f"CrossDBAggregate(aggregates=...): {clash[0]!r} is also the to_field; name "
                "the aggregate otherwise."
            )
        object.__setattr__(self, "aggregates", MappingProxyType(checked))
        super().__init__(
            source,
            key=key,
            to_field=to_field,
            fields=tuple(checked),
            using=using,
            cache=cache,
            on_error=on_error,
            timeout=timeout,
            coalesce=coalesce,
        )
        base: models.QuerySet[Any] | None = None
        if isinstance(source, models.QuerySet):
            base = source
        elif isinstance(source, type) and issubclass(source, models.Model):
            base = source._default_manager.all()
        if base is not None and apps.models_ready:  # checked now; else by crossprefetch.E601
            try:
                self._grouped(base)
            except ImproperlyConfigured as exc:
                raise ValueError(str(exc)) from None

    def __repr__(self) -> str:
        to_field = self.to_field[0] if len(self.to_field) == 1 else self.to_field
        aggregates = ", ".join(f"{name!r}: {agg!r}" for name, agg in self.aggregates.items())
        parts = [
            repr(self.source_label),
            f"key={self.key!r}",
            f"to_field={to_field!r}",
            f"aggregates={{{aggregates}}}",
        ]
        for name in ("using", "cache", "on_error", "timeout", "coalesce"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={value!r}")
        return f"CrossDBAggregate({', '.join(parts)})"

    # Resolution ----------------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest | None = None) -> models.QuerySet[Any]:
        """The grouped QuerySet: one row per ``to_field`` value, one column per aggregate.

        Any ordering of the source is dropped: ``ORDER BY`` a column would add it to the
        ``GROUP BY`` and split the groups.
        """
        return self._grouped(super().get_queryset(request))

    def _grouped(self, base: models.QuerySet[Any]) -> models.QuerySet[Any]:
        if _compat.is_sliced(base):
            raise ImproperlyConfigured(
                f"{self!r}: the source QuerySet is sliced; aggregate the whole of it (filter "
                "it instead of slicing)."
            )
        if _compat.values_fields(base) is not None or _compat.group_by(base) is not None:
            raise ImproperlyConfigured(
                f"{self!r}: the source QuerySet is already values()/values_list() or grouped; "
                "give the plain QuerySet of the rows, and their aggregates in aggregates=."
            )
        meta = base.model._meta
        taken = {f.name for f in meta.get_fields()} | {f.attname for f in meta.concrete_fields}
        clash = sorted(taken.intersection(self.aggregates))
        if clash:
            raise ImproperlyConfigured(
                f"{self!r}: the aggregate {clash[0]!r} conflicts with a field of "
                f"{meta.label}; name it otherwise."
            )
        match = [field.name for field in self.get_match_fields(base.model)]
        try:
            grouped: models.QuerySet[Any] = (
                base.order_by().values(*match).annotate(**self.aggregates)
            )
        except (FieldError, ValueError, TypeError) as exc:
            raise ImproperlyConfigured(
                f"{self!r}: {base.model._meta.label} cannot compute the aggregates ({exc}). "
                "Aggregate fields of the source model (or its relations in its database)."
            ) from exc
        return grouped

    def check_fields(self, model: type[models.Model]) -> None:
        """Fail clearly if an aggregate names a field ``model`` does not have."""
        self._grouped(model._default_manager.all())

    def output_field(self, name: str, queryset: models.QuerySet[Any]) -> models.Field[Any, Any]:
        """The field the aggregate ``name`` yields, on the grouped ``queryset`` (from
        :meth:`get_queryset`): ``IntegerField`` for a count, the source field's type for a
        sum, minimum or maximum. A new unbound field named ``name``."""
        field: models.Field[Any, Any] = _compat.annotation(queryset, name).output_field.clone()
        field.name = name
        field.verbose_name = name.replace("_", " ")
        return field

    def empty_value(self, name: str) -> Any:
        """The aggregate ``name`` over no rows: what an object without remote rows compares
        as in a filter, as in ``annotate()`` through a ``LEFT JOIN``. ``0`` for a count, the
        aggregate's ``default=``, else ``None`` (SQL's ``NULL``)."""
        aggregate = self.aggregates[name]
        default = getattr(aggregate, "default", None)
        if isinstance(default, models.Value):
            return default.value
        if default is not None:
            return default
        return aggregate.empty_result_set_value

    def attr_hint(self, attr: str, model: type[models.Model] | None) -> str:
        """How to fix a field reading ``attr`` from this spec's rows: name an aggregate."""
        head = attr.split(".", 1)[0]
        names = ", ".join(map(repr, self.aggregates))
        close = closest(head, self.aggregates)
        if close is not None:
            return f"Did you mean {close!r}? The spec computes {names}."
        return f"Read one of the aggregates the spec computes ({names}), or add {head!r} to them."


def _validate_aggregates(aggregates: Any) -> dict[str, models.Aggregate]:
    call = "CrossDBAggregate(aggregates=...)"
    if not isinstance(aggregates, Mapping):
        raise TypeError(
            f"{call}: aggregates must be a dict of {{name: aggregate}}, e.g. "
            "{'events': Count('id'), 'spent': Sum('amount')}; got "
            f"{type(aggregates).__name__}."
        )
    if not aggregates:
        raise ValueError(f"{call}: aggregates is empty; name at least one aggregate.")
    checked: dict[str, models.Aggregate] = {}
    for name, aggregate in aggregates.items():
        if not isinstance(name, str):
            raise TypeError(f"{call}: the name {name!r} is not a str.")
        if not name.isidentifier() or keyword.iskeyword(name):
            raise ValueError(f"{call}: {name!r} is not a valid name; use a Python identifier.")
        if "__" in name or name.startswith("_") or name == "pk":
            raise ValueError(
                f"{call}: {name!r} cannot name an aggregate (no leading underscore, no '__', "
                "not 'pk': Django reads those as lookups)."
            )
        if not isinstance(aggregate, models.Aggregate):
            raise TypeError(
                f"{call}: aggregates[{name!r}] is {aggregate!r}, not an aggregate. Use "
                "Django's Count, Sum, Avg, Min or Max (e.g. Count('id')); a field or another "
                "expression is not computed per group."
            )
        default = getattr(aggregate, "default", None)
        value = default.value if isinstance(default, models.Value) else default
        if value is not None and not isinstance(value, _LITERALS):
            raise ValueError(
                f"{call}: aggregates[{name!r}] = {aggregate!r} has default={default!r}; give "
                "a plain value (0, Decimal('0'), ...), which objects without rows compare as."
            )
        checked[name] = aggregate
    return checked
