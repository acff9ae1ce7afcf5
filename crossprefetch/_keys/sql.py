"""Filtering a QuerySet by a (possibly huge) set of keys in as few queries as the backend allows."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from typing import Any

from django.db import connections, models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Lookup
from django.db.models.sql.compiler import SQLCompiler
from django.db.models.sql.constants import INNER

from crossprefetch._compat import quote_name
from crossprefetch._keys.matching import KeyPositions
from crossprefetch._keys.packet import chunk_sizes
from crossprefetch._keys.values import array_type, db_values

_POSTGRES_MAX_PARAMS = 65_535
#: Parameters kept free for the QuerySet's own filters when a key set is split.
_PARAM_HEADROOM = 100

SQLParams = tuple[str, tuple[Any, ...]]


class _KeyFilter(Lookup):
    """A WHERE condition matching ``columns`` against a set of keys.

    A ``Lookup``, so that ``filter()`` uses it as it is (a plain conditional expression
    would be compared with ``= True`` on some backends). Never registered on a field.
    """

    lookup_name = "crossprefetch_keys"
    prepare_rhs = False

    def __init__(
        self, columns: Sequence[str], keys: Sequence[Any], *, prepared: bool = False
    ) -> None:
        self.columns: list[Any] = [models.F(column) for column in columns]
        #: the keys are already database values (composite keys: tuples of them)
        self.prepared = prepared
        super().__init__(self.columns[0], list(keys))

    def get_source_expressions(self) -> list[Any]:
        return list(self.columns)

    def set_source_expressions(self, exprs: Sequence[Any]) -> None:
        self.columns = list(exprs)
        self.lhs = self.columns[0]

    def resolve_expression(
        self,
        query: Any = None,
        allow_joins: bool = True,
        reuse: Any = None,
        summarize: bool = False,
        for_save: bool = False,
    ) -> _KeyFilter:
        clone: _KeyFilter = self.copy()
        clone.set_source_expressions(
            [
                c.resolve_expression(query, allow_joins, reuse, summarize, for_save)
                for c in self.columns
            ]
        )
        return clone

    def compile_columns(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper
    ) -> tuple[list[str], list[Any], list[list[Any]]]:
        """SQL of each column, their parameters, and the keys' database values per column."""
        sql: list[str] = []
        params: list[Any] = []
        for column in self.columns:
            column_sql, column_params = compiler.compile(column)
            sql.append(column_sql)
            params.extend(column_params)
        if self.prepared and len(self.columns) == 1:
            values = [list(self.rhs)]
        elif self.prepared:
            values = [[key[i] for key in self.rhs] for i in range(len(self.columns))]
        elif len(self.columns) == 1:
            values = [db_values(self.columns[0].output_field, self.rhs, connection)]
        else:
            values = [
                db_values(column.output_field, (key[i] for key in self.rhs), connection)
                for i, column in enumerate(self.columns)
            ]
        return sql, params, values

    def cast(self, index: int, connection: BaseDatabaseWrapper) -> str:
        return array_type(self.columns[index].output_field, connection)


class _InList(_KeyFilter):
    """``column IN (%s, ...)``."""

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> SQLParams:
        (column,), params, (values,) = self.compile_columns(compiler, connection)
        return f"{column} IN ({', '.join(['%s'] * len(values))})", (*params, *values)


class _AnyOf(_KeyFilter):
    """``column = ANY(%s::type[])``: a whole key set as ONE PostgreSQL array parameter."""

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> SQLParams:
        (column,), params, (values,) = self.compile_columns(compiler, connection)
        return f"{column} = ANY(%s::{self.cast(0, connection)}[])", (*params, values)


class _RowsOf(_KeyFilter):
    """``(a, b) IN (SELECT * FROM unnest(%s::ta[], %s::tb[]))``: composite keys on PostgreSQL."""

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> SQLParams:
        columns, params, values = self.compile_columns(compiler, connection)
        arrays = ", ".join(f"%s::{self.cast(i, connection)}[]" for i in range(len(columns)))
        sql = f"({', '.join(columns)}) IN (SELECT * FROM unnest({arrays}))"
        return sql, (*params, *values)


class _RowValuesIn(_KeyFilter):
    """``(a, b) IN (VALUES (%s, %s), ...)``: composite keys as SQLite row values.

    An OR of ANDs would nest one level per key and hit SQLite's expression depth limit
    (1,000) long before its parameter limit.
    """

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> SQLParams:
        columns, params, values = self.compile_columns(compiler, connection)
        row = f"({', '.join(['%s'] * len(columns))})"
        rows = ", ".join([row] * len(self.rhs))
        flat = [value for key in zip(*values, strict=True) for value in key]
        return f"({', '.join(columns)}) IN (VALUES {rows})", (*params, *flat)


class _RowsIn(_KeyFilter):
    """``(a, b) IN ((%s, %s), ...)``: composite keys as MySQL row constructors.

    MariaDB plans an OR of ANDs over 50,000 keys for minutes; a row IN list in well under
    a second.
    """

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> SQLParams:
        columns, params, values = self.compile_columns(compiler, connection)
        row = f"({', '.join(['%s'] * len(columns))})"
        rows = ", ".join([row] * len(self.rhs))
        flat = [value for key in zip(*values, strict=True) for value in key]
        return f"({', '.join(columns)}) IN ({rows})", (*params, *flat)


def max_params(connection: BaseDatabaseWrapper) -> int | None:
    """How many parameters one statement may carry on this connection (``None``: no limit)."""
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        getlimit = getattr(connection.connection, "getlimit", None)
        if getlimit is not None:
            return int(getlimit(getattr(sqlite3, "SQLITE_LIMIT_VARIABLE_NUMBER")))  # noqa: B009
        return 32_766 if sqlite3.sqlite_version_info >= (3, 32) else 999
    if connection.vendor == "postgresql":
        return _POSTGRES_MAX_PARAMS
    limit = connection.features.max_query_params
    return int(limit) if limit else None


def _own_params(queryset: models.QuerySet[Any]) -> int:
    try:
        return len(queryset.query.sql_with_params()[1])
    except Exception:  # EmptyResultSet / FullResultSet: no parameters of its own
        return 0


def filtered_by_keys(
    queryset: models.QuerySet[Any], columns: Sequence[str], keys: Sequence[Any]
) -> Iterator[models.QuerySet[Any]]:
    """Yield QuerySets that together select the rows whose ``columns`` match ``keys``.

    One QuerySet whenever the backend allows: PostgreSQL gets one array parameter, other
    backends an ``IN`` list split only where their parameter (or IN-list) limit forces it.
    """
    connection = connections[queryset.db]
    composite = len(columns) > 1
    if connection.vendor == "postgresql":
        yield queryset.filter(_RowsOf(columns, keys) if composite else _AnyOf(columns, keys))
        return
    if connection.vendor == "mysql":
        yield from _by_packet_size(queryset, columns, keys, connection)
        return
    limit = max_params(connection)
    arity = len(columns)
    chunk = len(keys)
    if limit is not None and len(keys) * arity > limit - _PARAM_HEADROOM:
        chunk = max(1, (limit - _own_params(queryset)) // arity)
    # Backends with an IN-list limit (Oracle: 1,000) get Django's own __in, which ORs lists.
    in_list_limit = connection.ops.max_in_list_size()
    for start in range(0, len(keys), chunk):
        part = keys[start : start + chunk]
        if composite and connection.vendor == "sqlite":
            yield queryset.filter(_RowValuesIn(columns, part))
        elif composite:
            rows = [models.Q(**dict(zip(columns, key, strict=True))) for key in part]
            yield queryset.filter(models.Q(*rows, _connector=models.Q.OR))
        elif in_list_limit:
            yield queryset.filter(**{f"{columns[0]}__in": part})
        else:
            yield queryset.filter(_InList(columns, part))


def _by_packet_size(
    queryset: models.QuerySet[Any],
    columns: Sequence[str],
    keys: Sequence[Any],
    connection: BaseDatabaseWrapper,
) -> Iterator[models.QuerySet[Any]]:
    """MySQL/MariaDB: split only where ``max_allowed_packet`` forces it (see ``_packet``)."""
    meta = queryset.model._meta
    fields = [meta.get_field(column) for column in columns]
    if len(columns) == 1:
        values = db_values(fields[0], keys, connection)
        parts: list[Any] = [(value,) for value in values]
    else:
        per_column = [
            db_values(field, (key[i] for key in keys), connection) for i, field in enumerate(fields)
        ]
        values = parts = list(zip(*per_column, strict=True))
    start = 0
    for size in chunk_sizes(connection, parts):
        part = values[start : start + size]
        start += size
        if len(columns) == 1:
            yield queryset.filter(_InList(columns, part, prepared=True))
        else:
            yield queryset.filter(_RowsIn(columns, part, prepared=True))


# Keys matched by the database (see ``_matching``) ---------------------------------------

#: The annotation holding, for each row, the position of the key it matched.
MATCHED_KEY = "_crossprefetch_key"
_KEYS_ALIAS = "crossprefetch_keys"


class _KeySet:
    """The FROM item joining the key set: an entry of ``Query.alias_map``, like a ``Join``.

    ``INNER JOIN <keys> AS crossprefetch_keys ON (column = key, ...)``, the key set being
    ONE parameter where the backend allows (PostgreSQL ``unnest``, SQLite ``json_each``)
    and rows of literals on MySQL, whose literals take the column's collation where a
    ``JSON_TABLE`` column would clash with it. The column is on the left: SQLite compares
    with the left operand's collation.
    """

    join_type = INNER
    nullable = False
    filtered_relation = None
    join_field = None

    def __init__(
        self,
        parent_alias: str,
        fields: Sequence[Any],
        values: Sequence[tuple[Any, ...]],
        table_alias: str = _KEYS_ALIAS,
    ) -> None:
        self.parent_alias = parent_alias
        self.table_name = self.table_alias = table_alias
        self.fields = list(fields)
        self.values = values

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> SQLParams:
        quote = partial(quote_name, compiler)
        keys = quote(self.table_alias)
        source, params = self._source(connection, keys)
        conditions = []
        for i, field in enumerate(self.fields):
            column, column_params = compiler.compile(field.get_col(self.parent_alias))
            params = [*params, *column_params]
            conditions.append(f"{column} = {self._key(connection, keys, i)}")
        return f"INNER JOIN {source} ON ({' AND '.join(conditions)})", tuple(params)

    def _key(self, connection: BaseDatabaseWrapper, keys: str, i: int) -> str:
        if connection.vendor == "sqlite":
            if len(self.fields) == 1:
                return f"{keys}.value"
            return f"json_extract({keys}.value, '$[{i}]')"
        return f"{keys}.k{i}"

    def position(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> str:
        keys = quote_name(compiler, self.table_alias)
        if connection.vendor == "sqlite":
            return f"{keys}.key"
        if connection.vendor == "postgresql":
            return f"{keys}.i - 1"
        return f"{keys}.i"

    def _source(self, connection: BaseDatabaseWrapper, keys: str) -> tuple[str, list[Any]]:
        arity = len(self.fields)
        if connection.vendor == "sqlite":
            values = [v[0] for v in self.values] if arity == 1 else self.values
            return f"json_each(%s) AS {keys}", [json.dumps(values, default=str)]
        if connection.vendor == "postgresql":
            arrays = ", ".join(f"%s::{array_type(field, connection)}[]" for field in self.fields)
            names = ", ".join([*(f"k{i}" for i in range(arity)), "i"])
            columns = [[key[i] for key in self.values] for i in range(arity)]
            return f"unnest({arrays}) WITH ORDINALITY AS {keys}({names})", columns
        # MySQL and MariaDB: ``_matching`` sends no other backend here
        first = ", ".join([*(f"%s AS k{i}" for i in range(arity)), "%s AS i"])
        row = ", ".join(["%s"] * (arity + 1))
        constructor = "" if getattr(connection, "mysql_is_mariadb", False) else "ROW"
        rows = ", ".join([f"{constructor}({row})"] * (len(self.values) - 1))
        sql = f"(SELECT {first}" + (f" UNION ALL VALUES {rows}" if rows else "") + ")"
        params = [v for i, key in enumerate(self.values) for v in (*key, i)]
        return f"{sql} AS {keys}", params

    def relabeled_clone(self, change_map: Mapping[str, str]) -> _KeySet:
        return _KeySet(
            change_map.get(self.parent_alias, self.parent_alias),
            self.fields,
            self.values,
            change_map.get(self.table_alias, self.table_alias),
        )

    def demote(self) -> _KeySet:
        return self

    def promote(self) -> _KeySet:
        return self

    @property
    def identity(self) -> tuple[Any, ...]:
        return (type(self), self.table_alias, id(self.values))

    def equals(self, other: Any) -> bool:
        return self is other

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)


class _MatchedPosition(models.Expression):
    """The position, in the key set, of the key a row was joined with."""

    contains_aggregate = False

    def __init__(self, keyset: _KeySet) -> None:
        super().__init__(output_field=models.IntegerField())
        self.keyset = keyset

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> SQLParams:
        return self.keyset.position(compiler, connection), ()

    def get_group_by_cols(self) -> list[Any]:
        return [self]


def joined_with_keys(
    queryset: models.QuerySet[Any], columns: Sequence[str], keys: Sequence[Any]
) -> Iterator[tuple[models.QuerySet[Any], KeyPositions, int]]:
    """QuerySets selecting each row once per key the database matches it with.

    Each row carries, as :data:`MATCHED_KEY`, the position of its key; yielded with each
    QuerySet are the key set's :class:`~crossprefetch._keys.matching.KeyPositions` and the
    position its first key has there. One QuerySet, except on MySQL where
    ``max_allowed_packet`` forces a split.
    """
    connection = connections[queryset.db]
    meta = queryset.model._meta
    fields = [meta.get_field(column) for column in columns]
    if len(columns) == 1:
        sent: list[Any] = [(value,) for value in db_values(fields[0], keys, connection)]
    else:
        per_column = [
            db_values(field, (key[i] for key in keys), connection) for i, field in enumerate(fields)
        ]
        sent = list(zip(*per_column, strict=True))
    positions = KeyPositions(keys, sent)
    values: list[tuple[Any, ...]] = positions.values
    sizes = (
        chunk_sizes(connection, [(*key, len(values)) for key in values])
        if connection.vendor == "mysql"
        else [len(values)]
    )
    start = 0
    for size in sizes:
        part = values[start : start + size]
        keyset = _KeySet("", fields, part)
        chunk = queryset.annotate(**{MATCHED_KEY: _MatchedPosition(keyset)})
        query = chunk.query
        keyset.parent_alias = query.get_initial_alias()
        query.alias_map[keyset.table_alias] = keyset
        query.alias_refcount[keyset.table_alias] = 1
        yield chunk, positions, start
        start += size
