"""Reading keys off serialized objects and normalising them to the remote field's type."""

from __future__ import annotations

import numbers
import uuid
from collections.abc import Callable, Iterable, Mapping
from operator import attrgetter
from typing import Any, Final

from django.core.exceptions import ValidationError
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: A key that cannot be a value of the remote field ("abc" for an integer pk): a dangling
#: reference, never sent to the database.
INVALID: Final = _Sentinel("INVALID")

#: Django's integer field types, by ``get_internal_type()``.
INTEGER_TYPES: Final = frozenset(
    {
        "AutoField",
        "BigAutoField",
        "SmallAutoField",
        "IntegerField",
        "BigIntegerField",
        "SmallIntegerField",
        "PositiveIntegerField",
        "PositiveBigIntegerField",
        "PositiveSmallIntegerField",
    }
)

_EXACT_TYPES: Final[dict[str, type]] = {
    **dict.fromkeys(INTEGER_TYPES, int),
    **dict.fromkeys(("CharField", "TextField", "SlugField", "EmailField"), str),
    "UUIDField": uuid.UUID,
}

#: Backends on which text with a NUL character cannot be sent as a key: PostgreSQL refuses
#: it, SQLite's JSON functions end the text there (``"R0\x00"`` would match ``"R0"``).
_CUT_AT_NUL: Final = frozenset({"postgresql", "sqlite"})

Normalizer = Callable[[Any], Any]
KeyReader = Callable[[Any], Any]


def key_reader(key: str | tuple[str, ...] | Callable[[Any], Any], sample: Any) -> KeyReader:
    """A function reading the key off one object, chosen once for the whole batch.

    Attribute paths read attributes; when the objects are mappings (rows of a
    ``values()`` QuerySet, say) the same paths read items.
    """
    if callable(key):
        return key
    paths = (key,) if isinstance(key, str) else key
    if not isinstance(sample, Mapping) and not any("." in path for path in paths):
        return attrgetter(*paths)
    readers = [_path(path) for path in paths]
    if len(readers) == 1:
        return readers[0]
    return lambda obj: tuple(read(obj) for read in readers)


def _path(path: str) -> KeyReader:
    """Read ``a.b.c`` through attributes or items; a ``None`` on the way is a null key,
    as in DRF's ``get_attribute``."""
    parts = path.split(".")

    def read(obj: Any) -> Any:
        for part in parts:
            if obj is None:
                return None
            obj = obj[part] if isinstance(obj, Mapping) else getattr(obj, part)
        return obj

    return read


def normalize_all(
    raw_keys: set[Any],
    fields: tuple[models.Field[Any, Any], ...],
    normalize: Normalizer,
    connection: BaseDatabaseWrapper,
) -> tuple[set[Any], dict[Any, Any]]:
    """The usable keys among ``raw_keys``, and the raw keys that normalise to another value.

    ``aliases`` maps such a raw key (``"42"``, a value the field cannot hold) to its
    normalised key, or to :data:`INVALID`; raw keys absent from it are their own key.
    Keys that already have the field's type are taken as they are, without a call each.
    """
    exact = None
    if len(fields) == 1:
        exact, low, high = exact_type(fields[0], connection)
        if exact is not None:
            same: set[Any] = {k for k in raw_keys if type(k) is exact}
            if (
                len(same) + (None in raw_keys) == len(raw_keys)
                and (low is None or not same or (low <= min(same) and max(same) <= high))
                and (exact is not str or storable_text(same, fields[0], connection))
            ):
                return same, {}
    keys: set[Any] = set()
    aliases: dict[Any, Any] = {}
    for raw in raw_keys:
        if raw is None:
            continue
        key = normalize(raw)
        if exact is int and type(raw) is bool:
            # Missing, but it stands for the int key 1 or 0 of other objects too (True == 1
            # in a set): fetch that one, and let Lookup refuse the bool itself.
            keys.add(int(raw))
            continue
        if key is not raw:
            aliases[raw] = INVALID if key is None else key
            if key is None or key is INVALID:
                continue
        keys.add(key)
    return keys, aliases


def target_field(field: Any) -> Any:
    """The field that holds the values: a ForeignKey's target, followed to the end."""
    while field.is_relation and field.target_field is not None:
        field = field.target_field
    return field


def _django_type(field: models.Field[Any, Any]) -> type | None:
    """The Python type of a field's values, for Django's own field classes only: a custom
    subclass may convert values its own way, so its keys always go through it."""
    if not type(field).__module__.startswith("django.db.models."):
        return None
    return _EXACT_TYPES.get(field.get_internal_type())


def is_plain_integer(field: models.Field[Any, Any]) -> bool:
    """Whether the field is one of Django's integer fields, whose values need no preparing."""
    return _django_type(field) is int


def exact_type(
    field: models.Field[Any, Any], connection: BaseDatabaseWrapper
) -> tuple[type | None, Any, Any]:
    """The Python type the field's values have, and the integer range it can hold."""
    field = target_field(field)
    exact = _django_type(field)
    if exact is int:
        internal_type = field.get_internal_type()
        low, high = connection.ops.integer_field_range(internal_type)
        return exact, low, high
    return exact, None, None


def normalizer(
    fields: tuple[models.Field[Any, Any], ...], connection: BaseDatabaseWrapper
) -> Normalizer:
    """A function turning a raw key into the value the remote field(s) would hold.

    ``"42"`` becomes ``42`` for an integer field; a value the field cannot hold becomes
    :data:`INVALID`; a composite key becomes a tuple, or ``None`` if any part is null.
    """
    if len(fields) == 1:
        return _field_normalizer(fields[0], connection)
    parts = [_field_normalizer(field, connection) for field in fields]
    arity = len(parts)

    def normalize_tuple(raw: Any) -> Any:
        if not isinstance(raw, tuple | list) or len(raw) != arity:
            return INVALID
        values = []
        for part, value in zip(parts, raw, strict=True):
            if value is None:
                return None
            value = part(value)
            if value is INVALID:
                return INVALID
            values.append(value)
        return tuple(values)

    return normalize_tuple


def _field_normalizer(field: models.Field[Any, Any], connection: BaseDatabaseWrapper) -> Normalizer:
    target = target_field(field)
    to_python = target.to_python
    exact, low, high = exact_type(target, connection)
    storable = _text_check(target, connection)

    def normalize(raw: Any) -> Any:
        if type(raw) is exact:
            value = raw
        else:
            if exact is int and (raw is True or raw is False):
                return INVALID  # a flag read by mistake, not the row whose id is 1
            try:
                value = to_python(raw)
            except (ValidationError, TypeError, ValueError, ArithmeticError):
                return INVALID
            if value is None or (exact is not None and not isinstance(value, exact)):
                return INVALID
            if exact is int and isinstance(raw, numbers.Number) and value != raw:
                return INVALID  # 1.5 is no integer, not 1
        if low is not None and high is not None and not low <= value <= high:
            return INVALID
        if type(value) is str and not storable(value):
            return INVALID
        return value

    return normalize


def _text_check(
    field: models.Field[Any, Any], connection: BaseDatabaseWrapper
) -> Callable[[str], bool]:
    """Whether a text key can be sent to, and stored by, ``connection``'s database.

    No driver encodes a lone surrogate (``"\\ud800"``); PostgreSQL refuses NUL characters
    in text, and SQLite's JSON functions (which carry key sets) end text there, cutting
    ``"R0\\x00"`` into ``"R0"``; a value longer than a ``CharField``'s ``max_length``
    cannot be stored where the database enforces it, so where it is compared exactly it can
    equal no row (see :func:`_enforced_max_length`). Such keys are missing references: sent,
    the first two would fail the whole query and the third match another row.
    """
    refuses_nul = connection.vendor in _CUT_AT_NUL
    max_length = _enforced_max_length(target_field(field), connection)

    def storable(value: str) -> bool:
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return False
        if refuses_nul and "\x00" in value:
            return False
        return max_length is None or len(value) <= max_length

    return storable


def _enforced_max_length(
    field: models.Field[Any, Any], connection: BaseDatabaseWrapper
) -> int | None:
    """The length no key longer than can equal a stored value, where there is one.

    None on SQLite (it stores any length), for a ``TextField`` (its ``max_length`` is the
    form's), and wherever text is compared by a collation: under MariaDB/MySQL's PAD SPACE
    collations ``"R0  "`` equals ``"R0"``, and a nondeterministic collation may equal
    strings of different lengths. There the database decides, as a per-row ``get()`` would.
    """
    if connection.vendor in {"sqlite", "mysql"} or _django_type(field) is not str:
        return None
    if field.get_internal_type() == "TextField" or getattr(field, "db_collation", None):
        return None
    max_length = field.max_length
    return max_length if isinstance(max_length, int) else None


def storable_text(
    values: Iterable[str], field: models.Field[Any, Any], connection: BaseDatabaseWrapper
) -> bool:
    """:func:`_text_check` for a whole batch at once, in a few passes over its text."""
    values = list(values)
    if not values:
        return True
    field = target_field(field)
    joined = "".join(values)
    if not joined.isascii():
        try:
            joined.encode("utf-8")
        except UnicodeEncodeError:
            return False
    if connection.vendor in _CUT_AT_NUL and "\x00" in joined:
        return False
    max_length = _enforced_max_length(field, connection)
    return max_length is None or max(map(len, values)) <= max_length


def is_unique(fields: tuple[models.Field[Any, Any], ...], model: type[models.Model]) -> bool:
    """Whether at most one row of ``model`` holds each value of ``fields``."""
    if len(fields) == 1:
        return bool(fields[0].unique)
    names = {f.name for f in fields}
    meta = model._meta
    together = [set(t) for t in meta.unique_together]
    together += [set(c.fields) for c in meta.total_unique_constraints if not c.condition]
    pk = meta.pk
    if pk is not None and getattr(pk, "fields", None):
        together.append({f.name for f in pk.fields})
    return names in together
