"""System checks of the settings deciding what requests share: ``CROSSPREFETCH["COALESCE"]``
and ``CROSSPREFETCH["CONNECTION_SCOPE"]``; ids are listed in the docs, never reused."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from crossprefetch.conf import conf


def check_coalesce_setting(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A window that is not a number of seconds would fail every lookup at run time."""
    try:
        _ = conf.COALESCE
    except ImproperlyConfigured as exc:
        return [
            checks.Error(
                str(exc),
                hint='Set CROSSPREFETCH["COALESCE"] to a few milliseconds (0.005), or remove it.',
                id="crossprefetch.E301",
            )
        ]
    return []


def check_connection_scope(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A scope that is not callable would fail every lookup at run time."""
    try:
        _ = conf.CONNECTION_SCOPE
    except ImproperlyConfigured as exc:
        return [
            checks.Error(
                str(exc),
                hint=(
                    'Set CROSSPREFETCH["CONNECTION_SCOPE"] to a function taking a database '
                    "connection and returning its tenant (lambda connection: "
                    'connection.schema_name), or its dotted path "myproject.tenancy.scope", '
                    "or remove it to read connection.schema_name and connection.tenant."
                ),
                id="crossprefetch.E302",
            )
        ]
    return []
