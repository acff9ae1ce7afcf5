"""``docs/from-scratch.rst`` builds a project that works.

Every file the page shows is written and every command it shows is run, in page order, in a
new directory, with the interpreter of this suite (``tests/doc_pages.py``): the project,
its migrations on each database, its system checks and its test. The README's settings,
put in a project ``startproject`` made, pass Django's checks too.
"""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

from tests.doc_pages import ROOT, environment, run, snippets, steps

PAGE = ROOT / "docs" / "from-scratch.rst"


def tables(database: Path) -> set[str]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {name for (name,) in rows if not name.startswith("sqlite_")}


def test_the_page_builds_a_project_whose_test_passes(tmp_path: Path) -> None:
    ran = run(steps(PAGE), tmp_path)
    assert ran == [
        "django-admin startproject mysite .",
        "python manage.py startapp shop",
        "python manage.py makemigrations shop",
        "python manage.py migrate",
        "python manage.py migrate --database=orders",
        "python manage.py check",
        "pytest",
    ]
    default, orders = tables(tmp_path / "default.sqlite3"), tables(tmp_path / "orders.sqlite3")
    assert {"shop_customer", "auth_user", "django_content_type", "django_session"} <= default
    assert "shop_order" not in default
    assert orders == {"shop_order", "django_migrations"}


def test_the_readme_settings_complete_a_new_project(tmp_path: Path) -> None:
    """What the README says to replace or add in the settings ``startproject`` writes, with
    the example's ``shop`` importable: Django's and crossprefetch's checks pass."""
    (settings,) = [s for s in snippets(ROOT / "README.md") if s.code.startswith("# settings.py")]
    env = {**environment(), "PYTHONPATH": str(ROOT / "example_project")}

    def command(*args: str) -> str:
        result = subprocess.run(
            args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout}{result.stderr}"
        return result.stdout + result.stderr

    command("django-admin", "startproject", "mysite", ".")
    with (tmp_path / "mysite" / "settings.py").open("a") as file:
        file.write(f"\n\n{settings.code}")
    assert "System check identified no issues" in command("python", "manage.py", "check")
