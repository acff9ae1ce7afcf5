"""Whether the process is running a test suite: strict mode's default depends on it.

Two signals, neither importing anything: the crossprefetch pytest plugin marks the run
while it is configured, and Django's ``setup_test_environment()`` (called by
``manage.py test``'s runner and by pytest-django) leaves its saved state on
``django.test.utils._TestState`` until ``teardown_test_environment()``.
"""

from __future__ import annotations

import sys

#: Set by the pytest plugin between ``pytest_configure`` and ``pytest_unconfigure``.
plugin_active = False


def running_tests() -> bool:
    """True inside a pytest run with the plugin, or while Django's test environment is set up."""
    if plugin_active:
        return True
    utils = sys.modules.get("django.test.utils")
    state = getattr(utils, "_TestState", None)
    return state is not None and hasattr(state, "saved_data")
