"""A whole key set, or a key → position mapping, sent to a database as ONE parameter.

Filtering the listed objects by the keys a remote query matched must not be split into
chunks: the paginator's ``count`` and the page are one query each, and only one query can
be exact. So the keys travel as one value the database unpacks itself:

* PostgreSQL: an array, ``column = ANY(%s::type[])``;
* SQLite: a JSON array, ``column IN (SELECT value FROM json_each(%s))``;
* MariaDB/MySQL: a JSON array, ``column IN (SELECT k FROM JSON_TABLE(%s, '$[*]' ...))``;
* on all three, a large set of integer keys that fills much of its range is a *key map*
  instead: one binary value with a byte per integer of the range, read row by row with
  ``substr`` (``get_byte`` on PostgreSQL) in constant time. The database then plans the
  query as it would a join's (no per-key estimates, no index search per key): a page
  ordered by another column walks that column's index and stops once the page is full.

Ordering by a remote value uses the same idea, in one of two forms (:func:`positions`):

* integer keys that fill most of their range: a *rank vector*, one binary value holding
  each key's positions at a fixed offset (``(key - lowest) * 4 * width``), read row by row
  with ``substr``/``substring`` in constant time, no join: the database only sorts;
* any other keys: a JSON array of ``[key, position]`` pairs joined to the listed table
  (``LEFT OUTER JOIN``), so the database hashes or indexes it once instead of searching the
  mapping row by row.
"""

from __future__ import annotations

import json
import sys
from array import array
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from operator import itemgetter
from typing import Any

from django.db import connections, models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Lookup
from django.db.models.sql.compiler import SQLCompiler
from django.db.models.sql.constants import LOUTER

from crossprefetch._compat import quote_name
from crossprefetch._keys.normalize import INTEGER_TYPES, target_field
from crossprefetch._keys.values import array_type, db_values, json_table_type, sqlite_affinity

SQLParams = tuple[str, tuple[Any, ...]]


def _json(values: Iterable[Any]) -> str:
    return json.dumps(list(values), default=str, separators=(",", ":"))


#: Key sets smaller than this stay a list, which the database can look up in an index.
_KEY_MAP_MIN_KEYS = 64
#: A key map has a byte for every integer between the lowest key and the highest: it is
#: used when at most this many bytes per key are spent on keys not in the set.
_BYTES_PER_KEY = 16


def _dense_range(keys: Sequence[Any], per_key: int, slack: int) -> tuple[int, int] | None:
    """``(lowest, highest)`` of integer ``keys`` whose range has at most ``per_key`` slots
    per key plus ``slack``: a key map or rank vector over it stays about as small as the
    keys themselves. ``None`` for no keys, keys that are not all integers, or too sparse."""
    if not keys or set(map(type, keys)) != {int}:
        return None
    lowest, highest = min(keys), max(keys)
    if highest - lowest + 1 > per_key * len(keys) + slack:
        return None
    return lowest, highest


def _key_map(field: Any, values: Sequence[Any]) -> tuple[int, int, bytes] | None:
    """``(lowest, highest, map)`` for a large set of integer keys, dense enough: a byte per
    integer in the range, 1 for the keys in the set. ``None`` when the keys are not."""
    if len(values) < _KEY_MAP_MIN_KEYS:
        return None
    if target_field(field).get_internal_type() not in INTEGER_TYPES:
        return None
    span = _dense_range(values, _BYTES_PER_KEY, 1024)
    if span is None:
        return None
    lowest, highest = span
    marks = bytearray(highest - lowest + 1)
    for value in values:
        marks[value - lowest] = 1
    return lowest, highest, bytes(marks)


def _binary(vendor: str) -> str:
    """The placeholder of a binary parameter, compared and sliced byte by byte: MySQL
    would read a bare one as text in the connection's collation."""
    return {"postgresql": "%s::bytea", "mysql": "_binary %s"}.get(vendor, "%s")


def _maps_keys(query: Any, vendor: str) -> bool:
    """Whether a key map suits ``query`` on ``vendor``.

    PostgreSQL plans with statistics: the map spares it an estimate per key, and it scans
    or walks an index as it would for a join. SQLite and MariaDB/MySQL take the map only
    for a page (ordered, limited), which then walks the ordering's index and stops once
    full; a count is faster seeking each key in the column's index, which a list allows.
    """
    if vendor == "postgresql":
        return True
    ordered = query.order_by or (query.default_ordering and query.get_meta().ordering)
    return vendor in _VECTOR_VENDORS and bool(ordered) and query.high_mark is not None


class KeyIn(Lookup):
    """``column IN <keys>`` with the whole key set as one parameter, whatever its size.

    A ``Lookup`` so that ``filter()`` takes it as a condition; never registered on a field.
    Other backends than PostgreSQL, SQLite and MariaDB/MySQL get Django's own ``__in``.
    """

    lookup_name = "crossprefetch_key_in"
    prepare_rhs = False
    can_use_none_as_rhs = False

    def __init__(self, column: str | Any, keys: Sequence[Any]) -> None:
        lhs = models.F(column) if isinstance(column, str) else column
        super().__init__(lhs, list(keys))
        # the key set as each database takes it, by (alias, column, key map or not): the
        # count and the page compile the same condition
        self._sent: dict[tuple[str, Any, bool], Any] = {}

    def get_prep_lookup(self) -> Any:
        return self.rhs

    def _keys_for(self, connection: BaseDatabaseWrapper, maps: bool) -> Any:
        """``(lowest, highest, map)`` when ``maps`` and the keys suit a key map; else the
        keys as ``connection`` stores them."""
        field = self.lhs.output_field
        # copies of the lookup share the dict; one unpickled from before it has none
        sent: dict[tuple[str, Any, bool], Any] = self.__dict__.setdefault("_sent", {})
        sent_as = (connection.alias, target_field(field), maps)
        if sent_as not in sent:
            values = db_values(field, self.rhs, connection)
            marks = _key_map(field, values) if maps else None
            sent[sent_as] = values if marks is None else marks
        return sent[sent_as]

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> SQLParams:
        column, params = compiler.compile(self.lhs)
        field = self.lhs.output_field
        vendor = connection.vendor
        sent = self._keys_for(connection, _maps_keys(compiler.query, vendor))
        if isinstance(sent, tuple):
            lowest, highest, data = sent
            # guarded by the range: SQLite counts a start below 1 from the end, and
            # PostgreSQL's get_byte takes an integer offset (the column may be bigint)
            blob = _binary(vendor)
            if vendor == "postgresql":
                # get_byte reads an integer, without a bytea per row (a count of 20,000
                # rows: 1.7 ms instead of 2.1); unlike "= 1", "> 0" is estimated to keep
                # many rows, so a page ordered by another column walks that column's
                # index instead of sorting every match
                piece = f"get_byte({blob}, ({column} - {lowest})::integer)"
                absent, test = "0", "> 0"
            else:  # binary literals
                start = f"{column} - {lowest} + 1"
                piece, absent, test = f"substr({blob}, {start}, 1)", "X'00'", "= X'01'"
            # outside the range: not in the set (false, not unknown, so that NOT keeps it);
            # a null key is unknown, as with IN
            sql = (
                f"CASE WHEN {column} BETWEEN {lowest} AND {highest} THEN {piece} "
                f"WHEN {column} IS NOT NULL THEN {absent} END {test}"
            )
            return sql, (*params, data, *params, *params)
        values: list[Any] = sent
        if vendor == "postgresql":
            return f"{column} = ANY(%s::{array_type(field, connection)}[])", (*params, values)
        if vendor == "sqlite":
            return f"{column} IN (SELECT value FROM json_each(%s))", (*params, _json(values))
        if vendor == "mysql":
            sql = (
                f"{column} IN (SELECT crossprefetch_keys.k FROM JSON_TABLE(%s, '$[*]' "
                f"COLUMNS (k {json_table_type(field, connection, values)} PATH '$')) "
                "AS crossprefetch_keys)"
            )
            return sql, (*params, _json(values))
        if not values:
            return "1 = 0", tuple(params)
        in_list = ", ".join(["%s"] * len(values))
        return f"{column} IN ({in_list})", (*params, *values)


class PositionJoin:
    """``LEFT OUTER JOIN <[key, position, ...] rows> ON rows.k = parent.column``.

    Lives in ``Query.alias_map`` like Django's ``Join`` (same attributes and methods), so
    the compiler writes it into the FROM clause of the page. Each row holds a key and
    ``width`` positions (one per remote field ordered by); rows whose key has none get
    ``NULL`` positions. A query that does not order by them (the paginator's count) gets
    no join at all.
    """

    filtered_relation = None
    nullable = True
    join_field = None

    def __init__(
        self,
        parent_alias: str,
        column: str,
        field: Any,
        rows: Sequence[tuple[Any, Sequence[Any]]],
        width: int,
    ) -> None:
        self.table_name = "crossprefetch_positions"
        self.table_alias: str | None = None
        self.parent_alias = parent_alias
        self.join_type: str | None = LOUTER
        self.column = column
        self.field = field
        self.rows = rows
        self.width = width

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> SQLParams:
        if not self._used_by(compiler.query):
            return "", ()
        quote = partial(quote_name, compiler)
        alias = quote(self.table_alias or self.table_name)
        on = f"{alias}.{quote('k')} = {quote(self.parent_alias)}.{quote(self.column)}"
        keys = db_values(self.field, map(itemgetter(0), self.rows), connection)
        positions = range(1, self.width + 1)
        vendor = connection.vendor
        if vendor == "sqlite":
            # {key: position} (or {key: [positions]}): json_each reads the pairs without
            # parsing each again; the CAST gives the key column an affinity, without which
            # SQLite builds no automatic index on the pairs and searches them once per row
            if self.width == 1:
                mapping = {key: rank[0] for key, (_, rank) in zip(keys, self.rows, strict=True)}
                columns = ", value AS p1"
            else:
                mapping = {key: rank for key, (_, rank) in zip(keys, self.rows, strict=True)}
                columns = "".join(f", json_extract(value, '$[{i - 1}]') AS p{i}" for i in positions)
            payload = json.dumps(mapping, default=str, separators=(",", ":"))
            cast = sqlite_affinity(self.field)
            source = f"(SELECT CAST(key AS {cast}) AS k{columns} FROM json_each(%s))"
            return f"{self.join_type} {source} {alias} ON ({on})", (payload,)
        payload = _json((k, *rank) for k, (_, rank) in zip(keys, self.rows, strict=True))
        if vendor == "postgresql":
            cast = array_type(self.field, connection)
            columns = "".join(f", (e->>{i})::integer AS p{i}" for i in positions)
            source = (
                f"(SELECT (e->>0)::{cast} AS k{columns} FROM jsonb_array_elements(%s::jsonb) AS e)"
            )
        elif vendor == "mysql":
            columns = "".join(f", p{i} INTEGER PATH '$[{i}]'" for i in positions)
            source = (
                f"JSON_TABLE(%s, '$[*]' COLUMNS (k {json_table_type(self.field, connection, keys)} "
                f"PATH '$[0]'{columns}))"
            )
        else:
            raise NotImplementedError(
                f"Ordering by a remote field is not supported on {connection.vendor}; "
                "use PostgreSQL, SQLite or MariaDB/MySQL for the listed objects."
            )
        return f"{self.join_type} {source} {alias} ON ({on})", (payload,)

    def _used_by(self, query: Any) -> bool:
        """Whether the query orders by this join's positions (the join adds no row)."""
        alias = self.table_alias or self.table_name
        return any(
            isinstance(term, models.OrderBy)
            and isinstance(term.expression, Position)
            and term.expression.alias == alias
            for term in query.order_by
        )

    def relabeled_clone(self, change_map: dict[str, str]) -> PositionJoin:
        parent = change_map.get(self.parent_alias, self.parent_alias)
        clone = PositionJoin(parent, self.column, self.field, self.rows, self.width)
        if self.table_alias is not None:
            clone.table_alias = change_map.get(self.table_alias, self.table_alias)
        clone.join_type = self.join_type
        return clone

    def demote(self) -> PositionJoin:
        return self  # always an outer join: rows without a position are kept

    def promote(self) -> PositionJoin:
        return self

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)


class Position(models.Expression):
    """Position ``index`` (from 1) of a :class:`PositionJoin`, relabeled with the query."""

    def __init__(self, alias: str, index: int = 1) -> None:
        super().__init__(output_field=models.IntegerField())
        self.alias = alias
        self.index = index

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.alias!r}, {self.index})"

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> SQLParams:
        quote = partial(quote_name, compiler)
        return f"{quote(self.alias)}.{quote(f'p{self.index}')}", ()

    def relabeled_clone(self, change_map: Mapping[str, str]) -> Position:
        return Position(change_map.get(self.alias, self.alias), self.index)

    def read(self, value: Any) -> int | None:
        """The position a row selected this expression as (``None``: it has none)."""
        return None if value is None else int(value)

    def get_group_by_cols(self) -> list[Any]:
        return [self]

    @property
    def identity(self) -> tuple[Any, ...]:
        return (type(self), self.alias, self.index)


def join_positions(
    queryset: models.QuerySet[Any],
    column: str,
    rows: Sequence[tuple[Any, Sequence[Any]]],
    width: int,
) -> tuple[models.QuerySet[Any], str]:
    """Join ``rows`` (``(key, (position 1, ..., position width))``) to ``queryset`` on
    ``column``; the join's alias, for :class:`Position`.

    Order by ``Position(alias, i).asc(nulls_last=True)`` (or ``desc``): rows without a
    position come last in both directions.
    """
    queryset = queryset.all()
    query = queryset.query
    parent = query.get_initial_alias()
    assert parent is not None
    field = queryset.model._meta.get_field(column)
    join = PositionJoin(parent, getattr(field, "column", column), field, rows, width)
    return queryset, query.join(join)  # type: ignore[arg-type]


#: Bytes of one position in a rank vector: big-endian, so the bytes compare as the numbers.
_POSITION_BYTES = 4
#: What a key without a position holds: after every position in either direction.
_LAST = {False: 0xFFFFFFFF, True: 0}
#: A rank vector holds a slot for every key between the lowest and the highest: it is used
#: when at most this many slots per key are empty (bounded like the keys themselves).
_SLOTS_PER_KEY = 4
_VECTOR_VENDORS = frozenset({"sqlite", "postgresql", "mysql"})


class RankAt(models.Expression):
    """Position ``index`` (from 1) of the key in ``column``, read from a rank vector.

    ``vector`` holds ``width`` unsigned 32-bit big-endian positions per key from ``lowest``
    to ``highest``. A key without a position, outside the range or null reads as the value
    that sorts last in this position's direction (``descending`` or not), so the ordering
    needs no ``NULLS LAST``. Binary values compare byte by byte: ordering by the slice
    orders by the position.
    """

    def __init__(
        self,
        column: str,
        span: tuple[int, int],
        vector: bytes,
        width: int,
        index: int,
        descending: bool,
    ) -> None:
        super().__init__(output_field=models.BinaryField())
        self.column: Any = models.F(column)  # a column once the query resolves it
        self.lowest, self.highest = span
        self.vector, self.width, self.index = vector, width, index
        self.descending = descending

    def __repr__(self) -> str:
        span = f"{self.lowest}..{self.highest}"
        return f"{type(self).__name__}({self.column!r}, {span}, {self.index})"

    def get_source_expressions(self) -> list[Any]:
        return [self.column]

    def set_source_expressions(self, exprs: Sequence[Any]) -> None:
        (self.column,) = exprs

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> SQLParams:
        column, params = compiler.compile(self.column)
        stride = _POSITION_BYTES * self.width
        start = _POSITION_BYTES * (self.index - 1) + 1
        offset = f"({column} - %s) * {stride} + {start}"
        blob = _binary(connection.vendor)
        if connection.vendor == "postgresql":  # an integer position (the column may be bigint)
            piece = f"substring({blob} FROM ({offset})::integer FOR {_POSITION_BYTES})"
        else:  # SQLite, MariaDB/MySQL: byte positions in a binary value
            piece = f"substr({blob}, {offset}, {_POSITION_BYTES})"
        last = _LAST[self.descending].to_bytes(_POSITION_BYTES, "big")
        sql = f"CASE WHEN {column} BETWEEN %s AND %s THEN {piece} ELSE {blob} END"
        return sql, (*params, self.lowest, self.highest, self.vector, *params, self.lowest, last)

    @property
    def identity(self) -> tuple[Any, ...]:
        return (type(self), self.column, id(self.vector), self.index, self.descending)

    def read(self, value: Any) -> int | None:
        """The position a row selected this expression as (``None``: it has none)."""
        if value is None:
            return None
        position = int.from_bytes(bytes(value), "big")
        return None if position == _LAST[self.descending] else position


def _vector(
    rows: Sequence[tuple[Any, Sequence[Any]]], descending: Sequence[bool]
) -> tuple[int, int, bytes] | None:
    """``(lowest, highest, vector)`` for integer keys dense enough; ``None`` otherwise."""
    span = _dense_range(list(map(itemgetter(0), rows)), _SLOTS_PER_KEY, 64)
    if span is None:
        return None
    lowest, highest = span
    width = len(descending)
    slots = array("I", [_LAST[d] for d in descending]) * (highest - lowest + 1)
    if slots.itemsize != _POSITION_BYTES:  # pragma: no cover - no such platform in CI
        return None
    if width == 1:
        for key, (rank,) in rows:
            if rank is not None:
                slots[key - lowest] = rank
    else:
        for key, ranks in rows:
            base = (key - lowest) * width
            for i, rank in enumerate(ranks):
                if rank is not None:
                    slots[base + i] = rank
    if sys.byteorder == "little":
        slots.byteswap()
    return lowest, highest, slots.tobytes()


def positions(
    queryset: models.QuerySet[Any],
    column: str,
    rows: Sequence[tuple[Any, Sequence[Any]]],
    descending: Sequence[bool],
) -> tuple[models.QuerySet[Any], list[models.OrderBy]]:
    """``queryset`` able to order by ``rows`` (``(key, (position 1, ..., position n))``
    matched on ``column``), and one ordering term per position, descending or not.

    Rows without a position come last in both directions. Dense integer keys become a rank
    vector (no join); other keys a joined JSON array (:func:`join_positions`).
    """
    vendor = connections[queryset.db].vendor
    field = queryset.model._meta.get_field(column)
    integer = target_field(field).get_internal_type() in INTEGER_TYPES
    vector = _vector(rows, descending) if integer and vendor in _VECTOR_VENDORS else None
    width = len(descending)
    if vector is not None:
        lowest, highest, data = vector
        return queryset, [
            models.OrderBy(RankAt(column, (lowest, highest), data, width, i, down), descending=down)
            for i, down in enumerate(descending, start=1)
        ]
    queryset, alias = join_positions(queryset, column, rows, width)
    return queryset, [
        models.OrderBy(Position(alias, i), descending=down, nulls_last=True)
        for i, down in enumerate(descending, start=1)
    ]
