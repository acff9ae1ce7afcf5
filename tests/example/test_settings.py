"""The example's settings: database URLs from the environment."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from example.settings import database_from_url


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
