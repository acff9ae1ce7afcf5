from __future__ import annotations

from django.apps import AppConfig


class CrossPrefetchConfig(AppConfig):
    name = "crossprefetch"
    verbose_name = "crossprefetch"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from crossprefetch import checks  # noqa: F401  (registers the system checks)
