"""Every private name of Django, DRF, drf-spectacular and pytest-django crossprefetch touches.

A new release of one of them is one file to read: each function below wraps one private
name, with a line saying what breaks in crossprefetch if that name changes. No other module
uses a private name of another package (``tests/test_architecture.py``).
"""

from __future__ import annotations
