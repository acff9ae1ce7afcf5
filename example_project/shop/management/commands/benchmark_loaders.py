"""``manage.py benchmark_loaders``: the DataLoader's own overhead beside its peers'.

Not a test: a measurement. In one process, on one event loop, it times N loads of
distinct keys gathered in one tick (``await asyncio.gather(*map(loader.load, keys))``)
through a batch function that does no I/O (it returns the keys), with a new loader per
sample, for

* aiodataloader's ``DataLoader``: the reference of every ratio;
* strawberry's ``DataLoader`` (``strawberry.dataloader``);
* crossprefetch's :class:`~crossprefetch.loaders.DataLoader`, which keeps a future per
  caller of a pending key (a cancelled load never cancels another caller's) and drops
  the keys nobody waits for any more.

What is timed is the loaders' bookkeeping (futures, queue, dispatch) and asyncio's own
``gather``, the same for all three; a real batch function's query costs the same through
any of them. Samples of the three are interleaved, in a rotating order, after one
untimed sample of each (imports, warm caches); the process's own objects are frozen out
of the garbage collector's sight, which runs before each sample, and as usual within it.
Target: crossprefetch at most 1.10 times aiodataloader at 100, 1,000 and 10,000 loads.

The peers are not dependencies of crossprefetch: ``pip install -e ".[bench]"``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import platform
import time
from argparse import ArgumentParser
from collections.abc import Callable, Sequence
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from crossprefetch.loaders import DataLoader
from shop.management.commands._options import count, counts
from shop.management.commands.benchmark import command_line
from shop.measuring import format_ms, median

TIMES = "\N{MULTIPLICATION SIGN}"
TARGET = 1.10
REFERENCE = "aiodataloader"
#: (name, distribution, how to build a loader over ``batch_load_fn``)
LOADERS: tuple[tuple[str, str, Callable[[Any], Any]], ...] = (
    ("aiodataloader", "aiodataloader", lambda fn: import_module("aiodataloader").DataLoader(fn)),
    (
        "strawberry",
        "strawberry-graphql",
        lambda fn: import_module("strawberry.dataloader").DataLoader(load_fn=fn),
    ),
    ("crossprefetch", "crossprefetch", lambda fn: DataLoader(fn)),
)


async def echo(keys: list[int]) -> list[int]:
    """The batch function: no I/O, so what is timed is the loader itself."""
    return keys


async def one_sample(make: Callable[[Any], Any], loads: int) -> float:
    """Seconds for ``loads`` loads of distinct keys gathered in one tick, answered."""
    loader = make(echo)
    keys = range(loads)
    started = time.perf_counter()
    values = await asyncio.gather(*[loader.load(key) for key in keys])
    elapsed = time.perf_counter() - started
    if values != list(keys):
        raise CommandError(f"a loader answered wrongly: {values[:5]!r}...")
    return elapsed


def samples_for(loads: int, rounds: int) -> int:
    """More samples of small batches, whose times are short and noisier (at most 1,000)."""
    return max(rounds, min(1_000, rounds * 10_000 // loads))


async def measure(sizes: Sequence[int], rounds: int) -> dict[int, dict[str, list[float]]]:
    gc.collect()
    gc.freeze()  # the process's own objects: collecting before a sample costs only garbage
    try:
        return await _measure(sizes, rounds)
    finally:
        gc.unfreeze()


async def _measure(sizes: Sequence[int], rounds: int) -> dict[int, dict[str, list[float]]]:
    times: dict[int, dict[str, list[float]]] = {}
    for loads in sizes:
        per_loader: dict[str, list[float]] = {name: [] for name, _, _ in LOADERS}
        for _, _, make in LOADERS:
            await one_sample(make, loads)  # untimed
        for sample in range(samples_for(loads, rounds)):
            shift = sample % len(LOADERS)
            order = LOADERS[shift:] + LOADERS[:shift]
            for name, _, make in order:
                gc.collect()  # each sample starts without the previous one's garbage
                per_loader[name].append(await one_sample(make, loads))
        times[loads] = per_loader
    return times


def environment() -> dict[str, Any]:
    versions = {}
    for _, distribution, _ in LOADERS:
        versions[distribution] = version(distribution)
    return {"python": platform.python_version(), **versions, "platform": platform.platform()}


def render_markdown(report: dict[str, Any]) -> str:
    names = [name for name, _, _ in LOADERS]
    lines = [
        "### The DataLoader's own overhead",
        "",
        f"`{report['command']}`",
        "",
        ", ".join(f"{key} {value}" for key, value in report["environment"].items()),
        "",
        f"Median time of N loads of distinct keys gathered in one tick; {TIMES} "
        f"{REFERENCE} in brackets.",
        "",
        "| loads | samples | " + " | ".join(names) + f" | target ≤ {TARGET:.2f}{TIMES} |",
        "|--:|--:|" + "--:|" * len(names) + ":-:|",
    ]
    for row in report["results"]:
        cells = [
            f"{format_ms(row['median_s'][name])} ({row['ratio'][name]:.2f}{TIMES})"
            for name in names
        ]
        met = "met" if row["ratio"]["crossprefetch"] <= TARGET else "**not met**"
        lines.append(
            f"| {row['loads']:,} | {row['samples']} | " + " | ".join(cells) + f" | {met} |"
        )
    return "\n".join(lines) + "\n"


class Command(BaseCommand):
    help = (
        "Time N loads gathered in one tick through aiodataloader's, strawberry's and "
        "crossprefetch's DataLoader, side by side. Prints Markdown."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--sizes", type=counts, default=[100, 1000, 10_000], help="loads per batch"
        )
        parser.add_argument(
            "--rounds",
            type=count,
            default=20,
            help="samples per loader at 10,000 loads (20); smaller batches get more, up to 1,000",
        )
        parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["rounds"] < 1:
            raise CommandError("--rounds must be at least 1.")
        try:
            measured = environment()
            times = asyncio.run(measure(options["sizes"], options["rounds"]))
        except (ImportError, PackageNotFoundError) as exc:
            raise CommandError(
                f'{exc}: the peers are measured too; install them with pip install -e ".[bench]".'
            ) from None
        results = []
        for loads, per_loader in times.items():
            medians = {name: median(values) for name, values in per_loader.items()}
            results.append(
                {
                    "loads": loads,
                    "samples": len(per_loader[REFERENCE]),
                    "median_s": medians,
                    "ratio": {name: t / medians[REFERENCE] for name, t in medians.items()},
                    "times_s": {  # to a tenth of a microsecond: the clock's noise is larger
                        name: [round(t, 7) for t in values] for name, values in per_loader.items()
                    },
                }
            )
        report = {"command": command_line(), "environment": measured, "results": results}
        self.stdout.write(render_markdown(report))
        if options["json"]:
            Path(options["json"]).write_text(json.dumps(report, indent=2) + "\n")
