"""What crossprefetch is doing in the current context: the fetch under way, the field rendering.

The engine says which lookups a fetch is for (:func:`fetching`), ``ContextLookupField``
which field renders which object while it may query (:func:`rendering`). Query capture
reads both to tell where a query came from (:mod:`crossprefetch._observe.origin`), instead
of reading the engine's and DRF's local variables off the stack.

Context variables, so that they follow the work wherever it runs: into the thread of
``sync_to_async`` (asgiref copies the context), into crossprefetch's own threads (they run
their work under ``contextvars.copy_context().run``), and never into another request's.
Setting one costs a context-variable set and reset; nothing else is done when no capture
is watching.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

__all__ = ["Fetch", "Rendering", "current_fetch", "current_rendering", "fetching", "rendering"]


@dataclass(frozen=True, eq=False)
class Fetch:
    """One run of the fetch chain for a group of lookups.

    Compared by identity: the queries of one fetch (a key set split into chunks) share a
    shape by design and are one access, not an N+1; those of two fetches are two.
    """

    lookups: tuple[str, ...]


@dataclass(frozen=True)
class Rendering:
    """A serializer field rendering one object: ``Parent.field_name`` of ``field_class``."""

    field: str
    field_class: str
    instance: Any


_fetch: ContextVar[Fetch | None] = ContextVar("crossprefetch_fetch", default=None)
_rendering: ContextVar[Rendering | None] = ContextVar("crossprefetch_rendering", default=None)


@contextmanager
def fetching(lookups: tuple[str, ...]) -> Iterator[Fetch]:
    """The queries sent in this block fetch the rows of ``lookups`` (one run of the chain)."""
    fetch = Fetch(lookups)
    token = _fetch.set(fetch)
    try:
        yield fetch
    finally:
        _fetch.reset(token)


@contextmanager
def rendering(field: Any, instance: Any) -> Iterator[None]:
    """The queries sent in this block render ``field`` (a bound DRF field) for ``instance``."""
    parent = getattr(field, "parent", None)
    owner = type(parent).__name__ if parent is not None else "serializer"
    token = _rendering.set(Rendering(f"{owner}.{field.field_name}", type(field).__name__, instance))
    try:
        yield
    finally:
        _rendering.reset(token)


def current_fetch() -> Fetch | None:
    """The fetch the current context runs, if any."""
    return _fetch.get()


def current_rendering() -> Rendering | None:
    """The field the current context renders while it may query, if any."""
    return _rendering.get()
