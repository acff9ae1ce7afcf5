"""ASGI entry point of the example: ``uvicorn example.asgi:application``, run from
``example_project/``. ``DEBUG`` is off unless ``EXAMPLE_DEBUG=1``: a served process is measured.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("EXAMPLE_DEBUG", "0")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")

application = get_asgi_application()
