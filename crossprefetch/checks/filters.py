"""System checks for the ``cross_db_filters`` and ``cross_db_ordering_fields`` of views.

Each misdeclaration found here would otherwise surface as a 500 on the first request that
uses the parameter. Ids are listed in the docs and never reused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.core import checks
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import models
from rest_framework.pagination import CursorPagination

from crossprefetch._suggest import closest
from crossprefetch._urls import routed_views
from crossprefetch.aggregate import CrossDBAggregate
from crossprefetch.related import view_relation_spec
from crossprefetch.rest_framework.filters import (
    LOOKUPS,
    CrossDBFilter,
    CrossDBFilterBackend,
    CrossDBOrderingFilter,
    FilterProblem,
    closest_path,
    local_key,
    remote_field,
)
from crossprefetch.rest_framework.pagination import CrossDBCursorPagination
from crossprefetch.spec import CrossDBPrefetch


def check_filters(
    app_configs: Iterable[Any] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Check the filters and remote orderings of the views routed by ``ROOT_URLCONF``, and
    the ``CrossDBFilterSetFilter`` members of their FilterSets."""
    errors: list[checks.CheckMessage] = []
    try:
        views = list(routed_views())
    except Exception:  # a broken URLconf is reported by Django's own checks
        return []
    for view in views:
        if hasattr(view, "cross_db_fields"):
            errors.extend(check_view_filters(view))
        else:
            errors.extend(_check_filterset(view, f"{view.__module__}.{view.__qualname__}"))
    return errors


def check_view_filters(view: type) -> list[checks.CheckMessage]:
    """All filter and ordering checks for one view class."""
    label = f"{view.__module__}.{view.__qualname__}"
    errors = _check_filterset(view, label)
    filters = getattr(view, "cross_db_filters", None)
    orderings = getattr(view, "cross_db_ordering_fields", None)
    backends = list(getattr(view, "filter_backends", None) or ())
    if filters is not None:
        if not isinstance(filters, Mapping):
            errors.append(
                _error(
                    view,
                    "E401",
                    f"{label}.cross_db_filters is a {type(filters).__name__}, not a dict.",
                    "Declare cross_db_filters = {'param': CrossDBFilter('lookup', 'field')}.",
                )
            )
        else:
            if filters and not _has(backends, CrossDBFilterBackend):
                errors.append(_missing_backend(view, label, "cross_db_filters", "W401"))
            for name, cross_filter in filters.items():
                errors.extend(_check_filter(view, label, name, cross_filter))
    if orderings is not None:
        if not isinstance(orderings, Mapping):
            errors.append(
                _error(
                    view,
                    "E401",
                    f"{label}.cross_db_ordering_fields is a {type(orderings).__name__}, "
                    "not a dict.",
                    "Declare cross_db_ordering_fields = {'param': ('lookup', 'field')}.",
                )
            )
        else:
            if orderings and not _has(backends, CrossDBOrderingFilter):
                errors.append(_missing_backend(view, label, "cross_db_ordering_fields", "W402"))
            local = getattr(view, "ordering_fields", None)
            for name, target in orderings.items():
                errors.extend(_check_ordering(view, label, name, target, local))
            if orderings:
                errors.extend(_check_pagination(view, label))
    return errors


def _check_pagination(view: type, label: str) -> list[checks.CheckMessage]:
    """DRF's ``CursorPagination`` encodes one column's value and an offset: it cannot walk
    an ordering by remote rows (a 500 on the first ``?ordering=`` of a remote term)."""
    paginator = getattr(view, "pagination_class", None)
    if not (
        isinstance(paginator, type)
        and issubclass(paginator, CursorPagination)
        and not issubclass(paginator, CrossDBCursorPagination)
    ):
        return []
    return [
        _error(
            view,
            "E407",
            f"{label} orders by remote rows (cross_db_ordering_fields) and paginates with "
            f"{paginator.__module__}.{paginator.__qualname__}, a CursorPagination, whose "
            "cursor holds one column's value: a remote ordering is no column.",
            "Paginate with crossprefetch.filters.CrossDBCursorPagination (a CursorPagination "
            "that walks remote orderings too), or use page-number pagination.",
        )
    ]


def _has(backends: list[Any], backend: type) -> bool:
    return any(isinstance(b, type) and issubclass(b, backend) for b in backends)


def _missing_backend(view: type, label: str, attribute: str, code: str) -> checks.Warning:
    backend = "CrossDBFilterBackend" if code == "W401" else "CrossDBOrderingFilter"
    return checks.Warning(
        f"{label} declares {attribute} but its filter_backends lack {backend}, so the "
        "parameters are ignored.",
        hint=f"Add crossprefetch.filters.{backend} to the view's filter_backends.",
        obj=view,
        id=f"crossprefetch.{code}",
    )


def _check_filter(
    view: type, label: str, name: Any, cross_filter: Any
) -> list[checks.CheckMessage]:
    where = f"{label}.cross_db_filters[{name!r}]"
    if not isinstance(cross_filter, CrossDBFilter):
        return [
            _error(
                view,
                "E401",
                f"{where} is {cross_filter!r}, not a CrossDBFilter.",
                "Wrap it: CrossDBFilter('spec', 'field_name', lookup_expr='exact').",
            )
        ]
    errors: list[checks.CheckMessage] = []
    if cross_filter.problem is not None:
        errors.append(_invalid(view, f"{where} = {cross_filter!r}", cross_filter.problem))
        if not cross_filter.spec:
            return errors
    spec, spec_errors = _spec(view, where, cross_filter.spec)
    errors += spec_errors
    if spec is None:
        return errors
    return errors + _check_remote(view, where, spec, cross_filter)


def _check_remote(
    view: type, where: str, spec: CrossDBPrefetch, cross_filter: CrossDBFilter
) -> list[checks.CheckMessage]:
    """The remote field and lookup of a filter whose spec is known, and the spec's key."""
    errors: list[checks.CheckMessage] = []
    model = _remote_model(spec)
    field_name, lookup_expr = cross_filter.field_name, cross_filter.lookup_expr
    grouped = isinstance(spec, CrossDBAggregate)  # its names: crossprefetch.E603/E604
    valid_lookup = lookup_expr in LOOKUPS
    if model is not None and field_name and not grouped:
        try:
            field = remote_field(model, field_name)
        except FieldDoesNotExist as exc:
            errors.append(_unknown_field(view, where, model, field_name, exc))
        else:
            if valid_lookup and lookup_expr != "isnull" and field.get_lookup(lookup_expr) is None:
                errors.append(
                    _error(
                        view,
                        "E404",
                        f"{where}: {model._meta.label}.{field_name} "
                        f"({field.get_internal_type()}) does not support the lookup "
                        f"{lookup_expr!r}.",
                        "Choose a lookup the field supports, e.g. 'exact' or 'in'.",
                    )
                )
    errors.extend(_check_key(view, where, spec, model))
    return errors


def _check_ordering(
    view: type, label: str, name: Any, target: Any, local: Any
) -> list[checks.CheckMessage]:
    where = f"{label}.cross_db_ordering_fields[{name!r}]"
    if not (
        isinstance(target, tuple)
        and len(target) == 2
        and all(isinstance(part, str) and part for part in target)
    ):
        return [
            _error(
                view,
                "E401",
                f"{where} is {target!r}, not a (lookup, field) pair.",
                "Give the name of a spec in cross_db_fields and a remote field, e.g. "
                "('customers', 'name').",
            )
        ]
    errors: list[checks.CheckMessage] = []
    if isinstance(local, list | tuple) and name in local:
        errors.append(
            _error(
                view,
                "E406",
                f"{where}: {name!r} is also a local ordering field (ordering_fields).",
                "Rename the remote ordering or remove it from ordering_fields.",
            )
        )
    spec, spec_errors = _spec(view, where, target[0])
    errors += spec_errors
    if spec is None:
        return errors
    model = _remote_model(spec)
    if model is not None and not isinstance(spec, CrossDBAggregate):  # E605 for those
        try:
            remote_field(model, target[1])
        except FieldDoesNotExist as exc:
            errors.append(_unknown_field(view, where, model, target[1], exc))
    errors.extend(_check_key(view, where, spec, model))
    return errors


def _spec(
    view: type, where: str, spec_name: str
) -> tuple[CrossDBPrefetch | None, list[checks.CheckMessage]]:
    specs = getattr(view, "cross_db_fields", None)
    specs = specs if isinstance(specs, Mapping) else {}
    spec = specs.get(spec_name) or view_relation_spec(view, spec_name)
    if isinstance(spec, CrossDBPrefetch):
        return spec, []
    if _overrides_specs(view) and not specs:
        return None, []  # the specs are known per request only
    near = closest(spec_name, map(str, specs))
    return None, [
        _error(
            view,
            "E402",
            f"{where} uses the lookup {spec_name!r}, which the view does not declare in "
            "cross_db_fields.",
            (f"Did you mean {near!r}? " if near else "")
            + f"Use one of: {', '.join(map(repr, specs)) or 'nothing declared'}; or add "
            f"{spec_name!r}: CrossDBPrefetch(...) to cross_db_fields.",
        )
    ]


def _overrides_specs(view: type) -> bool:
    from crossprefetch.rest_framework.mixins import CrossDBPrefetchMixin

    method = getattr(view, "get_cross_db_fields", None)
    return method is not None and method is not CrossDBPrefetchMixin.get_cross_db_fields


def _remote_model(spec: CrossDBPrefetch) -> type[models.Model] | None:
    source = spec.source
    if callable(source) and not isinstance(source, type | models.QuerySet):
        return None  # known per request only
    try:
        return spec.get_model()
    except ImproperlyConfigured:
        return None  # crossprefetch.E003 reports it


def _check_key(
    view: type, where: str, spec: CrossDBPrefetch, model: type[models.Model] | None
) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    if model is not None:
        try:
            if len(spec.get_match_fields(model)) != 1:
                errors.append(
                    _error(
                        view,
                        "E405",
                        f"{where}: {spec!r} has a composite key; filters and remote orderings "
                        "need a key of one field.",
                        "Filter through a spec with a single key field and to_field.",
                    )
                )
                return errors
        except ImproperlyConfigured:
            return errors  # crossprefetch.E005 / E008 report it
    queryset = getattr(view, "queryset", None)
    if not isinstance(queryset, models.QuerySet):
        if callable(spec.key) or isinstance(spec.key, tuple):
            errors.append(_bad_key(view, where, spec, "a callable or composite key"))
        return errors
    try:
        local_key(spec, queryset.model, where)
    except ImproperlyConfigured as exc:
        errors.append(
            _error(
                view,
                "E405",
                str(exc),
                f"Give the spec a key that is one field of {queryset.model._meta.label}.",
            )
        )
    return errors


def _bad_key(view: type, where: str, spec: CrossDBPrefetch, what: str) -> checks.Error:
    return _error(
        view,
        "E405",
        f"{where}: {spec!r} has {what}; filters and remote orderings need the key in one "
        "column of the listed model.",
        "Give the spec a key that names one field of the listed model.",
    )


def _unknown_field(
    view: type, where: str, model: type[models.Model], path: str, exc: Exception
) -> checks.Error:
    names = ", ".join(f.name for f in model._meta.concrete_fields)
    near = closest_path(model, path)
    return _error(
        view,
        "E403",
        f"{where}: {model._meta.label} has no field {path!r} ({exc}).",
        (f"Did you mean {near!r}? " if near else "")
        + f"Name a field of {model._meta.label}: {names}.",
    )


def _invalid(view: type, where: str, problem: FilterProblem) -> checks.Error:
    return _error(view, "E408", f"{where}: {problem.message}", problem.hint)


def _check_filterset(view: type, label: str) -> list[checks.CheckMessage]:
    """The ``CrossDBFilterSetFilter`` members of the view's ``filterset_class``."""
    filterset_class = getattr(view, "filterset_class", None)
    base_filters = getattr(filterset_class, "base_filters", None)
    if not isinstance(base_filters, Mapping):
        return []
    errors: list[checks.CheckMessage] = []
    for name, member in base_filters.items():
        cross_filter = getattr(member, "cross_db_filter", None)
        if not isinstance(cross_filter, CrossDBFilter):
            continue  # django-filter's own filters: its checks, not ours
        where = f"{label}.filterset_class.base_filters[{name!r}] = {member!r}"
        problem = getattr(member, "problem", None)
        if isinstance(problem, FilterProblem):
            errors.append(_invalid(view, where, problem))
            continue
        given = getattr(member, "spec", None)
        if isinstance(given, CrossDBPrefetch):
            spec: CrossDBPrefetch | None = given
        elif not hasattr(view, "cross_db_fields"):
            errors.append(_no_specs(view, where, cross_filter.spec))
            continue
        else:
            spec, spec_errors = _spec(view, where, cross_filter.spec)
            errors += spec_errors
        if spec is not None:
            errors += _check_remote(view, where, spec, cross_filter)
    return errors


def _no_specs(view: type, where: str, spec_name: str) -> checks.Error:
    return _error(
        view,
        "E402",
        f"{where} uses the lookup {spec_name!r}, but the view declares no cross_db_fields "
        "(it is no CrossDBPrefetchMixin view), so no request can filter with it.",
        "Pass the CrossDBPrefetch itself: CrossDBFilterSetFilter(CrossDBPrefetch(...), "
        f"...); or add CrossDBPrefetchMixin and {spec_name!r} to cross_db_fields.",
    )


def _error(view: type, code: str, message: str, hint: str) -> checks.Error:
    return checks.Error(message, hint=hint, obj=view, id=f"crossprefetch.{code}")
