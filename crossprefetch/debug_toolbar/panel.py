"""``CrossDBPrefetchPanel``: what each cross-database lookup of a request cost, and the N+1
queries the request sent instead.

A django-debug-toolbar panel. Add ``"crossprefetch.panels.CrossDBPrefetchPanel"`` to
``DEBUG_TOOLBAR_PANELS``; crossprefetch never imports this module itself, so the toolbar
stays an optional dependency.
"""

from __future__ import annotations

from collections import Counter
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from debug_toolbar.panels import Panel
from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.template import Context, Engine
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from crossprefetch import _compat
from crossprefetch._observe.capture import CapturedQuery, QueryCapture
from crossprefetch._observe.repeats import Query, find_repeats, lookup_name
from crossprefetch.aggregate import CrossDBAggregate
from crossprefetch.cache import failed_invalidations
from crossprefetch.conf import conf
from crossprefetch.lookup import Lookup, LookupStats
from crossprefetch.signals import invalidation_failed, lookups_prefetched

#: The panel instrumenting the request that runs in this context: lookups built without a
#: ``request`` (``prefetch_cross_db(objects, specs)`` in a plain view) are attributed by it.
_current_panel: ContextVar[CrossDBPrefetchPanel | None] = ContextVar(
    "crossprefetch_panel", default=None
)

TEMPLATE = Path(__file__).with_name("panel.html")
#: How many of a lookup's missing keys the panel lists.
MISSING_KEYS_SHOWN = 5


def _lookups(query: CapturedQuery) -> tuple[str, ...]:
    """The lookups whose rows ``query`` fetched (none when the engine did not send it)."""
    return query.issuer.lookups if query.issuer is not None else ()


def _request_queries(per_alias: dict[str, int]) -> str:
    """``22 queries (default 21, timeseries 1)``; ``0 queries``."""
    total = sum(per_alias.values())
    text = ngettext("%(queries)d query", "%(queries)d queries", total) % {"queries": total}
    if total:
        text += " (" + ", ".join(f"{alias} {count}" for alias, count in per_alias.items()) + ")"
    return text


def _per_alias(queries: list[CapturedQuery]) -> dict[str, int]:
    """How many of ``queries`` ran on each alias, in the order of ``DATABASES``."""
    counts = Counter(query.alias for query in queries)
    return {alias: counts[alias] for alias in connections if alias in counts}


def _aggregates(lookup: Lookup) -> list[str]:
    """``name = Aggregate(...)`` of each aggregate a lookup computes per key (if any)."""
    spec = lookup.spec
    if not isinstance(spec, CrossDBAggregate):
        return []
    return [f"{name} = {aggregate!r}" for name, aggregate in spec.aggregates.items()]


class CrossDBPrefetchPanel(Panel):
    """Each lookup built during the request (database, keys, queries, time, cache,
    fallbacks, missing keys, SQL, whether a failing database degraded it, with the error)
    and the queries repeated per row (N+1) with their origin.

    ``lookups_prefetched`` is one process-wide signal, so every panel of every request in
    flight (threads, ASGI tasks) hears every prefetch. A panel keeps a batch only when it
    was built for its own request (the signal's ``request``, unwrapped from DRF's
    ``Request``, is the toolbar's), or without a request in its own context.

    The queries are those a :class:`~crossprefetch.testing.QueryCapture` sees while the
    toolbar instruments the request -- the same capture, and so the same rule of what
    counts, as ``crossprefetch.testing`` (no transaction control, no connection setup),
    including the queries crossprefetch's own threads send for the request.

    The ``LookupStats`` objects are kept, not copied: ``ContextLookupField`` counts
    fallbacks on them while the response is serialized, after the signal was sent, so the
    numbers are only final when :meth:`generate_stats` reads them.
    """

    is_async = True
    title = _("Cross-DB prefetch")
    template = "crossprefetch/debug_toolbar/panel.html"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batches: list[list[tuple[LookupStats, list[str], list[str]]]] = []
        self._capture: QueryCapture | None = None
        self._queries: list[CapturedQuery] = []
        self._failed_invalidations: list[dict[str, Any]] = []
        self._token: Any = None

    def get_stats(self) -> dict[str, Any]:
        """What :meth:`generate_stats` recorded, typed (the toolbar's method is not)."""
        stats: dict[str, Any] = super().get_stats()  # type: ignore[no-untyped-call, unused-ignore]
        return stats

    @property
    def content(self) -> str:
        """Rendered from the template next to this module, with the project's engine."""
        template = Engine.get_default().from_string(TEMPLATE.read_text(encoding="utf-8"))
        return template.render(Context(self.get_stats()))

    @property
    def nav_subtitle(self) -> str:
        """``2 lookups · 22 queries (default 21, timeseries 1) · 1 N+1``: the lookups built,
        every query the request sent on each alias (whoever sent it), the N+1 patterns."""
        stats = self.get_stats()
        lookups = len(stats.get("lookups", ()))
        repeats = len(stats.get("repeats", ()))
        parts = [
            ngettext("%(lookups)d lookup", "%(lookups)d lookups", lookups) % {"lookups": lookups},
            _request_queries(stats.get("request_queries", {})),
        ]
        if repeats:
            parts.append(_("%(repeats)d N+1") % {"repeats": repeats})
        return " \u00b7 ".join(parts)

    def enable_instrumentation(self) -> None:
        if self._token is None:
            self._token = _current_panel.set(self)
        lookups_prefetched.connect(self._receive)
        invalidation_failed.connect(self._receive_failed_invalidation)
        if self._capture is None:
            self._capture = QueryCapture(label="CrossDBPrefetchPanel", issuers=True)
            self._capture.__enter__()

    def disable_instrumentation(self) -> None:
        lookups_prefetched.disconnect(self._receive)
        invalidation_failed.disconnect(self._receive_failed_invalidation)
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.__exit__(None, None, None)
            self._queries.extend(capture.captured.queries)
        if self._token is not None:
            try:
                _current_panel.reset(self._token)
            except ValueError:  # disabled from another context than the one it was enabled in
                _current_panel.set(None)
            self._token = None

    def _receive(
        self,
        sender: Any,
        *,
        lookups: dict[str, Lookup],
        request: HttpRequest | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None:
            if _current_panel.get() is not self:
                return
        elif _compat.http_request(request) is not self.toolbar.request:
            return
        self._batches.append(
            [
                (
                    lookup.stats,
                    [repr(key) for key in lookup.missing_keys(MISSING_KEYS_SHOWN)],
                    _aggregates(lookup),
                )
                for lookup in lookups.values()
            ]
        )

    def _receive_failed_invalidation(
        self, sender: Any, *, alias: str, models: list[str], error: BaseException, **kwargs: Any
    ) -> None:
        """A write of this request (in its context) whose invalidation the cache refused."""
        if _current_panel.get() is self:
            self._failed_invalidations.append(
                {
                    "alias": alias,
                    "models": list(models),
                    "error": f"{type(error).__name__}: {error}",
                }
            )

    def generate_stats(self, request: HttpRequest, response: HttpResponse) -> None:
        by_lookup: dict[str, list[CapturedQuery]] = {}
        for query in self._queries:
            for name in _lookups(query):
                by_lookup.setdefault(name, []).append(query)
        rows: list[dict[str, Any]] = []
        queries = 0
        time_ms = sql_ms = 0.0
        for call, batch in enumerate(self._batches, start=1):
            counted: set[frozenset[str]] = set()
            for stats, missing, aggregates in batch:
                own = by_lookup.pop(stats.name, [])
                lookup_sql_ms = sum(query.time for query in own) * 1000
                row = {
                    **stats.as_dict(),
                    "call": call,
                    "missing_keys": missing,
                    "aggregates": aggregates,
                    "sql": [{"sql": q.sql, "time_ms": q.time * 1000} for q in own],
                    "sql_ms": lookup_sql_ms,
                    "rows_ms": max(stats.time_ms - lookup_sql_ms, 0.0),
                }
                rows.append(row)
                group = frozenset((stats.name, *stats.shared_with))
                if group not in counted:  # lookups sharing a query report it each
                    counted.add(group)
                    queries += stats.queries
                    time_ms += stats.time_ms
                    sql_ms += lookup_sql_ms
        threshold = conf.N_PLUS_ONE_THRESHOLD
        repeats = find_repeats(
            (Query(q.alias, q.sql, q.raw_sql, q.issuer) for q in self._queries), threshold
        )
        failed = self._failed_invalidations
        request_queries = _per_alias(self._queries)
        self._batches = []
        self._queries = []
        self._failed_invalidations = []
        self.record_stats(  # type: ignore[no-untyped-call, unused-ignore]
            {
                "lookups": rows,
                "calls": len({row["call"] for row in rows}),
                "queries": queries,
                "request_queries": request_queries,
                "request_queries_total": sum(request_queries.values()),
                "time_ms": time_ms,
                "sql_ms": sql_ms,
                "rows_ms": max(time_ms - sql_ms, 0.0),
                "keys_asked": sum(row["keys_asked"] for row in rows),
                "keys_missing": sum(row["keys_missing"] for row in rows),
                "fallbacks": sum(row["fallbacks"] for row in rows),
                "degraded": [row["name"] for row in rows if row["degraded"]],
                "databases": sorted({row["alias"] for row in rows}),
                "failed_invalidations": failed,
                "failed_invalidations_total": sum(failed_invalidations().values()),
                "threshold": threshold,
                "repeats": [
                    {
                        **repeat.as_dict(),
                        "lookup": lookup_name(repeat.model) if repeat.model else None,
                    }
                    for repeat in repeats
                ],
            }
        )
