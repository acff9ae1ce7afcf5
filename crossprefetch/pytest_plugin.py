"""pytest plugin of crossprefetch, registered through the ``pytest11`` entry point.

Installing crossprefetch makes two fixtures available, the multi-database
counterparts of pytest-django's ``django_assert_num_queries`` and
``django_assert_max_num_queries``:

.. code-block:: python

    @pytest.mark.django_db(databases=["default", "timeseries"])
    def test_events(client, crossprefetch_assert_num_queries):
        with crossprefetch_assert_num_queries(default=1, timeseries=1):
            client.get("/events/")

Like pytest-django's, they do not grant database access themselves: mark the
test with ``django_db(databases=[...])``. This module is loaded by every pytest
run in an environment where crossprefetch is installed, Django project or not,
so it imports Django only when a fixture is used.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from crossprefetch.testing import AssertNumQueries


@pytest.fixture
def crossprefetch_assert_num_queries() -> AssertNumQueries:
    """Assert the exact number of queries per database alias, e.g. ``(default=1, timeseries=2)``.

    Also ``({"time-series": 2})`` and ``total=``; aliases not named are reported
    but not asserted. The block yields the captured queries. See
    ``crossprefetch.testing.assert_num_queries``.
    """
    from crossprefetch.testing import assert_num_queries

    return partial(assert_num_queries)


@pytest.fixture
def crossprefetch_assert_max_num_queries() -> AssertNumQueries:
    """Assert an upper bound on the number of queries per database alias.

    Same arguments as ``crossprefetch_assert_num_queries``. See
    ``crossprefetch.testing.assert_max_num_queries``.
    """
    from crossprefetch.testing import assert_max_num_queries

    return partial(assert_max_num_queries)
