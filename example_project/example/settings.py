"""Settings of crossprefetch's example project.

Two database aliases, as in the scenario of the documentation:

* ``default`` holds ``Customer`` (the application database);
* ``timeseries`` holds ``OrderEvent`` (the time-series database).

Out of the box both are SQLite files under ``example_project/var/``, created on first use
(``manage.py demo`` or ``manage.py seed`` creates the tables and the data). Point either alias
at PostgreSQL with a URL in the environment::

    EXAMPLE_DEFAULT_DB_URL=postgres://postgres@127.0.0.1:5432/crossprefetch_default
    EXAMPLE_TIMESERIES_DB_URL=postgres://postgres@127.0.0.1:5432/crossprefetch_timeseries

(``postgres://USER:PASSWORD@HOST:PORT/NAME``; ``sqlite:///ABSOLUTE/PATH`` also works.) A
missing PostgreSQL database is created by ``demo``, ``seed`` and ``benchmark``.

A PostgreSQL alias reads through Django's connection pool (psycopg_pool, from
``psycopg[pool]``): under ASGI every request runs in a thread of its own, and without a pool
each opens its own connections, which exhausts the server's ``max_connections`` under load.
``EXAMPLE_DB_POOL_MAX`` (default 16) bounds each alias's pool; ``EXAMPLE_DB_POOL=0`` turns
the pool off (a connection per request, or ``EXAMPLE_CONN_MAX_AGE`` seconds per thread).

``EXAMPLE_COALESCE`` (seconds) sets ``CROSSPREFETCH["COALESCE"]``, the window in which
concurrent requests share their lookup queries; ``EXAMPLE_CONN_MAX_AGE`` (seconds) keeps
database connections open between requests (``manage.py loadtest`` sets both).
``EXAMPLE_TIMEOUT`` (seconds) sets ``CROSSPREFETCH["TIMEOUT"]``, the default ``timeout`` of
every spec: ``manage.py benchmark`` then measures the healthy path of a time-limited lookup
(the server's timeout and the client's deadline, a worker thread on PostgreSQL).

``EXAMPLE_DEBUG`` (``1``/``0``) sets ``DEBUG``; ``manage.py`` turns it off for the measuring
commands. With ``DEBUG`` on and django-debug-toolbar importable, the toolbar is shown on the
browsable API.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

PROJECT_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = PROJECT_DIR / "var"
VAR_DIR.mkdir(exist_ok=True)

SECRET_KEY = os.environ.get("EXAMPLE_SECRET_KEY", "crossprefetch-example-not-secret")
DEBUG = os.environ.get("EXAMPLE_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]", "testserver"]
INTERNAL_IPS = ["127.0.0.1", "::1"]
ROOT_URLCONF = "example.urls"
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
STATIC_URL = "/static/"


def database_from_url(alias: str, url: str) -> dict[str, Any]:
    """Translate ``postgres://…`` or ``sqlite:///…`` into a ``DATABASES`` entry."""
    parts = urlsplit(url)
    if parts.scheme in {"postgres", "postgresql"}:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")) or f"crossprefetch_{alias}",
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
        }
    if parts.scheme == "sqlite":
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": "/" + unquote(parts.path).lstrip("/"),
        }
    raise ImproperlyConfigured(
        f"EXAMPLE_{alias.upper()}_DB_URL={url!r}: use postgres://USER:PASSWORD@HOST:PORT/NAME "
        "or sqlite:///ABSOLUTE/PATH."
    )


def connection_reuse(database: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """``database`` with the pool (PostgreSQL) or ``CONN_MAX_AGE`` that ``environ`` asks for."""
    pool = environ.get("EXAMPLE_DB_POOL", "1") == "1"
    postgres = database["ENGINE"] == "django.db.backends.postgresql"
    if postgres and pool and importlib.util.find_spec("psycopg_pool") is not None:
        size = int(environ.get("EXAMPLE_DB_POOL_MAX", "16"))
        # A request waits up to ``timeout`` seconds for a connection instead of failing.
        options = {"pool": {"min_size": min(2, size), "max_size": size, "timeout": 30}}
        return {**database, "OPTIONS": {**database.get("OPTIONS", {}), **options}}
    return {**database, "CONN_MAX_AGE": int(environ.get("EXAMPLE_CONN_MAX_AGE", "0"))}


def _database(alias: str) -> dict[str, Any]:
    url = os.environ.get(f"EXAMPLE_{alias.upper()}_DB_URL", "")
    if url:
        return connection_reuse(database_from_url(alias, url), os.environ)
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(VAR_DIR / f"{alias}.sqlite3")}


DATABASES = {alias: _database(alias) for alias in ("default", "timeseries")}
for _settings in DATABASES.values():
    _settings["CONN_MAX_AGE"] = int(os.environ.get("EXAMPLE_CONN_MAX_AGE", "0"))
DATABASE_ROUTERS = ["shop.routers.ShopRouter", "example.routers.DefaultOnlyRouter"]

# Room for the customers of a page of 10,000 (LocMemCache keeps 300 entries by default).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "OPTIONS": {"MAX_ENTRIES": 50_000},
    }
}
# A LocMemCache misses the writes of other processes (crossprefetch.W103): the example's
# served processes never see one, `seed` writes its rows before they start. A deployment
# points the CachePolicy at a shared cache instead.
SILENCED_SYSTEM_CHECKS = ["crossprefetch.W103"]

INSTALLED_APPS = [
    # the admin's changelist of support tickets, at /admin/
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "crossprefetch",
    "shop",
]

MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

REST_FRAMEWORK: dict[str, Any] = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "UNAUTHENTICATED_USER": None,
}

# The OpenAPI schema of the API at /api/schema/, when drf-spectacular is installed.
if importlib.util.find_spec("drf_spectacular") is not None:
    INSTALLED_APPS.append("drf_spectacular")
    REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] = "drf_spectacular.openapi.AutoSchema"
    SPECTACULAR_SETTINGS = {
        "TITLE": "crossprefetch example shop",
        "VERSION": "1.0.0",
        "SERVE_INCLUDE_SCHEMA": False,
    }

# Server errors on the console even with DEBUG off: a load test must see them.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["console"], "level": "ERROR"}},
}

CROSSPREFETCH: dict[str, Any] = {}
if os.environ.get("EXAMPLE_COALESCE"):
    CROSSPREFETCH["COALESCE"] = float(os.environ["EXAMPLE_COALESCE"])
if os.environ.get("EXAMPLE_TIMEOUT"):
    CROSSPREFETCH["TIMEOUT"] = float(os.environ["EXAMPLE_TIMEOUT"])


def _crossprefetch_has(module: str) -> bool:
    """Tell whether ``crossprefetch/<module>.py`` exists, without importing the package."""
    spec = importlib.util.find_spec("crossprefetch")
    return bool(spec and spec.origin and (Path(spec.origin).parent / f"{module}.py").exists())


# The toolbar is installed only in DEBUG: its panels instrument the cache and the database
# as soon as the app is ready, which would distort the demo's and the benchmark's figures.
if DEBUG and importlib.util.find_spec("debug_toolbar") is not None:
    from debug_toolbar.settings import PANELS_DEFAULTS

    INSTALLED_APPS.append("debug_toolbar")
    MIDDLEWARE.insert(0, "debug_toolbar.middleware.DebugToolbarMiddleware")
    DEBUG_TOOLBAR_PANELS = list(PANELS_DEFAULTS)
    # crossprefetch's own panel: per request, each lookup's database, keys, queries and time.
    if _crossprefetch_has("panels"):
        DEBUG_TOOLBAR_PANELS.append("crossprefetch.panels.CrossDBPrefetchPanel")
