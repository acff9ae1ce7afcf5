"""Send ``OrderEvent`` and ``SupportTicket`` to the ``timeseries`` database, the rest of
``shop`` to ``default``."""

from __future__ import annotations

from typing import Any

from django.db import models

TIMESERIES_MODELS = {"orderevent", "supportticket"}


class ShopRouter:
    def _alias(self, app_label: str, model_name: str) -> str | None:
        if app_label != "shop":
            return None
        return "timeseries" if model_name in TIMESERIES_MODELS else "default"

    def db_for_read(self, model: type[models.Model], **hints: Any) -> str | None:
        return self._alias(model._meta.app_label, model._meta.model_name or "")

    def db_for_write(self, model: type[models.Model], **hints: Any) -> str | None:
        return self._alias(model._meta.app_label, model._meta.model_name or "")

    def allow_relation(self, obj1: models.Model, obj2: models.Model, **hints: Any) -> bool | None:
        """A ticket may name a customer of the other database (``ticket.customer = ...``):
        Django refuses a relation across databases unless a router allows it."""
        if obj1._meta.app_label == obj2._meta.app_label == "shop":
            return True
        return None

    def allow_migrate(
        self, db: str, app_label: str, model_name: str | None = None, **hints: Any
    ) -> bool | None:
        if app_label != "shop" or model_name is None:
            return None
        return self._alias(app_label, model_name) == db
