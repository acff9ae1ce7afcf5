"""N+1 detection: one SQL shape repeated on one alias, named and explained.

A query's *shape* is its SQL with the parameters stripped (placeholders kept, inlined
literals and ``IN (...)`` lists collapsed). An N+1 is a shape that runs more than the
threshold's number of times on one alias; it is reported with the table, the count, the
code that issued it and the ``CrossDBPrefetch`` that would replace it. Shared by
``crossprefetch.testing.detect_n_plus_one`` and the debug-toolbar panel.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from crossprefetch._observe.origin import Origin

_STRING = re.compile(r"'(?:[^']|'')*'")
_NUMBER = re.compile(r"(?<![\w\"`.])-?\d+(?:\.\d+)?\b")
_IN_LIST = re.compile(r"\(\s*(?:%s|\?|%\(\w+\)s)(?:\s*,\s*(?:%s|\?|%\(\w+\)s))*\s*\)")
_SPACES = re.compile(r"\s+")
_TABLE = re.compile(r"\bFROM\s+[\"`\[]?(\w+)[\"`\]]?", re.IGNORECASE)
_UPDATE_TABLE = re.compile(r"^\s*(?:UPDATE|INSERT\s+INTO|DELETE\s+FROM)\s+[\"`\[]?(\w+)", re.I)


def shape(sql: str) -> str:
    """``sql`` with its parameters stripped: what repeats when only the values change."""
    text = _STRING.sub("?", sql)
    text = _NUMBER.sub("?", text)
    text = _IN_LIST.sub("(...)", text)
    return _SPACES.sub(" ", text).strip()


def table_of(sql: str) -> str | None:
    """The first table the statement reads (or writes)."""
    match = _UPDATE_TABLE.match(sql) or _TABLE.search(sql)
    return match[1] if match else None


@dataclass(frozen=True)
class Query:
    """What the detection needs of one query."""

    alias: str
    sql: str
    raw_sql: str
    origin: Origin | None


@dataclass
class Repeat:
    """One shape repeated on one alias past the threshold."""

    alias: str
    shape: str
    count: int
    table: str | None
    model: str | None
    sample: str
    origins: list[tuple[Origin, int]]
    suggestion: str | None
    #: the relation across databases the query follows per object, and its fix
    #: (``cross_db_related = ('account',)``), when it is one
    related: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable, for the debug toolbar's stored stats."""
        return {
            "alias": self.alias,
            "shape": self.shape,
            "count": self.count,
            "table": self.table,
            "model": self.model,
            "sample": self.sample,
            "origins": [
                {
                    "function": origin.function,
                    "field": origin.field,
                    "field_class": origin.field_class,
                    "where": origin.where,
                    "line": origin.line,
                    "count": count,
                }
                for origin, count in self.origins
            ],
            "suggestion": self.suggestion,
            "related": self.related,
        }


def find_repeats(queries: Iterable[Query], threshold: int) -> list[Repeat]:
    """The shapes that ran more than ``threshold`` times on an alias, most repeated first.

    The queries of one run of crossprefetch's fetch chain (a key set sent in chunks) are
    one access: they share a shape by design. Two runs of it are two accesses, so a lookup
    built per row is an N+1 like any other.
    """
    groups: dict[tuple[str, str], list[Query]] = {}
    for query in queries:
        groups.setdefault((query.alias, shape(query.raw_sql)), []).append(query)
    repeats = [
        _repeat(alias, sql_shape, members)
        for (alias, sql_shape), members in groups.items()
        if _accesses(members) > threshold
    ]
    repeats.sort(key=lambda repeat: -repeat.count)
    return repeats


def _accesses(members: list[Query]) -> int:
    """How many separate accesses ``members`` are: one per query, one per fetch."""
    fetches = {id(q.origin.fetch) for q in members if q.origin and q.origin.fetch}
    return len(fetches) + sum(1 for q in members if not (q.origin and q.origin.fetch))


def _repeat(alias: str, sql_shape: str, members: list[Query]) -> Repeat:
    origins: dict[tuple[str, str, int, str | None], tuple[Origin, int]] = {}
    for query in members:
        if query.origin is None:
            continue
        origin = query.origin
        ident = (origin.function, origin.filename, origin.lineno, origin.field)
        seen, count = origins.get(ident, (origin, 0))
        origins[ident] = (seen, count + 1)
    table = table_of(members[0].raw_sql)
    model = _model_of(table)
    ordered = sorted(origins.values(), key=lambda item: -item[1])
    return Repeat(
        alias=alias,
        shape=sql_shape,
        count=len(members),
        table=table,
        model=model._meta.label if model is not None else None,
        sample=members[0].sql,
        origins=ordered,
        suggestion=_suggestion(model, members, [origin for origin, _ in ordered]),
        related=_related(model, members, [origin for origin, _ in ordered]),
    )


def _related(model: Any, members: list[Query], origins: list[Origin]) -> str | None:
    """The fix of a relation across databases read one object at a time, if it is one."""
    column = _matched_column(members[0].raw_sql, model._meta.db_table) if model else None
    if column is None:
        return None
    from crossprefetch._related.suggest import relation_fix

    for origin in origins:
        fix = relation_fix(model, column, origin.model, origin.keys, origin.field_class)
        if fix is not None:
            return fix.describe()
    return None


def _model_of(table: str | None) -> Any:
    if table is None:
        return None
    from django.apps import apps

    for model in apps.get_models(include_auto_created=True):
        if model._meta.db_table == table:
            return model
    return None


def _suggestion(model: Any, members: list[Query], origins: list[Origin]) -> str | None:
    """``CrossDBPrefetch(...)`` for a repeated ``SELECT`` of one model by one column."""
    if model is None or not members[0].raw_sql.lstrip().upper().startswith("SELECT"):
        return None
    column = _matched_column(members[0].raw_sql, model._meta.db_table)
    if column is None:
        return None
    field = next((f for f in model._meta.concrete_fields if f.column == column), None)
    if field is None:
        return None
    keys: frozenset[str] | None = None
    for origin in origins:
        if origin.keys and origin.model != model._meta.label:  # not a remote row's own key
            keys = origin.keys if keys is None else (keys & origin.keys) or keys
    key = _pick_key(keys, model) if keys else None
    fields = _fields_read(model, origins)
    parts = [repr(model._meta.label), f"key={key!r}" if key else "key=..."]
    if not field.primary_key:
        parts.append(f"to_field={field.name!r}")
    if fields:
        parts.append(f"fields={tuple(fields)!r}")
    return f"CrossDBPrefetch({', '.join(parts)})"


def _matched_column(sql: str, table: str) -> str | None:
    """The column of ``WHERE table.column = %s`` (or ``IN (...)``), the key looked up."""
    quoted = rf"[\"`\[]?{re.escape(table)}[\"`\]]?\.[\"`\[]?(\w+)[\"`\]]?"
    match = re.search(rf"\bWHERE\s+\(?\s*{quoted}\s*(?:=|\bIN\b)", sql, re.IGNORECASE)
    return match[1] if match else None


def _pick_key(keys: frozenset[str], model: Any) -> str:
    """Of several attributes holding the value, the one named after the remote model."""
    name = model._meta.model_name
    for key in sorted(keys):
        if key.startswith(f"{name}_") or key == f"{name}_id":
            return key
    return sorted(keys)[0]


def _fields_read(model: Any, origins: list[Origin]) -> list[str]:
    """Remote fields named by the issuing methods and fields (``get_customer_name`` ->
    ``name``), in the order they were seen."""
    names = {f.name for f in model._meta.concrete_fields}
    prefix = f"{model._meta.model_name}_"
    found: list[str] = []
    for origin in origins:
        candidates = [origin.function.rsplit(".", 1)[-1].removeprefix("get_")]
        if origin.field is not None:
            candidates.append(origin.field.rsplit(".", 1)[-1])
        for candidate in candidates:
            name = candidate.removeprefix(prefix)
            if name in names and name not in found:
                found.append(name)
                break
    return found


def lookup_name(model_label: str) -> str:
    """A name for the lookup of a model: ``shop.Customer`` -> ``customers``."""
    name = model_label.rsplit(".", 1)[-1]
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    return snake + ("es" if snake.endswith("s") else "s")


def report(repeats: list[Repeat], threshold: int) -> str:
    """The failure message: one paragraph per repeated shape."""
    lines = [
        f"N+1 queries: {len(repeats)} SQL shape(s) ran more than {threshold} time(s) on one "
        "database alias."
    ]
    for repeat in repeats:
        lines.append("")
        where = f"table {repeat.table!r}" if repeat.table else "no table"
        if repeat.model:
            where += f" ({repeat.model})"
        lines.append(f"{repeat.count} queries on {repeat.alias!r}, {where}, of one shape:")
        lines.append(f"    {repeat.shape}")
        lines.append(f"    e.g. {repeat.sample}")
        if repeat.origins:
            lines.append("  issued by:")
            for origin, count in repeat.origins:
                lines.append(f"    {count} x {origin.describe()}")
                if origin.line:
                    lines.append(f"        {origin.line}")
        else:
            lines.append("  issued by: no frame outside Django and the standard library")
        if repeat.related:
            lines.append("  A relation into another database, read per object; serve it per page:")
            lines.append(f"    {repeat.related}")
        elif repeat.suggestion and repeat.model:
            name = lookup_name(repeat.model)
            lines.append(
                "  Fetch them once per page instead: declare on the view (with "
                "CrossDBPrefetchMixin)"
            )
            lines.append(f"    cross_db_fields = {{{name!r}: {repeat.suggestion}}}")
            fields = _suggested_fields(repeat.suggestion)
            reads = ", ".join(f"ContextLookupField({name!r}, {f!r})" for f in fields)
            reads = reads or f"ContextLookupField({name!r}, ...)"
            lines.append(f"  and read it in the serializer with {reads}.")
    return "\n".join(lines)


def _suggested_fields(suggestion: str) -> list[str]:
    match = re.search(r"fields=\(([^)]*)\)", suggestion)
    return re.findall(r"'(\w+)'", match[1]) if match else []
