"""Django's generic views (``ListView``, ``DetailView``) over ForeignKeys across databases.

The objects a template shows are known once ``get_context_data()`` has cut the page:
:class:`CrossDBPrefetchViewMixin` then fills their related-object caches along
``cross_db_related`` (one query per database and model per hop), and puts the lookups of
``cross_db_fields`` in the context, where the ``{% cross_db %}`` tag of the
``crossprefetch`` template library reads them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from django.core.exceptions import ImproperlyConfigured
from django.db import models

from crossprefetch.engine import prefetch_cross_db
from crossprefetch.lookup import Lookup
from crossprefetch.related import RelationPathError, prefetch_related_objects
from crossprefetch.spec import CrossDBPrefetch

if TYPE_CHECKING:
    from django.views.generic.base import ContextMixin

    _Base = ContextMixin
else:
    _Base = object

__all__ = ["CrossDBPrefetchViewMixin"]

#: The context entry holding every lookup the view built, by name.
LOOKUPS_CONTEXT_KEY = "cross_db_lookups"


class CrossDBPrefetchViewMixin(_Base):
    """Prefetch across databases for the objects a ``ListView`` page or a ``DetailView``
    renders.

    ``cross_db_related`` names relation paths (``"account"``, ``"account__region"``,
    reverse ``"tickets"``, or ``Prefetch`` objects): a template then reads
    ``{{ ticket.account.region.label }}`` without a query. ``cross_db_fields`` builds
    lookups for the same objects, put in the context by name.
    """

    cross_db_related: ClassVar[Sequence[str | models.Prefetch[Any]]] = ()
    cross_db_fields: ClassVar[Mapping[str, CrossDBPrefetch]] = {}

    def get_cross_db_related(self) -> Sequence[str | models.Prefetch[Any]]:
        return self.cross_db_related

    def get_cross_db_fields(self) -> Mapping[str, CrossDBPrefetch]:
        return self.cross_db_fields

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        objects = _shown(context)
        request = getattr(self, "request", None)
        related = self.get_cross_db_related()
        lookups: dict[str, Lookup] = {}
        if related and objects:
            try:
                prefetch_related_objects(objects, *related, request=request)
            except RelationPathError as exc:
                view = type(self).__qualname__
                raise ImproperlyConfigured(f"{view}.cross_db_related: {exc}") from exc
        specs = self.get_cross_db_fields()
        if specs:
            lookups = prefetch_cross_db(objects, specs, request=request)
            for name, lookup in lookups.items():
                context.setdefault(name, lookup)
        context[LOOKUPS_CONTEXT_KEY] = lookups
        return context


def _shown(context: Mapping[str, Any]) -> list[Any]:
    """The objects the template renders: the page's (evaluated once, so that the template
    iterates the same instances), or the one object."""
    if "object_list" in context:
        shown = context["object_list"]
        return shown if isinstance(shown, list) else list(shown)
    obj = context.get("object")
    return [] if obj is None else [obj]
