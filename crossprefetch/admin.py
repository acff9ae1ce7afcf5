"""The admin's changelist over ForeignKeys into other databases.

Django's changelist joins what ``list_select_related`` names (or every non-null foreign key,
when ``list_display`` shows one), filters and searches through joins, and reads each
relation a column shows one row at a time. Across databases a join fails and the rest
costs a query per row. :class:`CrossDBPrefetchAdminMixin` serves the same options:

* ``list_display`` columns reaching another database (``"account"``,
  ``"account__region__label"``, callables whose ``admin_order_field`` or
  ``cross_db_related`` names a relation) are fetched for the page, one query per database
  and model per hop, and are not sortable (their order would need a join);
* ``list_select_related`` keeps only the relations within the listed model's database;
* ``list_filter`` and ``search_fields`` on remote fields narrow the list by a semi-join:
  the remote database answers which keys match, the listed objects' database gets them as
  one parameter, so the count and the page stay exact.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import get_last_value_from_parameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import models
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest
from django.utils.text import smart_split, unescape_string_literal
from django.utils.translation import gettext_lazy as _

from crossprefetch._related import fetch, hops, semijoin, tree
from crossprefetch._related.hops import Hop, RelationPathError

if TYPE_CHECKING:
    _Base = admin.ModelAdmin[Any]
else:
    _Base = object

__all__ = ["CrossDBFieldListFilter", "CrossDBPrefetchAdminMixin"]


def _split(model: type[models.Model], path: str) -> tuple[list[Hop], str] | None:
    """``"account__region__label"`` as the hops to the last relation and what is read
    there (``"label"``; ``""`` when the path ends on a relation). ``None`` when the path
    does not reach another database."""
    names = path.split(LOOKUP_SEP)
    found: list[Hop] = []
    current = model
    for depth, name in enumerate(names):
        step = hops.relations(current).hops.get(name)
        if step is None:
            if not found:
                return None
            return (found, LOOKUP_SEP.join(names[depth:])) if hops.crosses(found) else None
        found.append(step)
        current = step.related_model
    return (found, "") if hops.crosses(found) else None


def _order_field(item: Any, model_admin: Any) -> str | None:
    """The ``admin_order_field`` of a ``list_display`` entry that is no field path."""
    attr = item
    if isinstance(item, str):
        attr = getattr(model_admin, item, None) or getattr(model_admin.model, item, None)
    if isinstance(attr, property):
        attr = attr.fget
    order = getattr(attr, "admin_order_field", None)
    return order.lstrip("-") if isinstance(order, str) else None


class CrossDBFieldListFilter(admin.FieldListFilter):
    """A ``list_filter`` on a field of rows in another database (``"account__tier"``).

    Its choices are the distinct values the remote table holds (read there); choosing one
    keeps the objects whose row has it, through a semi-join. :class:`CrossDBPrefetchAdminMixin`
    puts it on every such ``list_filter`` entry; name it yourself as
    ``("account__tier", CrossDBFieldListFilter)`` in a ``ModelAdmin`` without the mixin.
    """

    def __init__(
        self,
        field: models.Field[Any, Any],
        request: HttpRequest,
        params: dict[str, Any],
        model: type[models.Model],
        model_admin: Any,
        field_path: str,
    ) -> None:
        split = _split(model, field_path)
        if split is None:
            raise ValueError(
                f"list_filter {field_path!r} of {type(model_admin).__qualname__} does not reach "
                "another database: drop CrossDBFieldListFilter from it."
            )
        self.hops, read = split
        last = self.hops[-1]
        self.read = read or _pk_name(last.related_model)
        self.lookup_kwarg = field_path
        self.lookup_kwarg_isnull = f"{field_path}__isnull"
        self.lookup_val = params.get(self.lookup_kwarg)
        self.lookup_val_isnull = get_last_value_from_parameters(params, self.lookup_kwarg_isnull)
        self.empty_value_display = model_admin.get_empty_value_display()
        self.lookup_choices = self._choices(last)
        super().__init__(field, request, params, model, model_admin, field_path)

    def _choices(self, last: Hop) -> list[tuple[Any, str]]:
        """``(value, label)`` of the remote rows, read in their database."""
        rows = last.related_model._base_manager.db_manager(last.alias()).all()
        if self.read == _pk_name(last.related_model):
            return [(row.pk, str(row)) for row in rows]
        values = rows.distinct().order_by(self.read).values_list(self.read, flat=True)
        return [(value, str(value)) for value in values]

    def expected_parameters(self) -> list[str | None]:
        return [self.lookup_kwarg, self.lookup_kwarg_isnull]

    def get_facet_counts(self, pk_attname: str, filtered_qs: Any) -> dict[str, Any]:
        return {}  # counting per choice would need a join: no facets

    def choices(self, changelist: Any) -> Iterator[Any]:
        yield {
            "selected": self.lookup_val is None and self.lookup_val_isnull is None,
            "query_string": changelist.get_query_string(
                remove=[self.lookup_kwarg, self.lookup_kwarg_isnull]
            ),
            "display": _("All"),
        }
        include_none = False
        for value, label in self.lookup_choices:
            if value is None:
                include_none = True
                continue
            text = str(value)
            yield {
                "selected": self.lookup_val is not None and text in self.lookup_val,
                "query_string": changelist.get_query_string(
                    {self.lookup_kwarg: text}, [self.lookup_kwarg_isnull]
                ),
                "display": label,
            }
        yield {
            "selected": bool(self.lookup_val_isnull),
            "query_string": changelist.get_query_string(
                {self.lookup_kwarg_isnull: "True"}, [self.lookup_kwarg]
            ),
            "display": self.empty_value_display if include_none else _("None"),
        }

    def queryset(self, request: HttpRequest, queryset: models.QuerySet[Any]) -> Any:
        params = self.used_parameters
        try:
            if params.get(self.lookup_kwarg_isnull) is not None:
                isnull = params[self.lookup_kwarg_isnull]
                isnull = isnull[-1] if isinstance(isnull, list) else isnull
                # no row, or a row without a value: as a join's IS NULL answers
                lookup = f"{self.read}__isnull"
                return semijoin.narrow(queryset, self.hops, lookup, False, negate=bool(isnull))
            values = params.get(self.lookup_kwarg)
            if values is None:
                return queryset
            values = values if isinstance(values, list) else [values]
            return semijoin.narrow(queryset, self.hops, f"{self.read}__in", values)
        except (ValueError, ValidationError) as exc:
            raise IncorrectLookupParameters(exc) from exc


class _CrossDBChangeList(ChangeList):
    """A changelist that fetches the page's relations into other databases."""

    model_admin: CrossDBPrefetchAdminMixin

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        paths = self.model_admin._crossprefetch_paths(request, self.list_display)
        if not paths:
            return
        results = self.result_list
        # the template iterates this same QuerySet: evaluated here, read from its cache there
        objects = results if isinstance(results, list) else list(results)
        roots = tree.build(self.model, paths)
        fetch.fetch(objects, roots, request=request)

    def get_ordering_field(self, field_name: Any) -> Any:
        """No ordering by a column in another database (``?o=`` included)."""
        field = super().get_ordering_field(field_name)
        if isinstance(field, str) and _split(self.model, field.lstrip("-")) is not None:
            return None
        if isinstance(field_name, str) and _crosses_as_field(self.model, field_name):
            return None
        return field


def _crosses_as_field(model: type[models.Model], name: str) -> bool:
    """Whether ``name`` is a ForeignKey of ``model`` into another database (ordering by it
    orders by the related model's ordering: a join)."""
    step = hops.relations(model).hops.get(name)
    return step is not None and step.forward and hops.crosses([step])


class CrossDBPrefetchAdminMixin(_Base):
    """Serve a ``ModelAdmin``'s changelist over ForeignKeys into other databases.

    Put it first among the bases: ``class TicketAdmin(CrossDBPrefetchAdminMixin,
    admin.ModelAdmin)``. Relations that ``list_display`` reads through a callable without
    an ``admin_order_field`` go in ``cross_db_related``.
    """

    cross_db_related: Sequence[str | models.Prefetch[Any]] = ()

    def get_cross_db_related(self, request: HttpRequest) -> Sequence[str | models.Prefetch[Any]]:
        """Relation paths fetched for each page besides those ``list_display`` shows."""
        return self.cross_db_related

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return _CrossDBChangeList

    def get_list_select_related(self, request: HttpRequest) -> Any:
        """The relations Django may join: those within the listed model's database."""
        selected = super().get_list_select_related(request)
        model: type[models.Model] = self.model
        if selected is True or (selected is False and self._shows_a_relation(request)):
            # what select_related() would follow: every non-null ForeignKey
            return tuple(
                step.name
                for step in hops.relations(model).hops.values()
                if step.forward and not step.field.null and not hops.crosses([step])
            )
        if not selected:
            return selected
        return tuple(path for path in selected if not _reaches_another(model, path))

    def _shows_a_relation(self, request: HttpRequest) -> bool:
        for item in self.get_list_display(request):
            if isinstance(item, str):
                try:
                    field = self.model._meta.get_field(item)
                except FieldDoesNotExist:
                    continue
                if field.is_relation and getattr(field, "concrete", False):
                    return True
        return False

    def get_list_filter(self, request: HttpRequest) -> list[Any]:
        """Remote fields get :class:`CrossDBFieldListFilter`."""
        filters = list(super().get_list_filter(request))
        return [
            (item, CrossDBFieldListFilter)
            if isinstance(item, str) and _split(self.model, item) is not None
            else item
            for item in filters
        ]

    def get_sortable_by(self, request: HttpRequest) -> list[Any]:
        """Not the columns in another database: their order would need a join."""
        sortable = super().get_sortable_by(request)
        model = self.model
        return [
            item
            for item in sortable
            if not (
                isinstance(item, str)
                and (_split(model, item) is not None or _crosses_as_field(model, item))
            )
            and not _reaches_another(model, _order_field(item, self) or "")
        ]

    def get_search_results(
        self, request: HttpRequest, queryset: models.QuerySet[Any], search_term: str
    ) -> tuple[models.QuerySet[Any], bool]:
        """Each word matches a local field, or a remote one through a semi-join."""
        fields = [str(f) for f in self.get_search_fields(request)]
        remote = {f: _split(self.model, _search_path(f)) for f in fields}
        if not search_term or not any(remote.values()):
            return super().get_search_results(request, queryset, search_term)
        terms = []
        for bit in smart_split(search_term):
            if bit.startswith(('"', "'")) and bit[0] == bit[-1]:
                bit = unescape_string_literal(bit)
            either = models.Q()
            for name, split in remote.items():
                lookup = _search_lookup(name)
                if split is None:
                    either |= models.Q(**{lookup: bit})
                else:
                    found = split[0]
                    remote_lookup = lookup.split(LOOKUP_SEP, len(found))[-1]
                    either |= _remote_condition(found, remote_lookup, bit, queryset.db)
            terms.append(either)
        narrowed = queryset.filter(*terms)
        duplicates = any(
            split is None and _has_to_many(self.model, _search_path(name))
            for name, split in remote.items()
        )
        return narrowed, duplicates

    def _crossprefetch_paths(
        self, request: HttpRequest, list_display: Sequence[Any]
    ) -> list[str | models.Prefetch[Any]]:
        """The relation paths a page needs: those ``list_display`` reads into another
        database, and :meth:`get_cross_db_related`."""
        model = self.model
        paths: dict[str, None] = {}
        for item in list_display:
            if isinstance(item, str) and _crosses_as_field(model, item):
                paths[item] = None
                continue
            path = item if isinstance(item, str) else ""
            for candidate in (path, _order_field(item, self) or ""):
                split = _split(model, candidate) if candidate else None
                if split is not None:
                    paths[LOOKUP_SEP.join(step.name for step in split[0])] = None
        return [*paths, *self.get_cross_db_related(request)]


def _pk_name(model: type[models.Model]) -> str:
    pk = model._meta.pk
    assert pk is not None
    return str(pk.name)


def _remote_condition(found: list[Hop], lookup: str, value: Any, alias: str) -> models.Q:
    try:
        return semijoin.condition(found, lookup, value, alias)
    except semijoin.TooManyKeys as exc:
        raise IncorrectLookupParameters(exc) from exc


def _reaches_another(model: type[models.Model], path: str) -> bool:
    try:
        return bool(path) and hops.crosses(_leading_hops(model, path))
    except RelationPathError:
        return False


def _leading_hops(model: type[models.Model], path: str) -> list[Hop]:
    """The hops at the start of ``path``; :class:`RelationPathError` when there is none."""
    found: list[Hop] = []
    current = model
    for name in path.split(LOOKUP_SEP):
        step = hops.relations(current).hops.get(name)
        if step is None:
            break
        found.append(step)
        current = step.related_model
    if not found:
        raise RelationPathError(f"{path!r} starts with no relation")
    return found


def _search_path(name: str) -> str:
    return name.lstrip("^=@")


def _search_lookup(name: str) -> str:
    """The ORM lookup Django's admin makes of a ``search_fields`` entry."""
    if name.startswith("^"):
        return f"{name[1:]}__istartswith"
    if name.startswith("="):
        return f"{name[1:]}__iexact"
    if name.startswith("@"):
        return f"{name[1:]}__search"
    last = name.rsplit(LOOKUP_SEP, 1)[-1]
    if last in {"exact", "iexact", "contains", "icontains", "startswith", "istartswith"}:
        return name
    return f"{name}__icontains"


def _has_to_many(model: type[models.Model], path: str) -> bool:
    """Whether a local search path goes through a to-many relation (rows may repeat)."""
    current = model
    for name in path.split(LOOKUP_SEP):
        try:
            field = current._meta.get_field(name)
        except FieldDoesNotExist:
            return False
        if field.many_to_many or field.one_to_many:
            return True
        if not field.is_relation or field.related_model is None:
            return False
        current = field.related_model
    return False
