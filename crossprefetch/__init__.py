"""crossprefetch: declarative cross-database prefetching for Django REST framework."""

from __future__ import annotations

__version__ = "0.1.0"
__all__: list[str] = []
