"""``ContextLookupField``: a read-only DRF field reading a prefetched row from the context."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from rest_framework import serializers
from rest_framework.fields import empty

from crossprefetch import _compat
from crossprefetch._observe import activity
from crossprefetch.conf import conf
from crossprefetch.lookup import MISSING, NOT_PREFETCHED, Lookup

#: Context key of the resolver that builds lookups on first use (create/update responses).
DEFERRED_CONTEXT_KEY = "_crossprefetch_deferred"

_RESERVED = ("source", "read_only", "write_only", "required")


class ContextLookupField(serializers.Field):  # type: ignore[type-arg]
    """Render a value of the row that the object references through a cross-DB lookup.

    ``lookup`` names a lookup of the serializer context (a key of the view's
    ``cross_db_fields``); ``attr`` is a key of the row (dotted paths allowed), or ``None``
    for the whole row. A missing row (null key, dangling reference) renders
    ``fallback(obj)`` if given, else ``default``, else ``None``. ``serializer`` renders the
    row (or rows, for ``many=True`` specs) nested; ``output_field`` renders the value with
    another DRF field (and types it in OpenAPI schemas).
    """

    def __init__(
        self,
        lookup: str,
        attr: str | None = None,
        *,
        default: Any = empty,
        fallback: Callable[[Any], Any] | None = None,
        serializer: type[serializers.BaseSerializer[Any]]
        | serializers.BaseSerializer[Any]
        | None = None,
        output_field: serializers.Field[Any, Any, Any, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(lookup, str) or not lookup:
            raise TypeError(f"ContextLookupField({lookup!r}): lookup must name a lookup.")
        if attr is not None and (not isinstance(attr, str) or not all(attr.split("."))):
            raise TypeError(f"ContextLookupField({lookup!r}, {attr!r}): attr must be a key path.")
        if fallback is not None and not callable(fallback):
            raise TypeError(f"ContextLookupField({lookup!r}): fallback must be callable(obj).")
        if serializer is not None and output_field is not None:
            raise TypeError(
                f"ContextLookupField({lookup!r}): give serializer= or output_field=, not both."
            )
        for name in _RESERVED:
            if name in kwargs:
                raise TypeError(
                    f"ContextLookupField({lookup!r}) does not take {name}=: it is read-only "
                    "and reads the key through the view's CrossDBPrefetch(key=...)."
                )
        if isinstance(serializer, type):
            serializer = serializer()
        if serializer is not None and not isinstance(serializer, serializers.BaseSerializer):
            raise TypeError(
                f"ContextLookupField({lookup!r}, serializer={serializer!r}): serializer must "
                "be a Serializer class or instance."
            )
        if output_field is not None and not isinstance(output_field, serializers.Field):
            raise TypeError(
                f"ContextLookupField({lookup!r}, output_field={output_field!r}): output_field "
                "must be a DRF field instance, e.g. serializers.DecimalField(...)."
            )
        kwargs["allow_null"] = kwargs.get("allow_null", default is empty or default is None)
        super().__init__(source="*", read_only=True, **kwargs)
        self.lookup_name = lookup
        self.attr = attr
        self.missing_value = None if default is empty else default
        self.has_default_value = default is not empty
        self.fallback = fallback
        self.nested = serializer
        self.output_field = output_field
        self._root: Any = None
        self._lookup: Lookup | None = None
        self._render: Callable[[Any], Any] = _identity

    def bind(self, field_name: str, parent: Any) -> None:
        super().bind(field_name, parent)
        if self.nested is not None:
            self.nested.bind(field_name, self)  # type: ignore[arg-type]
        if self.output_field is not None:
            self.output_field.bind(field_name, self)  # type: ignore[arg-type]

    def to_representation(self, value: Any) -> Any:
        return value  # rendered in get_attribute, where the object is at hand

    def get_attribute(self, instance: Any) -> Any:
        lookup = self._get_lookup()
        if lookup is None:
            return self._missing(instance)
        row = lookup.get_for(instance)
        if row is MISSING:
            lookup.stats.fallbacks += 1
            return self._missing(instance)
        if row is NOT_PREFETCHED:
            row = self._not_prefetched(lookup, instance)
            if row is MISSING:
                lookup.stats.fallbacks += 1
                return self._missing(instance)
        return self._render(row)

    # -- resolution ---------------------------------------------------------------------

    def _missing(self, instance: Any) -> Any:
        if self.fallback is not None:
            with activity.rendering(self, instance):  # who sent its queries, for capture
                return self.fallback(instance)
        return self.missing_value

    def _get_lookup(self) -> Lookup | None:
        root = self._root
        if root is None:
            root = self._root = self.root
        context = _compat.serializer_context(root)
        lookup = context.get(self.lookup_name)
        cached = self._lookup
        if cached is not None and lookup is cached:
            return cached  # the same lookup as for the previous row
        deferred = None
        if lookup is None:
            deferred = context.get(DEFERRED_CONTEXT_KEY)
            if deferred is not None and deferred.resolve(root):
                lookup = context.get(self.lookup_name)
        if lookup is None:
            if conf.STRICT:
                raise ImproperlyConfigured(
                    self._unsaved_message()
                    if deferred is not None
                    else self._undeclared_message(context)
                )
            return None
        if not isinstance(lookup, Lookup):
            raise ImproperlyConfigured(
                f"{self._where}: context[{self.lookup_name!r}] is a "
                f"{type(lookup).__name__}, not a crossprefetch Lookup. Build it with "
                "prefetch_cross_db() or declare it in the view's cross_db_fields."
            )
        self._render = self._renderer(lookup)
        self._lookup = lookup
        return lookup

    @property
    def _where(self) -> str:
        parent = type(self.parent).__name__ if self.parent is not None else "serializer"
        return f"{parent}.{self.field_name} (ContextLookupField {self.lookup_name!r})"

    def _unsaved_message(self) -> str:
        return (
            f"{self._where}: the serializer has no instance to read keys from yet (was "
            "it validated but not saved?). The lookups of a write are built for "
            "serializer.instance once save() has set it; serialize the saved instance, "
            "or render the field only on responses."
        )

    def _undeclared_message(self, context: Mapping[str, Any]) -> str:
        present = sorted(k for k, v in context.items() if isinstance(v, Lookup))
        name = self.lookup_name
        return (
            f"{self._where}: the serializer context has no lookup {name!r}"
            + (f" (it has: {', '.join(map(repr, present))})" if present else "")
            + ". Declare it on the view: cross_db_fields = {"
            + f"{name!r}: CrossDBPrefetch('app_label.Model', key='...')"
            + "} with CrossDBPrefetchMixin, or pass the lookups in the context yourself: "
            + f"context=prefetch_cross_db(objects, {{{name!r}: CrossDBPrefetch(...)}}). "
            + "(This error is raised because CROSSPREFETCH['STRICT'] is on, which it is "
            + "by default with DEBUG and while tests run; off, the field renders its default.)"
        )

    def _not_prefetched(self, lookup: Lookup, instance: Any) -> Any:
        if conf.STRICT:
            raise ImproperlyConfigured(
                f"{self._where}: {instance!r} is not among the objects lookup "
                f"{self.lookup_name!r} was built for. Build the lookups for exactly the "
                "objects you serialize: prefetch_cross_db(objects, specs)."
            )
        return lookup.find(instance)

    def _renderer(self, lookup: Lookup) -> Callable[[Any], Any]:
        """Build, once per lookup, the function turning a row (or rows) into output."""
        spec = lookup.spec
        attr = self.attr
        if attr is not None and spec.fields is not None:
            head = attr.split(".", 1)[0]
            if head not in spec.fields:
                model = lookup_model(lookup)
                raise ImproperlyConfigured(
                    f"{self._where}: reads {attr!r} but {spec!r} selects only "
                    f"{spec.fields!r}. {spec.attr_hint(attr, model)}"
                )
        if attr is None and self.nested is None and spec.fields is None:
            raise ImproperlyConfigured(
                f"{self._where}: {spec!r} yields model instances, which cannot be rendered "
                "as they are. Give the field an attr, a serializer=, or give the spec fields=."
            )
        one: Callable[[Any], Any]
        if self.nested is not None:
            one = self.nested.to_representation
        elif attr is None:
            one = _identity
        else:
            one = _reader(attr, self._where)
            if self.output_field is not None:
                read, convert = one, self.output_field.to_representation
                one = lambda row: None if (v := read(row)) is None else convert(v)  # noqa: E731
        if spec.many:
            return lambda rows: [one(row) for row in rows]
        return one


def lookup_model(lookup: Lookup) -> Any:
    """The remote model of a built lookup, for messages (None if it cannot be named)."""
    from django.apps import apps

    try:
        return apps.get_model(lookup.stats.model)
    except (LookupError, ValueError):
        return None


def _identity(value: Any) -> Any:
    return value


def _reader(path: str, where: str) -> Callable[[Any], Any]:
    parts = path.split(".")

    def read(row: Any) -> Any:
        value = row
        for part in parts:
            if value is None:
                return None
            try:
                value = value[part] if isinstance(value, Mapping) else getattr(value, part)
            except (KeyError, AttributeError):
                raise ImproperlyConfigured(
                    f"{where}: the row has no {part!r} (reading {path!r} from {row!r})."
                ) from None
        return value

    if len(parts) == 1:
        name = parts[0]

        def read_one(row: Any) -> Any:
            try:
                return row[name] if type(row) is dict else getattr(row, name)
            except (KeyError, AttributeError):
                return read(row)

        return read_one
    return read
