"""The one form in which keys are sent to a database, on every path.

Lookups (:mod:`.sql`), filters and orderings (:mod:`.keyset`: key lists, key maps, rank
vectors, joined positions) all send keys through here, so that they agree on three rules:

* a key becomes a database value the way its field says (:func:`db_values`): a UUID is
  hex on SQLite, a custom field prepares its own values;
* a key set is never cast to a type that changes a key: PostgreSQL arrays take the
  column's type without its length or precision (:func:`array_type`: ``varchar(8)`` would
  cut ``ABCDEFGHIJ`` into ``ABCDEFGH``, a key that matches another row), and a MariaDB/MySQL
  ``JSON_TABLE`` column is as wide as the longest key (:func:`json_table_type`);
* a key read in one database and sent to another is normalised to the receiving column
  first, with the hostile-key rules of :mod:`.normalize` (NUL, lone surrogates, length,
  integer range): a key that column cannot hold matches no row there, and is not sent
  (:func:`local_keys`, :func:`local_pairs`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, Final, TypeVar

from django.db.backends.base.base import BaseDatabaseWrapper

from crossprefetch._keys.normalize import (
    INTEGER_TYPES,
    INVALID,
    exact_type,
    is_plain_integer,
    normalizer,
    storable_text,
    target_field,
)

X = TypeVar("X")

#: A type modifier: ``(8)`` of ``varchar(8)``, ``(12, 2)`` of ``numeric(12, 2)``.
_MODIFIER: Final = re.compile(r"\s*\([^)]*\)")
#: Types that mean something else once their modifier is gone (``char`` is ``char(1)``).
_UNBOUNDED: Final = {"char": "bpchar", "character": "bpchar", "bit": "varbit"}
#: The widest ``VARCHAR`` a ``JSON_TABLE`` column takes in ``utf8mb4`` (65,535 bytes).
_MYSQL_MAX_VARCHAR: Final = 16_383
_TEXT_TYPES: Final = frozenset({"CharField", "SlugField", "EmailField", "TextField", "URLField"})


def db_values(field: Any, keys: Iterable[Any], connection: BaseDatabaseWrapper) -> list[Any]:
    """Keys already normalised to ``field`` (see :func:`.normalize.normalizer`), as the
    database stores them.

    Integers of Django's own integer fields are sent as they are: Django's ``__in`` would
    prepare every one again, which is most of what building a large key set costs.
    """
    field = target_field(field)
    if is_plain_integer(field):
        return list(keys)
    return [field.get_db_prep_value(key, connection, prepared=False) for key in keys]


def array_type(field: Any, connection: BaseDatabaseWrapper) -> str:
    """The PostgreSQL type of one element of a key array: the field's, unbounded.

    A cast to ``varchar(8)`` cuts a longer key into one that matches a row, and one to
    ``numeric(12, 2)`` rounds a key into another: the modifier is dropped, so a key the
    column cannot hold stays itself and matches nothing.
    """
    db_type = str(target_field(field).cast_db_type(connection))
    base = _MODIFIER.sub("", db_type)
    return _UNBOUNDED.get(base.lower(), base)


def json_table_type(field: Any, connection: BaseDatabaseWrapper, values: Sequence[Any]) -> str:
    """The type of a MariaDB/MySQL ``JSON_TABLE`` column holding ``values`` of ``field``.

    Text is a ``VARCHAR`` as wide as the longest value (a narrower one would cut or refuse
    it); the comparison then uses the listed column's collation, as a join's would.
    """
    field = target_field(field)
    internal = field.get_internal_type()
    if internal in INTEGER_TYPES:
        return "BIGINT"
    if internal == "UUIDField":
        return "CHAR(32)"
    if internal in _TEXT_TYPES:
        width = max((len(v) for v in values if isinstance(v, str)), default=1)
        width = max(width, field.max_length or 1)
        return "LONGTEXT" if width > _MYSQL_MAX_VARCHAR else f"VARCHAR({width})"
    db_type = field.db_type(connection) or "LONGTEXT"
    return str(db_type).replace(" AUTO_INCREMENT", "")


def sqlite_affinity(field: Any) -> str:
    """The affinity of ``field``'s values in SQLite (a JSON value has none of its own)."""
    internal = target_field(field).get_internal_type()
    if internal in INTEGER_TYPES or internal == "BooleanField":
        return "INTEGER"
    if internal in {"FloatField", "DecimalField"}:
        return "REAL"
    return "TEXT"


# --- keys read in one database, sent to another -------------------------------------------


def local_keys(keys: Sequence[Any], field: Any, connection: BaseDatabaseWrapper) -> list[Any]:
    """``keys`` (read from a remote column) as values of the local ``field``.

    Keys the local column cannot hold, or that could not even be sent to its database,
    match no local row: they are left out, never cut or converted into another key.
    """
    if _held(keys, field, connection):
        return list(keys)
    to_local = normalizer((field,), connection)
    held = []
    for key in keys:
        value = to_local(key)
        if value is not None and value is not INVALID:
            held.append(value)
    return held


def local_pairs(
    pairs: Sequence[tuple[Any, X]], field: Any, connection: BaseDatabaseWrapper
) -> list[tuple[Any, X]]:
    """``(remote key, x)`` as ``(local key, x)``, as :func:`local_keys`; when two remote
    keys become the same local key (``"42"`` and ``"042"`` for an integer column), the first
    one's ``x`` is kept: one row per local key, so that a join adds no row."""
    if _held([key for key, _ in pairs], field, connection):
        return list(pairs)
    to_local = normalizer((field,), connection)
    held: dict[Any, X] = {}
    for key, extra in pairs:
        value = to_local(key)
        if value is not None and value is not INVALID:
            held.setdefault(value, extra)
    return list(held.items())


def _held(keys: Sequence[Any], field: Any, connection: BaseDatabaseWrapper) -> bool:
    """Whether every key already has the local column's type and fits it (range, text that
    can be sent and stored): then they are taken as they are, without a call each."""
    if not keys:
        return True
    exact, low, high = exact_type(field, connection)
    if exact is None or set(map(type, keys)) != {exact}:
        return False
    if low is not None and not (low <= min(keys) and max(keys) <= high):
        return False
    return exact is not str or storable_text(keys, field, connection)
