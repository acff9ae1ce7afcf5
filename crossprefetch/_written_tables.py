"""Which watched tables an SQL statement writes, spelled however the database accepts it.

The write watcher runs on every statement of every connection, so the common case costs
one ``str.startswith``: the ORM's reads begin with ``SELECT``. Any other statement is
searched with one regular expression compiled per set of watched tables.

A database folds unquoted names (PostgreSQL to lower case, SQLite and MySQL/MariaDB
compare table names case-insensitively or as the file system does), so names match
whatever their case, bare, quoted (``"t"``, ```t```, ``[t]``) or schema-qualified
(``public.t``, ``"public"."t"``). A statement may start with comments or a ``WITH``
clause. A name must stand alone (``shop_customer`` is not found in
``shop_customer_archive``) and outside string literals. When in doubt the answer is
"written": a needless invalidation costs one cache miss, a missed one serves stale rows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

#: Leading whitespace, ``-- line`` and ``/* block */`` comments, and opening parentheses.
_LEADING: Final = re.compile(r"(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/|\()*", re.DOTALL)

#: String literals: standard SQL (``'it''s'``), and with backslash escapes (MySQL/MariaDB).
_LITERAL: Final = re.compile(r"'(?:[^']|'')*'")
_LITERAL_BACKSLASH: Final = re.compile(r"'(?:[^'\\]|\\.|'')*'", re.DOTALL)


def table_pattern(
    tables: Mapping[str, frozenset[str]],
) -> tuple[re.Pattern[str] | None, dict[str, frozenset[str]]]:
    """The expression finding any of ``tables`` in a statement, and its names, case-folded.

    ``tables`` maps ``db_table`` to the labels its writes invalidate.
    """
    folded: dict[str, frozenset[str]] = {}
    for table, names in tables.items():
        key = table.casefold()
        folded[key] = folded.get(key, frozenset()) | names
    if not folded:
        return None, folded
    alternatives = "|".join(re.escape(t) for t in sorted(folded, key=len, reverse=True))
    pattern = re.compile(
        rf"(?<![\w$\"`\]])[\"`\[]?({alternatives})[\"`\]]?(?![\w$\"`\[])", re.IGNORECASE
    )
    return pattern, folded


def written(
    sql: str,
    pattern: re.Pattern[str],
    folded: Mapping[str, frozenset[str]],
    vendor: str,
) -> frozenset[str]:
    """The labels of the watched tables ``sql`` may write (empty for a read)."""
    if sql.startswith("SELECT"):
        return frozenset()
    start = _LEADING.match(sql).end()  # type: ignore[union-attr]  # matches the empty string
    if sql[start : start + 6].upper() == "SELECT":
        return frozenset()
    hits = _labels(sql, pattern, folded)
    if hits and "'" in sql:  # the name may be a string literal's content only
        literal = _LITERAL_BACKSLASH if vendor == "mysql" else _LITERAL
        hits = _labels(literal.sub("''", sql), pattern, folded)
    return hits


def _labels(
    sql: str, pattern: re.Pattern[str], folded: Mapping[str, frozenset[str]]
) -> frozenset[str]:
    found: frozenset[str] = frozenset()
    for match in pattern.finditer(sql):
        found |= folded.get(match.group(1).casefold(), frozenset())
    return found


def as_text(sql: Any, connection: Any) -> str | None:
    """A statement as text: ``str`` as it is, a psycopg ``sql.Composable`` rendered.

    ``None`` for anything else the driver may accept (nothing to search).

    ``connection`` is the Django connection the statement runs on; psycopg needs its
    driver connection to quote identifiers and literals.
    """
    if isinstance(sql, str):
        return sql
    render = getattr(sql, "as_string", None)
    if render is not None:
        try:
            text = render(connection.connection)
        except Exception:  # its names still show in its repr, quotes aside
            text = None
        return text if isinstance(text, str) else repr(sql).replace("'", " ")
    if isinstance(sql, bytes):
        return sql.decode("utf-8", "replace")
    return None
