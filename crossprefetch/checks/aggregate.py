"""System checks for :class:`~crossprefetch.CrossDBAggregate` specs and what reads them.

An aggregate that names a field its source lacks, or that the spec's database cannot
compute, and a filter or ordering naming an aggregate the spec does not compute, would each
be a 500 on the first request that needs it. Ids are listed in the docs and never reused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import NotSupportedError, connections, models
from django.db.backends.base.base import BaseDatabaseWrapper

from crossprefetch import _compat
from crossprefetch._aggregates import LOOKUPS
from crossprefetch._urls import declaring_views
from crossprefetch.aggregate import CrossDBAggregate


def check_aggregates(
    app_configs: Iterable[Any] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Check the aggregate specs of the views routed by ``ROOT_URLCONF``."""
    try:
        views = list(declaring_views())
    except Exception:  # a broken URLconf is reported by Django's own checks
        return []
    errors: list[checks.CheckMessage] = []
    for view in views:
        errors.extend(check_view_aggregates(view))
    return errors


def check_view_aggregates(view: type) -> list[checks.CheckMessage]:
    """The aggregate checks of one view class: its specs, and its filters and orderings
    on them."""
    label = f"{view.__module__}.{view.__qualname__}"
    specs = _mapping(getattr(view, "cross_db_fields", None))
    grouped = {name: spec for name, spec in specs.items() if isinstance(spec, CrossDBAggregate)}
    if not grouped:
        return []
    errors: list[checks.CheckMessage] = []
    for name, each in grouped.items():
        errors.extend(_check_spec(view, f"{label}.cross_db_fields[{name!r}]", each))
    for name, cross_filter in _mapping(getattr(view, "cross_db_filters", None)).items():
        spec: CrossDBAggregate | None = grouped.get(getattr(cross_filter, "spec", ""))
        field = getattr(cross_filter, "field_name", None)
        if spec is None or field is None or getattr(cross_filter, "problem", None):
            continue  # not on an aggregate spec, on the rows' existence, or crossprefetch.E408
        where = f"{label}.cross_db_filters[{name!r}]"
        if field not in spec.aggregates:
            errors.append(_unknown(view, "E603", where, spec, field))
        elif cross_filter.lookup_expr not in LOOKUPS:
            errors.append(
                _error(
                    view,
                    "E604",
                    f"{where}: the lookup {cross_filter.lookup_expr!r} does not apply to the "
                    f"aggregate {field!r} of {spec!r}.",
                    f"Use one of: {', '.join(LOOKUPS)}.",
                )
            )
    orderings = _mapping(getattr(view, "cross_db_ordering_fields", None))
    for name, target in orderings.items():
        if not (isinstance(target, tuple) and len(target) == 2):
            continue  # crossprefetch.E401
        on = grouped.get(target[0])
        if on is not None and target[1] not in on.aggregates:
            where = f"{label}.cross_db_ordering_fields[{name!r}]"
            errors.append(_unknown(view, "E605", where, on, target[1]))
    return errors


def _check_spec(view: type, where: str, spec: CrossDBAggregate) -> list[checks.CheckMessage]:
    source = spec.source
    if callable(source) and not isinstance(source, type | models.QuerySet):
        return []  # the rows are known per request only
    try:
        queryset = spec.get_queryset(None)
    except ImproperlyConfigured as exc:
        if isinstance(source, str):  # a class or QuerySet source fails at construction
            try:
                spec.get_model()
            except ImproperlyConfigured:
                return []  # crossprefetch.E003
        return [
            _error(
                view,
                "E601",
                f"{where}: {exc}",
                "Aggregate fields of the source model (Count('id'), Sum('amount'), ...), "
                "named otherwise than its fields.",
            )
        ]
    connection = connections[queryset.db]
    for name in spec.aggregates:
        try:
            _check_support(_compat.annotation(queryset, name), connection)
        except NotSupportedError as exc:
            return [
                _error(
                    view,
                    "E602",
                    f"{where}: database {queryset.db!r} ({connection.vendor}) cannot compute "
                    f"the aggregate {name!r} of {spec!r}: {exc}",
                    "Use an aggregate this database supports (Count, Sum, Avg, Min, Max of "
                    "numbers; Min or Max of dates), or read the rows from a database that does.",
                )
            ]
    return []


def _check_support(expression: Any, connection: BaseDatabaseWrapper) -> None:
    """Raise ``NotSupportedError`` for what the backend refuses, without connecting: the
    backend's own rules, and PostgreSQL's aggregates on any other database."""
    module = type(expression).__module__
    if module.startswith("django.contrib.postgres") and connection.vendor != "postgresql":
        raise NotSupportedError(f"{type(expression).__name__} is PostgreSQL's own.")
    connection.ops.check_expression_support(expression)
    for source in expression.get_source_expressions():
        if source is not None:
            _check_support(source, connection)


def _unknown(view: type, code: str, where: str, spec: CrossDBAggregate, name: str) -> checks.Error:
    return _error(
        view,
        code,
        f"{where}: {spec!r} computes no aggregate {name!r}.",
        f"Name one of its aggregates: {', '.join(map(repr, spec.aggregates))}.",
    )


def _mapping(value: Any) -> Mapping[Any, Any]:
    return value if isinstance(value, Mapping) else {}


def _error(view: type, code: str, message: str, hint: str) -> checks.Error:
    return checks.Error(message, hint=hint, obj=view, id=f"crossprefetch.{code}")
