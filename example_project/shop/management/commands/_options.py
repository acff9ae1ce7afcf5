"""Argument types shared by the example's commands."""

from __future__ import annotations

import argparse


def count(text: str) -> int:
    """A non-negative integer, written as ``1000000``, ``1_000_000`` or ``1,000,000``."""
    try:
        value = int(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return value


def counts(text: str) -> list[int]:
    """Comma-separated positive integers: ``10,100,1000`` (``10_000`` for ten thousand)."""
    values = [count(part) for part in text.split(",") if part.strip()]
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give positive numbers, e.g. 10,100,1000")
    return values
