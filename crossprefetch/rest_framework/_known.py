"""Rows a filter's remote query read, kept on the view for the page's lookup.

:class:`~crossprefetch.filters.CrossDBFilterBackend` reads, with the matching keys, the
fields of the matching rows (see ``filters._row_fields``); the page the filtered list
yields can only reference those rows, so ``CrossDBPrefetchMixin`` passes them to
``prefetch_cross_db(known=...)`` and the page's lookup needs no query of its own.

They are kept for the request that read them and for the spec they were read through:
another request on the same view instance, or a spec that changed under the same name,
gets none.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from crossprefetch.spec import CrossDBPrefetch

_ATTRIBUTE = "_crossprefetch_known"


class KnownRows(Mapping[Any, dict[str, Any]]):
    """The rows a filter's query read, ``{key: row}``: each row a new dict of the spec's
    fields, built when the page's lookup asks for it (``prefetch_cross_db(known=...)``).

    ``rows`` maps each key to its row as read: the key, then the values of ``fields``.
    """

    __slots__ = ("_read", "fields")

    def __init__(self, fields: tuple[str, ...], rows: dict[Any, tuple[Any, ...]]) -> None:
        self.fields = fields
        self._read = rows

    def __getitem__(self, key: Any) -> dict[str, Any]:
        return dict(zip(self.fields, self._read[key][1:], strict=True))

    def __contains__(self, key: object) -> bool:
        return key in self._read

    def __iter__(self) -> Iterator[Any]:
        return iter(self._read)

    def __len__(self) -> int:
        return len(self._read)


def remember_rows(
    view: Any, request: Any, name: str, spec: CrossDBPrefetch, rows: KnownRows
) -> None:
    """Keep ``rows``, read through ``spec`` (``cross_db_fields[name]``) for ``request``."""
    stored = getattr(view, _ATTRIBUTE, None)
    known = stored[1] if stored is not None and stored[0] is request else {}
    known[name] = (spec, rows)
    setattr(view, _ATTRIBUTE, (request, known))


def known_rows(
    view: Any, request: Any, specs: Mapping[str, CrossDBPrefetch]
) -> dict[str, KnownRows] | None:
    """The rows the view's filters read for ``request``, ``{name: KnownRows}``, for the
    specs the page is serialized with (the same spec under the same name); or ``None``."""
    stored = getattr(view, _ATTRIBUTE, None)
    if stored is None or stored[0] is not request:
        return None
    return {name: rows for name, (spec, rows) in stored[1].items() if specs.get(name) == spec}
