"""The example's settings: database URLs from the environment."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from example.settings import connection_reuse, database_from_url


def test_postgres_url() -> None:
    assert database_from_url("default", "postgres://me:s%40cret@db.local:6543/shop") == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "shop",
        "USER": "me",
        "PASSWORD": "s@cret",
        "HOST": "db.local",
        "PORT": "6543",
    }


def test_postgres_url_without_name_or_port() -> None:
    settings = database_from_url("timeseries", "postgresql://postgres@127.0.0.1")
    assert (settings["NAME"], settings["PORT"]) == ("crossprefetch_timeseries", "")


@pytest.mark.parametrize("url", ["sqlite:///tmp/shop.sqlite3", "sqlite:////tmp/shop.sqlite3"])
def test_sqlite_url(url: str) -> None:
    assert database_from_url("default", url) == {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": "/tmp/shop.sqlite3",
    }


def test_unknown_scheme() -> None:
    with pytest.raises(ImproperlyConfigured, match="EXAMPLE_DEFAULT_DB_URL"):
        database_from_url("default", "mysql://root@localhost/shop")


POSTGRES_URL = "postgres://me@db.local/shop"


def test_postgres_reads_through_a_connection_pool() -> None:
    database = connection_reuse(database_from_url("default", POSTGRES_URL), {})
    assert database["OPTIONS"] == {"pool": {"min_size": 2, "max_size": 16, "timeout": 30}}
    assert "CONN_MAX_AGE" not in database


def test_pool_size_from_the_environment() -> None:
    database = connection_reuse(
        database_from_url("default", POSTGRES_URL), {"EXAMPLE_DB_POOL_MAX": "4"}
    )
    assert database["OPTIONS"]["pool"]["max_size"] == 4


def test_without_the_pool_connections_live_conn_max_age() -> None:
    env = {"EXAMPLE_DB_POOL": "0", "EXAMPLE_CONN_MAX_AGE": "60"}
    database = connection_reuse(database_from_url("default", POSTGRES_URL), env)
    assert "OPTIONS" not in database
    assert database["CONN_MAX_AGE"] == 60


def test_sqlite_has_no_pool() -> None:
    database = connection_reuse(database_from_url("default", "sqlite:///tmp/shop.sqlite3"), {})
    assert (database.get("OPTIONS"), database["CONN_MAX_AGE"]) == (None, 0)
