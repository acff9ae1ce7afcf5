"""The view classes of the root URLconf: all of them, or those that declare lookups."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver


def routed_views() -> Iterator[type]:
    """Every class-based view the root URLconf routes to, once each.

    Raises whatever importing the URLconf raises; callers decide how loud to be.
    """
    stack: list[Any] = list(get_resolver().url_patterns)
    seen: set[type] = set()
    while stack:
        pattern = stack.pop()
        if isinstance(pattern, URLResolver):
            stack.extend(pattern.url_patterns)
            continue
        if not isinstance(pattern, URLPattern):
            continue
        callback = pattern.callback
        view = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
        if isinstance(view, type) and view not in seen:
            seen.add(view)
            yield view


def declaring_views() -> Iterator[type]:
    """View classes with a ``cross_db_fields`` attribute, once each."""
    return (view for view in routed_views() if hasattr(view, "cross_db_fields"))
