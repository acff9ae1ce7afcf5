"""The interface every layer of the fetch chain shares."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from crossprefetch._fetch.errors import Failure
    from crossprefetch._identity import Identity
    from crossprefetch.spec import CrossDBPrefetch


@dataclass
class Fetched:
    """An answer: for a group of lookups, one ``{key: row}`` dict per plan, in the group's
    order; for a read (:mod:`crossprefetch._fetch.reads`), one list of rows."""

    rows: list[Any]
    #: queries sent to the group's database to build it
    queries: int = 0
    #: names of the plans whose rows are incomplete: their database failed (or was skipped
    #: by its circuit breaker) and the failure policy chose to go on; never cached
    degraded: frozenset[str] = frozenset()


class Unit(Protocol):
    """What the layers that do not read keys ask of what they fetch: a
    :class:`~crossprefetch._groups.Group` of lookups, or a
    :class:`~crossprefetch._fetch.reads.Read` (a filter's or an ordering's rows).

    The failure policy, coalescing and the outage layer serve both through this interface
    alone; the layers that read keys (the known rows, the cache of rows per key, the query
    by keys) take groups only.
    """

    @property
    def alias(self) -> str: ...

    @property
    def spec(self) -> CrossDBPrefetch: ...

    @property
    def identity(self) -> Identity | None:
        """What the answer depends on; ``None``: shared with no other request."""

    @property
    def empty(self) -> bool:
        """Nothing to ask the database (a group without keys)."""

    @property
    def size(self) -> int:
        """How much a shared query grows when this unit joins it (a group: its keys)."""

    @property
    def names(self) -> Sequence[str]:
        """What the unit answers, for messages: lookup names, filter names."""

    @property
    def kind(self) -> str:
        """What the names are, for messages: ``"lookups"``, ``"filters"``."""

    @property
    def outcome(self) -> str:
        """What degrading means to them, for messages."""

    def window(self) -> float | None:
        """Seconds this unit may wait for others to share its query; ``None``: never."""

    def degraded(self, failure: Failure) -> Fetched:
        """The answer when the database is out and the spec degrades (or an exception)."""

    def combined(self, members: Sequence[Any]) -> Any:
        """One unit asking what ``members`` (of this unit's identity) ask."""

    def shares(self, fetched: Fetched, members: Sequence[Any]) -> list[Fetched]:
        """Each member's answer out of the combined unit's ``fetched``; never an object one
        request could change under another."""

    def coalesced_with(self, others: int) -> None:
        """Record that ``others`` requests shared this unit's query."""


class Fetch(Protocol):
    """The answer for a unit: the database query, or a layer wrapping another ``Fetch``."""

    def __call__(self, unit: Any, /) -> Fetched: ...


#: A layer: given the next ``Fetch`` down the chain, returns one that wraps it.
Layer = Callable[[Fetch], Fetch]
