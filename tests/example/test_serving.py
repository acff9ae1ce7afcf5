"""The example served: its ASGI/WSGI applications, the load driver, the schema check."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from pytest_django.live_server_helper import LiveServer

from shop.loadtesting import LoadResult
from tests.example.conftest import SHOP_DATABASES

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "example_project"


@pytest.mark.django_db(databases=SHOP_DATABASES, transaction=True)
def test_loadurl_reports_errors_throughput_and_latency(
    live_server: LiveServer, shop_data: object
) -> None:
    out = StringIO()
    call_command(
        "loadurl",
        f"{live_server.url}/shop/events/",
        "--requests",
        "12",
        "--concurrency",
        "3",
        stdout=out,
    )
    report = out.getvalue()
    assert "12 requests from 3 clients" in report
    assert "errors: 0 (200: 12)" in report
    assert "latency p50:" in report


@pytest.mark.django_db(databases=SHOP_DATABASES, transaction=True)
def test_loadurl_fails_on_errors(live_server: LiveServer) -> None:
    out = StringIO()
    with pytest.raises(CommandError, match="4 of 4 requests failed"):
        call_command("loadurl", f"{live_server.url}/no-such-page/", "--requests", "4", stdout=out)
    assert "errors: 4 (404: 4)" in out.getvalue()
    assert "first 404: after" in out.getvalue()


def test_percentiles() -> None:
    result = LoadResult("u", 1, sent=4, seconds=2.0, latencies_ms=[1.0, 2.0, 3.0, 100.0])
    assert result.percentile(50) == 2.5
    assert result.requests_per_second == 2.0
    assert LoadResult("u", 1).percentile(99) == 0.0


def _example_env(tmp_path: Path) -> dict[str, str]:
    root = str(EXAMPLE_DIR.parent)
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
        "DJANGO_SETTINGS_MODULE": "example.settings",
        "EXAMPLE_DEFAULT_DB_URL": f"sqlite:///{tmp_path}/default.sqlite3",
        "EXAMPLE_TIMESERIES_DB_URL": f"sqlite:///{tmp_path}/timeseries.sqlite3",
        "EXAMPLE_DEBUG": "0",
    }


@pytest.mark.parametrize("module", ["example.asgi", "example.wsgi"])
def test_served_applications_import(module: str, tmp_path: Path) -> None:
    code = f"import {module} as m; print(type(m.application).__name__)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=EXAMPLE_DIR,
        env=_example_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in {"ASGIHandler", "WSGIHandler"}


def test_every_endpoint_conforms_to_the_published_schema(tmp_path: Path) -> None:
    """A small schemathesis pass; the full one is ``manage.py schemacheck`` (20 per operation)."""
    pytest.importorskip("schemathesis")
    done = subprocess.run(
        [sys.executable, "manage.py", "schemacheck", "--max-examples", "3", "--events", "40"],
        cwd=EXAMPLE_DIR,
        env=_example_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no server error, every response conforms" in done.stdout
    assert "GET /shop/joined-events/: conforms" in done.stdout
