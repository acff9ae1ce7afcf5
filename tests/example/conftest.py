"""Fixtures for the example project's tests: the shop seeded with a small deterministic dataset."""

from __future__ import annotations

import pytest

from shop.seeding import Dataset, seed

#: Small enough to seed in milliseconds, large enough for a page of 100 with repeated
#: customers and a few dangling references.
DATASET = Dataset(customers=80, events=260)
SHOP_DATABASES = ["default", "timeseries"]


@pytest.fixture
def shop_data() -> Dataset:
    """Seed the shop; tests using it are marked ``django_db(databases=SHOP_DATABASES)``."""
    seed(DATASET, force=True)
    return DATASET
