"""The ``CROSSPREFETCH`` settings dict, read on every access so ``override_settings`` works."""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings


def _get(name: str, default: Any) -> Any:
    return getattr(django_settings, "CROSSPREFETCH", {}).get(name, default)


class Settings:
    """One typed property per setting; the default is inline."""

    @property
    def STRICT(self) -> bool:
        """Raise when a serializer reads a lookup its view did not declare (default: ``DEBUG``)."""
        return bool(_get("STRICT", django_settings.DEBUG))

    @property
    def CACHE_PREFIX(self) -> str:
        """Prefix of every cache key crossprefetch writes."""
        return str(_get("CACHE_PREFIX", "crossprefetch"))

    @property
    def CACHE_NEGATIVE_TIMEOUT(self) -> float:
        """Seconds a missing reference stays cached (0 disables negative caching)."""
        return float(_get("CACHE_NEGATIVE_TIMEOUT", 30))

    @property
    def CACHE_ERROR_LOG_INTERVAL(self) -> float:
        """Seconds between two warnings about the same failing cache."""
        return float(_get("CACHE_ERROR_LOG_INTERVAL", 60))

    @property
    def CACHE_LOCAL_MAX_ENTRIES(self) -> int:
        """Cache entries each process also keeps in memory (0 disables the local layer).

        Still checked against the shared cache's generations on every request, so they are
        exactly as fresh; they save reading and unpickling one entry per key.
        """
        return int(_get("CACHE_LOCAL_MAX_ENTRIES", 10_000))

    @property
    def CACHE_INVALIDATE_MODELS(self) -> tuple[str, ...]:
        """Cached models (``"app_label.Model"``) every process watches from its start.

        Needed only for models read by specs the URLconf's views do not declare (callable
        sources, ``get_cross_db_fields()``), in processes that write them but never serve
        those lookups: a worker, a management command.
        """
        return tuple(_get("CACHE_INVALIDATE_MODELS", ()))

    @property
    def MAX_FILTER_KEYS(self) -> int:
        """Remote rows a filter or a remote ordering may match before the request fails (400).

        The matched keys travel to the listed objects' database as one parameter; above
        this many, the request is refused rather than answered with a truncated result.
        """
        return int(_get("MAX_FILTER_KEYS", 100_000))

    @property
    def SERVER_TIMING(self) -> bool:
        """Add a ``Server-Timing`` header with the time spent in lookups."""
        return bool(_get("SERVER_TIMING", False))


conf = Settings()
