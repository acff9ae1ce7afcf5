"""Opt-in caching of lookup rows through Django's cache framework."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.http import HttpRequest

ScopeFunc = Callable[[HttpRequest | None], object]


@dataclass(frozen=True)
class CachePolicy:
    """How the rows of one :class:`~crossprefetch.CrossDBPrefetch` are cached.

    ``timeout`` is in seconds; ``alias`` names a cache in ``CACHES``; ``scope(request)``
    returns a value (a tenant id, say) that becomes part of every key, so that requests
    with different scopes never read each other's entries; ``invalidate`` drops a row's
    entries when the row is saved or deleted.
    """

    timeout: float
    alias: str = "default"
    scope: ScopeFunc | None = None
    invalidate: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, int | float):
            raise TypeError(
                f"CachePolicy(timeout={self.timeout!r}): timeout must be a number of seconds."
            )
        if self.timeout <= 0:
            raise ValueError(
                f"CachePolicy(timeout={self.timeout!r}): timeout must be positive; "
                "use cache=None to disable caching."
            )
        if not isinstance(self.alias, str) or not self.alias:
            raise TypeError(f"CachePolicy(alias={self.alias!r}): alias must name a cache.")
        if self.scope is not None and not callable(self.scope):
            raise TypeError(
                f"CachePolicy(scope={self.scope!r}): scope must be a callable(request)."
            )
