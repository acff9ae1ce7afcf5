"""Whether the process is running a test suite, and how a failed query-count assertion is
raised in it.

Two signals of a test run, neither importing anything: the crossprefetch pytest plugin
marks the run while it is configured, and Django's ``setup_test_environment()`` (called by
``manage.py test``'s runner and by pytest-django) leaves its state behind until
``teardown_test_environment()`` (read through :mod:`crossprefetch._compat`).
"""

from __future__ import annotations

#: Set by the pytest plugin between ``pytest_configure`` and ``pytest_unconfigure``.
plugin_active = False

#: What a failed query-count assertion of ``crossprefetch.testing`` raises: the plugin sets
#: a class that is both ``pytest.fail.Exception`` and ``AssertionError`` for its run.
assertion_failure: type[AssertionError] = AssertionError


def running_tests() -> bool:
    """True inside a pytest run with the plugin, or while Django's test environment is set up."""
    if plugin_active:
        return True
    from crossprefetch import _compat  # here: the plugin imports this module before Django

    return _compat.test_environment_active()
