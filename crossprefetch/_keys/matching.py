"""Keys matched as the remote database compares them, where that is not Python equality.

Under MariaDB/MySQL's default collations, SQLite ``NOCASE`` or a PostgreSQL
nondeterministic collation, the key ``"abc"`` selects the row ``"ABC"``; a custom field
may store a key as another value than the one Python holds. Filing the rows under the
value they hold would then lose them, and Python cannot know the database's rule. So
for such a field the query joins the table against the key set and returns, with each
row, the position of the key the database matched it with: one query still, one row per
(row, matching key) pair, and every key finds what a per-row ``get()`` would find.

Fields that compare as Python does (integers, UUIDs, text under a deterministic
collation) keep the plain ``IN`` / ``= ANY`` filter and read the key off the row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper

from crossprefetch._keys.normalize import target_field

#: Field types whose values are text: compared by the column's collation.
_TEXT_TYPES: Final = frozenset(
    {"CharField", "TextField", "SlugField", "EmailField", "URLField", "FilePathField"}
)
#: The backends whose key-set joins ``_sql`` writes; elsewhere keys are filed by Python
#: equality, as before.
_JOINING_VENDORS: Final = frozenset({"sqlite", "postgresql", "mysql"})
#: Methods by which a field subclass can make its database value differ from its key.
_CONVERSIONS: Final = ("get_prep_value", "get_db_prep_value", "db_type", "cast_db_type")


def _django_ancestor(field: models.Field[Any, Any]) -> type | None:
    """The nearest Django field class above ``field``'s, or None if a subclass changes how
    values reach the database (:data:`_CONVERSIONS`)."""
    for cls in type(field).__mro__:
        if cls.__module__.startswith("django.db.models."):
            return cls
        if any(name in vars(cls) for name in _CONVERSIONS):
            return None
    return None


def _compares_like_python(field: models.Field[Any, Any], connection: BaseDatabaseWrapper) -> bool:
    field = target_field(field)
    if _django_ancestor(field) is None:
        return False
    if field.get_internal_type() not in _TEXT_TYPES:
        return True
    if connection.vendor == "mysql":
        return False  # MySQL/MariaDB text collations ignore case or trailing spaces, or both
    return not getattr(field, "db_collation", None)


def matched_by_database(
    fields: Sequence[models.Field[Any, Any]], connection: BaseDatabaseWrapper
) -> bool:
    """Whether keys of ``fields`` must be matched by the database rather than by Python.

    True for text under MySQL/MariaDB (case-insensitive and PAD SPACE collations), for
    text with a ``db_collation`` on any backend (SQLite ``NOCASE``, PostgreSQL
    nondeterministic collations), and for custom fields that convert values on their way
    to the database (a lowercasing field, ``citext``).
    """
    if connection.vendor not in _JOINING_VENDORS:
        return False
    return not all(_compares_like_python(field, connection) for field in fields)


class KeyPositions:
    """The keys of a query by position, as the database receives them.

    The query returns the position of the key each row matched; ``keys_at(position)``
    gives back the normalised keys sent there (more than one when a custom field stores
    several keys as the same value).
    """

    def __init__(self, keys: Iterable[Any], db_values: Sequence[Any]) -> None:
        by_value: dict[Any, list[Any]] = {}
        for key, value in zip(keys, db_values, strict=True):
            by_value.setdefault(value, []).append(key)
        #: the distinct database values to send, in position order
        self.values: list[Any] = list(by_value)
        self._keys: list[list[Any]] = list(by_value.values())

    def keys_at(self, position: int) -> list[Any]:
        return self._keys[position]
