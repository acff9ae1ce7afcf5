#!/usr/bin/env python
"""Command-line entry point of the example project.

The measuring commands (``demo``, ``benchmark``, ``seed``, ``loadtest``, ``loadurl``) run
with ``DEBUG`` off, because debug-mode query logging and the debug toolbar would otherwise be
part of every figure; every other command (``runserver`` first of all) runs with ``DEBUG`` on. Set
``EXAMPLE_DEBUG=0`` or ``1`` to choose yourself.
"""

from __future__ import annotations

import os
import sys

MEASURING_COMMANDS = frozenset({"demo", "benchmark", "seed", "loadtest", "loadurl"})


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    os.environ.setdefault("EXAMPLE_DEBUG", "0" if command in MEASURING_COMMANDS else "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
