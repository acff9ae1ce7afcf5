"""The interface every layer of the fetch chain shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from crossprefetch._groups import Group


@dataclass
class Fetched:
    """A group's answer: one ``{key: row}`` dict per plan, in the group's order."""

    rows: list[dict[Any, Any]]
    #: queries sent to the group's database to build it
    queries: int = 0
    #: names of the plans whose rows are incomplete: their database failed (or was skipped
    #: by its circuit breaker) and the failure policy chose to go on; never cached
    degraded: frozenset[str] = frozenset()


class Fetch(Protocol):
    """Rows for a group: the database query, or a layer wrapping another ``Fetch``."""

    def __call__(self, group: Group) -> Fetched: ...


#: A layer: given the next ``Fetch`` down the chain, returns one that wraps it.
Layer = Callable[[Fetch], Fetch]
