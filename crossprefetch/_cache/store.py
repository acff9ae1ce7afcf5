"""Talking to Django's cache: key names, scopes, and failures reported without failing.

Shared by the cache layer of the fetch chain and by invalidation, which writes the
generations next to the entries.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

from django.core.cache import BaseCache, InvalidCacheBackendError, caches
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest

from crossprefetch._observe.throttle import ThrottledWarning
from crossprefetch.conf import conf

if TYPE_CHECKING:
    from crossprefetch.cache import CachePolicy


#: Bumped when the shape of an entry changes, so that no release reads another's entries.
_FORMAT: Final = 1
_PREFIX = re.compile(r"[!-~]{1,64}")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.@+\-]{0,40}")
_SCOPE_TYPES: Final = (str, int, uuid.UUID, type(None))


# Keys ---------------------------------------------------------------------------------------


def key_prefix() -> str:
    """``CROSSPREFETCH["CACHE_PREFIX"]``, refused if a memcached key could not carry it."""
    prefix = conf.CACHE_PREFIX
    if not _PREFIX.fullmatch(prefix):
        raise ImproperlyConfigured(
            f"CROSSPREFETCH['CACHE_PREFIX'] = {prefix!r}: use 1 to 64 printable ASCII "
            "characters without spaces, so every cache backend accepts the keys."
        )
    return prefix


def scope_value(policy: CachePolicy, request: HttpRequest | None) -> tuple[Any, ...]:
    """What the scope contributes to the keys: ``("scope", value)`` or ``("unscoped",)``."""
    if policy.scope is None:
        return ("unscoped",)
    value = policy.scope(request)
    if not plain(value):
        raise TypeError(
            f"CachePolicy(scope={policy.scope!r}) returned {value!r}; a scope must be a str, "
            "an int, a UUID or a tuple of them (a tenant id, say), the same in every process."
        )
    return ("scope", value)


def plain(value: object) -> bool:
    """Whether ``value`` is the same in every process: a str, an int, a UUID, ``None`` or a
    tuple of them, which a cache key can carry."""
    if isinstance(value, tuple):
        return all(plain(v) for v in value)
    return isinstance(value, _SCOPE_TYPES) and not isinstance(value, bool)


def key_head(prefix: str, version: int | str, identity: Iterable[Any]) -> str:
    """``<prefix>:<version>:<digest>:``, the digest hashing a spec's identity.

    The identity (the group's :attr:`~crossprefetch._identity.Identity.rows`: model,
    database, compiled filter, matched fields, tenant state of the connection, scope; and
    the spec's projection) is hashed once per request; each key then only appends its own
    value.
    """
    digest = hashlib.blake2b(repr((_FORMAT, *identity)).encode(), digest_size=16).digest()
    return f"{prefix}:{version}:{base64.urlsafe_b64encode(digest).decode().rstrip('=')}:"


def key_suffix(key: Any) -> str:
    """A remote key in a cache key: readable when it is an int or a short plain string."""
    if type(key) is int:
        return f"i{key}"
    if type(key) is str and _PLAIN_KEY.fullmatch(key):
        return f"s{key}"
    return "h" + hashlib.blake2b(repr(key).encode(), digest_size=16).hexdigest()


# Errors -------------------------------------------------------------------------------------

_warnings = ThrottledWarning("cache", lambda: conf.CACHE_ERROR_LOG_INTERVAL)


def report_error(alias: str, operation: str, exc: BaseException) -> None:
    """Log a failing cache at most once per ``CACHE_ERROR_LOG_INTERVAL`` per alias."""
    failure = f"{type(exc).__name__}: {exc}"
    _warnings.warn(
        alias,
        f"crossprefetch: cache {alias!r} failed during {operation} ({failure}); lookups read "
        "the database instead",
        f"cache {alias!r} failed again during {operation}: {failure}",
    )


def reset_warnings() -> None:
    """Forget the warnings already given (for tests)."""
    _warnings.reset()


def get_cache(alias: str) -> BaseCache:
    try:
        return caches[alias]
    except InvalidCacheBackendError as exc:
        raise ImproperlyConfigured(
            f"CachePolicy(alias={alias!r}): no such cache in settings.CACHES ({exc})."
        ) from exc
