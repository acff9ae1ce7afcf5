"""Filtering and ordering a list by the rows it references in another database.

The filter runs where pagination needs it, before the page is cut: for each spec with
active filters, ONE query on the remote database returns the keys of the matching rows
(through the spec's own QuerySet, so its filters and per-request scoping apply), and the
listed QuerySet is narrowed to ``key IN <those keys>`` with the key set as one parameter
(:mod:`crossprefetch._keys.keyset`). The paginator's count and the page are then one query
each, and exact: a semi-join done by hand across two databases.

Ordering by a remote field asks the remote database for a dense rank of each key by that
field (ties share a rank), joins the ``[key, rank]`` pairs to the listed table as one
parameter, and orders by the rank, rows without a remote row last, then by the view
QuerySet's own ordering.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby, islice
from operator import itemgetter
from typing import Any

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured, ValidationError
from django.db import DatabaseError, connections, models
from django.db.models.functions import DenseRank
from django.db.models.query import ValuesListIterable
from django.http import HttpRequest
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.filters import BaseFilterBackend, OrderingFilter
from rest_framework.permissions import SAFE_METHODS

from crossprefetch import _aggregates
from crossprefetch._fetch.timeouts import statement_scope
from crossprefetch._keys import normalize
from crossprefetch._keys.keyset import KeyIn, positions
from crossprefetch._keys.normalize import INTEGER_TYPES
from crossprefetch.aggregate import CrossDBAggregate
from crossprefetch.conf import conf
from crossprefetch.rest_framework._known import KnownRows, remember_rows
from crossprefetch.spec import CrossDBPrefetch

__all__ = [
    "LOOKUPS",
    "CrossDBFilter",
    "CrossDBFilterBackend",
    "CrossDBOrderingFilter",
]

#: The lookups a :class:`CrossDBFilter` accepts.
LOOKUPS = (
    "exact",
    "iexact",
    "in",
    "icontains",
    "contains",
    "startswith",
    "istartswith",
    "gt",
    "gte",
    "lt",
    "lte",
    "isnull",
)
#: Lookups whose value is text matched inside the field, taken as it is.
_TEXT_LOOKUPS = frozenset({"iexact", "icontains", "contains", "startswith", "istartswith"})
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


class CrossDBFilter:
    """One query parameter filtering the listed objects by their rows in another database.

    ``CrossDBFilter("customers", "tier")`` under the name ``customer_tier`` keeps the
    objects whose ``customers`` row (the view's ``cross_db_fields["customers"]``) has
    ``tier == ?customer_tier``. Null and dangling keys never match.

    :param spec: the name of a spec in the view's ``cross_db_fields``.
    :param field: the remote field (``"tier"``, or across relations ``"region__name"``);
        ``None`` with ``lookup="isnull"`` asks whether the object has a remote row at all.
    :param lookup: one of :data:`LOOKUPS`. ``in`` takes comma-separated values;
        ``isnull`` takes ``true`` or ``false``.
    :param help_text: the parameter's description in the OpenAPI schema.
    """

    __slots__ = ("field", "help_text", "lookup", "spec")

    spec: str
    field: str | None
    lookup: str
    help_text: str | None

    def __init__(
        self,
        spec: str,
        field: str | None = None,
        *,
        lookup: str = "exact",
        help_text: str | None = None,
    ) -> None:
        if not isinstance(spec, str) or not spec:
            raise TypeError(
                f"CrossDBFilter({spec!r}): the first argument is the name of a spec in the "
                "view's cross_db_fields, e.g. CrossDBFilter('customers', 'tier')."
            )
        if field is not None and (not isinstance(field, str) or not field):
            raise TypeError(f"CrossDBFilter({spec!r}, {field!r}): field must be a field name.")
        if lookup not in LOOKUPS:
            raise ValueError(
                f"CrossDBFilter({spec!r}, {field!r}, lookup={lookup!r}): unsupported lookup; "
                f"use one of {', '.join(LOOKUPS)}."
            )
        if field is None and lookup != "isnull":
            raise ValueError(
                f"CrossDBFilter({spec!r}, lookup={lookup!r}): name a remote field, or use "
                "lookup='isnull' to filter on whether the remote row exists."
            )
        set_ = object.__setattr__
        set_(self, "spec", spec)
        set_(self, "field", field)
        set_(self, "lookup", lookup)
        set_(self, "help_text", help_text)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"CrossDBFilter is immutable; cannot set {name!r}.")

    def __copy__(self) -> CrossDBFilter:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> CrossDBFilter:
        return self  # immutable: FilterSets deep-copy their filters on every instance

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.spec, self.field, self.lookup, self.help_text))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CrossDBFilter):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def _identity(self) -> tuple[Any, ...]:
        return (self.spec, self.field, self.lookup, self.help_text)

    def __repr__(self) -> str:
        field = "" if self.field is None else f", {self.field!r}"
        return f"CrossDBFilter({self.spec!r}{field}, lookup={self.lookup!r})"

    def remote_field(self, model: type[models.Model]) -> models.Field[Any, Any] | None:
        """The remote model field filtered on (``None`` for the row's existence)."""
        if self.field is None:
            return None
        return remote_field(model, self.field)

    def parse(
        self,
        name: str,
        raw: str,
        model: type[models.Model],
        alias: str,
        field: models.Field[Any, Any] | None = None,
    ) -> Any:
        """The value of ``?name=raw`` as the remote field (or ``field``, for a value that
        is no field of the model: an aggregate) holds it; 400 when it cannot."""
        if "\x00" in raw:
            raise _invalid(name, "contains a NUL character")
        if self.lookup == "isnull":
            return _boolean(name, raw)
        if field is None:
            field = self.remote_field(model)
        assert field is not None
        if self.lookup == "in":
            if raw == "":
                raise _invalid(name, "is empty; give one or more comma-separated values")
            return [_to_field(name, field, part, alias) for part in raw.split(",")]
        if self.lookup in _TEXT_LOOKUPS:
            return raw
        return _to_field(name, field, raw, alias)


def _rebuild(spec: str, field: str | None, lookup: str, help_text: str | None) -> CrossDBFilter:
    return CrossDBFilter(spec, field, lookup=lookup, help_text=help_text)


def remote_field(model: type[models.Model], path: str) -> models.Field[Any, Any]:
    """The field at ``path`` (``"tier"``, ``"region__name"``) of ``model``."""
    current: Any = model
    field: Any = None
    for part in path.split("__"):
        if current is None:
            raise FieldDoesNotExist(f"{path!r} goes past a field that is not a relation")
        meta = current._meta
        name = meta.pk.name if part == "pk" and meta.pk is not None else part
        field = meta.get_field(name)
        current = field.related_model if field.is_relation else None
    if not isinstance(field, models.Field):
        raise FieldDoesNotExist(f"{path!r} is a reverse relation, not a column")
    return field


def _invalid(name: str, message: str) -> exceptions.ValidationError:
    return exceptions.ValidationError({name: [f"Filter {name!r}: {message}."]})


def _boolean(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _invalid(name, f"{raw!r} is not a boolean; use true or false")


def _to_field(name: str, field: models.Field[Any, Any], raw: str, alias: str) -> Any:
    target = normalize.target_field(field)
    if isinstance(target, models.BooleanField):
        return _boolean(name, raw)
    try:
        value = target.to_python(raw)
    except ValidationError as exc:
        detail = " ".join(str(m) for m in exc.messages)
        raise _invalid(name, f"{raw!r} is not a valid {_describe(target)} ({detail})") from None
    except (TypeError, ValueError, ArithmeticError):
        raise _invalid(name, f"{raw!r} is not a valid {_describe(target)}") from None
    if value is None:
        raise _invalid(name, f"{raw!r} is not a valid {_describe(target)}")
    if isinstance(value, int) and not isinstance(value, bool):
        low, high = connections[alias].ops.integer_field_range(target.get_internal_type())
        if (low is not None and value < low) or (high is not None and value > high):
            raise _invalid(name, f"{raw!r} is out of the range of {_describe(target)}")
    if isinstance(target, models.DateTimeField) and settings.USE_TZ and timezone.is_naive(value):
        value = timezone.make_aware(value)
    return value


def _describe(field: models.Field[Any, Any]) -> str:
    model = getattr(field, "model", None)
    where = f"{model._meta.label}.{field.name}" if model is not None else field.name
    return f"value of {where} ({field.get_internal_type()})"


# --- what a view declares ------------------------------------------------------------


def view_filters(view: Any) -> Mapping[str, CrossDBFilter]:
    """The ``cross_db_filters`` of a view."""
    filters = getattr(view, "cross_db_filters", None) or {}
    if not isinstance(filters, Mapping):
        raise ImproperlyConfigured(
            f"{type(view).__qualname__}.cross_db_filters must be a dict of "
            "{parameter: CrossDBFilter(...)}."
        )
    return filters


def view_ordering_fields(view: Any) -> Mapping[str, tuple[str, str]]:
    """The ``cross_db_ordering_fields`` of a view: ``{parameter: (spec, remote field)}``."""
    fields = getattr(view, "cross_db_ordering_fields", None) or {}
    if not isinstance(fields, Mapping):
        raise ImproperlyConfigured(
            f"{type(view).__qualname__}.cross_db_ordering_fields must be a dict of "
            "{parameter: (spec name, remote field)}."
        )
    return fields


def view_specs(view: Any) -> Mapping[str, CrossDBPrefetch]:
    get_specs = getattr(view, "get_cross_db_fields", None)
    specs = get_specs() if callable(get_specs) else getattr(view, "cross_db_fields", {})
    return specs if isinstance(specs, Mapping) else {}


def _spec(view: Any, name: str, where: str) -> CrossDBPrefetch:
    specs = view_specs(view)
    spec = specs.get(name)
    if not isinstance(spec, CrossDBPrefetch):
        raise ImproperlyConfigured(
            f"{where} uses the lookup {name!r}, which {type(view).__qualname__} does not "
            f"declare in cross_db_fields (it has: {', '.join(map(repr, specs)) or 'nothing'})."
        )
    return spec


def local_key(spec: CrossDBPrefetch, model: type[models.Model], where: str) -> str:
    """The column of ``model`` holding the spec's key, as a field name.

    The key must be one concrete field of the listed model: a callable or composite key
    cannot be sent to the database.
    """
    key = spec.key
    if not isinstance(key, str) or "." in key:
        raise ImproperlyConfigured(
            f"{where}: the spec's key {key!r} is not a field of {model._meta.label}; filtering "
            "and ordering need the key in one column of the listed model (no callable, "
            "composite or dotted key)."
        )
    try:
        field = model._meta.get_field(key)
    except FieldDoesNotExist:
        raise ImproperlyConfigured(
            f"{where}: the spec's key {key!r} is not a field of {model._meta.label}."
        ) from None
    if not getattr(field, "concrete", False) or field.many_to_many:
        raise ImproperlyConfigured(
            f"{where}: the spec's key {key!r} is not a column of {model._meta.label}."
        )
    return key


# --- the semi-join -------------------------------------------------------------------


@dataclass
class _Match:
    """The remote side of one spec, as the listed objects reach it."""

    spec: CrossDBPrefetch
    remote: models.QuerySet[Any]
    match: models.Field[Any, Any]
    column: str
    local_field: models.Field[Any, Any]

    @classmethod
    def of(
        cls,
        spec: CrossDBPrefetch,
        queryset: models.QuerySet[Any],
        request: HttpRequest | None,
        where: str,
    ) -> _Match:
        remote = spec.get_queryset(request)
        match_fields = spec.get_match_fields(remote.model)
        if len(match_fields) != 1:
            raise ImproperlyConfigured(
                f"{where}: {spec!r} has a composite key, which filters and orderings do not "
                "support; filter on a spec with a single key field."
            )
        column = local_key(spec, queryset.model, where)
        local_field = queryset.model._meta.get_field(column)
        assert isinstance(local_field, models.Field)
        return cls(spec, remote, match_fields[0], column, local_field)

    def remote_rows(self, conditions: Sequence[models.Q]) -> models.QuerySet[Any]:
        rows: models.QuerySet[Any] = self.remote.filter(*conditions).order_by()
        if self.match.null:
            rows = rows.filter(**{f"{self.match.name}__isnull": False})
        return rows

    def local_pairs(self, pairs: Sequence[tuple[Any, Any]], alias: str) -> list[tuple[Any, Any]]:
        """``(remote key, x)`` as ``(local key, x)``; keys the local column cannot hold are
        dropped (they match no object)."""
        if self._held(list(map(itemgetter(0), pairs)), alias):
            return list(pairs)
        return self._normalized(pairs, alias)

    def local_keys(self, keys: Sequence[Any], alias: str) -> list[Any]:
        """The remote keys as local keys; those the local column cannot hold are dropped."""
        if self._held(keys, alias):
            return list(keys)
        return [key for key, _ in self._normalized([(k, None) for k in keys], alias)]

    def _normalized(self, pairs: Sequence[tuple[Any, Any]], alias: str) -> list[tuple[Any, Any]]:
        to_local = normalize.normalizer((self.local_field,), connections[alias])
        local = []
        for key, extra in pairs:
            value = to_local(key)
            if value is not None and value is not normalize.INVALID:
                local.append((value, extra))
        return local

    def _held(self, keys: Sequence[Any], alias: str) -> bool:
        """Whether ``keys`` are already of the local column's type and within its range:
        taken as they are, without normalising each."""
        if not keys:
            return True
        exact, low, high = normalize._exact_type(self.local_field, connections[alias])
        if exact is None or set(map(type, keys)) != {exact}:
            return False
        return low is None or (low <= min(keys) and max(keys) <= high)


def _row_fields(match: _Match) -> tuple[str, ...] | None:
    """The fields a filter's query reads besides the key, so that the page's lookup needs
    no query of its own: the spec's ``fields``, when its rows are one per key and are
    dicts of those fields whatever the query filters on (a to-one projected spec, matched
    on a unique field, whose fields are columns of the remote model: not annotations, which
    a filter across a relation could change, nor relations to many). ``None``: the query
    reads only keys."""
    spec = match.spec
    fields = spec.fields
    if isinstance(spec, CrossDBAggregate):
        return fields  # one row per key, whose aggregates no HAVING changes
    if fields is None or spec.many or not match.match.unique:
        return None
    meta = match.remote.model._meta
    for name in fields:
        try:
            field = meta.get_field(name)
        except FieldDoesNotExist:
            return None
        if not getattr(field, "concrete", False) or field.many_to_many:
            return None
    return tuple(fields)


def _reads_rows(view: Any, request: HttpRequest | None) -> bool:
    """Whether the rows a filter reads can serve the page: a view serializing through
    ``CrossDBPrefetchMixin``, answering a read (a write could change the rows first)."""
    return (
        view is not None
        and hasattr(view, "_crossprefetch_lookups")
        and getattr(request, "method", None) in SAFE_METHODS
    )


class RemoteUnavailable(exceptions.APIException):
    """The remote database of a filter or ordering failed: the list cannot be narrowed."""

    status_code = 503
    default_code = "remote_unavailable"


def _bounded(
    rows: models.QuerySet[Any], spec: CrossDBPrefetch, names: Sequence[str], what: str
) -> list[tuple[Any, ...]]:
    """At most ``MAX_FILTER_KEYS`` rows, or a 400 naming the filters that asked for more.

    The remote query runs under the spec's ``timeout``, enforced by its database. When it
    fails, a spec with ``on_error="degrade"`` answers 503 naming the filters (a list
    filtered without its filter would be a wrong answer); otherwise the error propagates.
    """
    limit = conf.MAX_FILTER_KEYS
    degrade = spec.error_policy() == "degrade"
    try:
        with statement_scope(rows.db, spec.statement_timeout(), isolate=degrade):
            found = _at_most(rows, limit + 1)
    except DatabaseError as exc:
        if not degrade:
            raise
        joined = ", ".join(repr(n) for n in names)
        raise RemoteUnavailable(
            f"Filter {joined}: database {rows.db!r} failed ({type(exc).__name__}); try again later."
        ) from exc
    if len(found) > limit:
        joined = ", ".join(repr(n) for n in names)
        raise exceptions.ValidationError(
            {
                name: [
                    f"Filter {joined}: {what} more than {limit:,} remote rows "
                    f'(CROSSPREFETCH["MAX_FILTER_KEYS"]); narrow the filter.'
                ]
                for name in names
            }
        )
    return found


def _at_most(rows: models.QuerySet[Any], count: int) -> list[tuple[Any, ...]]:
    """The first ``count`` rows of a ``values_list()`` QuerySet (not ``flat``).

    Read in one fetch rather than Django's chunks of 100: a filter's remote query returns
    thousands of rows, and the chunks cost more than the rows. An ordered query on SQLite
    is read without ``LIMIT``, stopping after ``count`` rows: with a ``LIMIT``, SQLite sorts
    into a B-tree instead of its (faster) sorter.
    """
    if rows.query.order_by and connections[rows.db].vendor == "sqlite":
        read = rows.iterator(chunk_size=_CHUNK)
        try:
            return list(islice(read, count))
        finally:  # closes the cursor now, not when the generator is collected
            close = getattr(read, "close", None)
            if close is not None:
                close()
    limited = rows[:count]
    return list(ValuesListIterable(limited, chunk_size=count))


#: Rows per fetch when reading without ``LIMIT``.
_CHUNK = 2_000


def filter_by_remote(
    queryset: models.QuerySet[Any],
    spec: CrossDBPrefetch,
    active: Sequence[tuple[str, CrossDBFilter, str]],
    *,
    request: HttpRequest | None = None,
    view: Any = None,
) -> models.QuerySet[Any]:
    """Narrow ``queryset`` to the objects whose row through ``spec`` passes every filter.

    ``active`` holds ``(parameter, filter, raw value)`` of the filters on this one spec;
    they combine with AND in ONE remote query. The remote conditions are remembered on the
    view, so that ordering by the same spec ranks only the rows left.
    """
    names = [name for name, _, _ in active]
    where = f"filter {names[0]!r}" if len(names) == 1 else f"filters {', '.join(names)}"
    match = _Match.of(spec, queryset, request, where)
    alias = match.remote.db
    conditions: list[models.Q] = []
    existence: set[bool] = set()  # the answers of the filters on the row's existence
    grouped = spec if isinstance(spec, CrossDBAggregate) else None
    for name, cross_filter, raw in active:
        field = None
        if grouped is not None and cross_filter.field is not None:
            where_one = f"cross_db_filters[{name!r}]"
            field = _aggregates.filter_field(
                grouped, cross_filter.field, where_one, cross_filter.lookup, match.remote
            )
        value = cross_filter.parse(name, raw, match.remote.model, alias, field)
        if cross_filter.field is None:
            existence.add(value)
            continue
        conditions.append(models.Q(**{f"{cross_filter.field}__{cross_filter.lookup}": value}))
    if view is not None:
        remembered = getattr(view, "_crossprefetch_remote_filters", None) or {}
        view._crossprefetch_remote_filters = {**remembered, active[0][1].spec: conditions}
    narrowed: models.QuerySet[Any]
    if grouped is not None:  # objects without rows compare as the aggregates over none
        decided = _aggregates.narrowing(grouped, conditions, existence)
        if decided is None:
            narrowed = queryset.none()
            return narrowed
        missing, remote_conditions = decided.exclude, decided.conditions
    else:
        missing = existence == {True}
        if len(existence) > 1 or (missing and conditions):
            narrowed = queryset.none()  # without a remote row, yet with one
            return narrowed
        remote_conditions = [] if missing else conditions
    remote = match.remote_rows(remote_conditions)
    fields = _row_fields(match) if not missing and _reads_rows(view, request) else None
    if fields is None:
        rows = remote.values_list(match.match.name)
        if not match.match.unique:
            rows = rows.distinct()
        matched = [key for (key,) in _bounded(rows, spec, names, "matches")]
    else:  # the spec's fields too: the page's rows, read in this same query
        found = _bounded(remote.values_list(match.match.name, *fields), spec, names, "matches")
        read = dict(zip(map(itemgetter(0), found), found, strict=True))
        remember_rows(view, request, active[0][1].spec, spec, KnownRows(fields, read))
        matched = list(read)
    keys = match.local_keys(matched, queryset.db)
    column = match.column
    if missing:
        if not keys:
            return queryset
        without = models.Q(**{f"{column}__isnull": True}) | ~models.Q(KeyIn(column, keys))
        narrowed = queryset.filter(without)
    elif not keys:
        narrowed = queryset.none()
    else:
        narrowed = queryset.filter(KeyIn(column, keys))
    return narrowed


def ranks(
    match: _Match, fields: Sequence[str], conditions: Sequence[models.Q], names: Sequence[str]
) -> list[tuple[Any, tuple[Any, ...]]]:
    """``(key, (rank by fields[0], rank by fields[1], ...))`` for the remote rows: ONE query.

    Ranks are dense, in the remote database's order (its collation), so equal values share
    a rank and the view's own ordering breaks the tie. A null value gets no rank: the row
    sorts with the objects that have no remote row, as in a join. A key matched by several
    rows keeps its first rank per field.
    """
    rows = match.remote_rows(conditions)
    width = len(fields)
    if width == 1 and _compares_by_value(rows, fields[0]):
        return _ranked_in_python(rows, match.spec, match.match.name, fields[0], names)
    annotations = {
        f"crossprefetch_rank_{i}": models.Window(DenseRank(), order_by=models.F(field).asc())
        for i, field in enumerate(fields)
    }
    if width == 1:  # leave the null values out, fetch no value
        rows = rows.filter(**{f"{fields[0]}__isnull": False})
        values: tuple[str, ...] = ()
    else:
        values = tuple(fields)
    rows = rows.annotate(**annotations).values_list(match.match.name, *values, *annotations)
    table: dict[Any, tuple[Any, ...]] = {}
    for row in _bounded(rows, match.spec, names, "orders"):
        key, rank = row[0], row[1 + len(values) :]
        if values:
            rank = tuple(
                None if v is None else r for v, r in zip(row[1 : 1 + width], rank, strict=True)
            )
        kept = table.get(key)
        if kept is not None:
            rank = tuple(
                r if k is None or (r is not None and r < k) else k
                for k, r in zip(kept, rank, strict=True)
            )
        table[key] = rank
    return list(table.items())


def _compares_by_value(rows: models.QuerySet[Any], field: str) -> bool:
    """Whether the remote database says two values of ``field`` are equal exactly when
    Python does: then the ranks come from the ordered values, without a window function.

    True on SQLite and PostgreSQL for a field without a ``db_collation`` (their default
    collations tell apart any two different strings); never on MariaDB/MySQL, whose
    default collations ignore case and trailing spaces.
    """
    if "__" in field or connections[rows.db].vendor not in {"sqlite", "postgresql"}:
        return False
    try:
        model_field = rows.model._meta.get_field(field)
    except FieldDoesNotExist:
        return False  # an annotation: let the database rank it
    return getattr(model_field, "db_collation", None) is None


def _ranked_in_python(
    rows: models.QuerySet[Any],
    spec: CrossDBPrefetch,
    key: str,
    field: str,
    names: Sequence[str],
) -> list[tuple[Any, tuple[Any, ...]]]:
    ordered = rows.filter(**{f"{field}__isnull": False}).order_by(field).values_list(key, field)
    table: dict[Any, tuple[Any, ...]] = {}
    first = table.setdefault  # a key matched by several rows keeps its first rank
    found = _bounded(ordered, spec, names, "orders")
    for rank, (_, tied) in enumerate(groupby(found, itemgetter(1)), start=1):
        position = (rank,)  # one tuple for the rows that tie
        for remote_key, _ in tied:
            first(remote_key, position)
    return list(table.items())


# --- DRF filter backends -------------------------------------------------------------


class CrossDBFilterBackend(BaseFilterBackend):
    """Apply the view's ``cross_db_filters`` before pagination.

    Parameters absent from the request are inactive. Filters on the same spec share one
    remote query; each filtered spec costs one; filters combine with AND.
    """

    def filter_queryset(
        self, request: Any, queryset: models.QuerySet[Any], view: Any
    ) -> models.QuerySet[Any]:
        filters = view_filters(view)
        if not filters:
            return queryset
        params = request.query_params
        by_spec: dict[str, list[tuple[str, CrossDBFilter, str]]] = {}
        for name, cross_filter in filters.items():
            if name in params:
                by_spec.setdefault(cross_filter.spec, []).append((name, cross_filter, params[name]))
        for spec_name, active in by_spec.items():
            spec = _spec(view, spec_name, f"cross_db_filters[{active[0][0]!r}]")
            queryset = filter_by_remote(queryset, spec, active, request=request, view=view)
        return queryset

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        """One query parameter per filter, typed from the remote field (drf-spectacular
        and DRF's own schema generator read this)."""
        parameters = []
        for name, cross_filter in view_filters(view).items():
            schema = _parameter_schema(view, cross_filter)
            parameters.append(
                {
                    "name": name,
                    "required": False,
                    "in": "query",
                    "description": cross_filter.help_text or _describe_filter(cross_filter),
                    "schema": schema,
                    **({"style": "form", "explode": False} if schema["type"] == "array" else {}),
                }
            )
        return parameters


class CrossDBOrderingFilter(OrderingFilter):
    """DRF's ``OrderingFilter`` plus ``cross_db_ordering_fields``.

    ``cross_db_ordering_fields = {"customer_name": ("customers", "name")}`` makes
    ``?ordering=customer_name`` and ``?ordering=-customer_name`` valid, mixed freely with
    the local ``ordering_fields``. Objects without a remote row (or whose remote field is
    null) come after the others in both directions; ties keep the view QuerySet's order.
    """

    def get_valid_fields(
        self,
        queryset: models.QuerySet[Any],
        view: Any,
        context: Mapping[str, Any] | None = None,
    ) -> list[tuple[str, str]]:
        valid: list[tuple[str, str]] = super().get_valid_fields(queryset, view, context or {})
        remote = view_ordering_fields(view)
        return [*(item for item in valid if item[0] not in remote), *((n, n) for n in remote)]

    def filter_queryset(
        self, request: Any, queryset: models.QuerySet[Any], view: Any
    ) -> models.QuerySet[Any]:
        ordering = self.get_ordering(request, queryset, view)
        if not ordering:
            return queryset
        remote = view_ordering_fields(view)
        own = _own_ordering(queryset)
        remembered = getattr(view, "_crossprefetch_remote_filters", None) or {}
        # per spec, its remote fields in order, each descending or not (a field's first
        # term decides; a later one could only break ties between equal values)
        directions: dict[str, dict[str, bool]] = {}
        names_of: dict[str, list[str]] = {}
        for term in ordering:
            name = term.lstrip("-")
            if name in remote:
                spec_name, field = remote[name]
                directions.setdefault(spec_name, {}).setdefault(field, term != name)
                names_of.setdefault(spec_name, []).append(name)
        by_rank: dict[tuple[str, str], models.OrderBy] = {}
        for spec_name, fields in directions.items():
            where = f"ordering {', '.join(map(repr, names_of[spec_name]))}"
            spec = _spec(view, spec_name, where)
            match = _Match.of(spec, queryset, request, where)
            table = ranks(match, list(fields), remembered.get(spec_name, ()), names_of[spec_name])
            rows = match.local_pairs(table, queryset.db)
            queryset, ordered_by = positions(queryset, match.column, rows, list(fields.values()))
            for field, order in zip(fields, ordered_by, strict=True):
                by_rank[(spec_name, field)] = order
        terms: list[Any] = []
        for term in ordering:
            name = term.lstrip("-")
            if name not in remote:
                terms.append(term)
            elif remote[name] in by_rank:
                terms.append(by_rank.pop(remote[name]))
        terms += [t for t in own if t not in terms]
        ordered: models.QuerySet[Any] = queryset.order_by(*terms)
        return ordered

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        try:
            valid = [name for name, _ in self.get_valid_fields(_queryset(view), view, {})]
        except Exception:  # a view whose queryset needs a real request
            valid = list(view_ordering_fields(view))
        for parameter in parameters:
            if parameter.get("name") == self.ordering_param:
                values = [v for name in valid for v in (name, f"-{name}")]
                parameter["schema"] = {
                    "type": "array",
                    "items": {"type": "string", "enum": values},
                }
                parameter["style"] = "form"
                parameter["explode"] = False
        return parameters


def _queryset(view: Any) -> models.QuerySet[Any]:
    queryset = getattr(view, "queryset", None)
    if isinstance(queryset, models.QuerySet):
        return queryset
    result: models.QuerySet[Any] = view.get_queryset()
    return result


def _own_ordering(queryset: models.QuerySet[Any]) -> list[Any]:
    """The QuerySet's ordering before the ordering filter replaces it: the tie-breakers."""
    query = queryset.query
    if query.order_by:
        return list(query.order_by)
    if query.default_ordering:
        return list(queryset.model._meta.ordering)
    return []


# --- OpenAPI -------------------------------------------------------------------------

_OPENAPI_TYPES: dict[str, dict[str, str]] = {
    **{name: {"type": "integer"} for name in INTEGER_TYPES},
    "FloatField": {"type": "number", "format": "double"},
    "DecimalField": {"type": "number", "format": "decimal"},
    "BooleanField": {"type": "boolean"},
    "DateField": {"type": "string", "format": "date"},
    "DateTimeField": {"type": "string", "format": "date-time"},
    "TimeField": {"type": "string", "format": "time"},
    "UUIDField": {"type": "string", "format": "uuid"},
    "EmailField": {"type": "string", "format": "email"},
}


def _parameter_schema(view: Any, cross_filter: CrossDBFilter) -> dict[str, Any]:
    if cross_filter.lookup == "isnull":
        return {"type": "boolean"}
    if cross_filter.lookup in _TEXT_LOOKUPS:
        return {"type": "string"}
    schema: dict[str, Any] = {"type": "string"}
    try:
        spec = _spec(view, cross_filter.spec, repr(cross_filter))
        source = spec.source
        model = (
            spec.get_queryset(getattr(view, "request", None)).model
            if callable(source) and not isinstance(source, type)
            else spec.get_model()
        )
        field = (
            spec.output_field(cross_filter.field, spec.get_queryset(getattr(view, "request", None)))
            if isinstance(spec, CrossDBAggregate) and cross_filter.field is not None
            else cross_filter.remote_field(model)
        )
        assert field is not None
        schema = dict(_OPENAPI_TYPES.get(normalize.target_field(field).get_internal_type(), schema))
    except Exception:  # documented as a string; the system checks report the cause
        pass
    if cross_filter.lookup == "in":
        return {"type": "array", "items": schema}
    return schema


def _describe_filter(cross_filter: CrossDBFilter) -> str:
    if cross_filter.field is None:
        return f"true: only objects without a {cross_filter.spec!r} row; false: only with one."
    what = {
        "exact": "equals",
        "iexact": "equals, ignoring case",
        "in": "is one of (comma-separated)",
        "icontains": "contains, ignoring case",
        "contains": "contains",
        "startswith": "starts with",
        "istartswith": "starts with, ignoring case",
        "gt": "is greater than",
        "gte": "is at least",
        "lt": "is less than",
        "lte": "is at most",
        "isnull": "is null (true) or not (false)",
    }[cross_filter.lookup]
    return f"Only objects whose {cross_filter.spec!r} row's {cross_filter.field} {what} this."
