"""What the example's benchmark commands share: a run with ``DEBUG`` off, its report
printed as Markdown and, with ``--json FILE``, written as JSON; progress on stderr."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand
from django.test.utils import override_settings


class ReportCommand(BaseCommand):
    """A command whose ``_run(options)`` measures and returns a report (a JSON object)."""

    def _run(self, options: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _report(
        self, options: dict[str, Any], render_markdown: Callable[[dict[str, Any]], str]
    ) -> None:
        with override_settings(DEBUG=False):  # no query log kept while measuring
            report = self._run(options)
        self.stdout.write(render_markdown(report))
        if options["json"]:
            Path(options["json"]).write_text(json.dumps(report, indent=2) + "\n")
            self.stderr.write(f"Figures written to {options['json']}.")

    def _progress(self, message: str) -> None:
        self.stderr.write(message, ending="")
        self.stderr.flush()
