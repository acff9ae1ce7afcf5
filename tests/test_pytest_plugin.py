"""Tests of the pytest plugin: real pytest runs in a subprocess, plus the fixtures in this run.

The subprocess runs load the plugin the way a user's project does, through the
``pytest11`` entry point of the installed package: nothing here names
``crossprefetch.pytest_plugin`` in ``pytest_plugins`` or ``-p``.
"""

from __future__ import annotations

import pytest
from django.db import transaction

from crossprefetch.testing import AssertNumQueries
from tests.testapp.models import Customer, OrderEvent, Region

ALL = ["default", "timeseries", "legacy"]

# A Django project of its own: two SQLite aliases, one not a Python identifier.
CONFTEST = """
from pathlib import Path

from django.conf import settings

HERE = Path(__file__).resolve().parent


def pytest_configure(config):
    settings.configure(
        DATABASES={
            alias: {"ENGINE": "django.db.backends.sqlite3", "NAME": str(HERE / f"{alias}.sqlite3")}
            for alias in ("default", "time-series")
        },
        INSTALLED_APPS=["django.contrib.contenttypes"],
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        USE_TZ=True,
    )
"""

TESTS = """
import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connections, transaction

BOTH = ["default", "time-series"]


def one_on_default_two_on_time_series():
    ContentType.objects.count()
    ContentType.objects.using("time-series").count()
    ContentType.objects.using("time-series").filter(model="widget").exists()


@pytest.mark.django_db(databases=BOTH)
def test_exact_passes(crossprefetch_assert_num_queries):
    with crossprefetch_assert_num_queries({"default": 1, "time-series": 2}) as captured:
        one_on_default_two_on_time_series()
    assert captured.counts == {"default": 1, "time-series": 2}
    assert "widget" in captured["time-series"][1].sql


@pytest.mark.django_db(databases=BOTH)
def test_max_passes(crossprefetch_assert_max_num_queries):
    with crossprefetch_assert_max_num_queries(default=1, total=3):
        one_on_default_two_on_time_series()


@pytest.mark.django_db(databases=["default"])
def test_with_one_database_allowed(crossprefetch_assert_num_queries):
    with crossprefetch_assert_num_queries(total=1) as captured:
        ContentType.objects.count()
    assert captured.counts == {"default": 1, "time-series": 0}


@pytest.mark.django_db(databases=BOTH, transaction=True)
def test_transactional_and_lazily_connected(crossprefetch_assert_num_queries):
    connections["time-series"].close()
    with crossprefetch_assert_num_queries({"default": 1, "time-series": 1}):
        with transaction.atomic(using="time-series"):
            ContentType.objects.using("time-series").create(app_label="shop", model="widget")
        ContentType.objects.count()


@pytest.mark.django_db(databases=BOTH)
def test_exact_fails(crossprefetch_assert_num_queries):
    with crossprefetch_assert_num_queries({"default": 2, "time-series": 1}):
        one_on_default_two_on_time_series()


@pytest.mark.django_db(databases=BOTH)
def test_max_fails(crossprefetch_assert_max_num_queries):
    with crossprefetch_assert_max_num_queries(total=2, info="the widget page"):
        one_on_default_two_on_time_series()
"""


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A fresh Django project for the inner runs, free of this run's settings."""
    for variable in ("DJANGO_SETTINGS_MODULE", "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_ADDOPTS"):
        monkeypatch.delenv(variable, raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_queries=TESTS)
    return pytester


def test_fixtures_pass_and_fail_with_the_message(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_exact_fails*",
            "E * AssertionError: Expected to perform 2 queries on 'default' but 1 was done",
            "E * Expected to perform 1 queries on 'time-series' but 2 were done",
            "E * Queries on 'default' (1, expected 2):",
            'E * 1. SELECT COUNT(*) AS "__count" FROM "django_content_type"',
            "E * Queries on 'time-series' (2, expected 1):",
            'E * 1. SELECT COUNT(*) AS "__count" FROM "django_content_type"',
            'E * 2. SELECT 1 AS "a" FROM "django_content_type" WHERE * = \'widget\' LIMIT 1',
            "*test_max_fails*",
            "E * AssertionError: Expected to perform 2 queries or less in total but 3 were done",
            "E * the widget page",
            "E * Queries on 'default' (1, counted in the total):",
            "E * Queries on 'time-series' (2, counted in the total):",
        ]
    )
    # pytest shows the user's ``with`` line, not the plugin's internals.
    assert "crossprefetch/testing.py" not in result.stdout.str()


def test_fixtures_come_from_the_installed_entry_point(project: pytest.Pytester) -> None:
    listed = project.runpytest_subprocess("--fixtures", "-p", "no:cacheprovider")
    listed.stdout.fnmatch_lines(
        [
            "*fixtures defined from crossprefetch.pytest_plugin*",
            "crossprefetch_assert_num_queries*",
            "*Assert the exact number of queries per database alias*",
            "crossprefetch_assert_max_num_queries*",
            "*Assert an upper bound on the number of queries per database alias*",
        ]
    )
    # Disabling the plugin by its entry-point name removes the fixtures.
    disabled = project.runpytest_subprocess(
        "-p", "no:crossprefetch", "-p", "no:cacheprovider", "-k", "test_exact_passes"
    )
    disabled.assert_outcomes(errors=1)
    disabled.stdout.fnmatch_lines(["*fixture 'crossprefetch_assert_num_queries' not found*"])


def test_plugin_leaves_projects_without_django_settings_alone(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    pytester.makepyfile("def test_plain():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


@pytest.mark.django_db(databases=ALL)
def test_fixtures_in_this_run(
    crossprefetch_assert_num_queries: AssertNumQueries,
    crossprefetch_assert_max_num_queries: AssertNumQueries,
) -> None:
    with crossprefetch_assert_num_queries(default=1, timeseries=1, legacy=0) as captured:
        Customer.objects.count()
        OrderEvent.objects.count()
    assert captured.count() == 2
    with crossprefetch_assert_max_num_queries(total=1):
        Region.objects.count()


@pytest.mark.django_db(databases=ALL, transaction=True)
def test_fixtures_in_a_transactional_test(
    crossprefetch_assert_num_queries: AssertNumQueries,
) -> None:
    with (
        crossprefetch_assert_num_queries({"legacy": 1, "default": 1}),
        transaction.atomic(using="legacy"),
    ):
        Region.objects.create(code="n", name="North")
        Customer.objects.count()
