"""The view classes of the root URLconf: all of them, or those that declare lookups."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver


def has_urlconf() -> bool:
    """Whether the settings name a root URLconf: a worker, a benchmark or a script with
    minimal settings has none, and so no views."""
    return getattr(settings, "ROOT_URLCONF", None) is not None


def routed_views() -> Iterator[type]:
    """Every class-based view the root URLconf routes to, once each; none without one.

    Raises whatever importing the URLconf raises; callers decide how loud to be.
    """
    if not has_urlconf():
        return
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
