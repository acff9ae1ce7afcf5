from __future__ import annotations

from importlib.util import find_spec

from django.apps import AppConfig


class CrossPrefetchConfig(AppConfig):
    name = "crossprefetch"
    verbose_name = "crossprefetch"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from crossprefetch._cache import invalidation
        from crossprefetch._observe.capture import watch_connections
        from crossprefetch.checks.registry import register

        register()
        invalidation.connect()
        watch_connections()  # query capture sees every connection of every thread from now on

        if find_spec("drf_spectacular") is not None:
            from crossprefetch.rest_framework import openapi  # noqa: F401  (registers it)
