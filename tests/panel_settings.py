"""Settings that turn django-debug-toolbar on for the panel tests, applied per test.

``tests.settings`` stays toolbar-free, so no other test pays for the toolbar's
middleware; the panel tests layer these over it with the ``settings`` fixture.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

PANEL = "crossprefetch.panels.CrossDBPrefetchPanel"


def show_toolbar(request: HttpRequest) -> bool:
    """Every request gets the toolbar: neither the test client nor the live server comes
    from ``INTERNAL_IPS``."""
    return True


def overrides(installed_apps: list[str], middleware: list[str]) -> dict[str, Any]:
    """The settings to layer over ``tests.settings`` (given its apps and middleware).

    No SQL panel: it wraps every connection's cursor for the rest of the process, which
    the query-counting tests would then see in their stacks.
    """
    return {
        "DEBUG": True,
        "INSTALLED_APPS": [*installed_apps, "debug_toolbar"],
        "MIDDLEWARE": ["debug_toolbar.middleware.DebugToolbarMiddleware", *middleware],
        "ROOT_URLCONF": "tests.panel_urls",
        "DEBUG_TOOLBAR_PANELS": [
            # Gives each response a djdt-request-id header, to fetch the panel with.
            "debug_toolbar.panels.history.HistoryPanel",
            PANEL,
        ],
        "DEBUG_TOOLBAR_CONFIG": {
            "SHOW_TOOLBAR_CALLBACK": "tests.panel_settings.show_toolbar",
            "IS_RUNNING_TESTS": False,
            # Panels are fetched through render_panel, as a browser does, never inlined.
            "RENDER_PANELS": False,
        },
    }
