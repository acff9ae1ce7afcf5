"""``manage.py loadurl``: a bounded concurrent load on one URL of a running example server."""

from __future__ import annotations

import asyncio
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from shop.management.commands._options import count

DEFAULT_URL = "http://127.0.0.1:8000/shop/events/?page_size=100"


class Command(BaseCommand):
    help = (
        "Send GET requests to a running server of the example from many concurrent clients "
        "(httpx), at most --requests of them and for at most --max-seconds; report errors, "
        "requests/s and p50/p99 latency. Start the server first, e.g. "
        "'uvicorn example.asgi:application' in example_project/."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("url", nargs="?", default=DEFAULT_URL, help=f"default: {DEFAULT_URL}")
        parser.add_argument("--requests", type=count, default=5_000, help="default: 5000")
        parser.add_argument("--concurrency", type=count, default=64, help="default: 64")
        parser.add_argument("--max-seconds", type=float, default=120, help="default: 120")
        parser.add_argument("--timeout", type=float, default=60, help="per request; default 60")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            from shop.loadtesting import load
        except ImportError as exc:
            raise CommandError(f"{exc}: install httpx (pip install -e '.[example]').") from exc
        if options["concurrency"] < 1:
            raise CommandError("--concurrency must be at least 1.")
        result = asyncio.run(
            load(
                options["url"],
                requests=options["requests"],
                concurrency=options["concurrency"],
                max_seconds=options["max_seconds"],
                timeout=options["timeout"],
            )
        )
        self.stdout.write(result.report())
        if result.errors:
            raise CommandError(f"{result.errors} of {result.sent} requests failed.")
