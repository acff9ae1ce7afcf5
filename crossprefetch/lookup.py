"""``Lookup``: what :func:`~crossprefetch.prefetch_cross_db` returns for one spec."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Final

from crossprefetch._keys.normalize import INVALID, KeyReader, Normalizer, _Sentinel, key_reader

if TYPE_CHECKING:
    from crossprefetch.spec import CrossDBPrefetch

#: The object references no row: a null key, or a key with no remote row.
MISSING: Final = _Sentinel("MISSING")
#: The object was not among those the lookup was built for.
NOT_PREFETCHED: Final = _Sentinel("NOT_PREFETCHED")
_UNALIASED: Final = _Sentinel("UNALIASED")


@dataclass
class LookupStats:
    """What building one lookup cost; shown by the debug-toolbar panel and in logs."""

    name: str
    model: str
    alias: str
    keys_asked: int = 0
    keys_found: int = 0
    keys_invalid: int = 0
    queries: int = 0
    shared_with: list[str] = field(default_factory=list)
    #: how many other concurrent requests shared this lookup's query (``coalesce=``); its
    #: ``queries`` are those it sent itself, ``0`` when another request's query served it
    coalesced_with: int = 0
    time_ms: float = 0.0
    cache_hits: int = 0
    cache_misses: int = 0
    cache_errors: int = 0
    #: the cache's circuit breaker was open: the cache was not asked at all
    cache_skipped: bool = False
    fallbacks: int = 0
    #: the database failed and the spec degrades: every key reads as missing
    degraded: bool = False
    #: degraded without asking: the database's circuit breaker was open
    breaker_open: bool = False
    #: why the lookup degraded (the database's error), for the panel and logs
    error: str = ""

    @property
    def keys_missing(self) -> int:
        return self.keys_asked - self.keys_found

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "keys_missing": self.keys_missing}


class Lookup(Mapping[Any, Any]):
    """A read-only mapping from remote key to row (or list of rows when ``many=True``).

    Keys are normalised like the remote field would store them, so ``lookup["42"]`` and
    ``lookup[42]`` find the same customer. :meth:`get_for` reads the key off a serialized
    object directly, which is what :class:`~crossprefetch.ContextLookupField` does.
    """

    __slots__ = (
        "_aliases",
        "_asked",
        "_normalize",
        "_read_key",
        "_refuses_bools",
        "_rows",
        "name",
        "spec",
        "stats",
    )

    def __init__(
        self,
        name: str,
        spec: CrossDBPrefetch,
        rows: dict[Any, Any],
        asked: set[Hashable],
        aliases: dict[Hashable, Any],
        read_key: KeyReader | None,
        normalize: Normalizer,
        stats: LookupStats,
    ) -> None:
        self.name = name
        self.spec = spec
        self.stats = stats
        self._rows = rows
        self._asked = asked
        self._aliases = aliases
        self._read_key = read_key
        self._normalize = normalize
        # True == 1 in a dict: a bool key, which the remote field refuses, would find the row
        # of 1 or 0 fetched for other objects. Checked per object only when one of those was.
        self._refuses_bools = (0 in asked or 1 in asked) and normalize(True) is INVALID

    def __repr__(self) -> str:
        return f"<Lookup {self.name!r}: {len(self._rows)} key(s) of {self.spec.source_label}>"

    def __getitem__(self, key: Any) -> Any:
        if self._refuses_bools and (key is True or key is False):
            raise KeyError(key)
        try:
            return self._rows[key]
        except (KeyError, TypeError):
            pass
        normalized = self._normalize(key) if key is not None else None
        if normalized is None or normalized is INVALID:
            raise KeyError(key)
        return self._rows[normalized]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def many(self) -> bool:
        return self.spec.many

    @property
    def degraded(self) -> bool:
        """Whether the database failed and every key not served by the cache reads as missing.

        Only with ``on_error="degrade"``; see :attr:`LookupStats.error` for why.
        """
        return self.stats.degraded

    def get_for(self, obj: Any) -> Any:
        """The row(s) ``obj`` references, :data:`MISSING`, or :data:`NOT_PREFETCHED`."""
        read_key = self._read_key
        if read_key is None:  # built for no object at all
            return NOT_PREFETCHED
        raw = read_key(obj)
        if self._refuses_bools and (raw is True or raw is False):
            return MISSING
        try:
            return self._rows[raw]  # the common case: the raw key is the normalised key
        except KeyError:
            pass
        except TypeError:
            raise TypeError(
                f"Lookup {self.name!r}: the key {raw!r} of {obj!r} is not hashable; "
                "CrossDBPrefetch(key=...) must give a value, or a tuple for a composite key."
            ) from None
        key = self._aliases.get(raw, _UNALIASED)
        if key is not _UNALIASED:
            return MISSING if key is INVALID else self._rows.get(key, MISSING)
        if raw is None or raw in self._asked:
            return MISSING
        return NOT_PREFETCHED

    def covers(self, objects: Iterable[Any]) -> bool:
        """Whether the lookup was built for the current keys of all of ``objects``."""
        read_key = self._read_key
        if read_key is None:
            return not any(True for _ in objects)
        asked = self._asked
        try:
            return all(read_key(obj) in asked for obj in objects)
        except (AttributeError, KeyError, TypeError):
            return False

    def missing_keys(self, limit: int | None = None) -> list[Any]:
        """The keys asked that have no remote row (no rows, for to-many), in key order.

        Null keys and keys the remote field cannot hold (counted as invalid) are left out.
        """
        missing = set()
        for raw in self._asked:
            if raw is None:
                continue
            key = self._aliases.get(raw, raw)
            if key is INVALID:
                continue
            if (not self._rows.get(key)) if self.spec.many else key not in self._rows:
                missing.add(key)
        try:
            ordered = sorted(missing)
        except TypeError:
            ordered = sorted(missing, key=repr)
        return ordered if limit is None else ordered[:limit]

    def find(self, obj: Any) -> Any:
        """The row(s) ``obj`` references, or :data:`MISSING`, for any object.

        Unlike :meth:`get_for`, also answers for objects the lookup was not built for, as
        long as their key is among the keys fetched.
        """
        try:
            return self[key_reader(self.spec.key, obj)(obj)]
        except KeyError:
            return MISSING
