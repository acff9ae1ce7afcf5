"""Route each test model to the database named by its ``database`` attribute."""

from __future__ import annotations

from typing import Any

from django.db import models


def _alias(model: type[models.Model]) -> str | None:
    if model._meta.app_label != "testapp":
        return None
    return getattr(model, "database", "default")


class TestRouter:
    def db_for_read(self, model: type[models.Model], **hints: Any) -> str | None:
        return _alias(model)

    def db_for_write(self, model: type[models.Model], **hints: Any) -> str | None:
        return _alias(model)

    def allow_relation(self, obj1: models.Model, obj2: models.Model, **hints: Any) -> bool | None:
        """Relations between test models may cross databases (``ticket.account = account``);
        Django refuses an assignment across databases unless a router allows it."""
        if _alias(type(obj1)) is not None and _alias(type(obj2)) is not None:
            return True
        return None

    def allow_migrate(
        self, db: str, app_label: str, model_name: str | None = None, **hints: Any
    ) -> bool | None:
        if app_label != "testapp":
            return None
        if model_name is None:
            return None
        from django.apps import apps

        model = apps.get_model(app_label, model_name)
        return db == _alias(model) or db in getattr(model, "also_in", ())
