"""System checks for ForeignKeys across databases: ``cross_db_related`` paths, serializers
and admin changelists that cross a database without crossprefetch.

A path that does not exist would fail on the first request; one that stays in one database
belongs to ``select_related``; one into a database the routers do not name would be read
from the wrong database; a relation crossing a database without the mixin costs a query
per row (a warning), or a join that fails (an error). Ids are listed in the docs and
never reused.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from django.conf import settings
from django.core import checks
from django.db import models, router

from crossprefetch import _compat
from crossprefetch._related.hops import SEP, Hop, RelationPathError, crosses, resolve
from crossprefetch._urls import routed_views


def check_related(
    app_configs: Iterable[Any] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Check the views routed by ``ROOT_URLCONF`` and the admin sites' ``ModelAdmin``."""
    errors: list[checks.CheckMessage] = []
    try:
        views = list(routed_views())
    except Exception:  # a broken URLconf is reported by Django's own checks
        views = []
    for view in views:
        errors.extend(check_view_related(view))
    errors.extend(_check_admins())
    return errors


def check_view_related(view: type) -> list[checks.CheckMessage]:
    """The checks of one view class: its ``cross_db_related``, and its serializer's
    relations across databases when it has no mixin to serve them."""
    from crossprefetch.views import CrossDBPrefetchViewMixin

    label = f"{view.__module__}.{view.__qualname__}"
    served = _drf_mixin(view) or issubclass(view, CrossDBPrefetchViewMixin)
    declared = getattr(view, "cross_db_related", None)
    if declared and not served:
        return [
            _error(
                view,
                "E705",
                f"{label} declares cross_db_related but inherits no crossprefetch mixin, so "
                "those relations are read one query per object.",
                "Add crossprefetch.CrossDBPrefetchMixin (DRF) or "
                "crossprefetch.views.CrossDBPrefetchViewMixin first among the view's bases.",
            )
        ]
    model = _view_model(view)
    if model is None:
        return []
    if served:
        return check_paths(view, f"{label}.cross_db_related", model, declared or ())
    return _check_serializer(view, label, model)


def check_paths(
    obj: Any, where: str, model: type[models.Model], paths: Any
) -> list[checks.CheckMessage]:
    """The checks of declared relation paths of ``model`` (``cross_db_related``)."""
    if isinstance(paths, str) or not isinstance(paths, Sequence):
        return [
            _error(
                obj,
                "E701",
                f"{where} is {paths!r}, not a list of relation paths.",
                "Declare cross_db_related = ('account', 'account__region'), or Prefetch objects.",
            )
        ]
    errors: list[checks.CheckMessage] = []
    for path in paths:
        if isinstance(path, models.Prefetch):
            path = path.prefetch_through
        if not isinstance(path, str):
            errors.append(
                _error(
                    obj,
                    "E701",
                    f"{where} holds {path!r}, which is neither a relation path nor a Prefetch.",
                    "Name relations joined by '__' ('account__region'), or give "
                    "django.db.models.Prefetch('account', queryset=...).",
                )
            )
            continue
        errors.extend(_check_path(obj, where, model, path))
    return errors


def _check_path(
    obj: Any, where: str, model: type[models.Model], path: str
) -> list[checks.CheckMessage]:
    try:
        hops = resolve(model, path)
    except RelationPathError as exc:
        hint = (
            f"Did you mean {exc.closest!r}?"
            if exc.closest
            else f"Name a ForeignKey, OneToOneField or reverse relation of {model._meta.label}."
        )
        return [_error(obj, "E702", f"{where}: {path!r}: {exc}", hint)]
    unnamed = [hop for hop in hops if _routed_alias(hop.related_model) is None]
    unknown = [hop for hop in hops if hop.alias() not in settings.DATABASES]
    if unknown:
        hop = unknown[0]
        return [
            _error(
                obj,
                "E704",
                f"{where}: {path!r}: the router sends {hop.related_model._meta.label} to "
                f"{hop.alias()!r}, which is not in DATABASES.",
                f"Use one of: {', '.join(settings.DATABASES)}.",
            )
        ]
    if not crosses(hops):
        if unnamed and _routed_alias(model) is not None:
            hop = unnamed[0]
            return [_unnamed(obj, where, path, hop)]
        return [
            _error(
                obj,
                "E703",
                f"{where}: {path!r} stays in the database {hops[0].alias()!r}: "
                "crossprefetch serves relations into other databases.",
                f"Follow it with select_related({path!r}) or prefetch_related({path!r}) on "
                "the view's QuerySet, and drop it from cross_db_related.",
            )
        ]
    if unnamed:
        return [_unnamed(obj, where, path, unnamed[0])]
    return []


def _unnamed(obj: Any, where: str, path: str, hop: Hop) -> checks.CheckMessage:
    return _error(
        obj,
        "E704",
        f"{where}: {path!r} reaches {hop.related_model._meta.label}, for which no database "
        f"router names a database: Django would read it from the database of each "
        f"{hop.model._meta.label} (or 'default').",
        f"Return its alias from db_for_read() of a router in DATABASE_ROUTERS for "
        f"{hop.related_model._meta.label}.",
    )


def _routed_alias(model: type[models.Model]) -> str | None:
    """The alias a router of ``DATABASE_ROUTERS`` names for ``model``, or ``None`` when
    every router leaves it to Django's default."""
    for each in router.routers:
        method = getattr(each, "db_for_read", None)
        if method is None:
            continue
        alias = method(model)
        if alias:
            return str(alias)
    return None


def _drf_mixin(view: type) -> bool:
    try:
        from crossprefetch.rest_framework.mixins import CrossDBPrefetchMixin
    except ImportError:  # pragma: no cover - DRF is a dependency
        return False
    return issubclass(view, CrossDBPrefetchMixin)


def _view_model(view: type) -> type[models.Model] | None:
    queryset = getattr(view, "queryset", None)
    if isinstance(queryset, models.QuerySet):
        return queryset.model
    model = getattr(view, "model", None)
    if isinstance(model, type) and issubclass(model, models.Model):
        return model
    serializer = getattr(view, "serializer_class", None)
    model = getattr(getattr(serializer, "Meta", None), "model", None)
    return model if isinstance(model, type) and issubclass(model, models.Model) else None


def _check_serializer(
    view: type, label: str, model: type[models.Model]
) -> list[checks.CheckMessage]:
    """W701: a DRF view without the mixin whose serializer reads across a database."""
    try:
        from rest_framework.generics import GenericAPIView
    except ImportError:  # pragma: no cover - DRF is a dependency
        return []
    serializer_class = getattr(view, "serializer_class", None)
    if (
        serializer_class is None
        or not issubclass(view, GenericAPIView)
        or view.get_serializer_class is not GenericAPIView.get_serializer_class
    ):
        return []
    from crossprefetch._related.hops import crossing_paths
    from crossprefetch.rest_framework._inference import related_columns

    try:
        serializer = serializer_class()
        found = related_columns(serializer, model)
    except Exception:  # a serializer that needs its context: known per request only
        return []
    crossing = crossing_paths(model, list(found))
    prefetched = _prefetched(getattr(view, "queryset", None))
    leaves = sorted(
        p
        for p in crossing
        if not any(o.startswith(p + SEP) for o in crossing) and p not in prefetched
    )
    if not leaves:
        return []
    return [
        checks.Warning(
            f"{label}: {serializer_class.__name__} reads {', '.join(map(repr, leaves))} "
            "across databases, one query per object: the view has no CrossDBPrefetchMixin.",
            hint="Add crossprefetch.CrossDBPrefetchMixin first among the view's bases; it "
            "fetches those relations per page with nothing else declared.",
            obj=view,
            id="crossprefetch.W701",
        )
    ]


def _prefetched(queryset: Any) -> set[str]:
    """The paths (and their prefixes) a QuerySet's ``prefetch_related()`` fetches."""
    paths: set[str] = set()
    for lookup in _compat.prefetch_lookups(queryset) if queryset is not None else ():
        path = lookup.prefetch_to if isinstance(lookup, models.Prefetch) else lookup
        names = str(path).split(SEP)
        paths.update(SEP.join(names[: depth + 1]) for depth in range(len(names)))
    return paths


# --- the admin ------------------------------------------------------------------------


def _check_admins() -> Iterator[checks.CheckMessage]:
    """E70x for the ``cross_db_related`` of every ``ModelAdmin`` with the mixin, E706/W702
    for every one without it, on every admin site."""
    try:
        from django.contrib.admin.sites import all_sites
    except ImportError:  # pragma: no cover - django.contrib.admin ships with Django
        return
    from django.apps import apps

    if not apps.is_installed("django.contrib.admin"):
        return
    for site in all_sites:
        for model, model_admin in _compat.admin_registry(site).items():
            if _serves_changelist(model_admin):
                admin_class = type(model_admin)
                label = f"{admin_class.__module__}.{admin_class.__qualname__}.cross_db_related"
                yield from check_paths(admin_class, label, model, model_admin.cross_db_related)
            else:
                yield from _check_admin(model, model_admin)


def _serves_changelist(model_admin: Any) -> bool:
    """Whether a ``ModelAdmin`` has ``CrossDBPrefetchAdminMixin`` (told by its method, so
    that the checks do not import the admin integration)."""
    return callable(getattr(model_admin, "get_cross_db_related", None))


def _check_admin(model: type[models.Model], model_admin: Any) -> Iterator[checks.CheckMessage]:
    label = f"{type(model_admin).__module__}.{type(model_admin).__qualname__}"
    joined: list[str] = []
    selected = model_admin.list_select_related
    if isinstance(selected, list | tuple):
        joined += [f"list_select_related {p!r}" for p in selected if _reaches(model, p)]
    for item in model_admin.list_filter:
        path = item[0] if isinstance(item, list | tuple) else item
        if isinstance(path, str) and _reaches(model, path):
            joined.append(f"list_filter {path!r}")
    for name in model_admin.search_fields:
        if _reaches(model, str(name).lstrip("^=@")):
            joined.append(f"search_fields {name!r}")
    if joined:
        yield checks.Error(
            f"{label}: {', '.join(joined)} join a table of another database, which fails.",
            hint="Add crossprefetch.admin.CrossDBPrefetchAdminMixin first among the "
            "ModelAdmin's bases: it filters and searches those fields through a semi-join.",
            obj=type(model_admin),
            id="crossprefetch.E706",
        )
    shown = [
        item for item in model_admin.list_display if isinstance(item, str) and _reaches(model, item)
    ]
    if shown:
        yield checks.Warning(
            f"{label}: list_display {', '.join(map(repr, shown))} read another database, "
            "one query per row.",
            hint="Add crossprefetch.admin.CrossDBPrefetchAdminMixin first among the "
            "ModelAdmin's bases: it fetches them per page.",
            obj=type(model_admin),
            id="crossprefetch.W702",
        )


def _reaches(model: type[models.Model], path: str) -> bool:
    """Whether the relations ``path`` starts with reach another database."""
    from crossprefetch._related.hops import relations

    found: list[Hop] = []
    current = model
    for name in path.split(SEP):
        step = relations(current).hops.get(name)
        if step is None:
            break
        found.append(step)
        current = step.related_model
    return bool(found) and crosses(found)


def _error(obj: Any, code: str, message: str, hint: str) -> checks.Error:
    return checks.Error(message, hint=hint, obj=obj, id=f"crossprefetch.{code}")
