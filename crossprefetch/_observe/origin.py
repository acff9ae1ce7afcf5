"""Where a query came from: the user's frame, the serializer field, the lookups it fetched.

Read while the query runs (in the execute wrapper), because the frames are gone afterwards.
What crossprefetch itself is doing -- the lookups a fetch is for, the field of ours that
renders which object -- comes from the context variables of
:mod:`crossprefetch._observe.activity`, set by the engine and the field. The frames give the
user's code location (``file:line``, the function) and, through
:func:`crossprefetch._compat.rendering_field`, the field of a plain DRF serializer. The
user's own frame is also searched for the model instance whose attribute values are the
query's parameters (``event.customer_id``): values are compared, never names of another
library's variables. Shared by ``crossprefetch.testing`` and the debug-toolbar panel;
imports neither.
"""

from __future__ import annotations

import os
import re
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field as _field
from functools import cache
from importlib.util import find_spec
from types import FrameType
from typing import Any

from crossprefetch import _compat
from crossprefetch._observe import activity

_COMPREHENSION = re.compile(r"\.<(?:listcomp|setcomp|dictcomp|genexpr)>")
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: crossprefetch's own frames that are never the origin of a query: the observers.
_OWN = tuple(
    os.path.join(_PACKAGE, name)
    for name in (f"_observe{os.sep}", f"testing{os.sep}", f"debug_toolbar{os.sep}", "_compat.py")
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
    #: The run of the fetch chain that sent the query (its key chunks share it).
    fetch: activity.Fetch | None = _field(default=None, compare=False, repr=False)

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


def origin_of(frame: FrameType, params: Any, stop: FrameType | None = None) -> Origin | None:
    """The origin of the query run by the cursor at ``frame`` (walking out to ``stop``).

    ``None`` when no frame up to ``stop`` is the user's (nor crossprefetch's engine).
    """
    user = next((f for f in _frames(frame, stop) if is_user_file(f.f_code.co_filename)), None)
    if user is None:
        return None
    fetch = activity.current_fetch()
    rendered = activity.current_rendering()
    if rendered is not None:
        field: str | None = rendered.field
        field_class: str | None = rendered.field_class
        model, keys = _instance_keys(rendered.instance, _hashable(params))
    else:
        field = field_class = None
        drf_field = _compat.rendering_field(user, stop) or _compat.reading_field(frame, user)
        if drf_field is not None:
            parent = getattr(drf_field, "parent", None)
            owner = type(parent).__name__ if parent is not None else "serializer"
            field = f"{owner}.{drf_field.field_name}"
            field_class = type(drf_field).__name__
        model, keys = _key_candidates(user, params)
        if not keys:  # the object a library read the key from: ticket.account, a field
            model, keys = next(
                (found for f in _frames(frame, user) if (found := _key_candidates(f, params))[1]),
                (None, frozenset()),
            )
    code = user.f_code
    return Origin(
        function=_qualname(user),
        filename=code.co_filename,
        lineno=user.f_lineno,
        line=_source_line(code.co_filename, user.f_lineno),
        field=field,
        field_class=field_class,
        model=model,
        keys=keys,
        lookups=fetch.lookups if fetch is not None else (),
        fetch=fetch,
    )


def _qualname(frame: FrameType) -> str:
    """``Class.method`` of the user's code running in ``frame``, comprehensions folded in."""
    qualname: str | None = getattr(frame.f_code, "co_qualname", None)  # Python 3.11+
    if qualname:
        return _COMPREHENSION.sub("", qualname.replace(".<locals>", ""))
    owner = frame.f_locals.get("self")
    name = frame.f_code.co_name
    if name.startswith("<") and frame.f_back is not None:  # a comprehension's own frame
        return _qualname(frame.f_back)
    return f"{type(owner).__name__}.{name}" if owner is not None else name


def _flat(params: Any) -> list[Any]:
    if isinstance(params, dict):
        return list(params.values())
    if isinstance(params, list | tuple):
        values: list[Any] = []
        for value in params:
            values.extend(_flat(value) if isinstance(value, list | tuple) else [value])
        return values
    return [] if params is None else [params]


def _hashable(params: Any) -> set[Any]:
    values = set()
    for value in _flat(params):
        try:
            values.add(value)
        except TypeError:
            continue
    return values


def _key_candidates(frame: FrameType, params: Any) -> tuple[str | None, frozenset[str]]:
    """``(app_label.Model, attribute names)`` of a model instance of the user's ``frame``
    whose attribute values are parameters of the query."""
    wanted = _hashable(params)
    if not wanted:
        return None, frozenset()
    for name, local in frame.f_locals.items():
        if name != "self":
            model, keys = _instance_keys(local, wanted)
            if keys:
                return model, keys
    return None, frozenset()


def _instance_keys(instance: Any, wanted: set[Any]) -> tuple[str | None, frozenset[str]]:
    """``(app_label.Model, attribute names)`` of ``instance`` holding one of ``wanted``."""
    models = sys.modules.get("django.db.models")
    if models is None or not wanted or not isinstance(instance, models.Model):
        return None, frozenset()
    names = set()
    for field in instance._meta.concrete_fields:
        try:
            value = instance.__dict__[field.attname]
            if value is not None and not isinstance(value, bool) and value in wanted:
                names.add(field.attname)
        except (KeyError, TypeError):
            continue
    if not names:
        return None, frozenset()
    return instance._meta.label, frozenset(names)


def _source_line(filename: str, lineno: int) -> str | None:
    import linecache

    line = linecache.getline(filename, lineno).strip()
    return line or None
