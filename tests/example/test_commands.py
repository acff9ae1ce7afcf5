"""The example's commands, run small: ``seed``, ``demo`` and ``benchmark``."""

from __future__ import annotations

import json
import time
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from shop.measuring import QueryCounter, comparable_payload, simulated_latency
from shop.models import Customer
from tests.example.conftest import SHOP_DATABASES

pytestmark = pytest.mark.django_db(databases=SHOP_DATABASES)


def run(*args: str) -> tuple[str, str]:
    stdout, stderr = StringIO(), StringIO()
    call_command(*args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


def test_seed_command() -> None:
    out, _ = run("seed", "--customers", "25", "--events", "30")
    assert "Seeded" in out
    assert Customer.objects.count() == 25
    out, _ = run("seed", "--customers", "25", "--events", "30")
    assert "nothing to do" in out


def test_demo() -> None:
    out, _ = run(
        "demo", "--customers", "50", "--events", "120", "--page-sizes", "10,100", "--repeat", "1"
    )
    assert out.count("identical output: yes") == 2
    lines = out.splitlines()
    page_100 = lines[lines.index("page size 100") :]
    naive = next(line for line in page_100 if line.strip().startswith("naive"))
    crossprefetch = next(line for line in page_100 if line.strip().startswith("crossprefetch"))
    assert naive.split()[1:3] == ["200", "2"]
    assert crossprefetch.split()[1:3] == ["1", "2"]
    filtered = lines[lines.index("?customer_tier=gold, page size 100") :]
    assert "  crossprefetch equals the join: yes" in filtered
    naive_count = next(line for line in filtered if "after serializing" in line).split()[-1]
    ours_count = next(line for line in filtered if "CrossDBFilterBackend" in line).split()[-1]
    assert int(naive_count) == 120  # the unfiltered count: the article's wrong answer
    assert int(ours_count) < 120


def test_benchmark(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    out, _ = run(
        "benchmark",
        "--page-sizes", "10,100",
        "--reference-rows", "30,60",
        "--events", "100",
        "--repeat", "2",
        "--latency-ms", "0.1",
        "--json", str(figures),
    )  # fmt: skip
    assert "Simulated round trip: 0.1 ms per query" in out
    assert out.count("identical output: yes") == 4
    assert "### 60 customers" in out
    report = json.loads(figures.read_text())
    assert all(cell["identical_output"] for cell in report["results"])
    cell = next(c for c in report["results"] if c["page_size"] == 100)
    by_variant = {v["variant"]: v for v in cell["variants"]}
    assert by_variant["naive"]["queries"]["default"] == 200
    assert by_variant["crossprefetch"]["queries"]["default"] == 1
    assert by_variant["select_related"]["queries"].get("timeseries", 0) == 0
    assert by_variant["per_page_dict"]["ratio_to_per_page_dict"] == 1.0
    assert all(len(v["runs_ms"]) == 2 and v["peak_memory_bytes"] for v in cell["variants"])
    if "crossprefetch_warm_cache" in by_variant:
        assert by_variant["crossprefetch_warm_cache"]["queries"].get("default", 0) == 0


def test_benchmark_breakdown() -> None:
    out, _ = run(
        "benchmark",
        "--page-sizes", "100",
        "--reference-rows", "50",
        "--events", "120",
        "--repeat", "1",
        "--no-memory",
        "--breakdown",
    )  # fmt: skip
    section = out[out.index("### Where the time goes") :]
    assert "**50 customers, page of 100**" in section
    for phase in ("paginator count", "customers of the page", "serialization", "whole request"):
        assert phase in section


def test_benchmark_filters_only(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    out, _ = run(
        "benchmark",
        "--filters-only",
        "--page-sizes", "100",
        "--reference-rows", "50",
        "--events", "120",
        "--repeat", "1",
        "--no-memory",
        "--breakdown",
        "--json", str(figures),
    )  # fmt: skip
    assert "identical output: yes" in out
    report = json.loads(figures.read_text())
    (cell,) = report["results"]
    by_variant = {v["variant"]: v for v in cell["variants"]}
    assert set(by_variant) == {
        "crossprefetch_filtered",
        "select_related_filtered",
        "crossprefetch_ordered",
        "select_related_ordered",
    }
    # the filter's query also reads the page's customers: no second remote query
    assert by_variant["crossprefetch_filtered"]["queries"] == {"default": 1, "timeseries": 2}
    assert by_variant["crossprefetch_ordered"]["queries"] == {"default": 2, "timeseries": 2}
    figures_named = {row["figure"] for row in report["summary"]}
    assert any(name.startswith("filtered page") for name in figures_named)
    assert any(name.startswith("ordered by") for name in figures_named)
    assert "remote filter or ranks" in out[out.index("### Where the time goes") :]


def test_benchmark_rejects_pages_larger_than_the_data() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--events"):
        run("benchmark", "--page-sizes", "100", "--events", "50", "--reference-rows", "10")


def test_simulated_latency_delays_every_alias() -> None:
    counter = QueryCounter()
    start = time.perf_counter()
    with simulated_latency(20), counter():
        for alias in SHOP_DATABASES:
            with connections[alias].cursor() as cursor:
                cursor.execute("SELECT 1")
    assert time.perf_counter() - start >= 0.04
    assert (counter["default"], counter["timeseries"]) == (1, 1)


def test_comparable_payload_ignores_only_the_endpoint_in_links() -> None:
    a = b'{"count":2,"next":"http://testserver/shop/a/?page=2","previous":null,"results":[1]}'
    b = b'{"count":2,"next":"http://testserver/shop/b/?page=2","previous":null,"results":[1]}'
    c = b'{"count":2,"next":"http://testserver/shop/b/?page=3","previous":null,"results":[1]}'
    reordered = (
        b'{"next":"http://testserver/shop/a/?page=2","count":2,"previous":null,"results":[1]}'
    )
    assert comparable_payload(a) == comparable_payload(b)
    assert comparable_payload(a) != comparable_payload(c)
    assert comparable_payload(a) != comparable_payload(reordered)


def test_loadtest_needs_a_postgresql_reference_database() -> None:
    if connections["default"].vendor == "postgresql":
        pytest.skip("the example's default database is PostgreSQL here")
    with pytest.raises(CommandError, match="EXAMPLE_DEFAULT_DB_URL"):
        run("loadtest", "--requests", "1")


def test_benchmark_aggregates(tmp_path: Path) -> None:
    figures = tmp_path / "aggregates.json"
    out, _ = run(
        "benchmark_aggregates",
        "--customers",
        "60",
        "--events",
        "400",
        "--page-size",
        "10",
        "--repeat",
        "1",
        "--json",
        str(figures),
    )
    assert "Identical output (the same JSON from both endpoints, per figure): yes." in out
    assert out.count("phase by phase (ms):") == 4
    report = json.loads(figures.read_text())
    assert report["identical_output"] is True
    queries = {pair["figure"]: pair["crossprefetch"]["queries"] for pair in report["pairs"]}
    assert queries == {
        "page of customers with their aggregates": {"default": 2, "timeseries": 1},
        "filtered: keys whose aggregate passes": {"default": 2, "timeseries": 2},
        "filtered: customers without events kept": {"default": 2, "timeseries": 2},
        "ordered by an aggregate": {"default": 2, "timeseries": 2},
    }
    assert {pair["join"]["queries"]["default"] for pair in report["pairs"]} == {2}
    for item in report["breakdowns"]:
        assert set(item["phases_ms"]) == set(item["request_ms"])


def test_benchmark_aggregates_refuses_more_customers_than_a_filter_takes(settings: Any) -> None:
    settings.CROSSPREFETCH = {"MAX_FILTER_KEYS": 10}
    with pytest.raises(CommandError, match="at most 10"):
        run("benchmark_aggregates", "--customers", "11")
