"""Which watched tables an SQL statement writes, spelled however the database accepts it.

The write watcher runs on every statement of every connection, so the common case costs
one ``str.startswith``: the ORM's reads begin with ``SELECT``. Any other statement is
lower-cased once and searched for each watched name with ``str.find``; only where a name
occurs are its neighbours checked.

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


def watched_names(
    tables: Mapping[str, frozenset[str]],
) -> tuple[tuple[str, ...] | None, dict[str, frozenset[str]]]:
    """The names to look for (lower case, longest first), and the labels of each.

    ``tables`` maps ``db_table`` to the labels its writes invalidate.
    """
    folded: dict[str, frozenset[str]] = {}
    for table, names in tables.items():
        key = table.lower()
        folded[key] = folded.get(key, frozenset()) | names
    if not folded:
        return None, folded
    return tuple(sorted(folded, key=len, reverse=True)), folded


def written(
    sql: str,
    names: tuple[str, ...],
    folded: Mapping[str, frozenset[str]],
    vendor: str,
) -> frozenset[str]:
    """The labels of the watched tables ``sql`` may write (empty for a read)."""
    if sql.startswith("SELECT"):
        return frozenset()
    start = 0 if sql[:1].isalpha() else _LEADING.match(sql).end()  # type: ignore[union-attr]
    if sql[start : start + 6].upper() == "SELECT":
        return frozenset()
    hits = _labels(sql.lower(), names, folded)
    if hits and "'" in sql:  # the name may be a string literal's content only
        literal = _LITERAL_BACKSLASH if vendor == "mysql" else _LITERAL
        hits = _labels(literal.sub("''", sql).lower(), names, folded)
    return hits


def _labels(
    lowered: str, names: tuple[str, ...], folded: Mapping[str, frozenset[str]]
) -> frozenset[str]:
    """Substring search first (a C loop over the statement), the boundaries at each match.

    A bulk ``INSERT`` of thousands of rows is a long statement: a regular expression tried
    at each of its positions would cost milliseconds, ``str.find`` costs microseconds.
    """
    found: frozenset[str] = frozenset()
    for name in names:
        at = lowered.find(name)
        while at >= 0:
            end = at + len(name)
            if _alone(lowered, at, end):
                found |= folded[name]
                break
            at = lowered.find(name, at + 1)
    return found


def _alone(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` is a whole name: bare, quoted, or after a schema's dot."""
    before = text[start - 1] if start else " "
    if before in _QUOTES:
        before = text[start - 2] if start > 1 else " "
        if before in _QUOTES:  # ""name: part of another quoted name
            return False
    after = text[end] if end < len(text) else " "
    if after in _QUOTES:
        after = text[end + 1] if end + 1 < len(text) else " "
        if after in _QUOTES:
            return False
    return not (_in_name(before) or _in_name(after))


_QUOTES: Final = frozenset('"`[]')


def _in_name(char: str) -> bool:
    return char.isalnum() or char in "_$"


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
