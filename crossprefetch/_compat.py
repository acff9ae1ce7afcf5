"""Every private name of Django, DRF, drf-spectacular and pytest-django crossprefetch touches.

A new release of one of them is one file to read: each function below wraps one private
name, with a line saying what breaks in crossprefetch if that name changes. No other module
uses a private name of another package (``tests/test_architecture.py``).
"""

from __future__ import annotations

from typing import Any

# -- Django: related-object caches (crossprefetch.prefetch_related_objects) ------------------


def prefetched_objects(instance: Any) -> dict[str, Any]:
    """The ``_prefetched_objects_cache`` of a model instance, created when absent.

    Django's ``prefetch_related_objects`` keeps there, per reverse relation, the QuerySet a
    related manager's ``all()`` returns. Breaks if: the attribute is renamed or no longer
    read by ``RelatedManager.get_queryset()`` -- ``account.tickets.all()`` would then run a
    query per object after ``crossprefetch.prefetch_related_objects(accounts, "tickets")``.
    """
    try:
        cache: dict[str, Any] = instance._prefetched_objects_cache
    except AttributeError:
        cache = instance._prefetched_objects_cache = {}
    return cache


def is_prefetched(instance: Any, cache_name: str) -> bool:
    """Whether a reverse relation's rows are in the instance's prefetch cache already.

    Breaks if: as :func:`prefetched_objects` -- relations prefetched by Django would be
    fetched again.
    """
    return cache_name in getattr(instance, "_prefetched_objects_cache", ())


def fill_queryset(queryset: Any, rows: list[Any]) -> None:
    """Make ``queryset`` hold ``rows`` as if it had been evaluated, as Django's prefetching
    does (``_result_cache``, ``_prefetch_done``).

    Breaks if: either attribute is renamed -- the related manager's ``all()`` would then
    query the database instead of returning the prefetched rows.
    """
    queryset._result_cache = rows
    queryset._prefetch_done = True


def explicit_db(queryset: Any) -> str | None:
    """The alias a QuerySet was given with ``using()``, or ``None`` when the router decides.

    Breaks if: ``QuerySet._db`` is renamed -- a ``Prefetch`` QuerySet's own ``using()``
    would then be replaced by the router's choice.
    """
    db: str | None = queryset._db
    return db


def instance_db(instance: Any) -> str | None:
    """The database a model instance was read from (``instance._state.db``).

    Breaks if: ``Model._state.db`` is renamed -- crossprefetch could then not tell which
    database the objects a relation starts from live in, and would take the router's.
    """
    db: str | None = instance._state.db
    return db
