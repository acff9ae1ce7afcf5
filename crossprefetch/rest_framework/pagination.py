"""Cursor pagination over orderings by another database's rows.

DRF's ``CursorPagination`` orders by column names and encodes the value of the first one
plus an offset among equal values (capped at ``offset_cutoff``). A remote field is not a
column of the listed table, and remote values repeat a lot (a customer's tier): neither
part can carry such an order. :class:`CrossDBCursorPagination` walks it as a keyset
instead: the cursor holds the whole sort key of the row it stops at (each remote field's
rank, then each term of the view's own ordering, then the primary key), and the next page
is the rows after it in that order, every row once, forward and back.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from django.core.exceptions import ValidationError
from django.db import models
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination

from crossprefetch._compat import annotation_field
from crossprefetch._keys.keyset import KeyIn
from crossprefetch.rest_framework.filters import OrderingPlan, RemoteTerm

__all__ = ["CrossDBCursorPagination"]

_SORT = "crossprefetch_sort_%d"


class CrossDBCursorPagination(CursorPagination):
    """DRF's ``CursorPagination``, able to walk an ordering by remote rows.

    Use it on views with ``cross_db_ordering_fields`` (a system check refuses DRF's own
    ``CursorPagination`` there). With ``?ordering=customer_name`` the pages follow the
    order of the join: the remote value, rows without a remote row (or with a null value)
    last, then the view QuerySet's own ordering, then the primary key. Each cursor holds
    the sort key of the row it stops at (a keyset), so no row is repeated or skipped
    however many share a value: DRF's own cursor holds one value and an offset among
    equal ones, and repeats or skips rows once their order among equals is not fixed.
    Every ordering is walked so, local ones and the paginator's ``ordering`` included;
    null values of local ordering fields come last in either direction.

    The ranks come from the remote rows at each request: a cursor is exact as long as the
    remote values it passed over do not change while a client walks the pages.
    """

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> list[Any] | None:
        self.request = request
        self.page_size = self.get_page_size(request)
        if not self.page_size:
            return None
        self.base_url = request.build_absolute_uri()
        plan = getattr(view, "_crossprefetch_ordering", None)
        if not isinstance(plan, OrderingPlan):  # no ?ordering=: the paginator's (DRF's rules)
            ordering = tuple(self.get_ordering(request, queryset, view))
            plan = OrderingPlan(ordering, ordering)
        keyset = _Keyset.of(plan, queryset)
        self.cursor = cursor = self.decode_cursor(request)
        position = None
        reverse = False
        if cursor is not None:
            if cursor.offset:
                raise NotFound(self.invalid_cursor_message)
            position = keyset.decode(cast(Any, cursor.position), self.invalid_cursor_message)
            reverse = cursor.reverse
        rows = keyset.queryset(reverse)
        if position is not None:
            rows = rows.filter(keyset.beyond(position, before=reverse))
        results = list(rows[: self.page_size + 1])
        page = results[: self.page_size]
        more = len(results) > self.page_size
        if reverse:
            page.reverse()
        self.page = page
        self.has_next = more if not reverse else True
        self.has_previous = more if reverse else position is not None
        first = keyset.position(page[0]) if page else position
        last = keyset.position(page[-1]) if page else position
        self._next = Cursor(offset=0, reverse=False, position=cast(Any, keyset.encode(last)))
        self._previous = Cursor(offset=0, reverse=True, position=cast(Any, keyset.encode(first)))
        if (self.has_previous or self.has_next) and self.template is not None:
            self.display_page_controls = True
        return page

    def get_next_link(self) -> str | None:
        return self.encode_cursor(self._next) if self.has_next else None

    def get_previous_link(self) -> str | None:
        return self.encode_cursor(self._previous) if self.has_previous else None


@dataclass(frozen=True)
class _Term:
    """One part of the sort key: a remote rank or a term of the view's own ordering."""

    alias: str
    descending: bool
    #: a remote field's ranks; ``None`` for a local term
    remote: RemoteTerm | None
    #: what is selected as ``alias`` (the rank's expression, or the local expression)
    expression: Any

    def order(self, reverse: bool) -> models.OrderBy:
        order: models.OrderBy
        if self.remote is not None:
            order = self.remote.order.copy()  # the joined positions must see their term
        else:
            order = models.OrderBy(models.F(self.alias), descending=self.descending)
            order.nulls_last = True
        if reverse:
            order.reverse_ordering()
        return order

    def read(self, row: Any) -> Any:
        value = row[self.alias] if isinstance(row, Mapping) else getattr(row, self.alias)
        return self.remote.read(value) if self.remote is not None else value

    # conditions on this part alone, in the forward order ---------------------------------

    def equal(self, value: Any) -> models.Q:
        if self.remote is not None:
            if value is None:
                return self._missing()
            same = [k for k, r in self.remote.ranked.items() if r == value]
            return _key_in(self.remote.column, same)
        return models.Q(**{f"{self.alias}__isnull": True} if value is None else {self.alias: value})

    def after(self, value: Any) -> models.Q:
        """Rows after ``value`` in this part's order (rows without a value come last)."""
        if value is None:
            return _NEVER
        if self.remote is not None:
            ranked = self.remote.ranked.items()
            later = [k for k, r in ranked if (r < value if self.descending else r > value)]
            return _key_in(self.remote.column, later) | self._missing()
        lookup = "lt" if self.descending else "gt"
        return models.Q(**{f"{self.alias}__{lookup}": value}) | models.Q(
            **{f"{self.alias}__isnull": True}
        )

    def before(self, value: Any) -> models.Q:
        """Rows before ``value`` in this part's order."""
        if self.remote is not None:
            ranked = self.remote.ranked.items()
            if value is None:
                return _key_in(self.remote.column, [k for k, _ in ranked])
            earlier = [k for k, r in ranked if (r > value if self.descending else r < value)]
            return _key_in(self.remote.column, earlier)
        if value is None:
            return models.Q(**{f"{self.alias}__isnull": False})
        lookup = "gt" if self.descending else "lt"
        return models.Q(**{f"{self.alias}__{lookup}": value})

    def _missing(self) -> models.Q:
        """Rows without a rank: a null key, or a key the remote field gives no value."""
        assert self.remote is not None
        column = self.remote.column
        keys = list(self.remote.ranked)
        null = models.Q(**{f"{column}__isnull": True})
        return null | ~models.Q(KeyIn(column, keys)) if keys else _ALWAYS


#: A condition no row meets (Django answers it without a query), and its negation; not
#: ``Q()``, which ``|`` would drop instead of reading as true.
_NEVER = models.Q(pk__in=[])
_ALWAYS = ~_NEVER


def _key_in(column: str, keys: Sequence[Any]) -> models.Q:
    return models.Q(KeyIn(column, keys)) if keys else _NEVER


@dataclass(frozen=True)
class _Keyset:
    """The sort key of one ordering: its parts, and the QuerySet that selects them."""

    requested: tuple[str, ...]
    terms: tuple[_Term, ...]
    base: models.QuerySet[Any]

    @classmethod
    def of(cls, plan: OrderingPlan, queryset: models.QuerySet[Any]) -> _Keyset:
        terms: list[_Term] = []
        unique = False
        meta = queryset.model._meta
        pk_names = {"pk", meta.pk.name, meta.pk.attname} if meta.pk is not None else {"pk"}
        for i, term in enumerate(plan.terms):
            alias = _SORT % i
            if term == "?":
                continue  # a random order breaks no tie a cursor could name again
            if isinstance(term, RemoteTerm):
                remote = term
                terms.append(_Term(alias, term.order.descending, remote, term.order.expression))
                continue
            expression, descending = _local(term)
            unique = unique or getattr(expression, "name", None) in pk_names
            terms.append(_Term(alias, descending, None, expression))
        if not unique:  # the tie-break of last resort: every row has its own sort key
            terms.append(_Term(_SORT % len(terms), False, None, models.F("pk")))
        annotated = queryset.annotate(**{t.alias: t.expression for t in terms})
        return cls(plan.requested, tuple(terms), annotated)

    def queryset(self, reverse: bool) -> models.QuerySet[Any]:
        ordered: models.QuerySet[Any] = self.base.order_by(*(t.order(reverse) for t in self.terms))
        return ordered

    def beyond(self, position: Sequence[Any], *, before: bool) -> models.Q:
        """Rows after ``position`` in the order (before it, for a page walked back):
        for each part, the rows equal on every part ahead of it and past it on this one."""
        condition = _NEVER
        equal = models.Q()
        for term, value in zip(self.terms, position, strict=True):
            past = term.before(value) if before else term.after(value)
            condition |= equal & past
            equal &= term.equal(value)
        return condition

    def position(self, row: Any) -> list[Any]:
        return [term.read(row) for term in self.terms]

    # the cursor ---------------------------------------------------------------------------

    def encode(self, position: Sequence[Any] | None) -> str | None:
        if position is None:
            return None
        payload = {"o": list(self.requested), "k": [_jsonable(v) for v in position]}
        return json.dumps(payload, separators=(",", ":"))

    def decode(self, text: str | None, invalid: str) -> list[Any] | None:
        """The position a cursor holds; 404 (DRF's answer to a bad cursor) for a cursor
        of another ordering or one that does not parse."""
        if text is None:
            return None
        try:
            payload = json.loads(text)
            if payload["o"] != list(self.requested) or len(payload["k"]) != len(self.terms):
                raise ValueError("another ordering's cursor")
            values = zip(self.terms, payload["k"], strict=True)
            return [self._value(term, value) for term, value in values]
        except (ValueError, TypeError, KeyError, ValidationError):
            raise NotFound(invalid) from None

    def _value(self, term: _Term, value: Any) -> Any:
        if value is None:
            return None
        if term.remote is not None:
            if type(value) is not int:
                raise TypeError("a rank is an integer")
            return value
        return annotation_field(self.base, term.alias).to_python(value)


def _local(term: Any) -> tuple[Any, bool]:
    """A term of the view's own ordering as ``(expression, descending)``."""
    if isinstance(term, str):
        return models.F(term.lstrip("-")), term.startswith("-")
    if isinstance(term, models.OrderBy):
        return term.expression, term.descending
    return term, False


def _jsonable(value: Any) -> Any:
    """A sort key's value as JSON, read back exactly by its field's ``to_python`` (full
    microseconds, unlike ``DjangoJSONEncoder``)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return str(value)
