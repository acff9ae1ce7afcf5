"""Joins the two migrations numbered 0003, written side by side."""

from __future__ import annotations

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0003_joinedorderevent_related_name"),
        ("shop", "0003_supportticket"),
    ]

    operations: list[migrations.operations.base.Operation] = []
