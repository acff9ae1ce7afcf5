"""Settings for crossprefetch's own test suite.

Three database aliases, each backend chosen by ``CROSSPREFETCH_TEST_DB``:

* ``sqlite`` (default): every alias is its own SQLite file;
* ``postgres``: every alias is its own PostgreSQL database;
* ``mixed``: ``timeseries`` on PostgreSQL, ``default`` and ``legacy`` on SQLite;
* ``mariadb``: ``timeseries`` on PostgreSQL, ``default`` and ``legacy`` on MariaDB
  (or MySQL): the legacy-MySQL-beside-PostgreSQL setup.

PostgreSQL is reached through ``CROSSPREFETCH_PG_HOST`` / ``_PORT`` / ``_USER`` /
``_PASSWORD`` (default ``127.0.0.1:5432``, user ``postgres``, no password), MariaDB
through ``CROSSPREFETCH_MYSQL_HOST`` / ``_PORT`` / ``_USER`` / ``_PASSWORD`` (default
``127.0.0.1:3306``, user ``root``, no password) and Redis through
``CROSSPREFETCH_REDIS_URL`` (default ``redis://127.0.0.1:6379/15``).

MariaDB test databases are ``utf8mb4`` with the server's default collation for it
(case-insensitive and PAD SPACE), so text keys compare as they do in a real legacy
database.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR / "example_project"))

SECRET_KEY = "crossprefetch-tests"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
ALLOWED_HOSTS = ["*"]

TEST_DB = os.environ.get("CROSSPREFETCH_TEST_DB", "sqlite")
if TEST_DB not in {"sqlite", "postgres", "mixed", "mariadb"}:
    raise RuntimeError(
        f"CROSSPREFETCH_TEST_DB={TEST_DB!r}: use 'sqlite', 'postgres', 'mixed' or 'mariadb'."
    )

# Unique per test process, so that concurrent runs never share a test database.
_SUFFIX = os.environ.get("CROSSPREFETCH_TEST_SUFFIX", str(os.getpid()))
_SQLITE_DIR = Path(tempfile.gettempdir()) / f"crossprefetch-tests-{_SUFFIX}"
_SQLITE_DIR.mkdir(exist_ok=True)

POSTGRES = {
    "HOST": os.environ.get("CROSSPREFETCH_PG_HOST", "127.0.0.1"),
    "PORT": os.environ.get("CROSSPREFETCH_PG_PORT", "5432"),
    "USER": os.environ.get("CROSSPREFETCH_PG_USER", "postgres"),
    "PASSWORD": os.environ.get("CROSSPREFETCH_PG_PASSWORD", ""),
}

MYSQL = {
    "HOST": os.environ.get("CROSSPREFETCH_MYSQL_HOST", "127.0.0.1"),
    "PORT": os.environ.get("CROSSPREFETCH_MYSQL_PORT", "3306"),
    "USER": os.environ.get("CROSSPREFETCH_MYSQL_USER", "root"),
    "PASSWORD": os.environ.get("CROSSPREFETCH_MYSQL_PASSWORD", ""),
}


def _sqlite(alias: str) -> dict[str, Any]:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(_SQLITE_DIR / f"{alias}.sqlite3"),
        "TEST": {"NAME": str(_SQLITE_DIR / f"test_{alias}.sqlite3")},
    }


def _postgres(alias: str) -> dict[str, Any]:
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "postgres",
        **POSTGRES,
        "TEST": {"NAME": f"test_crossprefetch_{alias}_{_SUFFIX}"},
    }


def _mysql(alias: str) -> dict[str, Any]:
    return {
        "ENGINE": "django.db.backends.mysql",
        "NAME": "mysql",
        **MYSQL,
        "OPTIONS": {"charset": "utf8mb4"},
        # No COLLATION: the server's default for utf8mb4, as a legacy database has.
        "TEST": {"NAME": f"test_crossprefetch_{alias}_{_SUFFIX}", "CHARSET": "utf8mb4"},
    }


def _backend(alias: str) -> dict[str, Any]:
    if TEST_DB == "postgres" or (TEST_DB in {"mixed", "mariadb"} and alias == "timeseries"):
        return _postgres(alias)
    if TEST_DB == "mariadb":
        return _mysql(alias)
    return _sqlite(alias)


DATABASES = {alias: _backend(alias) for alias in ("default", "timeseries", "legacy")}
DATABASE_ROUTERS = ["tests.testapp.routers.TestRouter", "shop.routers.ShopRouter"]

REDIS_URL = os.environ.get("CROSSPREFETCH_REDIS_URL", "redis://127.0.0.1:6379/15")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "redis": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": f"crossprefetch-tests-{_SUFFIX}",
    },
}

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "rest_framework",
    "crossprefetch",
    "tests.testapp",
    "shop",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

STATIC_URL = "/static/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "UNAUTHENTICATED_USER": None,
}
