from __future__ import annotations

from importlib.util import find_spec

from django.apps import AppConfig


class CrossPrefetchConfig(AppConfig):
    name = "crossprefetch"
    verbose_name = "crossprefetch"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from django.core import checks as django_checks

        from crossprefetch import (
            _cache_checks,
            _coalesce_checks,
            _failure_checks,
            _invalidation,
            checks,
        )

        checks.spec_checks.append(_cache_checks.check_spec_cache)
        django_checks.register(_cache_checks.check_cache_deploy, "crossprefetch", deploy=True)
        django_checks.register(_failure_checks.check_failure_settings, "crossprefetch")
        django_checks.register(_coalesce_checks.check_coalesce_setting, "crossprefetch")
        _invalidation.connect()

        from crossprefetch.rest_framework import _filter_checks

        django_checks.register(_filter_checks.check_filters, "crossprefetch")

        if find_spec("drf_spectacular") is not None:
            from crossprefetch.rest_framework import openapi  # noqa: F401  (registers it)
