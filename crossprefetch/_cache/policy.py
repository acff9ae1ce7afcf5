"""``CachePolicy``: how the rows of one spec are cached (public as :mod:`crossprefetch.cache`).

Kept apart from :mod:`crossprefetch.cache` so that a spec can hold a policy without
importing invalidation, which reads the specs of the URLconf's views.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from typing import Any

from django.http import HttpRequest

ScopeFunc = Callable[[HttpRequest | None], object]

_VERSION = re.compile(r"[A-Za-z0-9_.\-]{1,32}")


@dataclass(frozen=True)
class CachePolicy:
    """How the rows of one :class:`~crossprefetch.CrossDBPrefetch` are cached.

    :param timeout: seconds a row stays cached.
    :param alias: a cache of ``settings.CACHES``. Use a shared one (Redis, Memcached)
        when several processes serve requests: invalidation reaches the processes that
        share the cache, and a ``LocMemCache`` is private to one process.
    :param scope: ``scope(request)`` returns a value (a tenant id, say; a ``str``, an
        ``int`` or a tuple of them) that becomes part of every key, so that requests with
        different scopes never read each other's entries. Required when the spec's
        QuerySet comes from a ``callable(request)``.
    :param invalidate: saving, updating or deleting a row of the model (through Django, in
        any process that knows the model is cached) makes every process miss its entries
        on the next request. ``False`` lets entries live until ``timeout``.
    :param negative_timeout: seconds a *missing* reference (no remote row) stays cached;
        ``None`` reads ``CROSSPREFETCH["CACHE_NEGATIVE_TIMEOUT"]``, ``0`` disables negative
        caching. Never longer than ``timeout``.
    :param jitter: spreads expiries: each write uses ``timeout`` times a random factor in
        ``[1 - jitter, 1 + jitter]``, so entries written together do not expire together.
    :param version: part of every key; change it to abandon every entry of the spec at once
        (after a deploy that changes what its rows mean, say).
    """

    timeout: float
    _: KW_ONLY
    alias: str = "default"
    scope: ScopeFunc | None = None
    invalidate: bool = True
    negative_timeout: float | None = None
    jitter: float = 0.0
    version: int | str = 1

    def __post_init__(self) -> None:
        _seconds("timeout", self.timeout, allow_zero=False)
        if not isinstance(self.alias, str) or not self.alias:
            raise (ValueError if isinstance(self.alias, str) else TypeError)(
                f"CachePolicy(alias={self.alias!r}): alias must name a cache."
            )
        if self.scope is not None and not callable(self.scope):
            raise TypeError(
                f"CachePolicy(scope={self.scope!r}): scope must be a callable(request)."
            )
        if not isinstance(self.invalidate, bool):
            raise TypeError(
                f"CachePolicy(invalidate={self.invalidate!r}): invalidate must be True or False."
            )
        if self.negative_timeout is not None:
            _seconds("negative_timeout", self.negative_timeout, allow_zero=True)
        if (
            isinstance(self.jitter, bool)
            or not isinstance(self.jitter, int | float)
            or not 0 <= self.jitter < 1
        ):
            raise ValueError(
                f"CachePolicy(jitter={self.jitter!r}): jitter is a fraction of the timeout, "
                "from 0 (none) up to but excluding 1; 0.1 spreads expiries by ±10%."
            )
        if isinstance(self.version, bool) or not (
            (isinstance(self.version, int) and self.version >= 0)
            or (isinstance(self.version, str) and _VERSION.fullmatch(self.version))
        ):
            raise ValueError(
                f"CachePolicy(version={self.version!r}): version must be a non-negative int "
                "or up to 32 letters, digits, '_', '.' or '-'."
            )


def _seconds(argument: str, value: Any, *, allow_zero: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"CachePolicy({argument}={value!r}): {argument} must be a number of seconds."
        )
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        fix = "0 disables it" if allow_zero else "use cache=None to disable caching"
        raise ValueError(
            f"CachePolicy({argument}={value!r}): {argument} must be a finite number of "
            f"seconds, more than 0; {fix}."
        )
