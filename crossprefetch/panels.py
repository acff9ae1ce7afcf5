"""``CrossDBPrefetchPanel``: what each cross-database lookup of a request cost.

A django-debug-toolbar panel. Add ``"crossprefetch.panels.CrossDBPrefetchPanel"`` to
``DEBUG_TOOLBAR_PANELS``; crossprefetch never imports this module itself, so the toolbar
stays an optional dependency.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from debug_toolbar.panels import Panel
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from crossprefetch.cache import failed_invalidations
from crossprefetch.lookup import Lookup, LookupStats
from crossprefetch.signals import invalidation_failed, lookups_prefetched

#: The panel instrumenting the request that runs in this context: lookups built without a
#: ``request`` (``prefetch_cross_db(objects, specs)`` in a plain view) are attributed by it.
_current_panel: ContextVar[CrossDBPrefetchPanel | None] = ContextVar(
    "crossprefetch_panel", default=None
)


class CrossDBPrefetchPanel(Panel):
    """Each lookup built during the request: database, keys, queries, time, cache, fallbacks,
    and whether it was degraded by a failing database (with the error).

    ``lookups_prefetched`` is one process-wide signal, so every panel of every request in
    flight (threads, ASGI tasks) hears every prefetch. A panel keeps a batch only when it
    was built for its own request (the signal's ``request``, unwrapped from DRF's
    ``Request``, is the toolbar's), or without a request in its own context.

    The ``LookupStats`` objects are kept, not copied: ``ContextLookupField`` counts
    fallbacks on them while the response is serialized, after the signal was sent, so the
    numbers are only final when :meth:`generate_stats` reads them.
    """

    is_async = True
    title = _("Cross-DB prefetch")
    template = "crossprefetch/panel.html"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batches: list[list[LookupStats]] = []
        self._failed_invalidations: list[dict[str, Any]] = []
        self._token: Any = None

    def get_stats(self) -> dict[str, Any]:
        """What :meth:`generate_stats` recorded, typed (the toolbar's method is not)."""
        stats: dict[str, Any] = super().get_stats()  # type: ignore[no-untyped-call, unused-ignore]
        return stats

    @property
    def nav_subtitle(self) -> str:
        stats = self.get_stats()
        lookups = len(stats.get("lookups", ()))
        queries = stats.get("queries", 0)
        return (
            ngettext("%(lookups)d lookup", "%(lookups)d lookups", lookups) % {"lookups": lookups}
            + ", "
            + ngettext("%(queries)d query", "%(queries)d queries", queries) % {"queries": queries}
        )

    def enable_instrumentation(self) -> None:
        if self._token is None:
            self._token = _current_panel.set(self)
        lookups_prefetched.connect(self._receive)
        invalidation_failed.connect(self._receive_failed_invalidation)

    def disable_instrumentation(self) -> None:
        lookups_prefetched.disconnect(self._receive)
        invalidation_failed.disconnect(self._receive_failed_invalidation)
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
        elif getattr(request, "_request", request) is not self.toolbar.request:
            return
        self._batches.append([lookup.stats for lookup in lookups.values()])

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
        rows: list[dict[str, Any]] = []
        queries = 0
        time_ms = 0.0
        for call, batch in enumerate(self._batches, start=1):
            counted: set[frozenset[str]] = set()
            for stats in batch:
                rows.append({**stats.as_dict(), "call": call})
                group = frozenset((stats.name, *stats.shared_with))
                if group not in counted:  # lookups sharing a query report it each
                    counted.add(group)
                    queries += stats.queries
                    time_ms += stats.time_ms
        self._batches = []
        self.record_stats(  # type: ignore[no-untyped-call, unused-ignore]
            {
                "lookups": rows,
                "calls": len({row["call"] for row in rows}),
                "queries": queries,
                "time_ms": time_ms,
                "keys_asked": sum(row["keys_asked"] for row in rows),
                "keys_missing": sum(row["keys_missing"] for row in rows),
                "fallbacks": sum(row["fallbacks"] for row in rows),
                "degraded": [row["name"] for row in rows if row["degraded"]],
                "databases": sorted({row["alias"] for row in rows}),
                "failed_invalidations": self._failed_invalidations,
                "failed_invalidations_total": sum(failed_invalidations().values()),
            }
        )
        self._failed_invalidations = []
