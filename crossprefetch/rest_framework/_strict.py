"""``CROSSPREFETCH["STRICT"]``'s answer to a misspelled filter or ordering term: a 400.

DRF ignores query parameters it does not know and drops ordering terms it does not
accept, so ``?customer_teir=gold`` answers 200 with every row. Under STRICT (on with
``DEBUG`` and in tests) such a request is refused, naming the closest valid name. Query
parameters are shared with other apps (tracking tags, the browsable API's, a FilterSet's),
so only a parameter no part of the view reads, *one edit* from a declared cross-database
filter, is taken for a typo; every other unknown parameter is still ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rest_framework import exceptions
from rest_framework.settings import api_settings

from crossprefetch._suggest import closest, one_edit


def refuse_misspelled_filters(
    request: Any, queryset: Any, view: Any, filters: Mapping[str, Any]
) -> None:
    """400 for each query parameter one edit from a cross-database filter of the view (its
    ``cross_db_filters``, its FilterSet's ``CrossDBFilterSetFilter``) that nothing else of
    the view reads."""
    params = request.query_params
    declared = [*filters, *_filterset_cross_db_names(view, queryset)]
    suspects: dict[str, str] = {}
    for param in params:
        near = closest(param, [name for name in declared if one_edit(param, name)])
        if near is not None and param not in declared:
            suspects[param] = near
    if not suspects:
        return
    known = _known_parameters(request, queryset, view)
    if known is None:
        return  # the view's parameters cannot all be named: never refuse a valid one
    errors = {
        param: [f"Unknown filter {param!r}; did you mean {near!r}?"]
        for param, near in suspects.items()
        if param not in known
    }
    if errors:
        raise exceptions.ValidationError(errors)


def unknown_ordering_terms(
    param: str, terms: Sequence[str], valid: Sequence[str]
) -> exceptions.ValidationError:
    """The 400 of ordering ``terms`` that no valid field names, each with the closest one."""
    choices = ", ".join(valid) or "none"
    messages = []
    for term in terms:
        name = term.removeprefix("-")
        near = closest(name, valid)
        if near is None:
            messages.append(
                f"Unknown ordering term {term!r}; order by one of: {choices} (prefixed with "
                "'-' for descending)."
            )
        else:
            sign = "-" if term.startswith("-") else ""
            messages.append(f"Unknown ordering term {term!r}; did you mean {sign + near!r}?")
    return exceptions.ValidationError({param: messages})


def _filterset_cross_db_names(view: Any, queryset: Any) -> list[str]:
    filterset_class = getattr(view, "filterset_class", None)
    base_filters = getattr(filterset_class, "base_filters", None) or {}
    return [name for name, f in base_filters.items() if hasattr(f, "cross_db_filter")]


def _known_parameters(request: Any, queryset: Any, view: Any) -> set[str] | None:
    """Every query parameter the view reads: its filter backends' (``ordering``,
    ``search``, a FilterSet's fields and their widgets' suffixes), its paginator's, its
    versioning's, the format override. ``None`` when a FilterSet cannot be built here."""
    known = {str(api_settings.URL_FORMAT_OVERRIDE)}
    known |= _params_of(getattr(view, "versioning_class", None))
    known |= _params_of(getattr(view, "paginator", None))
    for backend_class in getattr(view, "filter_backends", None) or ():
        backend = backend_class()
        known |= _params_of(backend)
        if hasattr(backend, "get_filterset"):
            try:
                filterset = backend.get_filterset(request, queryset, view)
                fields = {} if filterset is None else filterset.form.fields
            except Exception:
                return None
            known |= set(_form_parameters(fields))
    return known


def _params_of(thing: Any) -> set[str]:
    """The values of ``thing``'s ``*_param`` attributes (``ordering_param``,
    ``page_query_param``, ``version_param``...): the query parameters it reads."""
    if thing is None:
        return set()
    found = set()
    for attribute in dir(thing):
        if attribute.endswith("_param") and not attribute.startswith("_"):
            value = getattr(thing, attribute, None)
            if isinstance(value, str) and value:
                found.add(value)
    return found


def _form_parameters(fields: Mapping[str, Any]) -> Iterable[str]:
    """The names a form's widgets read: a field's own, or one per part of a multi-widget
    (django-filter's ``amount_min`` / ``amount_max``, Django's ``when_0`` / ``when_1``)."""
    for name, field in fields.items():
        yield name
        widget = getattr(field, "widget", None)
        for suffix in getattr(widget, "suffixes", None) or ():
            yield f"{name}_{suffix}" if suffix else name
        for suffix in getattr(widget, "widgets_names", None) or ():
            yield f"{name}{suffix}"
