"""django-filter support: a ``FilterSet`` filter on the rows of another database.

Needs django-filter (``pip install django-filter``); nothing else in crossprefetch imports it.
"""

from __future__ import annotations

import copy
from typing import Any

import django_filters
from django.core.exceptions import ImproperlyConfigured
from django.db import models

from crossprefetch.related import view_relation_spec
from crossprefetch.rest_framework.filters import CrossDBFilter, filter_by_remote, view_specs
from crossprefetch.spec import CrossDBPrefetch


class CrossDBFilterSetFilter(django_filters.Filter):  # type: ignore[misc]
    """A django-filter ``Filter`` keeping the objects whose remote row matches.

    ::

        class EventFilterSet(django_filters.FilterSet):
            customer_tier = CrossDBFilterSetFilter("customers", "tier")
            customer_tier__in = CrossDBFilterSetFilter("customers", "tier", lookup_expr="in")

    :param spec: the name of a spec in the view's ``cross_db_fields`` (read from the
        request's view, as DRF's ``DjangoFilterBackend`` passes it), or a
        :class:`~crossprefetch.CrossDBPrefetch` for use outside such a view.
    :param remote_field: the remote field; ``None`` with ``lookup_expr="isnull"`` asks
        whether the remote row exists.
    :param lookup_expr: one of :data:`crossprefetch.filters.LOOKUPS`.

    The same semantics as :class:`~crossprefetch.filters.CrossDBFilter` (one remote query,
    the key set as one parameter, 400 for a value the remote field cannot hold), except that
    each filter of a FilterSet runs its own remote query.
    """

    def __init__(
        self,
        spec: str | CrossDBPrefetch,
        remote_field: str | None = None,
        *,
        lookup_expr: str = "exact",
        **kwargs: Any,
    ) -> None:
        name = spec if isinstance(spec, str) else "spec"
        self.cross_db_filter = CrossDBFilter(name, remote_field, lookup=lookup_expr)
        self.spec = spec
        super().__init__(lookup_expr=lookup_expr, **kwargs)

    def __deepcopy__(self, memo: dict[int, Any]) -> CrossDBFilterSetFilter:
        """FilterSets deep-copy their filters; the immutable spec is shared, not copied."""
        memo[id(self.spec)] = self.spec
        clone = type(self).__new__(type(self))
        memo[id(self)] = clone
        for name, value in self.__dict__.items():
            clone.__dict__[name] = copy.deepcopy(value, memo)
        return clone

    def filter(self, qs: models.QuerySet[Any], value: Any) -> models.QuerySet[Any]:
        if value in django_filters.constants.EMPTY_VALUES:
            return qs
        request = getattr(self.parent, "request", None)
        spec = self._resolve(request)
        parameter = self.field_name or self.cross_db_filter.spec
        return filter_by_remote(
            qs, spec, [(parameter, self.cross_db_filter, str(value))], request=request
        )

    def _resolve(self, request: Any) -> CrossDBPrefetch:
        if isinstance(self.spec, CrossDBPrefetch):
            return self.spec
        view = (getattr(request, "parser_context", None) or {}).get("view")
        spec = view_specs(view).get(self.spec) if view is not None else None
        if spec is None and view is not None:  # a relation into another database
            spec = view_relation_spec(view, self.spec)
        if not isinstance(spec, CrossDBPrefetch):
            raise ImproperlyConfigured(
                f"CrossDBFilterSetFilter({self.spec!r}) on {self.field_name!r}: no view with "
                f"a cross_db_fields[{self.spec!r}] spec serves this request. Use the FilterSet "
                "from a CrossDBPrefetchMixin view, or pass the CrossDBPrefetch itself."
            )
        return spec
