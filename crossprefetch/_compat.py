"""Every private name of Django, DRF, drf-spectacular and pytest-django crossprefetch touches.

A new release of one of them is one file to read: each function below wraps one private
name, with a line saying what breaks in crossprefetch if that name changes. No other module
uses a private name of another package (``tests/test_architecture.py``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

# -- Django: database connections ------------------------------------------------------------


def install_execute_wrapper(connection: Any, wrapper: Callable[..., Any]) -> None:
    """Put ``wrapper`` first in ``connection.execute_wrappers`` unless it is there already.

    Django documents ``connection.execute_wrapper()`` as a context manager, not the list.
    First, so that ``execute_wrapper()`` blocks, which pop the *last* wrapper on exit, still
    remove their own. Breaks if: the list is renamed or no longer run by
    ``CursorWrapper._execute_with_wrappers`` -- query capture (``crossprefetch.testing``, the
    panel) would then see no query.
    """
    wrappers = connection.execute_wrappers
    if wrapper not in wrappers:
        wrappers.insert(0, wrapper)


def remove_execute_wrapper(connection: Any, wrapper: Callable[..., Any]) -> None:
    """Take ``wrapper`` out of ``connection.execute_wrappers`` (by identity, every copy).

    Breaks if: as :func:`install_execute_wrapper`.
    """
    wrappers = connection.execute_wrappers
    for index in range(len(wrappers) - 1, -1, -1):
        if wrappers[index] is wrapper:
            del wrappers[index]


def cursor_frame(frame: FrameType) -> FrameType:
    """The frame of Django's cursor that runs the execute wrappers, above ``frame``.

    Other execute wrappers (crossprefetch's cache invalidation, django-read-only, ...) may
    sit between it and the wrapper asking; their frames say nothing about who issued the
    query. Breaks if: ``CursorWrapper._execute_with_wrappers`` is renamed -- a captured
    query's ``stack`` would then also hold the wrappers' frames (hidden in reports anyway).
    """
    current: FrameType | None = frame
    while current is not None:
        if current.f_code.co_name == "_execute_with_wrappers":
            return current
        current = current.f_back
    return frame


def connecting(connection: Any, frame: FrameType | None) -> bool:
    """Whether ``connection`` is inside its own ``connect()``, looking up from ``frame``.

    A statement sent then sets the new connection up (``init_connection_state``,
    ``connection_created`` receivers): Django's ``CaptureQueriesContext`` does not count
    it, since it connects before counting. Breaks if: ``BaseDatabaseWrapper.connect`` is
    renamed or no longer runs those statements itself -- setup statements would then be
    counted by the query-count assertions of a connection opened inside the block.
    """
    while frame is not None:
        if frame.f_code.co_name == "connect" and frame.f_locals.get("self") is connection:
            return True
        frame = frame.f_back
    return False


# -- Django: QuerySets -----------------------------------------------------------------------


def prefetch_lookups(queryset: Any) -> tuple[Any, ...]:
    """The ``prefetch_related()`` lookups of ``queryset`` (strings and ``Prefetch`` objects).

    Django has no public accessor. Breaks if: ``QuerySet._prefetch_related_lookups`` is
    renamed -- this returns ``()``, so two QuerySets differing only by their prefetches
    could share one query or cache entry, cached instances would lose their prefetches, and
    the check ``crossprefetch.W701`` would warn about a view that prefetches its relations
    with Django's ``prefetch_related()`` already.
    """
    return tuple(getattr(queryset, "_prefetch_related_lookups", ()))


# -- Django: SQL compilation ---------------------------------------------------------------------


def quote_name(compiler: Any, name: str) -> str:
    """``name`` quoted as ``compiler`` quotes the aliases of the query it compiles.

    Django 6.1 quotes every alias (``SQLCompiler.quote_name``) and deprecates
    ``quote_name_unless_alias``; Django 5.2 and 6.0 leave aliases bare. A hand-written
    join must quote its alias as Django does, or PostgreSQL folds one spelling and not the
    other. Breaks if: both methods go -- the key sets' joins (filters, orderings, collation
    matching) would fail to compile.
    """
    quote: Any = getattr(compiler, "quote_name", None)
    if quote is None:  # Django < 6.1
        return str(compiler.quote_name_unless_alias(name))
    return str(quote(name))


def annotation_field(queryset: Any, alias: str) -> Any:
    """The output field of the annotation ``alias`` of ``queryset``, once resolved.

    Breaks if: ``Query.annotations`` is renamed -- a cursor over the view's own ordering
    (``CrossDBCursorPagination``) could no longer read its values back.
    """
    return queryset.query.annotations[alias].output_field


# -- Django: tests and URLs ----------------------------------------------------------------------


def test_environment_active() -> bool:
    """Whether Django's ``setup_test_environment()`` ran and ``teardown_test_environment()``
    has not yet.

    Read off ``django.test.utils._TestState.saved_data``, without importing the module.
    Breaks if: ``_TestState`` or ``saved_data`` is renamed -- strict mode's default would
    then stay off under ``manage.py test`` (the pytest plugin still turns it on), and
    ``crossprefetch.W103`` would warn about the ``LocMemCache`` of test runs.
    """
    utils = sys.modules.get("django.test.utils")
    state = getattr(utils, "_TestState", None)
    return state is not None and hasattr(state, "saved_data")


def view_path(match: Any) -> str | None:
    """``module.View`` of a ``ResolverMatch``, as Django's own ``repr()`` names the view.

    Breaks if: ``ResolverMatch._func_path`` is renamed -- error messages then name the view
    from DRF's ``parser_context`` only, or not at all.
    """
    path = getattr(match, "_func_path", None)
    return path if isinstance(path, str) else None


# -- DRF ------------------------------------------------------------------------------------------


def http_request(request: Any) -> Any:
    """The ``HttpRequest`` a DRF ``Request`` wraps (``request`` itself if it is not one).

    Breaks if: ``Request._request`` is renamed -- the debug-toolbar panel would then not
    recognise lookups built with a DRF request as its own request's.
    """
    return getattr(request, "_request", request)


def rendering_field(frame: FrameType | None, stop: FrameType | None = None) -> Any:
    """The DRF field (not a whole serializer) whose method runs in a frame from ``frame``
    outwards to ``stop``, if any: the field a plain serializer was rendering.

    crossprefetch's own fields say what they render through a context variable; a field
    of the user's serializer is only known as the ``self`` of DRF's method running it.
    Breaks if: DRF renders a field outside the field's own methods -- N+1 reports then
    name the issuing method without its serializer field.
    """
    fields = sys.modules.get("rest_framework.fields")
    serializers = sys.modules.get("rest_framework.serializers")
    if fields is None or serializers is None:
        return None
    while frame is not None:
        owner = frame.f_locals.get("self")
        if (
            isinstance(owner, fields.Field)
            and not isinstance(owner, serializers.BaseSerializer)
            and getattr(owner, "field_name", None)
        ):
            return owner
        if frame is stop:
            break
        frame = frame.f_back
    return None


def reading_field(frame: FrameType | None, stop: FrameType | None = None) -> Any:
    """The DRF field (a nested serializer included) reading its ``source`` in a frame from
    ``frame`` (a query's own) outwards to ``stop`` (the user's code), if any.

    A field with ``source="account.name"`` reads the relation inside DRF's
    ``Field.get_attribute``; a ``many=True`` nested serializer, in
    ``ListSerializer.to_representation``. Breaks if: DRF reads sources in other methods --
    N+1 reports would then not say that a serializer field read the relation (and advise
    ``cross_db_related`` where the mixin alone would do).
    """
    fields = sys.modules.get("rest_framework.fields")
    if fields is None:
        return None
    while frame is not None and frame is not stop:
        owner = frame.f_locals.get("self")
        if (
            isinstance(owner, fields.Field)
            and getattr(owner, "field_name", None)
            and frame.f_code.co_name in {"get_attribute", "to_representation"}
        ):
            return owner
        frame = frame.f_back
    return None


# -- Django: related-object caches (crossprefetch.prefetch_related_objects) ------------------


def prefetched_objects(instance: Any) -> dict[str, Any]:
    """The ``_prefetched_objects_cache`` of a model instance, created when absent.

    Django's ``prefetch_related_objects`` keeps there, per reverse relation, the QuerySet a
    related manager's ``all()`` returns. Breaks if: the attribute is renamed or no longer
    read by ``RelatedManager.get_queryset()`` -- ``account.tickets.all()`` would then run a
    query per object after ``crossprefetch.prefetch_related_objects(accounts, "tickets")``.
    """
    try:
        cache: dict[str, Any] = instance._prefetched_objects_cache
    except AttributeError:
        cache = instance._prefetched_objects_cache = {}
    return cache


def is_prefetched(instance: Any, cache_name: str) -> bool:
    """Whether a reverse relation's rows are in the instance's prefetch cache already.

    Breaks if: as :func:`prefetched_objects` -- relations prefetched by Django would be
    fetched again.
    """
    return cache_name in getattr(instance, "_prefetched_objects_cache", ())


def fill_queryset(queryset: Any, rows: list[Any]) -> None:
    """Make ``queryset`` hold ``rows`` as if it had been evaluated, as Django's prefetching
    does (``_result_cache``, ``_prefetch_done``).

    Breaks if: either attribute is renamed -- the related manager's ``all()`` would then
    query the database instead of returning the prefetched rows.
    """
    queryset._result_cache = rows
    queryset._prefetch_done = True


def explicit_db(queryset: Any) -> str | None:
    """The alias a QuerySet was given with ``using()``, or ``None`` when the router decides.

    Breaks if: ``QuerySet._db`` is renamed -- a ``Prefetch`` QuerySet's own ``using()``
    would then be replaced by the router's choice.
    """
    db: str | None = queryset._db
    return db


def instance_db(instance: Any) -> str | None:
    """The database a model instance was read from (``instance._state.db``).

    Breaks if: ``Model._state.db`` is renamed -- crossprefetch could then not tell which
    database the objects a relation starts from live in, and would take the router's.
    """
    db: str | None = instance._state.db
    return db


# -- Django: the admin ----------------------------------------------------------------------


def admin_registry(site: Any) -> dict[Any, Any]:
    """The ``{model: ModelAdmin}`` of an admin site (``AdminSite._registry``).

    Django offers ``get_model_admin(model)`` but no way to list them. Breaks if: the
    attribute is renamed -- the checks of ``ModelAdmin`` classes without
    ``CrossDBPrefetchAdminMixin`` (``crossprefetch.E706``, ``W702``) would see none.
    """
    registry: dict[Any, Any] = site._registry
    return registry


# -- Django: the query's FROM clause and its compilation --------------------------------------


def compiled(queryset: Any, using: str | None = None) -> tuple[str, Any]:
    """``(sql, params)`` of ``queryset`` as its database (or ``using``) would run it.

    ``QuerySet.query`` is documented only for ``str()``; its compiler is internal.
    Breaks if: ``Query.get_compiler`` changes -- the identity of shared answers (coalescing, the
    cache) and invalidation's view of a spec's joins would fail, and every group would be
    queried alone.
    """
    sql, params = queryset.query.get_compiler(using=using or queryset.db).as_sql()
    return sql, params


def joined_tables(queryset: Any) -> list[str]:
    """The tables of ``queryset``'s FROM clause (its own and those its filters join).

    Breaks if: ``Query.alias_map`` or its entries' ``table_name`` change -- invalidation
    would miss writes to a table a cached spec only filters by.
    """
    return [join.table_name for join in queryset.query.alias_map.values()]


def add_from_item(queryset: Any, source: Any) -> str:
    """Add ``source`` (a join-like object with ``table_alias``, ``as_sql()``, ``relabeled_clone``)
    to ``queryset``'s FROM clause, after its base table; returns the base table's alias.

    Django has no public way to join a table-valued parameter (``unnest``, ``json_each``).
    Breaks if: ``Query.get_initial_alias``, ``alias_map`` or ``alias_refcount`` change --
    keys matched by the database's own rule, and orderings by remote rows, would fail to
    compile (the tests of both fail at once).
    """
    query = queryset.query
    base: str = query.get_initial_alias()
    query.alias_map[source.table_alias] = source
    query.alias_refcount[source.table_alias] = 1
    return base


def base_alias(queryset: Any) -> str:
    """The alias of ``queryset``'s base table, set up if the query has none yet.

    Breaks if: ``Query.get_initial_alias`` is renamed -- as :func:`add_from_item`.
    """
    alias: str = queryset.query.get_initial_alias()
    return alias


def join(queryset: Any, source: Any) -> str:
    """Join ``source`` (a ``Join``-like object) to ``queryset``'s query; returns its alias.

    Breaks if: ``Query.join`` changes -- orderings by remote rows would fail to compile.
    """
    alias: str = queryset.query.join(source)
    return alias


def yields_instances(queryset: Any) -> bool:
    """Whether ``queryset`` yields model instances, not ``values()``/``values_list()`` rows.

    Breaks if: ``QuerySet._iterable_class`` or ``ModelIterable`` change -- a spec without
    ``fields=`` over a ``values()`` QuerySet would fail later, with a less clear error.
    """
    from django.db.models.query import ModelIterable

    return issubclass(queryset._iterable_class, ModelIterable)


def values_list_rows(queryset: Any, count: int) -> list[tuple[Any, ...]]:
    """The rows of a (non-flat) ``values_list()`` QuerySet, read in one fetch of ``count``.

    ``iterator(chunk_size=...)`` would read them in a server-side cursor on PostgreSQL and
    Django's default chunks elsewhere. Breaks if: ``ValuesListIterable`` changes -- a
    filter's remote rows would fail to be read (every filter test fails).
    """
    from django.db.models.query import ValuesListIterable

    return list(ValuesListIterable(queryset, chunk_size=count))


# -- Django: transactions -----------------------------------------------------------------------


def in_testcase_transaction(connection: Any) -> bool:
    """Whether ``connection``'s outermost atomic block is the one a ``TestCase`` opened.

    Django's own ``durable=True`` check makes the same exception. Breaks if:
    ``Atomic._from_testcase`` or ``connection.atomic_blocks`` change -- writes in a
    ``TestCase`` would invalidate cached rows only on a commit that never comes.
    """
    blocks = connection.atomic_blocks
    return bool(blocks) and bool(getattr(blocks[0], "_from_testcase", False))


def on_commit_callbacks(connection: Any) -> list[tuple[set[str], Any]]:
    """``(savepoint ids, callback)`` of each function ``connection`` runs on commit.

    Django keeps them in ``connection.run_on_commit`` as ``(sids, func, robust)`` tuples.
    Breaks if: that list or its tuples change -- several writes of one transaction would
    each schedule their own invalidation (correct, but one cache write each), and a
    transaction's own reads might use the cache before its writes commit.
    """
    return [(entry[0], entry[1]) for entry in connection.run_on_commit]


# -- DRF ------------------------------------------------------------------------------------------


def serializer_context(serializer: Any) -> dict[str, Any]:
    """The context a (root) serializer was given, without DRF's ``context`` property walk.

    Breaks if: ``BaseSerializer._context`` is renamed -- ``ContextLookupField`` would find
    no lookup and render its default (strict mode raises).
    """
    context: dict[str, Any] = getattr(serializer, "_context", None) or {}
    return context


def declared_fields(serializer_class: type) -> dict[str, Any]:
    """The fields a serializer class declares, without instantiating it.

    Breaks if: ``SerializerMetaclass`` stops setting ``_declared_fields`` -- the system
    checks would see no ``ContextLookupField`` and check nothing.
    """
    fields: dict[str, Any] = getattr(serializer_class, "_declared_fields", {})
    return fields


# -- drf-spectacular ------------------------------------------------------------------------------


def map_serializer_field(auto_schema: Any, field: Any, direction: str) -> Any:
    """drf-spectacular's schema of a serializer field (``AutoSchema._map_serializer_field``).

    Breaks if: it is renamed -- the OpenAPI schema of ``ContextLookupField`` would fail to
    build (the OpenAPI tests fail).
    """
    return auto_schema._map_serializer_field(field, direction)


def map_model_field(auto_schema: Any, model_field: Any, direction: str) -> Any:
    """drf-spectacular's schema of a model field (``AutoSchema._map_model_field``).

    Breaks if: it is renamed -- as :func:`map_serializer_field`.
    """
    return auto_schema._map_model_field(model_field, direction)


def map_type_hint(auto_schema: Any, target: Any) -> Any:
    """drf-spectacular's schema of a callable's return type hint
    (``AutoSchema._map_response_type_hint``).

    Breaks if: it is renamed -- as :func:`map_serializer_field`.
    """
    return auto_schema._map_response_type_hint(target)


# -- Django: grouped QuerySets (CrossDBAggregate) ------------------------------------------------


def is_sliced(queryset: Any) -> bool:
    """Whether ``queryset`` is sliced (``[:10]``).

    Breaks if: ``Query.is_sliced`` is renamed -- a sliced source of a ``CrossDBAggregate``
    would then be grouped as if whole instead of being refused.
    """
    return bool(queryset.query.is_sliced)


def values_fields(queryset: Any) -> tuple[str, ...] | None:
    """The names a ``values()``/``values_list()`` QuerySet selects; ``None`` for instances.

    Breaks if: ``QuerySet._fields`` is renamed -- a ``values()`` source of a
    ``CrossDBAggregate`` would then be grouped again instead of being refused.
    """
    fields: tuple[str, ...] | None = queryset._fields
    return fields


def group_by(queryset: Any) -> Any:
    """What ``queryset`` groups by: ``None`` when it is not grouped.

    Breaks if: ``Query.group_by`` is renamed -- grouped QuerySets (``CrossDBAggregate``)
    would share a query with plain ones of the same model, and an already grouped source
    would not be refused.
    """
    return queryset.query.group_by


def annotation(queryset: Any, alias: str) -> Any:
    """The resolved annotation ``alias`` of ``queryset`` (its ``output_field`` is known).

    Breaks if: ``Query.annotations`` is renamed -- aggregate filters could not parse their
    values, nor OpenAPI type aggregate fields.
    """
    return queryset.query.annotations[alias]
