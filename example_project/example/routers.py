"""Keep Django's own tables (and those of any app but ``shop``) in the ``default`` database."""

from __future__ import annotations

from typing import Any


class DefaultOnlyRouter:
    """Placed after ``ShopRouter``, which decides everything about ``shop``.

    Without it every installed app would also be migrated into the time-series database.
    """

    def allow_migrate(
        self, db: str, app_label: str, model_name: str | None = None, **hints: Any
    ) -> bool | None:
        return db == "default"
