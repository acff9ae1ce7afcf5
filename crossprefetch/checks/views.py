"""System checks for the ``cross_db_fields`` of every view found through the URLconf.

Each id is listed in the docs and never reused.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import models

from crossprefetch import _compat
from crossprefetch._suggest import closest
from crossprefetch._urls import declaring_views
from crossprefetch.aggregate import CrossDBAggregate
from crossprefetch.checks.cache import check_spec_cache
from crossprefetch.spec import CrossDBPrefetch, KeyArityError, model_labels

_CONTEXT_KEYS = frozenset({"request", "format", "view"})


def check_views(
    app_configs: Iterable[Any] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Check the ``cross_db_fields`` of the views routed by ``ROOT_URLCONF``."""
    errors: list[checks.CheckMessage] = []
    for view in _views():
        errors.extend(check_view(view))
    return errors


def check_view(view: type) -> list[checks.CheckMessage]:
    """All checks for one view class (usable from tests and for views outside the URLconf)."""
    from crossprefetch.rest_framework.mixins import CrossDBPrefetchMixin
    from crossprefetch.views import CrossDBPrefetchViewMixin

    label = f"{view.__module__}.{view.__qualname__}"
    specs = getattr(view, "cross_db_fields", None)
    if not issubclass(view, CrossDBPrefetchMixin | CrossDBPrefetchViewMixin):
        # Once the warning W001: always a silent bug (every field renders its default).
        return [
            _error(
                view,
                "E013",
                f"{label} declares cross_db_fields but does not inherit CrossDBPrefetchMixin, "
                "so its lookups are never built and every ContextLookupField renders its "
                "default.",
                "Add CrossDBPrefetchMixin first among the view's bases.",
            )
        ]
    if not isinstance(specs, Mapping):
        return [
            checks.Error(
                f"{label}.cross_db_fields is a {type(specs).__name__}, not a dict.",
                hint="Declare cross_db_fields = {'name': CrossDBPrefetch('app.Model', key='...')}.",
                obj=view,
                id="crossprefetch.E001",
            )
        ]
    errors: list[checks.CheckMessage] = []
    for name, spec in specs.items():
        errors.extend(_check_spec(view, label, name, spec))
        if isinstance(spec, CrossDBPrefetch):
            errors.extend(check_spec_cache(label, name, spec))
    if view.get_cross_db_fields is CrossDBPrefetchMixin.get_cross_db_fields:
        errors.extend(_check_serializer(view, label, specs))
    return errors


def _views() -> Iterator[type]:
    """View classes with ``cross_db_fields`` reachable from the root URLconf, once each."""
    try:
        yield from declaring_views()
    except Exception:  # a broken URLconf is reported by Django's own checks
        return


def _check_spec(view: type, label: str, name: Any, spec: Any) -> list[checks.CheckMessage]:
    where = f"{label}.cross_db_fields[{name!r}]"
    if not isinstance(spec, CrossDBPrefetch):
        return [
            _error(
                view,
                "E002",
                f"{where} is {spec!r}, not a CrossDBPrefetch.",
                "Wrap it: CrossDBPrefetch('app_label.Model', key='...').",
            )
        ]
    errors: list[checks.CheckMessage] = []
    if name in _CONTEXT_KEYS:
        errors.append(
            _error(
                view,
                "E010",
                f"{where}: the name {name!r} would replace DRF's own context entry.",
                "Rename the lookup (and the ContextLookupField reading it).",
            )
        )
    if spec.using is not None and spec.using not in settings.DATABASES:
        errors.append(
            _error(
                view,
                "E004",
                f"{where}: database alias {spec.using!r} is not in DATABASES.",
                f"Use one of: {', '.join(settings.DATABASES)}.",
            )
        )
    if callable(spec.source) and not isinstance(spec.source, type | models.QuerySet):
        return errors  # the model is known only per request
    try:
        model = spec.get_model()
    except ImproperlyConfigured as exc:
        return [
            *errors,
            _error(
                view,
                "E003",
                f"{where}: {exc}",
                _model_hint(spec.source),
            ),
        ]
    match_fields: tuple[models.Field[Any, Any], ...] = ()
    try:
        match_fields = spec.get_match_fields(model)
    except KeyArityError as exc:
        errors.append(
            _error(
                view,
                "E008",
                f"{where}: {exc}",
                "Make key a tuple with one attribute path per matched field.",
            )
        )
    except ImproperlyConfigured as exc:
        errors.append(
            _error(
                view,
                "E005",
                f"{where}: {exc}",
                "Name a concrete field of the remote model in to_field.",
            )
        )
    grouped = isinstance(spec, CrossDBAggregate)  # its aggregates: checks/aggregate.py
    try:
        if not grouped:
            spec.check_fields(model)
    except ImproperlyConfigured as exc:
        errors.append(
            _error(
                view,
                "E006",
                f"{where}: {exc}",
                "List existing fields of the remote model in fields.",
            )
        )
    errors.extend(_check_key(view, where, spec))
    if match_fields and not spec.many and not grouped and not _unique(match_fields, model):
        errors.append(
            checks.Warning(
                f"{where}: {model._meta.label}.{'/'.join(f.name for f in match_fields)} is not "
                "unique, so only the first matching row of each key is used.",
                hint="Pass many=True to get every matching row, or match a unique field.",
                obj=view,
                id="crossprefetch.W002",
            )
        )
    return errors


def _model_hint(source: Any) -> str:
    near = closest(source, model_labels()) if isinstance(source, str) else None
    if near is not None:
        return f"Did you mean {near!r}? Give an installed model as 'app_label.ModelName'."
    return "Give an installed model as 'app_label.ModelName' or a class."


def _check_key(view: type, where: str, spec: CrossDBPrefetch) -> list[checks.CheckMessage]:
    queryset = getattr(view, "queryset", None)
    if callable(spec.key) or not isinstance(queryset, models.QuerySet):
        return []
    model = queryset.model
    known = {f.name for f in model._meta.get_fields()}
    known |= {getattr(f, "attname", f.name) for f in model._meta.concrete_fields}
    known |= set(queryset.query.annotations) | {"pk"}
    errors: list[checks.CheckMessage] = []
    for path in (spec.key,) if isinstance(spec.key, str) else spec.key:
        head = path.split(".", 1)[0]
        if head not in known and not hasattr(model, head):
            errors.append(
                _error(
                    view,
                    "E007",
                    f"{where}: key {path!r} is not an attribute of {model._meta.label}, the model "
                    "the view serializes.",
                    f"Use a field of {model._meta.label} ({', '.join(sorted(known))}), an "
                    "annotation of the view's queryset, or a callable key.",
                )
            )
    return errors


def _unique(fields: tuple[models.Field[Any, Any], ...], model: type[models.Model]) -> bool:
    from crossprefetch._keys.normalize import is_unique

    return is_unique(fields, model)


def _check_serializer(
    view: type, label: str, specs: Mapping[Any, Any]
) -> list[checks.CheckMessage]:
    from rest_framework.generics import GenericAPIView

    serializer_class = getattr(view, "serializer_class", None)
    if serializer_class is None or (
        issubclass(view, GenericAPIView)
        and view.get_serializer_class is not GenericAPIView.get_serializer_class
    ):
        return []
    errors: list[checks.CheckMessage] = []
    for path, field in _lookup_fields(serializer_class):
        where = f"{path} (ContextLookupField {field.lookup_name!r}) used by {label}"
        spec = specs.get(field.lookup_name)
        if not isinstance(spec, CrossDBPrefetch):
            errors.append(
                _error(
                    view,
                    "E009",
                    f"{where}: the view declares no lookup {field.lookup_name!r}.",
                    _lookup_hint(field.lookup_name, specs),
                )
            )
            continue
        if field.nested is not None or spec.fields is None:
            if field.attr is None and field.nested is None:
                errors.append(
                    _error(
                        view,
                        "E012",
                        f"{where}: renders whole model instances.",
                        "Give the field an attr or serializer=, or give the spec fields=.",
                    )
                )
            continue
        if field.attr is not None and field.attr.split(".", 1)[0] not in spec.fields:
            errors.append(
                _error(
                    view,
                    "E011",
                    f"{where}: reads {field.attr!r}, which the spec does not select "
                    f"(fields={spec.fields!r}).",
                    spec.attr_hint(field.attr, _model_or_none(spec)),
                )
            )
    return errors


def _lookup_hint(name: str, specs: Mapping[Any, Any]) -> str:
    declared = ", ".join(map(repr, specs)) or "nothing"
    near = closest(name, [str(key) for key in specs])
    if near is not None:
        return (
            f"Did you mean {near!r}? Read a lookup of cross_db_fields (it has: {declared}), "
            f"or add {name!r}: CrossDBPrefetch(...) to it."
        )
    return f"Add {name!r}: CrossDBPrefetch(...) to cross_db_fields (it has: {declared})."


def _model_or_none(spec: CrossDBPrefetch) -> type[models.Model] | None:
    if callable(spec.source) and not isinstance(spec.source, type | models.QuerySet):
        return None
    try:
        return spec.get_model()
    except ImproperlyConfigured:
        return None


def _lookup_fields(serializer_class: type, prefix: str = "") -> Iterator[tuple[str, Any]]:
    from rest_framework import serializers

    from crossprefetch.rest_framework.fields import ContextLookupField

    name = prefix or serializer_class.__name__
    for field_name, field in _compat.declared_fields(serializer_class).items():
        if isinstance(field, ContextLookupField):
            yield f"{name}.{field_name}", field
        elif isinstance(field, serializers.ListSerializer):
            yield from _lookup_fields(type(field.child), f"{name}.{field_name}")
        elif isinstance(field, serializers.BaseSerializer):
            yield from _lookup_fields(type(field), f"{name}.{field_name}")


def _error(view: type, code: str, message: str, hint: str) -> checks.Error:
    return checks.Error(message, hint=hint, obj=view, id=f"crossprefetch.{code}")
