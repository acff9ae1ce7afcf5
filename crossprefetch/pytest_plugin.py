"""pytest plugin of crossprefetch, registered through the ``pytest11`` entry point.

Installing crossprefetch makes the multi-database counterparts of pytest-django's
``django_assert_num_queries`` and ``django_assert_max_num_queries`` available as
fixtures, and ``crossprefetch_detect_n_plus_one``:

.. code-block:: python

    @pytest.mark.django_db(databases=["default", "timeseries"])
    def test_events(client, crossprefetch_assert_num_queries):
        with crossprefetch_assert_num_queries(default=1, timeseries=1):
            client.get("/events/")

They also take pytest-django's call style for one alias
(``crossprefetch_assert_num_queries(3, connection=connection, info="...")``, ``num=``,
``using=``) and Django's callable form, and fail as pytest-django's do: with
:class:`QueryCountFailed`, a ``pytest.fail.Exception`` that is an ``AssertionError`` too.
Like pytest-django's, they do not grant database access themselves: mark the test with
``django_db(databases=[...])``.

While the plugin is active, crossprefetch's strict mode is on unless
``CROSSPREFETCH["STRICT"]`` says otherwise (tests run with ``DEBUG`` off, where
a lookup a view forgot to declare would silently render its default), and
crossprefetch's system checks run once, before the first test: any error fails
the session (``crossprefetch_checks = false`` in the ini file turns that off;
pytest-django does not run system checks).

This module is loaded by every pytest run in an environment where crossprefetch
is installed, Django project or not, so it imports Django only when a Django
project is configured or a fixture is used.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import TYPE_CHECKING, Any

import pytest

from crossprefetch import _test_run

if TYPE_CHECKING:
    from crossprefetch.testing import AssertNumQueries, NPlusOneDetector

_CHECKS_INI = "crossprefetch_checks"


# pytest documents the class as ``pytest.fail.Exception`` only, which mypy cannot follow.
class QueryCountFailed(pytest.fail.Exception, AssertionError):  # type: ignore[name-defined,misc]
    """A failed query-count assertion of ``crossprefetch.testing`` under pytest.

    ``pytest.fail.Exception``, as pytest-django's ``django_assert_num_queries`` fails, so a
    test ported from it keeps ``pytest.raises(pytest.fail.Exception)``; and
    ``AssertionError``, as outside pytest and as Django's ``assertNumQueries``, so
    ``pytest.raises(AssertionError)`` and ``except AssertionError`` keep working too.
    """

    def __init__(self, msg: str) -> None:
        super().__init__(msg, pytrace=True)  # type: ignore[call-arg]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        _CHECKS_INI,
        "Run crossprefetch's system checks before the first test and fail the session on "
        "errors (default: true).",
        type="bool",
        default=True,
    )


def pytest_configure(config: pytest.Config) -> None:
    _test_run.plugin_active = True
    _test_run.assertion_failure = QueryCountFailed


def pytest_unconfigure(config: pytest.Config) -> None:
    _test_run.plugin_active = False
    _test_run.assertion_failure = AssertionError


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Run the checks once the run is known to have tests (never for ``--collect-only``)."""
    config = session.config
    if not session.items or config.option.collectonly or not config.getini(_CHECKS_INI):
        return
    errors = _check_errors()
    if errors:
        pytest.exit(
            "crossprefetch's system checks found errors "
            f"(set {_CHECKS_INI} = false in the pytest ini file to skip them):\n\n"
            + "\n\n".join(errors),
            returncode=pytest.ExitCode.TESTS_FAILED,
        )


def _check_errors() -> list[str]:
    """The unsilenced errors of the ``crossprefetch`` checks, as Django prints them."""
    if "django" not in sys.modules:
        return []
    from django.apps import apps
    from django.conf import settings

    if not settings.configured or not apps.ready or not apps.is_installed("crossprefetch"):
        return []
    from django.core import checks

    messages: list[Any] = checks.run_checks(tags=["crossprefetch"])
    return [
        str(message)
        for message in messages
        if message.level >= checks.ERROR and not message.is_silenced()
    ]


@pytest.fixture
def crossprefetch_assert_num_queries() -> AssertNumQueries:
    """Assert the exact number of queries per database alias, e.g. ``(default=1, timeseries=2)``.

    Also ``({"time-series": 2})`` and ``total=``; aliases not named are reported
    but not asserted. The block yields the captured queries. See
    ``crossprefetch.testing.assert_num_queries``.
    """
    from crossprefetch.testing import assert_num_queries

    return assert_num_queries


@pytest.fixture
def crossprefetch_assert_max_num_queries() -> AssertNumQueries:
    """Assert an upper bound on the number of queries per database alias.

    Same arguments as ``crossprefetch_assert_num_queries``. See
    ``crossprefetch.testing.assert_max_num_queries``.
    """
    from crossprefetch.testing import assert_max_num_queries

    return assert_max_num_queries


@pytest.fixture
def crossprefetch_detect_n_plus_one() -> partial[NPlusOneDetector]:
    """Fail the block when one SQL shape repeats on a database alias: an N+1.

    ``with crossprefetch_detect_n_plus_one(): client.get(...)``; ``threshold=`` (how many
    runs of one shape are allowed), ``aliases=``. The failure names the alias, table,
    count, issuing code and the ``CrossDBPrefetch`` that would replace the queries. See
    ``crossprefetch.testing.detect_n_plus_one``.
    """
    from crossprefetch.testing import detect_n_plus_one

    return partial(detect_n_plus_one)
