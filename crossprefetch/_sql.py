"""Filtering a QuerySet by a (possibly huge) set of keys in as few queries as the backend allows."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from django.db import connections, models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.expressions import Expression
from django.db.models.sql.compiler import SQLCompiler

_POSTGRES_MAX_PARAMS = 65_535
#: Parameters kept free for the QuerySet's own filters when a key set is split.
_PARAM_HEADROOM = 100


_INTEGER_TYPES = frozenset(
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


def _db_values(field: Any, values: Iterable[Any], connection: BaseDatabaseWrapper) -> list[Any]:
    """Database values of keys already normalised by the field (see ``_keys.normalizer``).

    Integers are sent as they are; anything else goes through the field's preparation
    (UUIDs become hex on SQLite, and so on). Django's ``__in`` lookup would prepare every
    value again, which is most of what building a large lookup costs.
    """
    while field.is_relation and field.target_field is not None:
        field = field.target_field
    if field.get_internal_type() in _INTEGER_TYPES:
        return list(values)
    return [field.get_db_prep_value(v, connection, prepared=True) for v in values]


class _InList(Expression):
    """``column IN (%s, ...)`` over keys the engine has already normalised."""

    conditional = True
    output_field = models.BooleanField()

    def __init__(self, column: str, values: Sequence[Any]) -> None:
        super().__init__()
        self.column: Any = models.F(column)
        self.values = values

    def get_source_expressions(self) -> list[Any]:
        return [self.column]

    def set_source_expressions(self, exprs: Sequence[Any]) -> None:
        (self.column,) = exprs

    def as_sql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, tuple[Any, ...]]:
        column_sql, column_params = compiler.compile(self.column)
        values = _db_values(self.column.output_field, self.values, connection)
        placeholders = ", ".join(["%s"] * len(values))
        return f"{column_sql} IN ({placeholders})", (*column_params, *values)


class _AnyOf(Expression):
    """``column = ANY(%s::type[])``: a whole key set as ONE PostgreSQL array parameter."""

    conditional = True
    output_field = models.BooleanField()

    def __init__(self, column: str, values: Sequence[Any]) -> None:
        super().__init__()
        self.column: Any = models.F(column)
        self.values = values

    def get_source_expressions(self) -> list[Any]:
        return [self.column]

    def set_source_expressions(self, exprs: Sequence[Any]) -> None:
        (self.column,) = exprs

    def as_sql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, tuple[Any, ...]]:
        column_sql, column_params = compiler.compile(self.column)
        field = self.column.output_field
        values = _db_values(field, self.values, connection)
        return f"{column_sql} = ANY(%s::{field.cast_db_type(connection)}[])", (
            *column_params,
            values,
        )


class _RowsOf(Expression):
    """``(a, b) IN (SELECT * FROM unnest(%s::ta[], %s::tb[]))``: composite keys on PostgreSQL."""

    conditional = True
    output_field = models.BooleanField()

    def __init__(self, columns: Sequence[str], values: Sequence[tuple[Any, ...]]) -> None:
        super().__init__()
        self.columns: list[Any] = [models.F(c) for c in columns]
        self.values = values

    def get_source_expressions(self) -> list[Any]:
        return self.columns

    def set_source_expressions(self, exprs: Sequence[Any]) -> None:
        self.columns = list(exprs)

    def as_sql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, tuple[Any, ...]]:
        columns_sql: list[str] = []
        params: list[Any] = []
        arrays: list[str] = []
        for column in self.columns:
            sql, column_params = compiler.compile(column)
            columns_sql.append(sql)
            params.extend(column_params)
            field = column.output_field
            arrays.append(f"%s::{field.cast_db_type(connection)}[]")
        for index, column in enumerate(self.columns):
            params.append(
                _db_values(column.output_field, (v[index] for v in self.values), connection)
            )
        return (
            f"({', '.join(columns_sql)}) IN (SELECT * FROM unnest({', '.join(arrays)}))",
            tuple(params),
        )


class _RowValuesIn(Expression):
    """``(a, b) IN (VALUES (%s, %s), ...)``: composite keys as SQLite row values.

    An OR of ANDs would nest one level per key and hit SQLite's expression depth
    limit (1,000) long before its parameter limit.
    """

    conditional = True
    output_field = models.BooleanField()

    def __init__(self, columns: Sequence[str], values: Sequence[tuple[Any, ...]]) -> None:
        super().__init__()
        self.columns: list[Any] = [models.F(c) for c in columns]
        self.values = values

    def get_source_expressions(self) -> list[Any]:
        return self.columns

    def set_source_expressions(self, exprs: Sequence[Any]) -> None:
        self.columns = list(exprs)

    def as_sql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, tuple[Any, ...]]:
        columns_sql: list[str] = []
        params: list[Any] = []
        for column in self.columns:
            sql, column_params = compiler.compile(column)
            columns_sql.append(sql)
            params.extend(column_params)
        fields = [column.output_field for column in self.columns]
        row = f"({', '.join(['%s'] * len(fields))})"
        columns = [
            _db_values(f, (key[i] for key in self.values), connection) for i, f in enumerate(fields)
        ]
        for key in zip(*columns, strict=True):
            params.extend(key)
        rows = ", ".join([row] * len(self.values))
        return f"({', '.join(columns_sql)}) IN (VALUES {rows})", tuple(params)


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
    backends an ``IN`` list split only where their parameter limit forces it.
    """
    connection = connections[queryset.db]
    composite = len(columns) > 1
    if connection.vendor == "postgresql":
        if composite:
            yield queryset.filter(_RowsOf(columns, keys))
        else:
            yield queryset.filter(_AnyOf(columns[0], keys))
        return
    limit = max_params(connection)
    arity = len(columns)
    chunk = len(keys)
    if limit is not None and len(keys) * arity > limit - _PARAM_HEADROOM:
        chunk = max(1, (limit - _own_params(queryset)) // arity)
    for start in range(0, len(keys), chunk):
        part = keys[start : start + chunk]
        if composite and connection.vendor == "sqlite":
            yield queryset.filter(_RowValuesIn(columns, part))
        elif composite:
            rows = [models.Q(**dict(zip(columns, key, strict=True))) for key in part]
            yield queryset.filter(models.Q(*rows, _connector=models.Q.OR))
        else:
            yield queryset.filter(_InList(columns[0], part))
