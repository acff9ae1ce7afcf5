"""Tests of the pytest plugin: real pytest runs in a subprocess, plus the fixtures in this run.

The subprocess runs load the plugin the way a user's project does, through the
``pytest11`` entry point of the installed package: nothing here names
``crossprefetch.pytest_plugin`` in ``pytest_plugins`` or ``-p``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

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
            "E * *.QueryCountFailed: Expected to perform 2 queries on 'default' but 1 was done",
            "E * Expected to perform 1 queries on 'time-series' but 2 were done",
            "E * Queries on 'default' (1, expected 2):",
            'E * 1. SELECT COUNT(*) AS "__count" FROM "django_content_type"',
            "E * Queries on 'time-series' (2, expected 1):",
            'E * 1. SELECT COUNT(*) AS "__count" FROM "django_content_type"',
            'E * 2. SELECT 1 AS "a" FROM "django_content_type" WHERE * = \'widget\' LIMIT 1',
            "*test_max_fails*",
            "E * *QueryCountFailed: Expected to perform 2 queries or less in total but 3 were done",
            "E * the widget page",
            "E * Queries on 'default' (1, counted in the total):",
            "E * Queries on 'time-series' (2, counted in the total):",
        ]
    )
    # pytest shows the user's ``with`` line, not the plugin's internals.
    assert "crossprefetch/testing/" not in result.stdout.str()


def test_fixtures_come_from_the_installed_entry_point(project: pytest.Pytester) -> None:
    listed = project.runpytest_subprocess("--fixtures", "-p", "no:cacheprovider")
    listed.stdout.fnmatch_lines(["*fixtures defined from crossprefetch.pytest_plugin*"])
    for fixture, doc in [
        ("crossprefetch_assert_num_queries", "Assert the exact number of queries per database"),
        ("crossprefetch_assert_max_num_queries", "Assert an upper bound on the number of"),
        ("crossprefetch_detect_n_plus_one", "Fail the block when one SQL shape repeats"),
    ]:
        listed.stdout.fnmatch_lines([f"{fixture} -- *", f"*{doc}*"])
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


# -- the example's shop, in a project of its own ------------------------------------------

EXAMPLE = Path(__file__).resolve().parent.parent / "example_project"

SHOP_CONFTEST = f"""
import sys
from pathlib import Path

from django.conf import settings

HERE = Path(__file__).resolve().parent
sys.path.insert(0, {str(EXAMPLE)!r})


def pytest_configure(config):
    settings.configure(
        DEBUG=False,
        DATABASES={{
            alias: {{"ENGINE": "django.db.backends.sqlite3", "NAME": str(HERE / f"{{alias}}.db")}}
            for alias in ("default", "timeseries")
        }},
        DATABASE_ROUTERS=["shop.routers.ShopRouter", "example.routers.DefaultOnlyRouter"],
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "rest_framework",
            "crossprefetch",
            "shop",
        ],
        ROOT_URLCONF="project_urls",
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        USE_TZ=True,
        SECRET_KEY="inner",
        REST_FRAMEWORK={{
            "DEFAULT_AUTHENTICATION_CLASSES": [],
            "DEFAULT_PERMISSION_CLASSES": [],
            "UNAUTHENTICATED_USER": None,
        }},
    )
"""

SHOP_URLS = """
from django.urls import include, path

import project_views

urlpatterns = [
    path("shop/", include("shop.urls")),
    path("forgetful/", project_views.ForgetfulViewSet.as_view({"get": "list"})),
]
"""

# A view whose serializer reads a lookup it forgot to declare: E009 for the checks, and
# "Unknown customer" on every row when strict mode is off.
SHOP_VIEWS = """
from crossprefetch import CrossDBPrefetchMixin
from rest_framework import viewsets

from shop.models import OrderEvent
from shop.pagination import EventPagination
from shop.serializers import OrderEventSerializer


class ForgetfulViewSet(CrossDBPrefetchMixin, viewsets.ReadOnlyModelViewSet):
    queryset = OrderEvent.objects.all()
    serializer_class = OrderEventSerializer
    pagination_class = EventPagination

    def get_cross_db_fields(self):
        return {}  # the checks cannot see it: only a request shows the mistake
"""

SHOP_TESTS = """
import datetime as dt

import pytest
from rest_framework.test import APIClient

from shop.models import Customer, OrderEvent

pytestmark = pytest.mark.django_db(databases=["default", "timeseries"])


@pytest.fixture
def events():
    customers = [
        Customer.objects.create(name=f"Customer {i}", email=f"c{i}@example.com", tier="gold")
        for i in range(4)
    ]
    for i in range(12):
        OrderEvent.objects.create(
            timestamp=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=i),
            customer_id=customers[i % 4].pk,
            event_type="created",
            amount=i,
        )


def test_forgetful_view(events):
    response = APIClient().get("/forgetful/")
    assert response.status_code == 200
    assert response.json()["results"][0]["customer_name"] != "Unknown customer"


def test_naive_endpoint(events, crossprefetch_detect_n_plus_one):
    with crossprefetch_detect_n_plus_one():
        APIClient().get("/shop/naive-events/")


def test_crossprefetch_endpoint(events, crossprefetch_detect_n_plus_one):
    with crossprefetch_detect_n_plus_one() as captured:
        response = APIClient().get("/shop/events/")
    assert response.json()["results"][0]["customer_name"].startswith("Customer")
    assert captured.counts == {"default": 1, "timeseries": 2}
"""


@pytest.fixture
def shop_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """The example's shop app served by a project of its own, with DEBUG off."""
    for variable in ("DJANGO_SETTINGS_MODULE", "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_ADDOPTS"):
        monkeypatch.delenv(variable, raising=False)
    pytester.makeconftest(SHOP_CONFTEST)
    pytester.makepyfile(project_urls=SHOP_URLS, project_views=SHOP_VIEWS, test_shop=SHOP_TESTS)
    return pytester


def test_strict_mode_fails_a_test_with_debug_off(shop_project: pytest.Pytester) -> None:
    """With DEBUG off (as in every test run), the forgotten lookup fails the test instead of
    rendering "Unknown customer"; the checks are off here, so the test itself runs."""
    result = shop_project.runpytest_subprocess(
        "-p", "no:cacheprovider", "-o", "crossprefetch_checks=false", "-k", "forgetful"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E *ImproperlyConfigured: OrderEventSerializer.customer_name (ContextLookupField "
            "'customers'): the serializer context has no lookup 'customers'*while tests run*",
        ]
    )


def test_explicit_strict_setting_wins(shop_project: pytest.Pytester) -> None:
    shop_project.makeconftest(
        SHOP_CONFTEST.replace("DEBUG=False,", "DEBUG=False, CROSSPREFETCH={'STRICT': False},")
    )
    result = shop_project.runpytest_subprocess(
        "-p", "no:cacheprovider", "-o", "crossprefetch_checks=false", "-k", "forgetful"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*AssertionError: assert 'Unknown customer' != 'Unknown customer'"]
    )


BROKEN_VIEWS = (
    SHOP_VIEWS
    + """

class NoMixinViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = OrderEvent.objects.all()
    serializer_class = OrderEventSerializer
    cross_db_fields = {"customers": None}
"""
)


def test_a_failing_system_check_fails_the_session(shop_project: pytest.Pytester) -> None:
    shop_project.makepyfile(project_views=BROKEN_VIEWS)
    shop_project.makepyfile(
        project_urls=SHOP_URLS.replace(
            "]\n",
            '    path("broken/", project_views.NoMixinViewSet.as_view({"get": "list"})),\n]\n',
        )
    )
    result = shop_project.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes()  # no test ran
    result.stdout.fnmatch_lines(
        [
            "*crossprefetch's system checks found errors (set crossprefetch_checks = false*",
            "*NoMixinViewSet'>: (crossprefetch.E013) project_views.NoMixinViewSet "
            "declares cross_db_fields but does not inherit CrossDBPrefetchMixin*",
            "*HINT: Add CrossDBPrefetchMixin first among the view's bases.*",
        ]
    )

    # Silenced, or turned off in the ini file: the tests run.
    silenced = shop_project.runpytest_subprocess(
        "-p", "no:cacheprovider", "-o", "crossprefetch_checks=false", "-k", "crossprefetch_end"
    )
    silenced.assert_outcomes(passed=1)


def test_detect_n_plus_one_on_the_example_endpoints(shop_project: pytest.Pytester) -> None:
    result = shop_project.runpytest_subprocess("-p", "no:cacheprovider", "-k", "endpoint")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_naive_endpoint*",
            "E *NPlusOneError: N+1 queries: 1 SQL shape(s) ran more than 2 time(s) on one "
            "database alias.",
            "E * 20 queries on 'default', table 'shop_customer' (shop.Customer), of one shape:",
            'E * SELECT "shop_customer"."id", * WHERE "shop_customer"."id" = %s *',
            "E * issued by:",
            "E * 10 x NaiveOrderEventSerializer.get_customer_name (serializer field "
            "NaiveOrderEventSerializer.customer_name, SerializerMethodField) at "
            "*example_project/shop/serializers.py:4*",
            "E * customer = Customer.objects.filter(pk=event.customer_id).first()",
            "E * 10 x NaiveOrderEventSerializer.get_customer_tier *",
            "E * cross_db_fields = {'customers': CrossDBPrefetch('shop.Customer', "
            "key='customer_id', fields=('name', 'tier'))}",
            "E * and read it in the serializer with ContextLookupField('customers', 'name'), "
            "ContextLookupField('customers', 'tier').",
        ]
    )


# -- Django's own test runner: no pytest, strict all the same ------------------------------

RUNNER_SETTINGS = (
    SHOP_CONFTEST.split("def pytest_configure(config):")[0]
    + """
DEBUG = False
DATABASES = {
    alias: {"ENGINE": "django.db.backends.sqlite3", "NAME": str(HERE / f"{alias}.db")}
    for alias in ("default", "timeseries")
}
DATABASE_ROUTERS = ["shop.routers.ShopRouter", "example.routers.DefaultOnlyRouter"]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "crossprefetch",
    "shop",
]
ROOT_URLCONF = "project_urls"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
SECRET_KEY = "inner"
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
}
"""
)

RUNNER_TESTS = """
import datetime as dt

from django.test import TestCase
from rest_framework.test import APIClient

from shop.models import Customer, OrderEvent


class ForgetfulViewTests(TestCase):
    databases = {"default", "timeseries"}

    def test_forgetful_view(self):
        customer = Customer.objects.create(name="Ann", email="a@example.com", tier="gold")
        OrderEvent.objects.create(
            timestamp=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
            customer_id=customer.pk,
            event_type="created",
            amount=1,
        )
        response = APIClient().get("/forgetful/")
        self.assertNotEqual(response.json()["results"][0]["customer_name"], "Unknown customer")
"""


def test_manage_py_test_is_strict_with_debug_off(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``manage.py test`` (here ``django-admin test``): Django's runner sets up its test
    environment, which turns strict mode on; the forgotten lookup fails the test."""
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "project_settings")
    monkeypatch.setenv(
        "PYTHONPATH", f"{pytester.path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    )
    pytester.makepyfile(
        project_settings=RUNNER_SETTINGS,
        project_urls=SHOP_URLS,
        project_views=SHOP_VIEWS,
        test_runner_shop=RUNNER_TESTS,
    )
    result = pytester.run(sys.executable, "-m", "django", "test", "test_runner_shop", "-v", "1")
    assert result.ret == 1
    output = result.stdout.str() + result.stderr.str()
    assert "ERROR: test_forgetful_view" in output
    assert (
        "ImproperlyConfigured: OrderEventSerializer.customer_name (ContextLookupField "
        "'customers'): the serializer context has no lookup 'customers'"
    ) in output
