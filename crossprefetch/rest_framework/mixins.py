"""``CrossDBPrefetchMixin``: lookups for exactly the objects a DRF view serializes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.http import HttpRequest
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer, ListSerializer

from crossprefetch import _compat
from crossprefetch._related import fetch as related_fetch
from crossprefetch._related import tree as related_tree
from crossprefetch._related.hops import RelationPathError, crossing_paths
from crossprefetch.conf import conf
from crossprefetch.engine import prefetch_cross_db
from crossprefetch.lookup import Lookup
from crossprefetch.rest_framework._inference import related_columns
from crossprefetch.rest_framework._known import known_rows
from crossprefetch.rest_framework.fields import DEFERRED_CONTEXT_KEY
from crossprefetch.spec import CrossDBPrefetch

if TYPE_CHECKING:
    from rest_framework.generics import GenericAPIView

    _Base = GenericAPIView[Any]
else:
    _Base = object

_NOTHING = object()

#: Names the lookups of the response that were degraded (``on_error="degrade"``).
DEGRADED_HEADER = "Crossprefetch-Degraded"


class _DeferredLookups:
    """Builds the lookups on first use, for whatever the root serializer then holds.

    Used when the objects are not known as the serializer is built: the response of a
    create or update (the instance exists only after ``save()``), or a serializer built
    by hand from ``get_serializer_context()``.
    """

    __slots__ = ("context", "request", "specs", "view")

    def __init__(
        self,
        view: CrossDBPrefetchMixin,
        specs: Mapping[str, CrossDBPrefetch],
        request: HttpRequest | None,
        context: dict[str, Any],
    ) -> None:
        self.view = view
        self.specs = specs
        self.request = request
        self.context = context

    def resolve(self, root: BaseSerializer[Any]) -> bool:
        instance = getattr(root, "instance", None)
        if instance is None:
            return False
        many = isinstance(root, ListSerializer)
        self.context.update(
            self.view._crossprefetch_lookups(instance, many, self.specs, self.request)
        )
        self.context.pop(DEFERRED_CONTEXT_KEY, None)
        return True


class CrossDBPrefetchMixin(_Base):
    """Add cross-database lookups to the serializer context of a DRF generic view.

    Declare ``cross_db_fields = {name: CrossDBPrefetch(...)}`` (or override
    :meth:`get_cross_db_fields` to vary them per action or request). Lookups are built for
    the objects actually serialized: the page, the unpaginated list, the retrieved object,
    the instance just created or updated. Nothing is fetched when nothing is serialized.

    ForeignKeys into another database need nothing declared: the relations the serializer
    reads through (``source="account.name"``, nested serializers, ``many=True`` reverse
    serializers, related fields) are fetched for the page with one query per database and
    model per hop, only the columns read. ``cross_db_related`` names relation paths (or
    ``Prefetch`` objects) inference cannot see, such as those a ``SerializerMethodField``
    follows; they are fetched whole.
    """

    cross_db_fields: ClassVar[Mapping[str, CrossDBPrefetch]] = {}
    cross_db_related: ClassVar[Sequence[str | models.Prefetch[Any]]] = ()

    _crossprefetch_objects: Any = _NOTHING
    _crossprefetch_memo: tuple[Any, bool, Mapping[str, Any], dict[str, Lookup]] | None = None
    _crossprefetch_built: list[Lookup] | None = None

    def get_cross_db_fields(self) -> Mapping[str, CrossDBPrefetch]:
        """The specs of this request; override to vary them per action or per request."""
        return self.cross_db_fields

    def get_cross_db_related(self) -> Sequence[str | models.Prefetch[Any]]:
        """The relation paths fetched whole for this request besides those the serializer
        is seen to read; override to vary them per action or per request."""
        return self.cross_db_related

    def get_serializer(self, *args: Any, **kwargs: Any) -> BaseSerializer[Any]:
        instance = args[0] if args else kwargs.get("instance")
        writes = len(args) > 1 or "data" in kwargs  # keys may change on save(): build later
        if instance is not None and not writes and "context" not in kwargs:
            self._crossprefetch_objects = (instance, bool(kwargs.get("many")))
        try:
            serializer = super().get_serializer(*args, **kwargs)
            if self._crossprefetch_objects is not _NOTHING:
                self._crossprefetch_related(serializer, *self._crossprefetch_objects)
            return serializer
        finally:
            self._crossprefetch_objects = _NOTHING

    def get_serializer_context(self) -> dict[str, Any]:
        context = dict(super().get_serializer_context())
        specs = self.get_cross_db_fields()
        if not specs:
            return context
        request = getattr(self, "request", None)
        if self._crossprefetch_objects is _NOTHING:
            context[DEFERRED_CONTEXT_KEY] = _DeferredLookups(self, specs, request, context)
        else:
            instance, many = self._crossprefetch_objects
            context.update(self._crossprefetch_lookups(instance, many, specs, request))
        return context

    def _crossprefetch_lookups(
        self,
        instance: Any,
        many: bool,
        specs: Mapping[str, CrossDBPrefetch],
        request: HttpRequest | None,
    ) -> dict[str, Lookup]:
        """Lookups for ``instance``, reused while the same objects with the same keys are
        serialized again (the browsable API renders its forms from the response's own
        instance, after the response itself)."""
        objects = instance if many else [instance]
        memo = self._crossprefetch_memo
        if (
            memo is not None
            and memo[0] is instance
            and memo[1] == many
            and memo[2] is specs
            and all(lookup.covers(objects) for lookup in memo[3].values())
        ):
            return memo[3]
        # the rows the filter backend's remote queries read answer the page's keys
        known = known_rows(self, request, specs)
        lookups = prefetch_cross_db(objects, specs, request=request, known=known)
        self._crossprefetch_memo = (instance, many, specs, lookups)
        self._built.extend(lookups.values())
        return lookups

    def _crossprefetch_related(
        self, serializer: BaseSerializer[Any], instance: Any, many: bool
    ) -> None:
        """Fill the related-object caches of the serialized objects: the relations across
        databases the serializer reads, and those of :meth:`get_cross_db_related`."""
        if not many:
            objects: Sequence[Any] = [instance]
        elif isinstance(instance, models.QuerySet | list | tuple):
            # a QuerySet is evaluated once: the serializer then iterates the same instances
            objects = instance if isinstance(instance, list | tuple) else list(instance)
        else:
            return
        if not objects or not isinstance(objects[0], models.Model):
            return
        model = type(objects[0])
        named = self.get_cross_db_related()
        inferred = related_columns(serializer, model)
        if inferred:
            crossing = crossing_paths(model, list(inferred), _compat.instance_db(objects[0]))
            inferred = {path: read for path, read in inferred.items() if path in crossing}
        if not named and not inferred:
            return
        try:
            roots = related_tree.build(model, named, inferred)
        except (RelationPathError, TypeError, ValueError) as exc:
            raise ImproperlyConfigured(
                f"{type(self).__qualname__}.cross_db_related: {exc}"
            ) from exc
        lookups = related_fetch.fetch(objects, roots, request=getattr(self, "request", None))
        self._built.extend({id(lookup): lookup for lookup in lookups.values()}.values())

    @property
    def _built(self) -> list[Lookup]:
        """The lookups built for this request, for the ``Server-Timing`` header."""
        if self._crossprefetch_built is None:
            self._crossprefetch_built = []
        return self._crossprefetch_built

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        built = self._crossprefetch_built
        if built:
            if conf.SERVER_TIMING:
                entry = server_timing(built)
                existing = response.get("Server-Timing")
                response["Server-Timing"] = f"{existing}, {entry}" if existing else entry
            degraded = dict.fromkeys(lookup.name for lookup in built if lookup.degraded)
            if degraded:
                response[DEGRADED_HEADER] = ", ".join(degraded)
        return response


def server_timing(lookups: list[Lookup]) -> str:
    """A ``Server-Timing`` entry: time and queries of the lookups, shared queries once."""
    seen: set[tuple[frozenset[str], float, int]] = set()
    duration = 0.0
    queries = 0
    for lookup in lookups:
        stats = lookup.stats
        # lookups that shared a query carry the same names, time and count: add them once
        group = (frozenset({stats.name, *stats.shared_with}), stats.time_ms, stats.queries)
        if group in seen:
            continue
        seen.add(group)
        duration += stats.time_ms
        queries += stats.queries
    return f'crossprefetch;dur={duration:.1f};desc="{len(lookups)} lookups, {queries} queries"'
