"""``manage.py schemacheck``: every endpoint against the OpenAPI schema it publishes."""

from __future__ import annotations

import logging
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from shop.management.commands._options import count
from shop.seeding import DEFAULT_SEED, Dataset, prepare_databases, seed

SCHEMA_URL = "/api/schema/"


class Command(BaseCommand):
    help = (
        "Seed a small dataset, then send schemathesis-generated requests to every operation of "
        f"the example's OpenAPI schema ({SCHEMA_URL}), in process through the WSGI application "
        "(no server): fails on any server error or response that does not conform to the "
        "schema. Needs schemathesis and drf-spectacular."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--max-examples", type=count, default=20, help="per operation; 20")
        parser.add_argument("--customers", type=count, default=200, help="default: 200")
        parser.add_argument("--events", type=count, default=300, help="default: 300")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            import schemathesis
            from schemathesis.checks import not_a_server_error
            from schemathesis.specs.openapi.checks import (
                content_type_conformance,
                response_schema_conformance,
            )
        except ImportError as exc:
            raise CommandError(f"{exc}: pip install schemathesis") from exc
        from django.conf import settings as django_settings
        from django.core.wsgi import get_wsgi_application

        if "drf_spectacular" not in django_settings.INSTALLED_APPS:
            raise CommandError("drf-spectacular is not installed: the example has no schema.")
        prepare_databases()
        seed(Dataset(options["customers"], options["events"], DEFAULT_SEED))
        application = get_wsgi_application()  # sets logging up again
        logging.getLogger("django.request").setLevel(logging.ERROR)  # 404s are expected
        schema = schemathesis.openapi.from_wsgi(SCHEMA_URL, application)
        checks = [not_a_server_error, response_schema_conformance, content_type_conformance]
        failed: list[str] = []
        cases = 0
        for result in schema.get_all_operations():
            operation = result.ok()
            try:
                cases += _check(operation, checks, options["max_examples"])
            except Exception as exc:
                failed.append(operation.label)
                self.stderr.write(f"{operation.label}: FAILED\n{exc}")
            else:
                self.stdout.write(f"{operation.label}: conforms")
        if failed:
            raise CommandError(f"{len(failed)} operation(s) do not conform: {', '.join(failed)}")
        self.stdout.write(f"{cases} cases: no server error, every response conforms.")


def _check(operation: Any, checks: list[Any], max_examples: int) -> int:
    """Send up to ``max_examples`` generated requests to ``operation``; return how many."""
    from hypothesis import HealthCheck, given, settings

    sent = 0

    @given(case=operation.as_strategy())
    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def conforms(case: Any) -> None:
        nonlocal sent
        sent += 1
        case.call_and_validate(checks=checks)

    conforms()
    return sent
