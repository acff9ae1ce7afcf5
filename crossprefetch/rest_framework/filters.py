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

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import groupby
from operator import itemgetter
from typing import Any, Final, NamedTuple

from django.conf import settings
from django.core.exceptions import (
    FieldDoesNotExist,
    FieldError,
    ImproperlyConfigured,
    ValidationError,
)
from django.db import connections, models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.functions import DenseRank
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import Promise
from rest_framework import exceptions
from rest_framework.filters import BaseFilterBackend, OrderingFilter
from rest_framework.permissions import SAFE_METHODS
from rest_framework.settings import api_settings

from crossprefetch import _aggregates
from crossprefetch._fetch import chain
from crossprefetch._fetch.reads import Read, Unavailable
from crossprefetch._keys import normalize, values
from crossprefetch._keys.keyset import KeyIn, positions
from crossprefetch._keys.normalize import INTEGER_TYPES
from crossprefetch._suggest import closest, did_you_mean
from crossprefetch.aggregate import CrossDBAggregate
from crossprefetch.conf import conf
from crossprefetch.related import view_relation_spec
from crossprefetch.rest_framework import _form
from crossprefetch.rest_framework._known import KnownRows, remember_rows
from crossprefetch.rest_framework._strict import refuse_unclear_filters, unknown_ordering_terms
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
#: Text fields whose ``max_length`` is the column's (a ``TextField``'s is the form's).
_BOUNDED_TEXT = frozenset({"CharField", "SlugField", "EmailField", "URLField"})
#: SQLite's SQLITE_MAX_LIKE_PATTERN_LENGTH, in bytes.
_SQLITE_LIKE_BYTES = 50_000


#: The value of an argument not given (``None`` can be given).
UNSET: Final[Any] = object()
_RENAMED = "%s is deprecated; use %s (named as django-filter names it)."


def renamed(owner: str, old: str, new: str, old_value: Any, value: Any, default: Any) -> Any:
    """``value``, or what was given under the argument's former name ``old`` (with a
    :exc:`DeprecationWarning` pointing at the caller); both at once is a :exc:`TypeError`."""
    if old_value is UNSET:
        return value
    if value != default:
        raise TypeError(f"{owner}() got {new}= and its former name {old}=; give {new}= only.")
    warnings.warn(_RENAMED % (f"{owner}({old}=...)", f"{new}="), DeprecationWarning, 3)
    return old_value


class FilterProblem(NamedTuple):
    """What is wrong with the arguments of a filter by remote rows, and how to fix it.

    Reported by the system check ``crossprefetch.E408`` (naming the view and the parameter)
    and raised as :exc:`~django.core.exceptions.ImproperlyConfigured` by a request that
    uses the filter, so that a typo in a declaration never stops the URLconf importing.
    """

    message: str
    hint: str

    def __str__(self) -> str:
        return f"{self.message} {self.hint}"


def validate_filter(
    owner: str, spec: Any, field_name: Any, lookup_expr: Any
) -> FilterProblem | None:
    """The arguments of a filter by remote rows, checked where it is declared.

    :exc:`TypeError` for an argument of the wrong type: a mistake in the code itself, which
    no setting or model can make right. A value of the right type that cannot be taken is
    returned as a :class:`FilterProblem`, for the system checks to report.
    """
    call = f"{owner}({spec!r}, {field_name!r}, lookup_expr={lookup_expr!r})"
    if not isinstance(spec, str):
        raise TypeError(
            f"{call}: the first argument is the name of a spec in the view's "
            "cross_db_fields, e.g. CrossDBFilter('customers', 'tier')."
        )
    if field_name is not None and not isinstance(field_name, str):
        raise TypeError(f"{call}: field_name must be the name of a remote field, or None.")
    if not isinstance(lookup_expr, str):
        raise TypeError(f"{call}: lookup_expr must be one of {', '.join(LOOKUPS)}.")
    if not spec:
        return FilterProblem(
            "the spec's name is empty.", "Name a spec of the view's cross_db_fields."
        )
    if field_name == "":
        return FilterProblem(
            "field_name is empty.",
            "Name a remote field, or give no field_name with lookup_expr='isnull'.",
        )
    if lookup_expr not in LOOKUPS:
        near = closest(lookup_expr, LOOKUPS)
        return FilterProblem(
            f"lookup_expr {lookup_expr!r} is not a lookup crossprefetch filters with.",
            (f"Did you mean {near!r}? " if near else "") + f"Use one of: {', '.join(LOOKUPS)}.",
        )
    if field_name is None and lookup_expr != "isnull":
        return FilterProblem(
            f"no field_name to compare with lookup_expr={lookup_expr!r}.",
            "Name a remote field, or use lookup_expr='isnull' to filter on whether the "
            "remote row exists.",
        )
    return None


class CrossDBFilter:
    """One query parameter filtering the listed objects by their rows in another database.

    ``CrossDBFilter("customers", "tier")`` under the name ``customer_tier`` keeps the
    objects whose ``customers`` row (the view's ``cross_db_fields["customers"]``) has
    ``tier == ?customer_tier``. Null and dangling keys never match. The arguments are
    named as django-filter names them, and as :class:`CrossDBFilterSetFilter` takes them.

    :param spec: the name of a spec in the view's ``cross_db_fields``.
    :param field_name: the remote field (``"tier"``, or across relations
        ``"region__name"``); ``None`` with ``lookup_expr="isnull"`` asks whether the
        object has a remote row at all. Formerly ``field=`` (deprecated).
    :param lookup_expr: one of :data:`LOOKUPS`. ``in`` takes comma-separated values;
        ``isnull`` takes ``true`` or ``false``. An empty value (``?customer_tier=``) leaves
        the filter out, as django-filter does.
        Formerly ``lookup=`` (deprecated).
    :param help_text: the parameter's description in the OpenAPI schema.
    :raises TypeError: an argument of the wrong type.

    A value of the right type that it cannot take (an unknown ``lookup_expr``, an empty
    name) is kept in :attr:`problem`: the system check ``crossprefetch.E408`` reports it,
    and a request using the parameter raises
    :exc:`~django.core.exceptions.ImproperlyConfigured`.
    """

    __slots__ = ("field_name", "help_text", "lookup_expr", "problem", "spec")

    spec: str
    field_name: str | None
    lookup_expr: str
    help_text: str | None
    #: What is wrong with the arguments, or ``None``.
    problem: FilterProblem | None

    def __init__(
        self,
        spec: str,
        field_name: str | None = None,
        lookup_expr: str = "exact",
        *,
        help_text: str | None = None,
        field: Any = UNSET,
        lookup: Any = UNSET,
    ) -> None:
        field_name = renamed("CrossDBFilter", "field", "field_name", field, field_name, None)
        lookup_expr = renamed(
            "CrossDBFilter", "lookup", "lookup_expr", lookup, lookup_expr, "exact"
        )
        problem = validate_filter("CrossDBFilter", spec, field_name, lookup_expr)
        if help_text is not None and not isinstance(help_text, str | Promise):
            raise TypeError(f"CrossDBFilter(help_text={help_text!r}): help_text must be text.")
        set_ = object.__setattr__
        set_(self, "spec", spec)
        set_(self, "field_name", field_name)
        set_(self, "lookup_expr", lookup_expr)
        set_(self, "help_text", help_text)
        set_(self, "problem", problem)

    @property
    def field(self) -> str | None:
        """Deprecated: :attr:`field_name`."""
        warnings.warn(_RENAMED % ("CrossDBFilter.field", "field_name"), DeprecationWarning, 2)
        return self.field_name

    @property
    def lookup(self) -> str:
        """Deprecated: :attr:`lookup_expr`."""
        warnings.warn(_RENAMED % ("CrossDBFilter.lookup", "lookup_expr"), DeprecationWarning, 2)
        return self.lookup_expr

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"CrossDBFilter is immutable; cannot set {name!r}.")

    def __copy__(self) -> CrossDBFilter:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> CrossDBFilter:
        return self  # immutable: FilterSets deep-copy their filters on every instance

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.spec, self.field_name, self.lookup_expr, self.help_text))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CrossDBFilter):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def _identity(self) -> tuple[Any, ...]:
        return (self.spec, self.field_name, self.lookup_expr, self.help_text)

    def __repr__(self) -> str:
        field = "" if self.field_name is None else f", {self.field_name!r}"
        return f"CrossDBFilter({self.spec!r}{field}, lookup_expr={self.lookup_expr!r})"

    def ensure_valid(self, where: str) -> None:
        """:exc:`~django.core.exceptions.ImproperlyConfigured` naming ``where`` (the view
        and parameter) if the arguments are invalid: a request never filters with them."""
        if self.problem is not None:
            raise ImproperlyConfigured(f"{where} = {self!r}: {self.problem}")

    def remote_field(self, model: type[models.Model]) -> models.Field[Any, Any] | None:
        """The remote model field filtered on (``None`` for the row's existence)."""
        if self.field_name is None:
            return None
        return remote_field(model, self.field_name)

    def ignores(self, raw: str) -> bool:
        """Whether ``?name=raw`` leaves the filter inactive: an empty value (``?tier=``,
        ``?tier__in=``, ``?no_customer=``) filters nothing, as django-filter's filters
        (and :class:`CrossDBFilterSetFilter`) do, and a form's empty input sends."""
        return raw == ""

    def parse(
        self,
        name: str,
        raw: str,
        model: type[models.Model],
        alias: str,
        field: models.Field[Any, Any] | None = None,
    ) -> Any:
        """The value of ``?name=raw`` as the remote field (or ``field``, for a value that
        is no field of the model: an aggregate) holds it; 400 when it cannot.

        Refused before any query: text that cannot be sent (a NUL character, a lone
        surrogate), a value longer than ``CROSSPREFETCH["MAX_FILTER_VALUE_LENGTH"]`` or than
        the remote field holds, a value that is not one of the field's.
        """
        _sendable(name, raw)
        if self.lookup_expr == "isnull":
            return _boolean(name, raw)
        if field is None:
            field = self.remote_field(model)
        assert field is not None
        target = normalize.target_field(field)
        parts = raw.split(",") if self.lookup_expr == "in" else [raw]
        for part in parts:
            _fits(name, target, part)
        if self.lookup_expr in _TEXT_LOOKUPS:
            _fits_like(name, raw, connections[alias])
            return raw
        if self.lookup_expr == "in":
            return [_to_field(name, field, part, alias) for part in parts]
        return _to_field(name, field, raw, alias)


def _rebuild(
    spec: str, field_name: str | None, lookup_expr: str, help_text: str | None
) -> CrossDBFilter:
    return CrossDBFilter(spec, field_name, lookup_expr, help_text=help_text)


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


def _sendable(name: str, raw: str) -> None:
    if "\x00" in raw:
        raise _invalid(name, "contains a NUL character")
    if not raw.isascii():
        try:
            raw.encode("utf-8")
        except UnicodeEncodeError:
            raise _invalid(name, "is not valid text (a lone surrogate)") from None
    cap = conf.MAX_FILTER_VALUE_LENGTH
    if len(raw) > cap:
        raise _invalid(
            name,
            f"is {len(raw):,} characters long, more than the {cap:,} a filter value may have "
            '(CROSSPREFETCH["MAX_FILTER_VALUE_LENGTH"])',
        )


def _fits(name: str, field: models.Field[Any, Any], raw: str) -> None:
    """400 for text longer than a text field holds (``max_length`` of a ``CharField``)."""
    if field.get_internal_type() not in _BOUNDED_TEXT:
        return
    max_length = field.max_length
    if isinstance(max_length, int) and len(raw) > max_length:
        raise _invalid(
            name,
            f"is {len(raw):,} characters long; {_describe(field)} holds at most {max_length:,}",
        )


def _fits_like(name: str, raw: str, connection: BaseDatabaseWrapper) -> None:
    """400 for a pattern SQLite's ``LIKE`` refuses ("LIKE or GLOB pattern too complex"):
    its limit counts bytes, with Django's escapes and wildcards."""
    if connection.vendor != "sqlite":
        return
    size = len(raw.encode("utf-8")) + sum(map(raw.count, "%_\\")) + 2
    if size > _SQLITE_LIKE_BYTES:
        raise _invalid(
            name,
            f"is {size:,} bytes as a pattern, more than the {_SQLITE_LIKE_BYTES:,} SQLite "
            "matches; give a shorter value",
        )


def _boolean(name: str, raw: str) -> bool:
    value = _form.boolean(raw)
    if value is None:
        raise _invalid(name, f"{raw!r} is not a boolean; use true or false")
    return value


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


def view_label(view: Any) -> str:
    """``module.ViewClass`` of a view class or instance, as messages name it."""
    cls = view if isinstance(view, type) else type(view)
    return f"{cls.__module__}.{cls.__qualname__}"


def view_filters(view: Any) -> Mapping[str, CrossDBFilter]:
    """The ``cross_db_filters`` of a view."""
    filters = getattr(view, "cross_db_filters", None) or {}
    if not isinstance(filters, Mapping):
        raise ImproperlyConfigured(
            f"{view_label(view)}.cross_db_filters must be a dict of "
            "{parameter: CrossDBFilter(...)}."
        )
    for name, cross_filter in filters.items():
        if not isinstance(cross_filter, CrossDBFilter):
            raise ImproperlyConfigured(
                f"{view_label(view)}.cross_db_filters[{name!r}] is {cross_filter!r}, not a "
                "CrossDBFilter; wrap it: CrossDBFilter('spec', 'field_name')."
            )
    return filters


def view_ordering_fields(view: Any) -> Mapping[str, tuple[str, str]]:
    """The ``cross_db_ordering_fields`` of a view: ``{parameter: (spec, remote field)}``."""
    fields = getattr(view, "cross_db_ordering_fields", None) or {}
    if not isinstance(fields, Mapping):
        raise ImproperlyConfigured(
            f"{view_label(view)}.cross_db_ordering_fields must be a dict of "
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
    if spec is None:  # a relation of the listed model into another database: no spec needed
        spec = view_relation_spec(view, name)
    if not isinstance(spec, CrossDBPrefetch):
        raise ImproperlyConfigured(
            f"{where} uses the lookup {name!r}, which {view_label(view)} does not declare in "
            f"cross_db_fields (it has: {', '.join(map(repr, specs)) or 'nothing'})."
            + did_you_mean(name, map(str, specs))
        )
    return spec


def closest_path(model: type[models.Model], path: str) -> str | None:
    """``path`` with its first unknown part replaced by the closest field of the model it
    is looked up on (``"regoin__name"`` -> ``"region__name"``), or ``None``."""
    current: Any = model
    parts = path.split("__")
    for i, part in enumerate(parts):
        if current is None:
            return None
        meta = current._meta
        try:
            field = meta.get_field(meta.pk.name if part == "pk" and meta.pk else part)
        except FieldDoesNotExist:
            near = closest(part, [f.name for f in meta.get_fields()])
            return None if near is None else "__".join([*parts[:i], near, *parts[i + 1 :]])
        current = field.related_model if field.is_relation else None
    return None


def unknown_remote_field(
    where: str, spec: CrossDBPrefetch, model: type[models.Model], path: str, exc: Exception
) -> ImproperlyConfigured:
    """The error of a filter or ordering whose remote field ``path`` does not exist."""
    near = closest_path(model, path)
    return ImproperlyConfigured(
        f"{where}: {model._meta.label} (the rows of {spec!r}) has no field {path!r} ({exc})."
        + (f" Did you mean {near!r}?" if near else "")
        + f" Name a field of {model._meta.label}; follow relations with '__'."
    )


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
        return values.local_pairs(pairs, self.local_field, connections[alias])

    def local_keys(self, keys: Sequence[Any], alias: str) -> list[Any]:
        """The remote keys as local keys; those the local column cannot hold are dropped."""
        return values.local_keys(keys, self.local_field, connections[alias])


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
        # Reading them would compute every aggregate of every group the filter scans; the
        # page's own grouped query computes them for its keys only, and costs less.
        return None
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
    rows: models.QuerySet[Any],
    spec: CrossDBPrefetch,
    names: Sequence[str],
    what: str,
    request: HttpRequest | None = None,
) -> list[tuple[Any, ...]]:
    """At most ``MAX_FILTER_KEYS`` rows, or a 400 naming the filters that asked for more.

    The remote query goes through the fetch chain as lookups do
    (:mod:`crossprefetch._fetch.reads`): the spec's ``timeout`` and deadline, its alias's
    circuit breaker and bulkhead, coalescing, its cache. When its database is out, a spec
    with ``on_error="degrade"`` answers 503 naming the filters (a list filtered without its
    filter would be a wrong answer); otherwise the error propagates.
    """
    limit = conf.MAX_FILTER_KEYS
    try:
        found = chain.read(Read(rows, spec, limit + 1, tuple(names), request))
    except Unavailable as exc:
        joined = ", ".join(repr(n) for n in names)
        raise RemoteUnavailable(f"Filter {joined}: {exc}; try again later.") from exc
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


def filter_by_remote(
    queryset: models.QuerySet[Any],
    spec: CrossDBPrefetch,
    active: Sequence[tuple[str, CrossDBFilter, str]],
    *,
    request: HttpRequest | None = None,
    view: Any = None,
    parsed: bool = False,
    declared: str = "cross_db_filters",
) -> models.QuerySet[Any]:
    """Narrow ``queryset`` to the objects whose row through ``spec`` passes every filter.

    ``active`` holds ``(parameter, filter, raw value)`` of the filters on this one spec
    (``parsed``: the value :meth:`CrossDBFilter.parse` made of it); they combine with AND
    in ONE remote query. The remote conditions are remembered on the
    view, so that ordering by the same spec ranks only the rows left. ``declared`` is
    where the filters are declared, as errors name them (``"app.views.View.cross_db_filters"``:
    ``...cross_db_filters['customer_tier']``).
    """
    names = [name for name, _, _ in active]
    where = ", ".join(f"{declared}[{name!r}]" for name in names)
    match = _Match.of(spec, queryset, request, where)
    alias = match.remote.db
    conditions: list[models.Q] = []
    existence: set[bool] = set()  # the answers of the filters on the row's existence
    grouped = spec if isinstance(spec, CrossDBAggregate) else None
    for name, cross_filter, raw in active:
        field = None
        if grouped is not None and cross_filter.field_name is not None:
            field = _aggregates.filter_field(
                grouped,
                cross_filter.field_name,
                f"{declared}[{name!r}]",
                cross_filter.lookup_expr,
                match.remote,
            )
        try:
            value: Any = (
                raw if parsed else cross_filter.parse(name, raw, match.remote.model, alias, field)
            )
        except FieldDoesNotExist as exc:
            raise unknown_remote_field(
                f"{declared}[{name!r}] = {cross_filter!r}",
                spec,
                match.remote.model,
                cross_filter.field_name or "",
                exc,
            ) from exc
        if cross_filter.field_name is None:
            existence.add(value)
            continue
        lookup = f"{cross_filter.field_name}__{cross_filter.lookup_expr}"
        conditions.append(models.Q(**{lookup: value}))
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
        matched = [key for (key,) in _bounded(rows, spec, names, "matches", request)]
    else:  # the spec's fields too: the page's rows, read in this same query
        found = _bounded(
            remote.values_list(match.match.name, *fields), spec, names, "matches", request
        )
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
    match: _Match,
    fields: Sequence[str],
    conditions: Sequence[models.Q],
    names: Sequence[str],
    request: HttpRequest | None = None,
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
        return _ranked_in_python(rows, match.spec, match.match.name, fields[0], names, request)
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
    for row in _bounded(rows, match.spec, names, "orders", request):
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
    request: HttpRequest | None,
) -> list[tuple[Any, tuple[Any, ...]]]:
    ordered = rows.filter(**{f"{field}__isnull": False}).order_by(field).values_list(key, field)
    table: dict[Any, tuple[Any, ...]] = {}
    first = table.setdefault  # a key matched by several rows keeps its first rank
    found = _bounded(ordered, spec, names, "orders", request)
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
        declared = f"{view_label(view)}.cross_db_filters"
        if conf.STRICT:
            refuse_unclear_filters(request, queryset, view, filters)
        by_spec: dict[str, list[tuple[str, CrossDBFilter, str]]] = {}
        for name, cross_filter in filters.items():
            if name not in params:
                continue
            cross_filter.ensure_valid(f"{declared}[{name!r}]")
            if not cross_filter.ignores(params[name]):
                by_spec.setdefault(cross_filter.spec, []).append((name, cross_filter, params[name]))
        for spec_name, active in by_spec.items():
            spec = _spec(view, spec_name, f"{declared}[{active[0][0]!r}]")
            queryset = filter_by_remote(
                queryset, spec, active, request=request, view=view, declared=declared
            )
        return queryset

    def to_html(self, request: Any, queryset: models.QuerySet[Any], view: Any) -> str | None:
        """The form of the view's filters in DRF's browsable API (its **Filters** dialog),
        as django-filter's backend renders its FilterSet's; ``None`` without filters. Sends
        no query. See :ref:`browsable-api-filters`."""
        return _form.render(
            request,
            view,
            [
                (
                    name,
                    cross_filter.lookup_expr,
                    _documented_field(view, cross_filter),
                    str(cross_filter.help_text or _describe_filter(cross_filter)),
                )
                for name, cross_filter in view_filters(view).items()
                if cross_filter.problem is None  # crossprefetch.E408; a request using it fails
            ],
        )

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        """One query parameter per filter, typed from the remote field (drf-spectacular
        and DRF's own schema generator read this)."""
        parameters = []
        for name, cross_filter in view_filters(view).items():
            cross_filter.ensure_valid(f"{view_label(view)}.cross_db_filters[{name!r}]")
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


@dataclass(frozen=True)
class RemoteTerm:
    """One remote field in an ordering, as the listed objects' database sorts by it."""

    #: the local column holding the key
    column: str
    #: ``(local key, (rank by field 1, rank by field 2, ...))`` of the spec's fields
    rows: Sequence[tuple[Any, Sequence[int | None]]]
    #: this field's place in those ranks
    index: int
    #: the ordering term sent to the database (a rank vector's or joined positions')
    order: models.OrderBy

    @cached_property
    def ranked(self) -> Mapping[Any, int]:
        """Local key -> its rank by the field; keys without a value have none (they sort
        last). Built only when a cursor paginator asks."""
        i = self.index
        ranked: dict[Any, int] = {}
        for key, rank in self.rows:
            position = rank[i]
            if position is not None:
                ranked[key] = position
        return ranked

    def read(self, value: Any) -> int | None:
        """The rank a row selected ``order``'s expression as (``None``: it has none)."""
        expression: Any = self.order.expression
        rank: int | None = expression.read(value)
        return rank


@dataclass(frozen=True)
class OrderingPlan:
    """The ordering a :class:`CrossDBOrderingFilter` applied: the request's terms, and
    what the QuerySet is ordered by (:class:`RemoteTerm` for a remote field, otherwise
    the term as ``order_by`` takes it, the view's own ordering last). Left on the view
    for :class:`~crossprefetch.filters.CrossDBCursorPagination`."""

    requested: tuple[str, ...]
    terms: tuple[Any, ...]


class CrossDBOrderingFilter(OrderingFilter):
    """DRF's ``OrderingFilter`` plus ``cross_db_ordering_fields``.

    ``cross_db_ordering_fields = {"customer_name": ("customers", "name")}`` makes
    ``?ordering=customer_name`` and ``?ordering=-customer_name`` valid, mixed freely with
    the local ``ordering_fields``. Objects without a remote row (or whose remote field is
    null) come after the others in both directions; ties keep the view QuerySet's order.
    """

    @property
    def ordering_param(self) -> str:
        """DRF's ``ORDERING_PARAM`` setting, read on each request (``override_settings``
        works); a subclass or an instance may still set its own."""
        own: str | None = self.__dict__.get("_ordering_param")
        return own if own is not None else str(api_settings.ORDERING_PARAM)

    @ordering_param.setter
    def ordering_param(self, value: str) -> None:
        self.__dict__["_ordering_param"] = value

    def get_valid_fields(
        self,
        queryset: models.QuerySet[Any],
        view: Any,
        context: Mapping[str, Any] | None = None,
    ) -> list[tuple[str, str]]:
        """DRF's valid fields, and each remote term labelled with the remote field's
        verbose name (as DRF labels a model field by its own)."""
        context = context or {}
        valid: list[tuple[str, str]] = super().get_valid_fields(queryset, view, context)
        remote = view_ordering_fields(view)
        request = context.get("request")
        labelled = [
            (name, _remote_label(view, name, term, request)) for name, term in remote.items()
        ]
        return [*(item for item in valid if item[0] not in remote), *labelled]

    def remove_invalid_fields(
        self, queryset: models.QuerySet[Any], fields: Iterable[str], view: Any, request: Any
    ) -> list[str]:
        """DRF's: the terms ordered by, without those that are not valid. Under
        ``CROSSPREFETCH["STRICT"]`` an unknown term is a 400 naming the closest valid one,
        where DRF drops it and the client never learns why the order did not change."""
        fields = list(fields)
        kept: list[str] = super().remove_invalid_fields(queryset, fields, view, request)
        unknown = [term for term in fields if term and term not in kept]
        if unknown and conf.STRICT:
            valid = self.get_valid_fields(queryset, view, {"request": request})
            raise unknown_ordering_terms(self.ordering_param, unknown, [n for n, _ in valid])
        return kept

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
        by_rank: dict[tuple[str, str], RemoteTerm] = {}
        declared = f"{view_label(view)}.cross_db_ordering_fields"
        for spec_name, fields in directions.items():
            where = ", ".join(f"{declared}[{name!r}]" for name in names_of[spec_name])
            spec = _spec(view, spec_name, where)
            match = _Match.of(spec, queryset, request, where)
            for name in names_of[spec_name]:
                _ensure_orderable(match, f"{declared}[{name!r}] = {remote[name]!r}", remote[name])
            try:
                table = ranks(
                    match,
                    list(fields),
                    remembered.get(spec_name, ()),
                    names_of[spec_name],
                    request,
                )
            except FieldError as exc:
                raise ImproperlyConfigured(
                    f"{where}: {match.remote.model._meta.label} (the rows of {spec!r}) cannot "
                    f"be ordered by {', '.join(map(repr, fields))} ({exc})."
                ) from exc
            rows = match.local_pairs(table, queryset.db)
            queryset, ordered_by = positions(queryset, match.column, rows, list(fields.values()))
            for i, (field, order) in enumerate(zip(fields, ordered_by, strict=True)):
                by_rank[(spec_name, field)] = RemoteTerm(match.column, rows, i, order)
        terms: list[Any] = []
        for term in ordering:
            name = term.lstrip("-")
            if name not in remote:
                terms.append(term)
            elif remote[name] in by_rank:
                terms.append(by_rank.pop(remote[name]))
        terms += [t for t in own if t not in terms]
        if view is not None:  # what a cursor paginator needs to walk this order
            view._crossprefetch_ordering = OrderingPlan(tuple(ordering), tuple(terms))
        orders = [t.order if isinstance(t, RemoteTerm) else t for t in terms]
        ordered: models.QuerySet[Any] = queryset.order_by(*orders)
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


def _ensure_orderable(match: _Match, where: str, term: tuple[str, str]) -> None:
    """:exc:`ImproperlyConfigured` naming the view and the term when the remote rows have
    no such field (nor annotation): never a bare ``FieldError`` from the ranking query."""
    field = term[1]
    if field.split("__", 1)[0] in match.remote.query.annotations:
        return
    if isinstance(match.spec, CrossDBAggregate):
        if field in match.spec.aggregates:
            return
        names = ", ".join(map(repr, match.spec.aggregates))
        raise ImproperlyConfigured(
            f"{where}: {match.spec!r} computes no aggregate {field!r}."
            + did_you_mean(field, match.spec.aggregates)
            + f" Order by one of {names}."
        )
    try:
        remote_field(match.remote.model, field)
    except FieldDoesNotExist as exc:
        raise unknown_remote_field(where, match.spec, match.remote.model, field, exc) from exc


def _remote_label(view: Any, name: str, term: Any, request: Any) -> str:
    """The verbose name of the remote field a remote ordering term sorts by, or its name
    when the remote model cannot be known here (the system checks say why)."""
    try:
        spec_name, field = term
        spec = _spec(view, spec_name, f"ordering {name!r}")
        source = spec.source
        if callable(source) and not isinstance(source, type | models.QuerySet):
            model = spec.get_queryset(request).model
        else:
            model = spec.get_model()
        return str(remote_field(model, field).verbose_name)
    except (ImproperlyConfigured, FieldDoesNotExist, TypeError, ValueError):
        return name


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
    """The parameter's schema: typed from the remote field, with the longest text a value
    may have (the field's ``max_length``, else ``MAX_FILTER_VALUE_LENGTH``)."""
    if cross_filter.lookup_expr == "isnull":
        return {"type": "boolean"}
    field = _documented_field(view, cross_filter)
    internal = field.get_internal_type() if field is not None else None
    if cross_filter.lookup_expr in _TEXT_LOOKUPS or internal is None:
        schema: dict[str, Any] = {"type": "string"}
    else:
        schema = dict(_OPENAPI_TYPES.get(internal, {"type": "string"}))
    if schema == {"type": "string"} or schema.get("format") == "email":
        bounded = field is not None and internal in _BOUNDED_TEXT
        max_length = field.max_length if bounded and field is not None else None
        cap = conf.MAX_FILTER_VALUE_LENGTH
        schema["maxLength"] = min(max_length, cap) if isinstance(max_length, int) else cap
    if cross_filter.lookup_expr == "in":
        return {"type": "array", "items": schema}
    return schema


def _documented_field(view: Any, cross_filter: CrossDBFilter) -> models.Field[Any, Any] | None:
    """The remote field a filter compares, or ``None`` where it cannot be known here."""
    try:
        spec = _spec(view, cross_filter.spec, repr(cross_filter))
        source = spec.source
        model = (
            spec.get_queryset(getattr(view, "request", None)).model
            if callable(source) and not isinstance(source, type)
            else spec.get_model()
        )
        field = (
            spec.output_field(
                cross_filter.field_name, spec.get_queryset(getattr(view, "request", None))
            )
            if isinstance(spec, CrossDBAggregate) and cross_filter.field_name is not None
            else cross_filter.remote_field(model)
        )
    except Exception:  # documented as a string; the system checks report the cause
        return None
    return None if field is None else normalize.target_field(field)


def _describe_filter(cross_filter: CrossDBFilter) -> str:
    if cross_filter.field_name is None:
        return f"true: only objects without a {cross_filter.spec!r} row; false: only with one."
    what = {
        "exact": "equals this value",
        "iexact": "equals this text, ignoring case",
        "in": "is one of these values, separated by commas",
        "icontains": "contains this text, ignoring case",
        "contains": "contains this text",
        "startswith": "starts with this text",
        "istartswith": "starts with this text, ignoring case",
        "gt": "is greater than this value",
        "gte": "is at least this value",
        "lt": "is less than this value",
        "lte": "is at most this value",
        "isnull": "is null (true) or not (false)",
    }.get(cross_filter.lookup_expr, f"matches ({cross_filter.lookup_expr})")
    field = cross_filter.field_name
    return f"Only objects whose {cross_filter.spec!r} row's {field} {what}."
