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
    then stay off under ``manage.py test`` (the pytest plugin still turns it on).
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
