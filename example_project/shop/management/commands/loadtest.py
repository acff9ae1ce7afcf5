"""``manage.py loadtest``: concurrent clients against a real server, with and without coalescing.

Not a test: a measurement of what ``CROSSPREFETCH["COALESCE"]`` buys under load. For each
server (gunicorn with threads, serving the DRF endpoint; uvicorn, serving the async view
built on ``aprefetch_cross_db``) and each window (``0``: off, then ``--coalesce``), it starts
the server on 127.0.0.1 in one process, sends ``--requests`` requests (or stops after
``--duration`` seconds) from ``--concurrency`` clients asking random pages, and reports
requests/s, p50/p99 latency and the reference database's transactions, read from
PostgreSQL's own statistics (``pg_stat_database``) once the server has exited, so that
every backend has reported its counters. Each statement the reference database receives
outside a transaction is one transaction there: the reference database must be a
PostgreSQL database that nothing else uses during the run (see ``EXAMPLE_DEFAULT_DB_URL``).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from argparse import ArgumentParser, ArgumentTypeError
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from shop.management.commands._options import count
from shop.seeding import Dataset, prepare_databases, seed

if TYPE_CHECKING:
    import httpx

PROJECT_DIR = Path(__file__).resolve().parents[3]
SERVERS = {
    "gunicorn": "/shop/events/",
    "uvicorn": "/shop/async-events/",
}


@dataclass
class Run:
    server: str
    coalesce: float
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    #: transactions and sessions of the reference database during the run
    transactions: int
    sessions: int
    #: transactions less those every new session costs (Django's connection set-up)
    reference_queries: int

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds

    @property
    def queries_per_s(self) -> float:
        return self.reference_queries / self.seconds

    @property
    def queries_per_request(self) -> float:
        return self.reference_queries / max(1, self.requests)


class Command(BaseCommand):
    help = (
        "Load a real server (gunicorn gthread, uvicorn) with concurrent clients, with and "
        "without coalescing; report requests/s, p50/p99 latency and the reference "
        "database's queries/s from PostgreSQL's statistics."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--server", choices=sorted(SERVERS), action="append")
        parser.add_argument("--concurrency", type=count, default=32, help="clients; default 32")
        parser.add_argument("--requests", type=count, default=3000, help="per run; default 3000")
        parser.add_argument("--duration", type=float, default=60, help="max s per run; 60")
        parser.add_argument(
            "--coalesce",
            type=_windows,
            default=[0.005, 0.02],
            help="windows in seconds, comma-separated; default 0.005,0.02 (and always off)",
        )
        parser.add_argument("--page-size", type=count, default=20, help="default: 20")
        parser.add_argument("--pages", type=count, default=50, help="pages asked; default 50")
        parser.add_argument("--customers", type=count, default=10_000)
        parser.add_argument("--json", type=Path, help="also write the figures to this file")

    def handle(self, *args: Any, **options: Any) -> None:
        if connections["default"].vendor != "postgresql":
            raise CommandError(
                "loadtest reads the reference database's queries from PostgreSQL's statistics: "
                "point EXAMPLE_DEFAULT_DB_URL at a PostgreSQL database used by nothing else."
            )
        prepare_databases()
        events = options["pages"] * options["page_size"]
        seed(Dataset(options["customers"], max(events, 1000)), log=self.stdout.write)
        connections.close_all()
        self.per_session = _session_cost()
        self.stdout.write(
            f"A new connection costs {self.per_session} transaction(s) on the reference "
            "database; they are subtracted from the queries below."
        )
        runs: list[Run] = []
        for server in options["server"] or sorted(SERVERS):
            for window in (0.0, *options["coalesce"]):
                run = self._run(server, window, options)
                runs.append(run)
                self.stdout.write(_row(run))
        self.stdout.write("")
        self.stdout.write(_table(runs, options))
        if options["json"]:
            options["json"].write_text(
                json.dumps([{**asdict(r), "requests_per_s": r.requests_per_s} for r in runs])
            )

    def _run(self, server: str, window: float, options: dict[str, Any]) -> Run:
        port = _free_port()
        env = {
            **os.environ,
            "EXAMPLE_DEBUG": "0",
            "EXAMPLE_COALESCE": str(window) if window else "",
            # persistent connections under threads; ASGI runs each request in a new thread
            "EXAMPLE_CONN_MAX_AGE": "60" if server == "gunicorn" else "0",
            "PYTHONPATH": os.pathsep.join(
                [str(PROJECT_DIR), str(PROJECT_DIR.parent), os.environ.get("PYTHONPATH", "")]
            ),
        }
        bin_dir = Path(sys.executable).parent
        if server == "gunicorn":
            command = [
                str(bin_dir / "gunicorn"), "example.wsgi:application", "--worker-class",
                "gthread", "--workers", "1", "--threads", str(options["concurrency"]),
                "--bind", f"127.0.0.1:{port}", "--log-level", "warning", "--keep-alive", "75",
            ]  # fmt: skip
        else:
            command = [
                str(bin_dir / "uvicorn"), "example.asgi:application", "--host", "127.0.0.1",
                "--port", str(port), "--workers", "1", "--log-level", "warning",
                "--no-access-log",
            ]  # fmt: skip
        before = _counters()
        process = subprocess.Popen(command, cwd=PROJECT_DIR, env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_until_up(base + SERVERS[server], process)
            latencies, errors, seconds = asyncio.run(
                _load(base + SERVERS[server], options, random.Random(f"{server}-{window}"))
            )
        finally:
            process.terminate()
            process.wait(30)
        after = _counters()
        transactions, sessions = after[0] - before[0], after[1] - before[1]
        ordered = sorted(latencies)
        return Run(
            server=server,
            coalesce=window,
            requests=len(latencies),
            errors=errors,
            seconds=seconds,
            p50_ms=statistics.median(ordered) * 1000,
            p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
            transactions=transactions,
            sessions=sessions,
            reference_queries=transactions - sessions * self.per_session,
        )


async def _load(
    url: str, options: dict[str, Any], rng: random.Random
) -> tuple[list[float], int, float]:
    """``--concurrency`` clients asking random pages until the requests or the time run out."""
    import httpx  # the example's extra: only this command needs it

    total = options["requests"]
    deadline = time.perf_counter() + options["duration"]
    latencies: list[float] = []
    errors = 0
    kinds: Counter[str] = Counter()
    sent = 0
    limits = httpx.Limits(max_connections=options["concurrency"])

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal sent, errors
        while sent < total and time.perf_counter() < deadline:
            sent += 1
            page = rng.randint(1, options["pages"])
            started = time.perf_counter()
            try:
                response = await http.get(
                    url, params={"page": page, "page_size": options["page_size"]}
                )
            except httpx.TransportError as exc:
                errors += 1
                kinds[type(exc).__name__] += 1
                continue
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                errors += 1
                kinds[f"HTTP {response.status_code}"] += 1

    started = time.perf_counter()
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:
        await asyncio.gather(*(client(http) for _ in range(options["concurrency"])))
    if kinds:
        print(f"errors: {dict(kinds)}", file=sys.stderr)
    return latencies, errors, time.perf_counter() - started


def _counters() -> tuple[int, int]:
    """Transactions (committed and rolled back) and sessions of the reference database, as
    PostgreSQL counts them once its backends have exited (they report on exit, or every
    second while busy)."""
    import psycopg

    params = settings.DATABASES["default"]
    name = params["NAME"]
    with psycopg.connect(
        host=params["HOST"] or None,
        port=params["PORT"] or None,
        user=params["USER"] or None,
        password=params["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    ) as connection:
        for _ in range(100):
            busy = connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [name]
            ).fetchone()
            if not busy or not busy[0]:
                break
            time.sleep(0.1)
        time.sleep(1.5)
        connection.execute("SELECT pg_stat_clear_snapshot()")
        row = connection.execute(
            "SELECT xact_commit + xact_rollback, sessions FROM pg_stat_database WHERE datname = %s",
            [name],
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def _session_cost() -> int:
    """Transactions a new Django connection to the reference database costs by itself."""
    before = _counters()
    connections["default"].ensure_connection()
    connections["default"].close()
    after = _counters()
    return max(0, (after[0] - before[0]) // max(1, after[1] - before[1]))


def _windows(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) <= 0:
        raise ArgumentTypeError(f"{text!r}: give windows in seconds, e.g. 0.005,0.02")
    return values


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    import httpx

    for _ in range(300):
        if process.poll() is not None:
            raise CommandError(f"the server exited with status {process.returncode}")
        try:
            if httpx.get(url, params={"page_size": 1}, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise CommandError(f"the server did not answer {url} within 30 s")


def _row(run: Run) -> str:
    window = f"{run.coalesce * 1000:g} ms" if run.coalesce else "off"
    return (
        f"{run.server:9} coalesce {window:7}: {run.requests} requests in {run.seconds:.1f} s "
        f"({run.errors} errors), {run.transactions} transactions in {run.sessions} sessions "
        f"on the reference database"
    )


def _table(runs: list[Run], options: dict[str, Any]) -> str:
    lines = [
        f"{options['concurrency']} concurrent clients, pages of {options['page_size']} events "
        f"among {options['pages']} pages, up to {options['requests']} requests or "
        f"{options['duration']:g} s per run.",
        "",
        "| server | coalesce | requests/s | p50 | p99 | reference queries/s | queries/request |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        window = f"{run.coalesce * 1000:g} ms" if run.coalesce else "off"
        lines.append(
            f"| {run.server} | {window} | {run.requests_per_s:.0f} | {run.p50_ms:.1f} ms "
            f"| {run.p99_ms:.1f} ms | {run.queries_per_s:.0f} | {run.queries_per_request:.3f} |"
        )
    return "\n".join(lines)
