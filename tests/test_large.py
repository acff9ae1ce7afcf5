"""A page of 50,000 keys works on every backend, in as few queries as its limit allows."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from django.db import connections

from crossprefetch import CrossDBPrefetch, prefetch_cross_db
from crossprefetch._keys import packet
from crossprefetch._keys.packet import max_allowed_packet
from crossprefetch._keys.sql import max_params
from crossprefetch.testing import assert_num_queries
from tests.testapp.models import Account, Customer, Supplier

pytestmark = pytest.mark.django_db(databases=["default", "timeseries", "legacy"])

KEYS = 50_000


def test_fifty_thousand_keys() -> None:
    Customer.objects.bulk_create(
        (Customer(pk=pk, name=f"C{pk}", tier="gold") for pk in range(1, KEYS + 1)),
        batch_size=5_000,
    )
    objects = [SimpleNamespace(customer_id=pk) for pk in range(1, KEYS + 1)]
    connection = connections["default"]
    if connection.vendor in {"postgresql", "mysql"}:
        # one array parameter; for MySQL, ~300 KB of SQL, far below max_allowed_packet
        expected = 1
    else:
        limit = max_params(connection)
        assert limit is not None
        expected = math.ceil(KEYS / limit)
    spec = CrossDBPrefetch(Customer, key="customer_id", fields=("name",))
    with assert_num_queries(default=expected, timeseries=0, legacy=0) as captured:
        lookup = prefetch_cross_db(objects, {"c": spec})["c"]
    assert len(lookup) == KEYS
    assert lookup[KEYS] == {"name": f"C{KEYS}"}
    for query in captured["default"]:
        select = query.sql.split(" FROM ")[0]
        assert select.count(",") == 1, select  # name and the matched id, nothing else


def test_fifty_thousand_composite_keys() -> None:
    Account.objects.bulk_create(
        (Account(tenant_id=t, number=n, label=f"{t}/{n}") for t in range(5) for n in range(10_000)),
        batch_size=5_000,
    )
    objects = [SimpleNamespace(t=t, n=n) for t in range(5) for n in range(10_000)]
    spec = CrossDBPrefetch(
        Account, key=("t", "n"), to_field=("tenant_id", "number"), fields=("label",)
    )
    connection = connections["legacy"]
    if connection.vendor in {"postgresql", "mysql"}:
        expected = 1
    else:
        limit = max_params(connection)
        assert limit is not None
        expected = math.ceil(2 * KEYS / limit)
    with assert_num_queries(legacy=expected, default=0):
        lookup = prefetch_cross_db(objects, {"a": spec})["a"]
    assert len(lookup) == KEYS
    assert lookup[(4, 9_999)] == {"label": "4/9999"}


def test_mysql_splits_only_where_max_allowed_packet_forces_it() -> None:
    """mysqlclient interpolates parameters on the client, so no placeholder limit applies:
    only the statement's size in bytes, against the server's ``max_allowed_packet``."""
    connection = connections["default"]
    if connection.vendor != "mysql":
        pytest.skip("needs 'default' on MySQL/MariaDB (CROSSPREFETCH_TEST_DB=mariadb)")
    limit = max_allowed_packet(connection)  # asked once per connection, before counting
    length = 90
    per_query = (limit - packet._HEADROOM) // (length + 4)  # 'key', then ", "
    keys = [f"{i:0{length}d}" for i in range(per_query + per_query // 2)]
    Customer.objects.bulk_create([Customer(name=keys[0]), Customer(name=keys[-1])])
    objects = [SimpleNamespace(name=key) for key in keys]
    spec = CrossDBPrefetch(Customer, key="name", to_field="name", fields=("tier",))
    with assert_num_queries(default=2, timeseries=0, legacy=0) as captured:
        lookup = prefetch_cross_db(objects, {"c": spec})["c"]
    assert set(lookup) == {keys[0], keys[-1]}
    assert all(len(query.sql) < limit for query in captured["default"])


def test_fifty_thousand_text_keys_matched_by_the_collation() -> None:
    """Keys the database matches by its collation travel as one parameter (PostgreSQL,
    SQLite) or rows of literals split only by ``max_allowed_packet`` (MySQL)."""
    Supplier.objects.bulk_create(
        (Supplier(code=f"S{i:05d}", name=f"Supplier {i}") for i in range(KEYS)),
        batch_size=5_000,
    )
    objects = [SimpleNamespace(code=f"s{i:05d}") for i in range(KEYS)]
    spec = CrossDBPrefetch(Supplier, key="code", to_field="code", fields=("name",))
    with assert_num_queries(legacy=1, default=0, timeseries=0):
        lookup = prefetch_cross_db(objects, {"s": spec})["s"]
    assert len(lookup) == KEYS
    assert lookup["s49999"] == {"name": "Supplier 49999"}


def test_forty_thousand_matching_keys_filter_a_page() -> None:
    """The count and the page stay one query each: the 40,000 keys are one parameter."""
    import datetime as dt

    from rest_framework.test import APIClient

    from tests.conftest import T0
    from tests.testapp.models import OrderEvent

    matching = 40_000
    Customer.objects.bulk_create(
        (Customer(pk=pk, name=f"C{pk}", tier="gold") for pk in range(1, matching + 1)),
        batch_size=5_000,
    )
    OrderEvent.objects.bulk_create(
        (
            OrderEvent(timestamp=T0 + dt.timedelta(seconds=pk), customer_id=pk)
            for pk in range(1, matching + 501)  # the last 500 are dangling: never matched
        ),
        batch_size=5_000,
    )
    # default: the filter's one query, which also reads the rows of the page's customers
    with assert_num_queries(default=1, timeseries=2, legacy=0) as captured:
        response = APIClient().get("/api/filtered-events/?customer_tier=gold&page_size=100")
    assert response.status_code == 200
    assert response.json()["count"] == matching
    assert [row["customer_id"] for row in response.json()["results"]][:2] == [
        matching,
        matching - 1,
    ]
    results = response.json()["results"]
    assert all(row["customer_name"] == f"C{row['customer_id']}" for row in results)
    for query in captured["timeseries"]:
        assert len(query.params or ()) <= 3, query.sql[:200]  # the key set, LIMIT/OFFSET
