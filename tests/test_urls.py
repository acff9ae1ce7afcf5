"""Settings without ``ROOT_URLCONF`` (a worker, a benchmark, a script): no views, and one
INFO line saying what that means for invalidation, never a warning with a traceback."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core import checks

from crossprefetch._cache import invalidation
from crossprefetch._urls import has_urlconf, routed_views

SCRIPT = textwrap.dedent(
    """
    import logging, sys

    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "crossprefetch"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
    )
    logging.basicConfig(
        level=logging.DEBUG, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
    )
    logging.getLogger("django").setLevel(logging.WARNING)
    django.setup()

    from django.contrib.auth.models import Group, User
    from django.db import connection

    with connection.schema_editor() as editor:
        editor.create_model(Group)
    Group.objects.create(name="staff")

    from crossprefetch import CachePolicy, CrossDBPrefetch, prefetch_cross_db

    spec = CrossDBPrefetch("auth.Group", key="group_id", fields=("name",), cache=CachePolicy(60))

    class Member:
        group_id = Group.objects.get().pk

    for _ in range(2):  # a miss, then a hit
        lookups = prefetch_cross_db([Member()], {"groups": spec})
    print(lookups["groups"].get(Member.group_id))
    """
)


def test_a_script_without_root_urlconf_logs_one_info_line(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "'name': 'staff'" in done.stdout  # the cached lookup answered
    assert "Traceback" not in done.stderr
    ours = [line for line in done.stderr.splitlines() if " crossprefetch" in line]
    about = [line for line in ours if "ROOT_URLCONF" in line]
    assert len(about) == 1, done.stderr
    assert about[0].startswith("INFO crossprefetch ")
    assert "CACHE_INVALIDATE_MODELS" in about[0]  # what to do about it, if anything
    assert not [line for line in ours if line.startswith(("WARNING", "ERROR"))], done.stderr


@pytest.fixture
def without_urlconf(settings: Any) -> Iterator[None]:
    """No ``ROOT_URLCONF``, and the discovery of cached models due again (then restored)."""
    del settings.ROOT_URLCONF
    saved = (invalidation._state, invalidation._discovered)
    invalidation.reset()
    yield
    invalidation.reset()
    invalidation._state, invalidation._discovered = saved


@pytest.mark.usefixtures("without_urlconf")
def test_the_discovery_says_once_what_no_urlconf_means(caplog: pytest.LogCaptureFixture) -> None:
    assert not has_urlconf()
    assert list(routed_views()) == []
    with caplog.at_level(logging.DEBUG, "crossprefetch"):
        invalidation.discover()
        invalidation.discover()  # once per process
    assert [(r.levelno, r.exc_info) for r in caplog.records] == [(logging.INFO, None)]
    assert "no ROOT_URLCONF" in caplog.records[0].getMessage()


@pytest.mark.usefixtures("without_urlconf")
def test_the_checks_find_no_views_and_say_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, "crossprefetch"):
        messages = checks.run_checks(tags=["crossprefetch"])
    assert messages == []
    assert not caplog.records
