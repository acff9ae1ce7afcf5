"""What a group's answer depends on: the one identity every shared answer is keyed by.

Requests share work: plans of one call share a query (:mod:`crossprefetch._groups`),
concurrent requests share a batch (:mod:`crossprefetch._fetch.coalescing`), and every
process shares the cache (:mod:`crossprefetch._fetch.caching`). Each may hand a request
only what it would have read alone, so all three key what they share by the same
:class:`Identity`, computed once per group: the remote QuerySet is compiled once, and what
cannot be shared is decided here and nowhere else.

Two requests read the same rows when they send the same SQL with the same parameters to
the same database alias *through a connection in the same state*: with a schema per tenant
(django-tenants, django-tenant-schemas), the connection's ``search_path`` decides which
tenant's table ``"shop_customer"`` is, and the SQL does not say. That state is read off the
connection (``connection.schema_name`` and ``connection.tenant``, which those packages set),
or from ``CROSSPREFETCH["CONNECTION_SCOPE"]``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from django.db import connections, models
from django.http import HttpRequest

from crossprefetch import _compat
from crossprefetch._cache import store
from crossprefetch._plans import Plan
from crossprefetch.conf import conf
from crossprefetch.spec import CrossDBPrefetch


@dataclass(frozen=True)
class Identity:
    """Equal identities, identical answers: the key of every answer shared between requests.

    A group without one (:func:`identify` returns ``None``) shares nothing: its QuerySet is
    empty, does not compile on its own, or locks rows (``select_for_update()``: the lock is
    the point of the query, and a shared answer takes none).
    """

    #: What the rows depend on, as plain data that is the same in every process (the cache
    #: hashes it into its keys): database alias, model, compiled SQL and parameters, matched
    #: fields, joined projections, the connection's tenant state and the cache scope.
    rows: tuple[Hashable, ...]
    #: What else one shared query must agree on, within this process: the prefetch lookups,
    #: the failure policy and timeout it runs under, the cache policy above it.
    query: tuple[Hashable, ...]
    #: Whether concurrent requests may share the query now: not while the connection is in
    #: an atomic block, whose transaction may see (or hold, or roll back) rows of its own.
    coalesce: bool

    @property
    def key(self) -> tuple[Hashable, ...]:
        """The whole identity, for a registry of this process (coalescing's batches)."""
        return (self.rows, self.query)


def plan_shape(plan: Plan) -> tuple[Hashable, ...]:
    """What two plans must agree on, besides their filter, to share one query.

    Specs with different ``fields`` or ``many`` share it (the query selects the union of
    their columns), unless a projection follows a relation: a to-many join changes the rows.
    """
    fields = plan.spec.fields
    joins = fields if fields is not None and any("__" in name for name in fields) else None
    return (plan.alias, plan.queryset.model._meta.label, plan.match_names, joins)


def run_shape(plan: Plan) -> tuple[Hashable, ...]:
    """How a plan's query runs: one cache policy, failure policy and timeout per query."""
    spec = plan.spec
    return (spec.cache, spec.error_policy(), spec.statement_timeout())


def identify(first: Plan, request: HttpRequest | None) -> Identity | None:
    """The identity of the group ``first`` speaks for; ``None``: the group shares nothing."""
    return _identity(
        first.queryset,
        first.alias,
        first.spec,
        request,
        lambda: first.compiled,
        plan_shape(first),
        repr(_compat.prefetch_lookups(first.queryset)),
    )


def identify_read(
    rows: models.QuerySet[Any], spec: CrossDBPrefetch, limit: int, request: HttpRequest | None
) -> Identity | None:
    """The identity of a read that is not by keys (a filter's or an ordering's): the first
    ``limit`` rows of ``rows``, a ``values_list()`` QuerySet through ``spec``."""
    return _identity(
        rows,
        rows.db,
        spec,
        request,
        lambda: _compiled(rows),
        (rows.db, rows.model._meta.label, "rows", limit),
        None,
    )


def _identity(
    queryset: models.QuerySet[Any],
    alias: str,
    spec: CrossDBPrefetch,
    request: HttpRequest | None,
    compile_: Callable[[], tuple[str, Any] | None],
    shape: tuple[Hashable, ...],
    lookups: str | None,
) -> Identity | None:
    """The scopes are read first, so that a misconfigured one fails every request alike."""
    policy = spec.cache
    connection = connections[alias]
    tenant = connection_scope(connection, cached=policy is not None)
    cache_scope = None if policy is None else store.scope_value(policy, request)
    if queryset.query.select_for_update:
        return None
    sql = compile_()
    if sql is None:
        return None
    return Identity(
        rows=(*shape, *sql, tenant, cache_scope),
        query=(lookups, policy, spec.error_policy(), spec.statement_timeout()),
        coalesce=not connection.in_atomic_block,
    )


def _compiled(queryset: models.QuerySet[Any]) -> tuple[str, Any] | None:
    """``(sql, params)`` of a read, or ``None``: it is empty, or does not compile alone."""
    if queryset.query.is_empty():
        return None
    try:
        sql, params = _compat.compiled(queryset)
    except Exception:  # EmptyResultSet, or a reference to an outer query
        return None
    return sql, repr(params)


def connection_scope(connection: Any, *, cached: bool = False) -> Hashable:
    """The tenant state of ``connection``: what makes the same SQL read other rows.

    ``CROSSPREFETCH["CONNECTION_SCOPE"](connection)`` when set; else ``schema_name`` and
    ``tenant``, as django-tenants and django-tenant-schemas set them on the connection; else
    ``None``. ``cached``: the value becomes part of cache keys, so it must be plain data,
    the same in every process.
    """
    scope = conf.CONNECTION_SCOPE
    if scope is not None:
        value = scope(connection)
        try:
            hash(value)
        except TypeError:
            raise TypeError(
                f'CROSSPREFETCH["CONNECTION_SCOPE"] = {scope!r} returned {value!r} for '
                f"database {connection.alias!r}, which is not hashable. Return the tenant's "
                "schema name or id: a str, an int, a UUID or a tuple of them."
            ) from None
        if cached and not store.plain(value):
            raise TypeError(
                f'CROSSPREFETCH["CONNECTION_SCOPE"] = {scope!r} returned {value!r} for '
                f"database {connection.alias!r}; a spec with a cache needs a str, an int, a "
                "UUID or a tuple of them (the tenant's schema name or id), the same in every "
                "process, since it becomes part of the cache keys."
            )
        return ("scope", value)
    schema = getattr(connection, "schema_name", None)
    tenant = getattr(connection, "tenant", None)
    if schema is None and tenant is None:
        return None
    return ("tenant", None if schema is None else str(schema), _tenant(tenant))


def _tenant(tenant: object) -> Hashable:
    """A tenant object as plain data: a model instance by its label and primary key."""
    if store.plain(tenant):
        return tenant
    if isinstance(tenant, models.Model):
        pk = tenant.pk
        return (tenant._meta.label, pk if store.plain(pk) else str(pk))
    return (type(tenant).__qualname__, str(getattr(tenant, "schema_name", None)))
