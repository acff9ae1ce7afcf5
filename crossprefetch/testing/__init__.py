"""Query-count assertions and N+1 detection that watch every database alias at once.

Django's ``assertNumQueries`` and pytest-django's ``django_assert_num_queries``
observe one connection per call, so a test of a cross-database endpoint needs
one nested block per alias and still misses queries on the aliases it did not
name. The context managers here (decorators too) observe every alias in
``DATABASES`` with a single block:

.. code-block:: python

    from crossprefetch.testing import assert_num_queries, detect_n_plus_one, forbid_queries

    with assert_num_queries(default=1, timeseries=1):
        client.get("/events/")

    with forbid_queries("default"):
        serializer.data

    with detect_n_plus_one():
        client.get("/naive-events/")

They also take pytest-django's call style for one alias
(``assert_num_queries(3, connection=connection, info="...")``, ``num=``,
``using=``) and Django's callable form (``assert_num_queries(1, client.get,
"/events/")``), so tests written for those helpers keep their shape.

How queries are seen: one execute wrapper sits on every connection of every
thread (``BaseDatabaseWrapper.execute_wrapper``'s list; installed when the app
is ready and on every ``connection_created``), and a block registers itself in
a context variable. A query counts in the blocks of the context it runs in:
the test's own thread, the thread of ``sync_to_async``, and crossprefetch's
own threads working for the block (the coalescing pool of
``aprefetch_cross_db``; the leader of a coalesced batch counts its one query
in every member's block, marked ``shared`` in the others). A thread the code
under test starts itself has a context of its own and is not observed, as
with Django's assertions. Nothing is connected eagerly: a connection opened
inside the block is observed from its first statement.

What counts as a query: every statement sent through a Django cursor
(``execute`` and ``executemany``, the latter counted once, as Django does),
except transaction control (``BEGIN``, ``COMMIT``, ``ROLLBACK``,
``SAVEPOINT``, ``RELEASE SAVEPOINT``). Those depend on the backend (SQLite
sends ``BEGIN`` as SQL, PostgreSQL does not) and on whether the test runs in
``TestCase`` or ``TransactionTestCase``, so leaving them out makes a count the
same everywhere. Nor are the statements a connection runs while it opens
(the backend's own setup, such as MySQL's ``SET SQL_AUTO_IS_NULL = 0``, and
``connection_created`` receivers): Django's ``CaptureQueriesContext`` opens the
connection before it starts counting, and a lazily opened connection here
counts the same. The debug-toolbar panel counts by the same rule.

A failed count raises ``AssertionError``; under pytest, with crossprefetch's
plugin, :class:`crossprefetch.pytest_plugin.QueryCountFailed`, which is both
``pytest.fail.Exception`` (as pytest-django's fixtures fail) and
``AssertionError``.
"""

from __future__ import annotations

from crossprefetch._observe.capture import (
    CapturedQueries,
    CapturedQuery,
    ForbiddenQueryError,
    QueryCapture,
)
from crossprefetch.testing._assertions import (
    AssertNumQueries,
    CrossDBQueryAssertionsMixin,
    assert_max_num_queries,
    assert_num_queries,
    capture_queries,
    forbid_queries,
)
from crossprefetch.testing._n_plus_one import NPlusOneDetector, NPlusOneError, detect_n_plus_one

__all__ = [
    "AssertNumQueries",
    "CapturedQueries",
    "CapturedQuery",
    "CrossDBQueryAssertionsMixin",
    "ForbiddenQueryError",
    "NPlusOneDetector",
    "NPlusOneError",
    "QueryCapture",
    "assert_max_num_queries",
    "assert_num_queries",
    "capture_queries",
    "detect_n_plus_one",
    "forbid_queries",
]
