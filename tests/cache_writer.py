"""Write a customer from a second process, as another app server or a worker would.

``python -m tests.cache_writer <save|update|delete> <pk> [name]`` with
``DJANGO_SETTINGS_MODULE=tests.cache_settings``. It uses no cached lookup itself: it learns
which models are cached from the URLconf, like any process that only writes.
"""

from __future__ import annotations

import sys

import django


def main(action: str, pk: str, name: str = "") -> None:
    django.setup()
    from tests.testapp.models import Customer

    if action == "save":
        customer = Customer.objects.get(pk=pk)
        customer.name = name
        customer.save()
    elif action == "update":
        Customer.objects.filter(pk=pk).update(name=name)
    elif action == "delete":
        Customer.objects.filter(pk=pk).delete()
    else:
        raise SystemExit(f"unknown action {action!r}")


if __name__ == "__main__":
    main(*sys.argv[1:])
