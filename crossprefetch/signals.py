"""Signals crossprefetch sends; the debug-toolbar panel listens to them."""

from __future__ import annotations

from django.dispatch import Signal

#: Sent after :func:`~crossprefetch.prefetch_cross_db` built lookups for a non-empty batch,
#: with ``lookups`` (``{name: Lookup}``) and ``request`` (or ``None``).
lookups_prefetched = Signal()
