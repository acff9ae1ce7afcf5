"""Signals crossprefetch sends; the debug-toolbar panel listens to them."""

from __future__ import annotations

from django.dispatch import Signal

#: Sent after :func:`~crossprefetch.prefetch_cross_db` built lookups for a non-empty batch,
#: with ``lookups`` (``{name: Lookup}``) and ``request`` (or ``None``).
lookups_prefetched = Signal()

#: Sent when an invalidation could not be written to a cache (the cache is down, say), with
#: ``alias`` (the cache), ``models`` (sorted ``app_label.model`` labels) and ``error`` (a
#: ``ConnectionError`` when the cache was skipped because its circuit breaker is open). Other
#: processes sharing that cache may serve the models' old rows until their entries expire.
invalidation_failed = Signal()
