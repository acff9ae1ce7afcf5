"""``manage.py benchmark_loaders``, run small: three loaders side by side, ratios, JSON."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command


def test_benchmark_loaders(tmp_path: Path) -> None:
    figures = tmp_path / "loaders.json"
    out = StringIO()
    call_command(
        "benchmark_loaders", "--sizes", "10,200", "--rounds", "2", "--json", str(figures),
        stdout=out,
    )  # fmt: skip
    report = json.loads(figures.read_text())
    assert [row["loads"] for row in report["results"]] == [10, 200]
    for row in report["results"]:
        assert set(row["ratio"]) == {"aiodataloader", "strawberry", "crossprefetch"}
        assert row["ratio"]["aiodataloader"] == 1.0
        assert all(len(times) == row["samples"] for times in row["times_s"].values())
    assert report["results"][0]["samples"] == 1000
    assert report["results"][1]["samples"] == 100
    assert {"aiodataloader", "strawberry-graphql", "crossprefetch"} <= set(report["environment"])
    table = out.getvalue()
    assert "| loads | samples | aiodataloader | strawberry | crossprefetch |" in table
    assert table.count("\n| 10 |") + table.count("\n| 200 |") == 2


def test_benchmark_loaders_rejects_zero_rounds() -> None:
    with pytest.raises(CommandError, match="--rounds must be at least 1"):
        call_command("benchmark_loaders", "--rounds", "0", stdout=StringIO())
