"""Every private name of Django, DRF, drf-spectacular and pytest-django crossprefetch touches.

A new release of one of them is one file to read: each function below wraps one private
name, with a line saying what breaks in crossprefetch if that name changes. No other module
uses a private name of another package (``tests/test_architecture.py``).
"""

from __future__ import annotations

from typing import Any

from django.db.models.sql.compiler import SQLCompiler


def quote_name(compiler: SQLCompiler, name: str) -> str:
    """``name`` quoted as ``compiler`` quotes the aliases of the query it compiles.

    Django 6.1 quotes every alias (``SQLCompiler.quote_name``) and deprecates
    ``quote_name_unless_alias``; Django 5.2 and 6.0 leave aliases bare. A hand-written
    join must quote its alias as Django does, or PostgreSQL folds one spelling and not the
    other. Breaks: SQL that names the keys' join (filters, orderings, collation matching).
    """
    quote: Any = getattr(compiler, "quote_name", None)
    if quote is None:  # Django < 6.1
        return str(compiler.quote_name_unless_alias(name))
    return str(quote(name))
