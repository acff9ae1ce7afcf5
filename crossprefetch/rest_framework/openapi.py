"""drf-spectacular support: :class:`~crossprefetch.ContextLookupField` typed in OpenAPI schemas.

Importing this module registers the extension; :mod:`crossprefetch.apps` does so when
drf-spectacular is importable. The field does not know its lookup's spec, the view does:
the type is read from the field's ``output_field`` or ``serializer`` when it has one, else
from the remote model field that the view's ``cross_db_fields`` spec and ``attr`` name.
Whether the value may be ``null`` is the field's ``allow_null``, which is on when the
field's ``default`` is ``None`` or unset.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from drf_spectacular.drainage import warn
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import (
    build_array_type,
    build_basic_type,
    build_object_type,
    follow_field_source,
)
from drf_spectacular.types import OpenApiTypes
from rest_framework import serializers

from crossprefetch import _compat
from crossprefetch.aggregate import CrossDBAggregate
from crossprefetch.rest_framework.fields import ContextLookupField
from crossprefetch.spec import CrossDBPrefetch

if TYPE_CHECKING:
    from drf_spectacular.openapi import AutoSchema
    from drf_spectacular.utils import Direction

__all__ = ["ContextLookupFieldExtension"]

Schema = dict[str, Any]

_UNRESOLVED = object()


class _Unknown(Exception):
    """The type cannot be derived; the message says why."""


class ContextLookupFieldExtension(OpenApiSerializerFieldExtension):
    """Type a ``ContextLookupField`` (read-only) from what renders it, or from the remote model.

    In order: ``output_field`` is mapped like any DRF field; ``serializer`` becomes a
    reference to its component; ``attr`` is followed on the spec's model (``"name"``,
    ``"region__name"``, ``"region.name"``, a property with a return type hint) and mapped
    like the model field; ``attr=None`` on a projected spec becomes an object with one
    property per projected field. A ``many=True`` spec makes any of these an array. What
    cannot be derived (a JSON sub-key, an undeclared lookup, a callable source that fails
    on the schema generator's mock request) becomes an untyped value, with a warning that
    names the field and suggests ``output_field=``.
    """

    target_class = ContextLookupField
    match_subclasses = True

    def map_serializer_field(self, auto_schema: AutoSchema, direction: Direction) -> Schema:
        field: ContextLookupField = self.target
        spec = _find_spec(auto_schema, field.lookup_name)
        try:
            schema = self._value_schema(auto_schema, direction, field, spec)
        except _Unknown as exc:
            warn(
                f'could not derive the type of ContextLookupField "{field.field_name}" '
                f"(lookup {field.lookup_name!r}, attr {field.attr!r}): {exc}. Give the field "
                "output_field=... (e.g. serializers.CharField()) or serializer=... to type "
                "it. Defaulting to any."
            )
            schema = _any()
        if spec is not None and spec.many:
            schema = build_array_type(_item(schema))
        return schema

    def _value_schema(
        self,
        auto_schema: AutoSchema,
        direction: Direction,
        field: ContextLookupField,
        spec: CrossDBPrefetch | None,
    ) -> Schema:
        """The schema of one rendered row (the item type when the spec is to-many)."""
        if field.output_field is not None:
            return _map_field(auto_schema, field.output_field, direction)
        if field.nested is not None:
            return _map_field(auto_schema, field.nested, direction)
        if spec is None:
            raise _Unknown(
                f"the view declares no lookup {field.lookup_name!r} in its cross_db_fields"
            )
        model = _remote_model(auto_schema, spec)
        if isinstance(spec, CrossDBAggregate):
            return _map_aggregates(auto_schema, spec, field.attr, direction)
        if field.attr is not None:
            return _map_path(auto_schema, model, field.attr, direction)
        if spec.fields is None:
            raise _Unknown(f"{spec!r} yields model instances and the field has no serializer")
        properties = {
            name: _item(_map_path(auto_schema, model, name, direction)) for name in spec.fields
        }
        return build_object_type(properties=properties, required=list(spec.fields))


def _find_spec(auto_schema: AutoSchema, name: str) -> CrossDBPrefetch | None:
    """The spec the view declares under ``name``, per request if the view can tell."""
    view = getattr(auto_schema, "view", None)
    specs: object = None
    get_specs = getattr(view, "get_cross_db_fields", None)
    if callable(get_specs):
        try:  # the view holds drf-spectacular's mock request, which may not be enough
            specs = get_specs()
        except Exception:
            specs = None
    if not isinstance(specs, Mapping):
        specs = getattr(view, "cross_db_fields", None)
    if not isinstance(specs, Mapping):
        return None
    spec = specs.get(name)
    return spec if isinstance(spec, CrossDBPrefetch) else None


def _remote_model(auto_schema: AutoSchema, spec: CrossDBPrefetch) -> type[models.Model]:
    source = spec.source
    if callable(source) and not isinstance(source, type):
        request = getattr(getattr(auto_schema, "view", None), "request", None)
        try:  # QuerySets are lazy: building one for the mock request runs no query
            return spec.get_queryset(request).model
        except Exception as exc:
            raise _Unknown(
                f"the source of {spec!r} failed on the schema generator's mock request "
                f"({type(exc).__name__}: {exc})"
            ) from exc
    try:
        return spec.get_model()
    except Exception as exc:
        raise _Unknown(str(exc)) from exc


def _map_aggregates(
    auto_schema: AutoSchema, spec: CrossDBAggregate, attr: str | None, direction: Direction
) -> Schema:
    """The aggregate ``attr`` typed by what it yields (an integer for a count, the source
    field's type for a sum, minimum or maximum); ``attr=None``: an object of them all."""
    request = getattr(getattr(auto_schema, "view", None), "request", None)
    try:  # lazy: building the grouped QuerySet runs no query
        queryset = spec.get_queryset(request)
    except Exception as exc:
        raise _Unknown(f"{spec!r} cannot build its QuerySet ({type(exc).__name__}: {exc})") from exc

    def one(name: str) -> Schema:
        if name not in spec.aggregates:
            raise _Unknown(f"{spec!r} computes no aggregate {name!r}")
        return _map_field(
            auto_schema, _serializer_field(spec.output_field(name, queryset)), direction
        )

    if attr is not None:
        if "." in attr:
            raise _Unknown(f"{attr!r} reads inside an aggregate's value, which has no schema")
        return one(attr)
    properties = {name: _item(one(name)) for name in spec.aggregates}
    return build_object_type(properties=properties, required=list(spec.aggregates))


def _serializer_field(field: models.Field[Any, Any]) -> serializers.Field:  # type: ignore[type-arg]
    """The DRF field a ``ModelSerializer`` would render a value of ``field`` with."""
    mapping = serializers.ModelSerializer.serializer_field_mapping
    for cls in type(field).__mro__:
        if cls in mapping:
            field_class = mapping[cls]
            break
    else:
        raise _Unknown(f"no DRF field renders a {type(field).__name__}")
    kwargs: dict[str, Any] = {"read_only": True}
    if isinstance(field, models.DecimalField):
        kwargs.update(max_digits=field.max_digits, decimal_places=field.decimal_places)
    return field_class(**kwargs)


def _map_path(
    auto_schema: AutoSchema, model: type[models.Model], attr: str, direction: Direction
) -> Schema:
    """Map the value at ``attr`` of a row of ``model``.

    A projected field may span relations (``"region__name"``); an attribute path may go on
    with dots (``"region.name"``); both end on a model field or a type-hinted property.
    """
    head, _, rest = attr.partition(".")
    path = head.split("__") + (rest.split(".") if rest else [])
    current = model
    for index, part in enumerate(path):
        meta = current._meta
        if part == "pk" and meta.pk is not None:
            part = meta.pk.name
        try:
            model_field = meta.get_field(part)
        except FieldDoesNotExist:
            target = follow_field_source(
                current, path[index:], default=_UNRESOLVED, emit_warnings=False
            )
            if target is _UNRESOLVED or not callable(target):
                raise _Unknown(f"{meta.label} has no field {part!r}") from None
            schema: Schema = _compat.map_type_hint(auto_schema, target)
            return schema
        if not isinstance(model_field, models.Field):
            raise _Unknown(f"{meta.label}.{part} is a reverse relation, not a column")
        if index == len(path) - 1:
            mapped: Schema = _compat.map_model_field(auto_schema, model_field, direction)
            return mapped
        related = model_field.related_model
        if not isinstance(related, type):
            raise _Unknown(
                f"{'.'.join(path[index + 1 :])!r} is inside {meta.label}.{part}, whose "
                "content has no schema"
            )
        current = related
    raise _Unknown("empty attribute path")  # pragma: no cover (attr is never empty)


def _map_field(auto_schema: AutoSchema, field: Any, direction: Direction) -> Schema:
    schema: Schema | None = _compat.map_serializer_field(auto_schema, field, direction)
    return schema if schema is not None else _any()


def _item(schema: Schema) -> Schema:
    """A schema nested in an array or object: access modifiers belong to the outer field."""
    return {k: v for k, v in schema.items() if k not in ("readOnly", "writeOnly")}


def _any() -> Schema:
    schema = build_basic_type(OpenApiTypes.ANY)
    return schema if schema is not None else {}
