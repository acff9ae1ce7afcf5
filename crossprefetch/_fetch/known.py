"""The outermost layer: rows the caller has already read are not fetched again.

A list filtered by its remote rows (:class:`~crossprefetch.filters.CrossDBFilterBackend`)
reads, in the filter's one remote query, the fields of every matching row; the page that
the filtered list yields can only reference those rows. Passed to the engine as ``known``,
they answer the page's keys, and only keys they lack go down the chain (to the cache, the
database): a filtered page costs one remote query, not two.
"""

from __future__ import annotations

from typing import Any

from crossprefetch._fetch.base import Fetch, Fetched
from crossprefetch._groups import Group
from crossprefetch._plans import Plan


class KnownLayer:
    """Answer each plan's keys from its ``known`` rows; fetch only the rest."""

    def __init__(self, inner: Fetch) -> None:
        self.inner = inner

    def __call__(self, group: Group) -> Fetched:
        if all(plan.known is None for plan in group.plans):
            return self.inner(group)
        rows: list[dict[Any, Any]] = []
        missing: dict[Plan, set[Any]] = {}
        for plan in group.plans:
            known = plan.known
            if known is None:
                rows.append(plan.empty_rows())
                missing[plan] = plan.keys
                continue
            rows.append({key: known[key] for key in plan.keys if key in known})
            rest = plan.keys.difference(rows[-1])
            if rest:
                missing[plan] = rest
        if not missing:
            return Fetched(rows)
        fetched = self.inner(group.narrowed(missing))
        answered = iter(fetched.rows)
        for index, plan in enumerate(group.plans):
            if plan in missing:
                rows[index].update(next(answered))
        return Fetched(rows, fetched.queries, fetched.degraded)
