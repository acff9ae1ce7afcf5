"""Settings that turn Django's admin on for the admin tests, applied per test.

``tests.settings`` stays admin-free, so no other test pays for its apps and middleware;
the admin tests layer these over it with the ``settings`` fixture. The admin's app is
``SimpleAdminConfig``: no autodiscovery, the test site registers its own ``ModelAdmin``.
"""

from __future__ import annotations

from typing import Any


def overrides(
    installed_apps: list[str], middleware: list[str], templates: list[dict[str, Any]]
) -> dict[str, Any]:
    """The settings to layer over ``tests.settings`` (given its apps, middleware, templates)."""
    processors = [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]
    return {
        "INSTALLED_APPS": [
            *installed_apps,
            "django.contrib.admin.apps.SimpleAdminConfig",
            "django.contrib.messages",
        ],
        "MIDDLEWARE": [
            *middleware,
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        "TEMPLATES": [{**templates[0], "OPTIONS": {"context_processors": processors}}],
        "ROOT_URLCONF": "tests.admin_urls",
        # no session table reads: the test's user comes from a signed cookie
        "SESSION_ENGINE": "django.contrib.sessions.backends.signed_cookies",
    }
