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
from typing import TYPE_CHECKING, Any

from rest_framework import exceptions
from rest_framework.settings import api_settings

from crossprefetch._suggest import closest, one_edit

if TYPE_CHECKING:
    from crossprefetch.rest_framework.filters import CrossDBFilter


#: Names shorter than this are never taken for typos: one edit turns ``q`` into ``p``, ``v``
#: or jQuery's cache-buster ``_``, which are other parameters, not misspellings of it.
MIN_TYPO_LENGTH = 4


def refuse_unclear_filters(
    request: Any, queryset: Any, view: Any, filters: Mapping[str, CrossDBFilter]
) -> None:
    """400 for each query parameter one edit from a cross-database filter of the view (its
    ``cross_db_filters``, its FilterSet's ``CrossDBFilterSetFilter``) that nothing else of
    the view reads, and for each filter of ``cross_db_filters`` given more than once (DRF
    and django-filter would keep its last value only)."""
    params = request.query_params
    errors = _repeated(params, filters)
    declared = [*filters, *_filterset_cross_db_names(view)]
    suspects: dict[str, str] = {}
    for param in params:
        if param in declared or not _may_be_a_typo(param):
            continue
        near = closest(param, [name for name in declared if _typo_of(param, name)])
        if near is not None:
            suspects[param] = near
    if suspects:
        known = _known_parameters(request, queryset, view)
        if known is not None:  # else the view's parameters cannot all be named: refuse none
            errors |= {
                param: [f"Unknown filter {param!r}; did you mean {near!r}?"]
                for param, near in suspects.items()
                if param not in known
            }
    if errors:
        raise exceptions.ValidationError(errors)


def _may_be_a_typo(param: str) -> bool:
    """A private (``_``), empty or short parameter is some other app's, never a typo."""
    return len(param) >= MIN_TYPO_LENGTH and not param.startswith("_")


def _typo_of(param: str, name: str) -> bool:
    return len(name) >= MIN_TYPO_LENGTH and one_edit(param, name)


def _repeated(params: Any, filters: Mapping[str, CrossDBFilter]) -> dict[str, list[str]]:
    errors = {}
    for name, cross_filter in filters.items():
        values = params.getlist(name)
        if len(values) < 2:
            continue
        if cross_filter.lookup_expr == "in":
            joined = ",".join(v for v in values if v)
            fix = f"give the values once, separated by commas: {name}={joined}"
        else:
            fix = "give it once"
        errors[name] = [f"Filter {name!r} is given {len(values)} times; {fix}."]
    return errors


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


def _filterset_cross_db_names(view: Any) -> list[str]:
    filterset_class = getattr(view, "filterset_class", None)
    base_filters = getattr(filterset_class, "base_filters", None) or {}
    return [name for name, f in base_filters.items() if hasattr(f, "cross_db_filter")]


def _known_parameters(request: Any, queryset: Any, view: Any) -> set[str] | None:
    """Every query parameter the view reads: its filter backends' (``ordering``,
    ``search``, a FilterSet's fields and their widgets' suffixes, what a backend declares
    for the schema), its paginator's, its versioning's, the format override.

    ``None`` when they cannot all be named: a FilterSet that cannot be built here, or a
    backend of the project's own that declares no parameter (it may read any).
    """
    known = {str(api_settings.URL_FORMAT_OVERRIDE)}
    known |= _params_of(getattr(view, "versioning_class", None))
    paginator = getattr(view, "paginator", None)
    known |= _params_of(paginator) | _declared(paginator, view)
    for backend_class in getattr(view, "filter_backends", None) or ():
        backend = backend_class()
        own = _params_of(backend) | _declared(backend, view)
        if not own and not _module_of(backend_class).startswith(_KNOWN_PACKAGES):
            return None
        known |= own
        if hasattr(backend, "get_filterset"):
            try:
                filterset = backend.get_filterset(request, queryset, view)
                fields = {} if filterset is None else filterset.form.fields
            except Exception:
                return None
            known |= set(_form_parameters(fields))
    return known


#: Packages whose filter backends read only the parameters they name (``*_param``) or
#: declare; a backend of another package that names none may read any.
_KNOWN_PACKAGES = ("rest_framework.", "django_filters.", "crossprefetch.")


def _module_of(backend_class: Any) -> str:
    return f"{getattr(backend_class, '__module__', '')}."


def _declared(thing: Any, view: Any) -> set[str]:
    """The query parameters ``thing`` declares for the schema (DRF's contract for backends
    and paginators: ``get_schema_operation_parameters``)."""
    method = getattr(thing, "get_schema_operation_parameters", None)
    if method is None:
        return set()
    try:
        parameters = method(view)
    except Exception:  # a schema method that needs more than the view: nothing known
        return set()
    return {
        p["name"]
        for p in parameters or ()
        if isinstance(p, Mapping)
        and p.get("in", "query") == "query"
        and isinstance(p.get("name"), str)
    }


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
