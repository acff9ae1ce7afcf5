"""The ``CROSSPREFETCH`` settings dict, read on every access so ``override_settings`` works."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from crossprefetch._test_run import running_tests


def _get(name: str, default: Any) -> Any:
    return getattr(django_settings, "CROSSPREFETCH", {}).get(name, default)


def seconds_or_none(
    value: Any, where: str, error: type[Exception] | None = None, *, zero: str = ""
) -> float | None:
    """A number of seconds (``>= 0``, finite) or ``None``; ``where`` is ``"...%r..."``.

    The vocabulary of every argument crossprefetch validates: a value of the wrong type
    raises :exc:`TypeError`, one of the right type but out of range :exc:`ValueError`;
    ``error`` replaces both (settings raise :exc:`ImproperlyConfigured`).
    """
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if 0 <= value < float("inf"):
            return float(value)
        kind: type[Exception] = ValueError
    else:
        kind = TypeError
    hint = f" ({zero})" if zero else ""
    raise (error or kind)(
        f"{where % (value,)}: give a finite number of seconds >= 0{hint}, such as 0.005, or None."
    )


def positive_int(name: str, value: Any) -> int:
    """``CROSSPREFETCH[name]`` as a whole number above 0, or :exc:`ImproperlyConfigured`."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise ImproperlyConfigured(
        f"CROSSPREFETCH[{name!r}] = {value!r}: give a whole number above 0 (an int)."
    )


class Settings:
    """One typed property per setting; the default is inline."""

    @property
    def STRICT(self) -> bool:
        """Refuse the mistakes that would otherwise answer quietly with something else.

        A serializer reading a lookup its view did not declare raises
        ``ImproperlyConfigured`` instead of rendering the field's default. A query
        parameter one edit from a cross-database filter of the view, which nothing else of
        the view reads (``?customer_teir=gold`` beside ``customer_tier``), is a 400 naming
        the filter meant, where DRF would ignore it and list every row; so is a filter of
        ``cross_db_filters`` given twice, of which DRF would apply the last value; an
        ordering term ``CrossDBOrderingFilter`` does not accept is a 400 naming the closest
        valid one, where DRF would drop it (see :doc:`/howto/filtering`).

        ``None`` (the default) means on with ``DEBUG`` and while tests run
        (``manage.py test``, pytest with pytest-django or crossprefetch's plugin), where
        the quiet answer would hide the mistake. ``True`` or ``False`` always wins.
        """
        strict = _get("STRICT", None)
        if strict is None:
            return bool(django_settings.DEBUG) or running_tests()
        return bool(strict)

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
        """Seconds between two warnings about the same cache failing to serve lookups.

        Reads only: an invalidation the cache refuses is logged at ERROR every time.
        """
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
    def N_PLUS_ONE_THRESHOLD(self) -> int:
        """How many times one SQL shape may run on an alias before it is reported as N+1.

        The default of ``crossprefetch.testing.detect_n_plus_one`` and the threshold of the
        debug-toolbar panel.
        """
        return int(_get("N_PLUS_ONE_THRESHOLD", 2))

    @property
    def MAX_FILTER_KEYS(self) -> int:
        """Remote rows a filter or a remote ordering may match before the request fails (400).

        The matched keys travel to the listed objects' database as one parameter; above
        this many, the request is refused rather than answered with a truncated result.
        """
        return positive_int("MAX_FILTER_KEYS", _get("MAX_FILTER_KEYS", 100_000))

    @property
    def MAX_FILTER_VALUE_LENGTH(self) -> int:
        """Characters a filter's value may have before the request fails (400).

        Above it the value is refused, naming the filter, whatever the remote field: a
        pattern of 50,000 bytes is past what SQLite's ``LIKE`` takes, and a list of tens of
        thousands of values past what one statement may carry. A value longer than the
        remote field's ``max_length`` is refused too.
        """
        return positive_int("MAX_FILTER_VALUE_LENGTH", _get("MAX_FILTER_VALUE_LENGTH", 10_000))

    @property
    def ON_ERROR(self) -> str:
        """What a lookup does when its database fails: ``"raise"`` or ``"degrade"``.

        The default of every spec without ``on_error=``. ``"degrade"`` serves the response
        with the group's keys read as missing; see :doc:`/howto/reference-down`.
        """
        return str(_get("ON_ERROR", "raise"))

    @property
    def TIMEOUT(self) -> float | None:
        """Seconds after which the database cancels a lookup's query (``None``: never).

        The default of every spec without ``timeout=``.
        """
        return seconds_or_none(
            _get("TIMEOUT", None), 'CROSSPREFETCH["TIMEOUT"] = %r', ImproperlyConfigured
        )

    @property
    def BREAKER_FAILURES(self) -> int:
        """Consecutive failures of a database or cache alias that open its circuit breaker."""
        return int(_get("BREAKER_FAILURES", 5))

    @property
    def BREAKER_RESET(self) -> float:
        """Seconds an open circuit breaker skips its alias before one trial request."""
        return float(_get("BREAKER_RESET", 30))

    @property
    def MAX_CONCURRENT(self) -> int | dict[str, int]:
        """Queries of degrading specs in flight at once per database alias and process.

        One number for every alias, or a dict ``{alias: number}`` (aliases it does not name
        get the default, 10). A request whose query would go past it degrades at once
        instead of waiting; ``on_error="raise"`` specs are not limited. See
        :doc:`/howto/reference-down`.
        """
        value = _get("MAX_CONCURRENT", 10)
        if not isinstance(value, dict):
            return positive_int("MAX_CONCURRENT", value)
        for alias, number in value.items():
            if not (isinstance(number, int) and not isinstance(number, bool) and number > 0):
                raise ImproperlyConfigured(
                    f'CROSSPREFETCH["MAX_CONCURRENT"][{alias!r}] = {number!r}: give a whole '
                    "number above 0 (an int)."
                )
        return dict(value)

    @property
    def DEGRADED_LOG_INTERVAL(self) -> float:
        """Seconds between two warnings about the same failing database."""
        return float(_get("DEGRADED_LOG_INTERVAL", 60))

    @property
    def COALESCE(self) -> float | None:
        """Seconds a lookup waits for concurrent requests to share its query (``None``: never).

        The default of every spec's ``coalesce=``; see :doc:`/howto/coalescing`.
        """
        return seconds_or_none(
            _get("COALESCE", None), 'CROSSPREFETCH["COALESCE"] = %r', ImproperlyConfigured
        )

    @property
    def CONNECTION_SCOPE(self) -> Callable[[Any], Hashable] | None:
        """``scope(connection)``: the tenant state of a database connection (``None``: read it).

        What makes the same SQL read other rows on this connection (a ``search_path`` set
        per tenant, say). Requests whose connections differ by it never share a query or a
        cache entry. Without it, ``connection.schema_name`` and ``connection.tenant`` are
        read, as django-tenants and django-tenant-schemas set them; see
        :doc:`/howto/tenants`. A callable or its dotted import path.
        """
        value = _get("CONNECTION_SCOPE", None)
        where = f'CROSSPREFETCH["CONNECTION_SCOPE"] = {value!r}'
        if isinstance(value, str):
            try:
                value = import_string(value)
            except ImportError as exc:
                raise ImproperlyConfigured(f"{where}: cannot import it ({exc}).") from exc
        if value is not None and not callable(value):
            raise ImproperlyConfigured(
                f"{where}: give a callable(connection) returning the connection's tenant "
                "(its schema name, say), or its dotted path, or None."
            )
        scope: Callable[[Any], Hashable] | None = value
        return scope

    @property
    def SERVER_TIMING(self) -> bool:
        """Add a ``Server-Timing`` header with the time spent in lookups."""
        return bool(_get("SERVER_TIMING", False))


conf = Settings()


def max_concurrent(alias: str) -> int:
    """``CROSSPREFETCH["MAX_CONCURRENT"]`` for one alias (the default for one a dict omits)."""
    value = conf.MAX_CONCURRENT
    if isinstance(value, dict):
        return value.get(alias, 10)
    return value
