"""Every crossprefetch system check, registered with Django in one place."""

from __future__ import annotations

from django.core import checks as django_checks

from crossprefetch.checks.aggregate import check_aggregates
from crossprefetch.checks.cache import check_cache_deploy, check_process_local_caches
from crossprefetch.checks.coalesce import check_coalesce_setting, check_connection_scope
from crossprefetch.checks.failure import check_failure_settings
from crossprefetch.checks.filters import check_filters
from crossprefetch.checks.related import check_related
from crossprefetch.checks.views import check_views

TAG = "crossprefetch"


def register() -> None:
    """Register every check with Django (from ``AppConfig.ready()``; idempotent)."""
    for check in (
        check_views,
        check_filters,
        check_related,
        check_aggregates,
        check_failure_settings,
        check_coalesce_setting,
        check_connection_scope,
        check_process_local_caches,
    ):
        django_checks.register(check, TAG)
    django_checks.register(check_cache_deploy, TAG, deploy=True)
