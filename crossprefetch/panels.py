"""The documented import path of the debug-toolbar panel.

``DEBUG_TOOLBAR_PANELS = [..., "crossprefetch.panels.CrossDBPrefetchPanel"]``; the panel
lives in :mod:`crossprefetch.debug_toolbar.panel`.
"""

from __future__ import annotations

from crossprefetch.debug_toolbar.panel import CrossDBPrefetchPanel

__all__ = ["CrossDBPrefetchPanel"]
