"""Settings of the second process in the cross-process invalidation tests.

The test settings, pointed at the databases the test process created (their ``TEST``
names, found again through ``CROSSPREFETCH_TEST_SUFFIX``) and at the cache keys of the
running test (``CROSSPREFETCH_TEST_CACHE_PREFIX``), with the caching tests' URLconf.
"""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES

for _database in DATABASES.values():
    _database["NAME"] = _database["TEST"]["NAME"]

ROOT_URLCONF = "tests.cache_urls"
CROSSPREFETCH = {"CACHE_PREFIX": os.environ.get("CROSSPREFETCH_TEST_CACHE_PREFIX", "crossprefetch")}
