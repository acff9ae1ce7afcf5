"""``manage.py benchmark_degraded``: what a request costs when the customers' database fails.

Not a test: a measurement, through the whole stack like ``benchmark``, of the
``degrading-events`` endpoint (``on_error="degrade"``, ``timeout=DEGRADE_TIMEOUT``):

* healthy: the customers' database answers;
* slow: the customers' query runs longer than the timeout and the database cancels it;
* dead: the customers' database refuses connections (a killed server: the SQLite file
  replaced by a directory, or the PostgreSQL port closed, without the pool), each request
  trying again (the circuit breaker held closed);
* breaker open: the same dead database after the breaker opened: no attempt at all;
* bulkhead full: ``MAX_CONCURRENT`` queries already in flight on the customers' alias (the
  place held by the command itself, as a hung query would hold it): no attempt at all;
* PostgreSQL only, the customers' database behind a proxy of the command's own
  (:mod:`shop.faults`): hung with the connections opened before (each request's query
  sent on a pooled or kept connection, then no answer), hung on new connections (the pool
  and the connections closed first: connecting, or waiting for the pool, never ends), and
  dead behind the pool (the pool's connections dropped, every new one refused).

Targets: dead ≤ timeout + 20 ms; breaker open ≤ 1.10 times healthy; bulkhead full: p99 ≤
timeout + 50 ms. The slow request is judged by what the slow query adds to a healthy
request (≤ timeout + 20 ms), and the hung and dead-behind-the-pool requests by what their
p99 adds to a healthy request's median (≤ timeout + 50 ms): the rest of the request (the
page, serialization) costs what it costs either way.
"""

from __future__ import annotations

import gc
import json
import tempfile
from argparse import ArgumentParser
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from django.test import Client
from django.test.utils import override_settings
from django.urls import reverse

from crossprefetch._fetch import breaker, bulkhead, workers
from shop.faults import Proxy
from shop.management.commands._options import count
from shop.management.commands.benchmark import command_line, environment
from shop.measuring import format_ms, median, timed_get
from shop.models import Customer
from shop.seeding import Dataset, prepare_databases, seed
from shop.views import DEGRADE_TIMEOUT

HEADER = "Crossprefetch-Degraded"
TIMES = "\N{MULTIPLICATION SIGN}"
MARGIN = 0.020
NEVER = {"BREAKER_FAILURES": 1_000_000_000}
OPENS = {"BREAKER_FAILURES": 1, "BREAKER_RESET": 3600}


@contextmanager
def dead(alias: str) -> Iterator[None]:
    """The alias's server refuses connections until the block ends."""
    connection = connections[alias]
    settings = connection.settings_dict
    saved = dict(settings)
    with tempfile.TemporaryDirectory() as directory:
        if connection.vendor == "sqlite":
            settings["NAME"] = directory  # "unable to open database file"
        elif connection.vendor == "postgresql":
            import socket

            with socket.socket() as sock:  # a port nothing listens on
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            options = {k: v for k, v in settings.get("OPTIONS", {}).items() if k != "pool"}
            # without the pool: a refused connection fails at once (behind a pool, the
            # request waits for its deadline: the "dead behind the pool" row)
            reconnect(alias)
            settings.update(HOST="127.0.0.1", PORT=str(port), OPTIONS=options)
        else:
            raise CommandError(f"No way to kill a {connection.vendor} server here.")
        reconnect(alias)
        try:
            yield
        finally:
            settings.clear()
            settings.update(saved)
            reconnect(alias)


@contextmanager
def bulkhead_full(alias: str) -> Iterator[None]:
    """``MAX_CONCURRENT`` of 1 on ``alias``, its place taken until the block ends."""
    with override_settings(CROSSPREFETCH={**NEVER, "MAX_CONCURRENT": 1}):
        bulkhead.databases.acquire(alias)
        try:
            yield
        finally:
            bulkhead.databases.release(alias)


@contextmanager
def behind_proxy(alias: str) -> Iterator[Proxy | None]:
    """The alias's PostgreSQL reached through a :class:`~shop.faults.Proxy` until the block
    ends; ``None`` on another backend (no server to hang)."""
    connection = connections[alias]
    if connection.vendor != "postgresql":
        yield None
        return
    settings = connection.settings_dict
    saved = dict(settings)
    proxy = Proxy(settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432))
    reconnect(alias)
    settings.update(HOST="127.0.0.1", PORT=str(proxy.port))
    try:
        yield proxy
    finally:
        proxy.forward()
        reconnect(alias)
        settings.clear()
        settings.update(saved)
        proxy.close()


def reconnect(alias: str) -> None:
    """Close every connection to ``alias``: this thread's, the pool's, crossprefetch's."""
    connection = connections[alias]
    connection.close()
    if connection.settings_dict.get("OPTIONS", {}).get("pool"):
        connection.close_pool()  # type: ignore[attr-defined]
    workers.reset()


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def bulkhead_row(report: dict[str, Any], verdict: Any) -> str:
    figures = report["bulkhead_s"]
    limit = report["settings"]["timeout_s"] + 0.050
    return (
        f"| alive, bulkhead full (p50 / p99) | {format_ms(figures['p50'])} / "
        f"{format_ms(figures['p99'])} | p99 ≤ {format_ms(limit)} | "
        f"{verdict(figures['p99'] <= limit)} |"
    )


def fault_rows(report: dict[str, Any], verdict: Any) -> list[str]:
    faults = report.get("faults_s")
    labels = {
        "hung_open": "hung, connections opened before (p50 / p99)",
        "hung_new": "hung, new connections (p50 / p99)",
        "dead_pool": "dead behind the pool (p50 / p99)",
    }
    if not faults:
        return [
            f"| {label} | n/a: no server to hang on SQLite | — | — |" for label in labels.values()
        ]
    limit = report["settings"]["timeout_s"] + 0.050
    healthy = report["median_s"]["healthy"]
    return [
        f"| {label} | {format_ms(faults[name]['p50'])} / {format_ms(faults[name]['p99'])} "
        f"(p99 +{format_ms(faults[name]['p99'] - healthy)} over healthy) | "
        f"p99 +≤ {format_ms(limit)} | {verdict(faults[name]['p99'] - healthy <= limit)} |"
        for name, label in labels.items()
    ]


class Command(BaseCommand):
    help = (
        "Time the degrading endpoint with the customers' database healthy, slow (cancelled "
        "by the timeout), dead, and dead with its circuit breaker open. Prints Markdown."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--page-size", type=count, default=100, help="(default: 100)")
        parser.add_argument("--repeat", type=count, default=30, help="requests per block (30)")
        parser.add_argument("--rounds", type=count, default=3, help="blocks per variant (3)")
        parser.add_argument("--reference-rows", type=count, default=10_000, help="(10000)")
        parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["repeat"] < 2 or options["rounds"] < 1:
            raise CommandError("--repeat must be at least 2 and --rounds at least 1.")
        with override_settings(DEBUG=False):
            report = self._run(options)
        self.stdout.write(render_markdown(report))
        if options["json"]:
            Path(options["json"]).write_text(json.dumps(report, indent=2) + "\n")

    def _run(self, options: dict[str, Any]) -> dict[str, Any]:
        prepare_databases(("default", "timeseries"))
        seed(Dataset(options["reference_rows"], max(options["page_size"], 1000)))
        measured = environment()
        alias = Customer.objects.all().db
        client = Client()
        page = options["page_size"]
        degrading = f"{reverse('shop:degrading-event-list')}?page_size={page}"
        slow = f"{reverse('shop:slow-reference-event-list')}?page_size={page}"
        times: dict[str, list[float]] = {
            "healthy": [],
            "slow": [],
            "dead": [],
            "open": [],
            "bulkhead": [],
        }
        faults: dict[str, list[float]] = {"hung_open": [], "hung_new": [], "dead_pool": []}

        def block(name: str, url: str, *, degraded: bool) -> None:
            # the first request of a block pays for (re)connecting: not measured
            self._check(client, url, degraded)
            for _ in range(options["repeat"]):
                gc.collect()
                elapsed, _ = timed_get(client, url)
                times[name].append(elapsed)

        for _ in range(options["rounds"]):
            with override_settings(CROSSPREFETCH=NEVER):
                block("healthy", degrading, degraded=False)
                block("slow", slow, degraded=True)
                with dead(alias):
                    block("dead", degrading, degraded=True)
            breaker.databases.reset()
            with override_settings(CROSSPREFETCH=OPENS), dead(alias):
                self._check(client, degrading, True)  # the failure that opens the breaker
                assert breaker.databases.is_open(alias)
                block("open", degrading, degraded=True)
            breaker.databases.reset()
            with bulkhead_full(alias):
                block("bulkhead", degrading, degraded=True)
            with override_settings(CROSSPREFETCH=NEVER), behind_proxy(alias) as proxy:
                if proxy is not None:
                    self._faults(client, degrading, alias, proxy, options["repeat"], faults)
            breaker.databases.reset()
            self.stderr.write(".", ending="")
        self.stderr.write("\n")
        medians = {name: median(values) for name, values in times.items()}
        return {
            "command": command_line(),
            "environment": measured,
            "settings": {
                "page_size": page,
                "repeat": options["repeat"],
                "rounds": options["rounds"],
                "reference_rows": options["reference_rows"],
                "timeout_s": DEGRADE_TIMEOUT,
            },
            "median_s": medians,
            "limits": {
                "slow_and_dead_s": DEGRADE_TIMEOUT + MARGIN,
                "open_vs_healthy": 1.10,
            },
            "open_vs_healthy": medians["open"] / medians["healthy"],
            "bulkhead_s": {"p50": medians["bulkhead"], "p99": p99(times["bulkhead"])},
            "faults_s": {
                name: {"p50": median(values), "p99": p99(values)}
                for name, values in faults.items()
                if values
            },
        }

    def _faults(
        self,
        client: Client,
        url: str,
        alias: str,
        proxy: Proxy,
        repeat: int,
        faults: dict[str, list[float]],
    ) -> None:
        """Each sample starts from a healthy request through the proxy, then hangs or kills
        it, and times one request."""
        for name in ("hung_open", "hung_new"):
            for _ in range(repeat):
                proxy.forward()
                self._check(client, url, False)
                if name == "hung_new":
                    reconnect(alias)
                proxy.hang()
                gc.collect()
                elapsed, _ = timed_get(client, url)
                faults[name].append(elapsed)
        proxy.forward()
        self._check(client, url, False)
        proxy.kill()
        for _ in range(repeat):
            gc.collect()
            elapsed, _ = timed_get(client, url)
            faults["dead_pool"].append(elapsed)
        proxy.forward()

    def _check(self, client: Client, url: str, degraded: bool) -> None:
        response = client.get(url)
        if response.status_code != 200 or (HEADER in response) != degraded:
            raise CommandError(
                f"{url}: expected a{' degraded' if degraded else 'n undegraded'} 200, got "
                f"{response.status_code} with {HEADER}={response.get(HEADER)!r}."
            )


def render_markdown(report: dict[str, Any]) -> str:
    medians = report["median_s"]
    limit = report["limits"]["slow_and_dead_s"]
    ratio = report["open_vs_healthy"]
    timeout = report["settings"]["timeout_s"]
    added = medians["slow"] - medians["healthy"]

    def verdict(ok: bool) -> str:
        return "yes" if ok else "**no**"

    lines = [
        "# Degraded requests",
        "",
        f"`{report['command']}`",
        "",
        f"Databases: {report['environment']['databases']}; commit "
        f"{report['environment']['commit']}; page of {report['settings']['page_size']}, "
        f"timeout {timeout * 1000:g} ms; median of "
        f"{report['settings']['repeat'] * report['settings']['rounds']} requests.",
        "",
        "| customers' database | median | target | met |",
        "|---|---:|---:|:-:|",
        f"| healthy | {format_ms(medians['healthy'])} | — | — |",
        f"| slow (cancelled at the timeout) | {format_ms(medians['slow'])} "
        f"(+{format_ms(added)} over healthy) | +≤ {format_ms(limit)} | "
        f"{verdict(added <= limit)} |",
        f"| dead, every request tries (no pool) | {format_ms(medians['dead'])} | "
        f"≤ {format_ms(limit)} | {verdict(medians['dead'] <= limit)} |",
        f"| dead, circuit breaker open | {format_ms(medians['open'])} "
        f"({ratio:.2f}{TIMES} healthy) | ≤ 1.10{TIMES} | {verdict(ratio <= 1.10)} |",
        bulkhead_row(report, verdict),
        *fault_rows(report, verdict),
        "",
    ]
    return "\n".join(lines)
