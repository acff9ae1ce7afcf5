"""``manage.py seed``: create the example's databases and fill them with deterministic data."""

from __future__ import annotations

import time
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from shop.management.commands._options import count
from shop.seeding import DEFAULT_SEED, Dataset, prepare_databases, seed


class Command(BaseCommand):
    help = (
        "Create the example's databases if needed and seed them with deterministic customers "
        "(default database) and order events (timeseries database). Does nothing when the "
        "same data is already there."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--customers", type=count, default=10_000, help="default: 10000")
        parser.add_argument("--events", type=count, default=5_000, help="default: 5000")
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
        parser.add_argument("--force", action="store_true", help="re-seed even if unchanged")

    def handle(self, *args: Any, **options: Any) -> None:
        prepare_databases()
        dataset = Dataset(options["customers"], options["events"], options["seed"])
        start = time.perf_counter()
        log = self.stdout.write if options["verbosity"] else None
        if seed(dataset, force=options["force"], log=log):
            self.stdout.write(f"Seeded in {time.perf_counter() - start:.1f} s.")
        else:
            self.stdout.write("Already seeded with this data; nothing to do (--force re-seeds).")
