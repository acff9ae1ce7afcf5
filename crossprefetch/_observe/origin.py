"""Where a query came from: the user's frame, the serializer field, the object it was about.

Read off the live frames while the query runs (an execute wrapper's caller), because the
locals are gone afterwards: which serializer field was rendering, and which attribute of
which model instance holds a parameter of the query (the key an N+1 looks up per row).
Shared by ``crossprefetch.testing`` and the debug-toolbar panel; imports neither.
"""

from __future__ import annotations

import os
import re
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib.util import find_spec
from types import FrameType
from typing import Any

_COMPREHENSION = re.compile(r"\.<(?:listcomp|setcomp|dictcomp|genexpr)>")
_HERE = os.path.dirname(os.path.abspath(__file__))
#: crossprefetch's own frames that are never the origin of a query.
_OWN = tuple(
    os.path.join(_HERE, name)
    for name in ("testing", "debug_toolbar", "_origin.py", "_capture.py", "_repeats.py")
)


@dataclass(frozen=True)
class Origin:
    """The code that issued a query.

    ``function`` is the qualified name of the innermost frame outside Django, DRF, the
    debug toolbar and the standard library (``NaiveSerializer.get_customer_name``), at
    ``filename:lineno``. ``field`` names the serializer field being rendered, if any
    (``NaiveSerializer.customer_name``). ``keys`` are attribute names of the model instance
    in that frame (``event``) whose value is a parameter of the query, and ``model`` its
    ``app_label.Model``: the candidates for ``CrossDBPrefetch(key=...)``.
    """

    function: str
    filename: str
    lineno: int
    line: str | None = None
    field: str | None = None
    field_class: str | None = None
    model: str | None = None
    keys: frozenset[str] = frozenset()
    #: The lookups whose rows the query fetched, when crossprefetch's engine issued it.
    lookups: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        """``file:line``, the file relative to the working directory when it is inside it."""
        return f"{display_path(self.filename)}:{self.lineno}"

    def describe(self) -> str:
        """``Serializer.method (field Serializer.name, SerializerMethodField) at file:line``."""
        text = self.function
        if self.field is not None:
            kind = f", {self.field_class}" if self.field_class else ""
            text += f" (serializer field {self.field}{kind})"
        return f"{text} at {self.where}"


def display_path(filename: str) -> str:
    """``filename`` relative to the working directory if it lies inside, else as it is."""
    try:
        relative = os.path.relpath(filename)
    except ValueError:  # another drive
        return filename
    return filename if relative.startswith(os.pardir) else relative


def cursor_caller(frame: FrameType) -> FrameType:
    """The frame of Django's cursor that runs the wrappers, whatever wrappers sit between.

    Other execute wrappers (crossprefetch's own cache invalidation, django-read-only, ...)
    may run before this one; their frames say nothing about who issued the query.
    """
    current: FrameType | None = frame
    while current is not None:
        if current.f_code.co_name == "_execute_with_wrappers":
            return current
        current = current.f_back
    return frame


@cache
def library_paths() -> tuple[str, ...]:
    """Directories whose frames are never a query's origin: the standard library, installed
    packages (``site-packages``), and Django, DRF and the toolbar wherever they are."""
    installed = sysconfig.get_paths()
    paths = {installed[name] for name in ("stdlib", "platstdlib", "purelib", "platlib")}
    for package in ("django", "asgiref", "rest_framework", "debug_toolbar"):
        spec = find_spec(package)
        if spec is not None and spec.origin:
            paths.add(os.path.dirname(spec.origin))
    return tuple(os.path.join(path, "") for path in paths)


def is_user_file(filename: str) -> bool:
    """Whether a frame of ``filename`` is the user's code (or crossprefetch's engine)."""
    return not filename.startswith(library_paths()) and not filename.startswith(_OWN)


def _frames(frame: FrameType | None, stop: FrameType | None) -> Iterator[FrameType]:
    while frame is not None:
        yield frame
        if frame is stop:
            return
        frame = frame.f_back


def lookups_fetched(frame: FrameType, stop: FrameType | None = None) -> tuple[str, ...]:
    """The names of the lookups whose rows the query at ``frame`` fetches, if the bottom of
    the fetch chain issued it (its ``group`` of plans names them)."""
    database = sys.modules.get("crossprefetch._fetch.database")
    if database is None:
        return ()
    code = database.query_database.__code__
    for depth, current in enumerate(_frames(frame, stop)):
        if current.f_code is code:
            plans = getattr(current.f_locals.get("group"), "plans", ())
            return tuple(str(getattr(plan, "name", "?")) for plan in plans)
        if depth > 40:
            break
    return ()


def origin_of(frame: FrameType, params: Any, stop: FrameType | None = None) -> Origin | None:
    """The origin of the query run by the cursor at ``frame`` (walking out to ``stop``)."""
    user: FrameType | None = None
    field: Any = None
    caller = cursor_caller(frame)
    for current in _frames(caller, stop):
        if user is None and is_user_file(current.f_code.co_filename):
            user = current
        if field is None:
            field = _serializer_field(current)
        if user is not None and field is not None:
            break
    if user is None:
        return None
    model, keys = _key_candidates(user, params)
    field_name = field_class = None
    if field is not None:
        parent = getattr(field, "parent", None)
        owner = type(parent).__name__ if parent is not None else "serializer"
        field_name = f"{owner}.{field.field_name}"
        field_class = type(field).__name__
    code = user.f_code
    return Origin(
        function=_qualname(user),
        filename=code.co_filename,
        lineno=user.f_lineno,
        line=_source_line(code.co_filename, user.f_lineno),
        field=field_name,
        field_class=field_class,
        model=model,
        keys=keys,
        lookups=lookups_fetched(caller, stop),
    )


def _qualname(frame: FrameType) -> str:
    qualname: str | None = getattr(frame.f_code, "co_qualname", None)  # Python 3.11+
    if qualname:
        return _COMPREHENSION.sub("", qualname.replace(".<locals>", ""))
    owner = frame.f_locals.get("self")
    name = frame.f_code.co_name
    if name.startswith("<") and frame.f_back is not None:  # a comprehension's own frame
        return _qualname(frame.f_back)
    return f"{type(owner).__name__}.{name}" if owner is not None else name


def _serializer_field(frame: FrameType) -> Any:
    """The DRF field (not a whole serializer) whose method runs in ``frame``, if any."""
    fields = sys.modules.get("rest_framework.fields")
    serializers = sys.modules.get("rest_framework.serializers")
    if fields is None or serializers is None:
        return None
    owner = frame.f_locals.get("self")
    if (
        isinstance(owner, fields.Field)
        and not isinstance(owner, serializers.BaseSerializer)
        and getattr(owner, "field_name", None)
    ):
        return owner
    return None


def _flat(params: Any) -> list[Any]:
    if isinstance(params, dict):
        return list(params.values())
    if isinstance(params, list | tuple):
        values: list[Any] = []
        for value in params:
            values.extend(_flat(value) if isinstance(value, list | tuple) else [value])
        return values
    return [] if params is None else [params]


def _key_candidates(frame: FrameType, params: Any) -> tuple[str | None, frozenset[str]]:
    """``(app_label.Model, attribute names)`` of a model instance of ``frame`` whose
    attribute values are parameters of the query."""
    models = sys.modules.get("django.db.models")
    if models is None:
        return None, frozenset()
    values = []
    for value in _flat(params):
        try:
            hash(value)
        except TypeError:
            continue
        values.append(value)
    if not values:
        return None, frozenset()
    wanted = set(values)
    for name, local in frame.f_locals.items():
        if name == "self" or not isinstance(local, models.Model):
            continue
        names = set()
        for field in local._meta.concrete_fields:
            try:
                value = local.__dict__[field.attname]
                if value is not None and not isinstance(value, bool) and value in wanted:
                    names.add(field.attname)
            except (KeyError, TypeError):
                continue
        if names:
            return local._meta.label, frozenset(names)
    return None, frozenset()


def _source_line(filename: str, lineno: int) -> str | None:
    import linecache

    line = linecache.getline(filename, lineno).strip()
    return line or None
