"""WSGI entry point of the example (``gunicorn example.wsgi``), used by ``manage.py loadtest``."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")
application = get_wsgi_application()
