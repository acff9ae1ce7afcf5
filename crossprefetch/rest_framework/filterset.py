"""django-filter support: a ``FilterSet`` filter on the rows of another database.

Needs django-filter (``pip install django-filter``); nothing else in crossprefetch imports it.
"""

from __future__ import annotations

import copy
from typing import Any

import django_filters
from django import forms
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import models
from django.utils.text import capfirst
from django_filters.conf import settings as filter_settings
from django_filters.constants import EMPTY_VALUES
from django_filters.utils import label_for_filter, verbose_lookup_expr
from rest_framework import exceptions

from crossprefetch import _aggregates
from crossprefetch._suggest import did_you_mean
from crossprefetch.aggregate import CrossDBAggregate
from crossprefetch.related import view_relation_spec
from crossprefetch.rest_framework.filters import (
    UNSET,
    CrossDBFilter,
    FilterProblem,
    filter_by_remote,
    renamed,
    unknown_remote_field,
    validate_filter,
    view_label,
    view_specs,
)
from crossprefetch.spec import CrossDBPrefetch

_OWNER = "CrossDBFilterSetFilter"


class CrossDBFilterSetFilter(django_filters.Filter):  # type: ignore[misc]
    """A django-filter ``Filter`` keeping the objects whose remote row matches.

    ::

        class EventFilterSet(django_filters.FilterSet):
            customer_tier = CrossDBFilterSetFilter("customers", "tier")
            customer_tier__in = CrossDBFilterSetFilter("customers", "tier", lookup_expr="in")

    :param spec: the name of a spec in the view's ``cross_db_fields`` (read from the
        request's view, as DRF's ``DjangoFilterBackend`` passes it), or a
        :class:`~crossprefetch.CrossDBPrefetch` for use outside such a view.
    :param field_name: the remote field, as django-filter's ``field_name`` names the
        model field a filter applies to; ``None`` with ``lookup_expr="isnull"`` asks
        whether the remote row exists. Formerly ``remote_field=`` (deprecated).
    :param lookup_expr: one of :data:`crossprefetch.filters.LOOKUPS`.

    Other keyword arguments are django-filter's (``label``, ``help_text``, ``required``...).
    The value is validated by the FilterSet's form, as django-filter's own filters are: an
    invalid value is an error of the form (all of them reported at once; with
    ``DjangoFilterBackend.raise_exception = False`` the filter is left out, as django-filter
    leaves out its own), and the default label comes from the remote field's verbose name.

    The same semantics as :class:`~crossprefetch.filters.CrossDBFilter` (one remote query,
    the key set as one parameter, 400 for a value the remote field cannot hold), except that
    each filter of a FilterSet runs its own remote query.

    :raises TypeError: an argument of the wrong type.

    A value of the right type that it cannot take (an unknown ``lookup_expr``, an empty
    name, ``exclude=True``) is kept in :attr:`problem`: the system check
    ``crossprefetch.E408`` reports it for the ``filterset_class`` of every routed view, and
    a request using the parameter raises :exc:`~django.core.exceptions.ImproperlyConfigured`.
    """

    _given_label: Any
    #: What is wrong with the arguments, or ``None``.
    problem: FilterProblem | None

    def __init__(
        self,
        spec: str | CrossDBPrefetch,
        field_name: str | None = None,
        lookup_expr: str = "exact",
        *,
        remote_field: Any = UNSET,
        **kwargs: Any,
    ) -> None:
        field_name = renamed(_OWNER, "remote_field", "field_name", remote_field, field_name, None)
        if not isinstance(spec, str | CrossDBPrefetch):
            raise TypeError(
                f"{_OWNER}({spec!r}): spec must be the name of a spec in the view's "
                "cross_db_fields, or a CrossDBPrefetch."
            )
        name = spec if isinstance(spec, str) else spec.source_label
        self.problem = validate_filter(_OWNER, name, field_name, lookup_expr)
        if kwargs.get("exclude") and self.problem is None:
            self.problem = FilterProblem(
                "exclude=True is not supported.",
                "Filter on the opposite value, or with lookup_expr='isnull' for objects "
                "without a row.",
            )
        self.cross_db_filter = CrossDBFilter(name, field_name, lookup_expr)
        self.spec = spec
        super().__init__(field_name=field_name, lookup_expr=lookup_expr, **kwargs)

    def __deepcopy__(self, memo: dict[int, Any]) -> CrossDBFilterSetFilter:
        """FilterSets deep-copy their filters; the immutable spec is shared, not copied."""
        memo[id(self.spec)] = self.spec
        clone = type(self).__new__(type(self))
        memo[id(self)] = clone
        for name, value in self.__dict__.items():
            clone.__dict__[name] = copy.deepcopy(value, memo)
        return clone

    # --- the form: validation and label ---------------------------------------------------

    @property
    def label(self) -> Any:
        """The label set, or one from the remote field's verbose name (as django-filter's
        own filters label themselves from the model field), once the remote model is known."""
        if self._given_label is None:
            remote = self._remote_model()
            if remote is None:
                return self._fallback_label()
            self._given_label = self._label_from(remote)
        return self._given_label

    @label.setter
    def label(self, value: Any) -> None:
        self._given_label = value

    @property
    def field(self) -> forms.Field:
        """The form field that cleans the value (errors are the form's, as for any filter)."""
        if not hasattr(self, "_field"):
            kwargs = self.extra.copy()
            if filter_settings.DISABLE_HELP_TEXT:
                kwargs.pop("help_text", None)
            self._field = _RemoteValueField(owner=self, label=self.label, **kwargs)
        return self._field

    def _label_from(self, model: type[models.Model]) -> str:
        cross_filter = self.cross_db_filter
        if self.problem is not None:
            return self._fallback_label()
        if cross_filter.field_name is None:
            return capfirst(f"{model._meta.verbose_name} {verbose_lookup_expr('isnull')}")
        return str(label_for_filter(model, cross_filter.field_name, cross_filter.lookup_expr))

    def _fallback_label(self) -> str:
        cross_filter = self.cross_db_filter
        lookup = verbose_lookup_expr(cross_filter.lookup_expr)
        words = [cross_filter.spec, cross_filter.field_name or "", lookup]
        return capfirst(" ".join(w.replace("__", " ") for w in words if w))

    def _remote_model(self) -> type[models.Model] | None:
        """The remote model, if it can be known here (a string spec needs the request's
        view; a callable source, the request itself)."""
        request = getattr(getattr(self, "parent", None), "request", None)
        try:
            spec = self._resolve(request)
            if isinstance(spec, CrossDBAggregate):
                return None  # an aggregate is no field of the model to take a label from
            source = spec.source
            if callable(source) and not isinstance(source, type | models.QuerySet):
                return None if request is None else spec.get_queryset(request).model
            return spec.get_model()
        except (ImproperlyConfigured, TypeError):
            return None  # the system checks report what is wrong

    def parse(self, raw: str) -> Any:
        """``raw`` as the remote field holds it, or the form's :exc:`ValidationError`."""
        request = getattr(self.parent, "request", None)
        self.ensure_valid(request)
        spec = self._resolve(request)
        remote = spec.get_queryset(request)
        cross_filter = self.cross_db_filter
        field = None
        if isinstance(spec, CrossDBAggregate) and cross_filter.field_name is not None:
            field = _aggregates.filter_field(
                spec,
                cross_filter.field_name,
                repr(self.parameter),
                cross_filter.lookup_expr,
                remote,
            )
        try:
            return cross_filter.parse(self.parameter, raw, remote.model, remote.db, field)
        except FieldDoesNotExist as exc:
            where = f"{self.declared(request)}[{self.parameter!r}] = {self!r}"
            path = cross_filter.field_name or ""
            raise unknown_remote_field(where, spec, remote.model, path, exc) from exc
        except exceptions.ValidationError as exc:
            detail = exc.detail
            messages = detail.get(self.parameter, []) if isinstance(detail, dict) else detail
            # the text may hold a "%" of the value: passed as a parameter, never formatted
            raise forms.ValidationError(
                [
                    forms.ValidationError("%(message)s", code="invalid", params={"message": m})
                    for m in messages
                ]
            ) from None

    def __repr__(self) -> str:
        field = "" if self.field_name is None else f", {self.field_name!r}"
        spec = self.spec if isinstance(self.spec, str) else self.spec.source_label
        return f"{_OWNER}({spec!r}{field}, lookup_expr={self.lookup_expr!r})"

    def declared(self, request: Any) -> str:
        """Where the filter is declared, as errors name it: ``View.filterset_class.base_filters``
        of the view serving ``request``, else ``FilterSet.base_filters``."""
        view = (getattr(request, "parser_context", None) or {}).get("view")
        if view is not None:
            return f"{view_label(view)}.filterset_class.base_filters"
        parent = getattr(self, "parent", None)
        owner = type(parent) if parent is not None else None
        if owner is None:
            return _OWNER
        return f"{owner.__module__}.{owner.__qualname__}.base_filters"

    def ensure_valid(self, request: Any) -> None:
        """:exc:`~django.core.exceptions.ImproperlyConfigured` naming the view and the
        parameter if the arguments are invalid: a request never filters with them."""
        if self.problem is not None:
            where = f"{self.declared(request)}[{self.parameter!r}] = {self!r}"
            raise ImproperlyConfigured(f"{where}: {self.problem}")

    @property
    def parameter(self) -> str:
        """The query parameter: the filter's name in its FilterSet."""
        parent = getattr(self, "parent", None)
        for name, candidate in getattr(parent, "filters", {}).items():
            if candidate is self:
                return str(name)
        return str(self.field_name or self.cross_db_filter.spec)

    # --- filtering ------------------------------------------------------------------------

    def filter(self, qs: models.QuerySet[Any], value: Any) -> models.QuerySet[Any]:
        if value is None or (not isinstance(value, bool) and value in EMPTY_VALUES):
            return qs
        request = getattr(self.parent, "request", None)
        self.ensure_valid(request)
        spec = self._resolve(request)
        active = [(self.parameter, self.cross_db_filter, value)]
        return filter_by_remote(
            qs, spec, active, request=request, parsed=True, declared=self.declared(request)
        )

    def _resolve(self, request: Any) -> CrossDBPrefetch:
        if isinstance(self.spec, CrossDBPrefetch):
            return self.spec
        view = (getattr(request, "parser_context", None) or {}).get("view")
        spec = view_specs(view).get(self.spec) if view is not None else None
        if spec is None and view is not None:  # a relation into another database
            spec = view_relation_spec(view, self.spec)
        if not isinstance(spec, CrossDBPrefetch) and view is not None:
            specs = view_specs(view)
            raise ImproperlyConfigured(
                f"{self.declared(request)}[{self.parameter!r}] = {self!r} uses the lookup "
                f"{self.spec!r}, which {view_label(view)} does not declare in cross_db_fields "
                f"(it has: {', '.join(map(repr, specs)) or 'nothing'})."
                + did_you_mean(self.spec, map(str, specs))
            )
        if not isinstance(spec, CrossDBPrefetch):
            raise ImproperlyConfigured(
                f"{_OWNER}({self.spec!r}) on {self.parameter!r}: no view with a "
                f"cross_db_fields[{self.spec!r}] spec serves this request. Use the FilterSet "
                "from a CrossDBPrefetchMixin view, or pass the CrossDBPrefetch itself."
            )
        return spec


class _RemoteValueField(forms.CharField):
    """Cleans a :class:`CrossDBFilterSetFilter`'s value to the remote field's, inside the
    FilterSet's form. An empty value is ``None``: the filter is left out."""

    def __init__(self, *, owner: CrossDBFilterSetFilter, **kwargs: Any) -> None:
        self.owner = owner
        super().__init__(**kwargs)

    def __deepcopy__(self, memo: dict[int, Any]) -> _RemoteValueField:
        memo[id(self.owner)] = self.owner  # forms copy their fields; the filter is shared
        result: _RemoteValueField = super().__deepcopy__(memo)
        return result

    def to_python(self, value: Any) -> Any:
        raw = super().to_python(value)
        if raw in EMPTY_VALUES:
            return None
        return self.owner.parse(str(raw))
