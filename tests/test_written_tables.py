"""Which watched tables a statement writes: every spelling a database accepts, no near miss."""

from __future__ import annotations

from typing import Any

import pytest

from crossprefetch._cache.written_tables import as_text, watched_names, written

TABLES = {"shop_customer": frozenset({"shop.customer"}), "Shop_Region": frozenset({"shop.region"})}
NAMES, FOLDED = watched_names(TABLES)
CUSTOMER = {"shop.customer"}


@pytest.mark.parametrize(
    ("sql", "vendor", "labels"),
    [
        ("SELECT * FROM shop_customer", "postgresql", set()),
        ("select * from shop_customer", "postgresql", set()),
        ("/* x */ SELECT * FROM shop_customer", "postgresql", set()),
        ("  (SELECT 1 FROM shop_customer)", "postgresql", set()),
        ("UPDATE shop_customer SET a = 1", "postgresql", CUSTOMER),
        ("update SHOP_CUSTOMER set a = 1", "postgresql", CUSTOMER),
        ("Update Shop_Customer set a = 1", "sqlite", CUSTOMER),
        ('UPDATE "shop_customer" SET a = 1', "postgresql", CUSTOMER),
        ("UPDATE `shop_customer` SET a = 1", "mysql", CUSTOMER),
        ("UPDATE [shop_customer] SET a = 1", "sqlite", CUSTOMER),
        ("UPDATE public.shop_customer SET a = 1", "postgresql", CUSTOMER),
        ('UPDATE "public"."shop_customer" SET a = 1', "postgresql", CUSTOMER),
        ("UPDATE `shop`.`shop_customer` SET a = 1", "mysql", CUSTOMER),
        ("/* x */ UPDATE shop_customer SET a = 1", "postgresql", CUSTOMER),
        ("-- x\nDELETE FROM shop_customer", "postgresql", CUSTOMER),
        ("-- x\n/* y */\n  INSERT INTO shop_customer VALUES (1)", "sqlite", CUSTOMER),
        ("WITH c AS (SELECT 1) UPDATE shop_customer SET a = 1", "postgresql", CUSTOMER),
        ("INSERT INTO shop_customer(a) VALUES (1)", "postgresql", CUSTOMER),
        ("REPLACE INTO shop_customer VALUES (1)", "mysql", CUSTOMER),
        ("TRUNCATE shop_customer, shop_region", "postgresql", {*CUSTOMER, "shop.region"}),
        ("UPDATE shop_region SET a = 1", "postgresql", {"shop.region"}),
        ("UPDATE shop_customer_archive SET a = 1", "postgresql", set()),
        ('UPDATE "shop_customer_archive" SET a = 1', "postgresql", set()),
        ("UPDATE old_shop_customer SET a = 1", "postgresql", set()),
        ("UPDATE shop_customer$2 SET a = 1", "postgresql", set()),
        ("UPDATE other SET a = 'shop_customer'", "postgresql", set()),
        ("UPDATE other SET a = 'it''s shop_customer'", "sqlite", set()),
        ("UPDATE other SET a = 'it\\'s shop_customer'", "mysql", set()),
        ("UPDATE shop_customer SET a = 'x'", "postgresql", CUSTOMER),
        ('INSERT INTO "shop_customer" VALUES ' + "(%s), " * 5000 + "(%s)", "sqlite", CUSTOMER),
        ("UPDATE x SET a = 1; UPDATE shop_customer SET a = 2", "sqlite", CUSTOMER),
        ("UPDATE shop_customer_archive SET a = 1 -- shop_customer", "sqlite", CUSTOMER),
        ("SAVEPOINT s1", "postgresql", set()),
        ("UPDATE shop_customer SET a = 'it\\'s'", "postgresql", CUSTOMER),
    ],
)
def test_written_tables(sql: str, vendor: str, labels: set[str]) -> None:
    assert NAMES is not None
    assert written(sql, NAMES, FOLDED, vendor) == labels


def test_no_tables_no_names() -> None:
    assert watched_names({}) == (None, {})


class _Connection:
    connection = None


class _Composed:
    def __init__(self, text: str | None) -> None:
        self.text = text

    def as_string(self, context: Any) -> str:
        if self.text is None:
            raise ValueError("needs a connection")
        return self.text

    def __repr__(self) -> str:
        return "Composed([SQL('UPDATE '), Identifier('shop_customer')])"


def test_statements_as_text() -> None:
    assert as_text("UPDATE t", _Connection()) == "UPDATE t"
    assert as_text(b"UPDATE t", _Connection()) == "UPDATE t"
    assert as_text(_Composed('UPDATE "t"'), _Connection()) == 'UPDATE "t"'
    unrendered = as_text(_Composed(None), _Connection())
    assert unrendered is not None
    assert NAMES is not None
    assert written(unrendered, NAMES, FOLDED, "postgresql") == CUSTOMER
    assert as_text(42, _Connection()) is None
