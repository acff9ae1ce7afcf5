"""Create the example's databases and fill them with deterministic data.

The same ``(customers, events, seed)`` always produces the same rows, so the naive endpoint,
the crossprefetch endpoint and every benchmark variant can be compared on identical data, in
any process, on any backend. A million customers take seconds, not minutes: rows are built
as tuples and written in large batches (``COPY`` on PostgreSQL, ``bulk_create`` elsewhere).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from itertools import islice
from typing import Any

from django.core.management import call_command
from django.core.management.color import no_style
from django.db import DEFAULT_DB_ALIAS, connections, models, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.executor import MigrationExecutor

from shop.models import Customer, JoinedOrderEvent, OrderEvent, SupportTicket

DEFAULT_SEED = 20240901
#: One event in this many references a customer that no longer exists.
DANGLING_EVERY = 97
BATCH_SIZE = 10_000
EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)

FIRST_NAMES = (
    "Ada", "Alan", "Barbara", "Claude", "Dennis", "Donald", "Edsger", "Frances", "Grace",
    "Guido", "Hedy", "Ivan", "John", "Karen", "Ken", "Leslie", "Linus", "Margaret", "Niklaus",
    "Radia", "Robin", "Shafi", "Sophie", "Tim", "Tony", "Vint", "Whitfield", "Yukihiro",
)  # fmt: skip
LAST_NAMES = (
    "Allen", "Backus", "Berners-Lee", "Cerf", "Codd", "Dijkstra", "Diffie", "Goldwasser",
    "Hamilton", "Hoare", "Hopper", "Kahn", "Knuth", "Lamarr", "Lamport", "Liskov", "Lovelace",
    "Matsumoto", "McCarthy", "Milner", "Perlman", "Ritchie", "Rossum", "Shannon", "Sutherland",
    "Thompson", "Torvalds", "Turing", "Wilson", "Wirth",
)  # fmt: skip
TIERS = ("bronze", "silver", "gold", "platinum")
TIER_WEIGHTS = (50, 30, 15, 5)
EVENT_TYPES = ("created", "paid", "shipped", "delivered", "refunded", "cancelled")
EVENT_TYPE_WEIGHTS = (30, 25, 20, 18, 4, 3)

CUSTOMER_COLUMNS = ("id", "name", "email", "tier", "is_active")
EVENT_COLUMNS = ("id", "timestamp", "customer_id", "event_type", "amount")
TICKET_COLUMNS = ("id", "opened_at", "subject", "status", "customer_id")
#: One ticket in this many names a deleted customer.
DANGLING_TICKET_EVERY = 25
#: One support ticket per this many events.
EVENTS_PER_TICKET = 5
TOPICS = ("Refund", "Delivery", "Invoice", "Login", "Damaged item", "Address change")
STATUSES = ("open", "pending", "solved", "closed")


@dataclass(frozen=True)
class Dataset:
    """What to seed: ``customers`` in ``default``, ``events`` in ``timeseries`` (and their copy)."""

    customers: int
    events: int
    seed: int = DEFAULT_SEED

    def customer_rows(self) -> Iterator[tuple[Any, ...]]:
        """``(id, name, email, tier, is_active)`` for ids ``1..customers``."""
        rng = random.Random(f"customers-{self.seed}")
        for pk in range(1, self.customers + 1):
            first = rng.choice(FIRST_NAMES)
            last = rng.choice(LAST_NAMES)
            tier = rng.choices(TIERS, TIER_WEIGHTS)[0]
            email = f"{first}.{last}.{pk}@example.com".lower()
            yield pk, f"{first} {last}", email, tier, rng.random() >= 0.05

    def event_rows(self) -> Iterator[tuple[Any, ...]]:
        """``(id, timestamp, customer_id, event_type, amount)``, oldest first.

        Customer ids are uniform over the table, so a page references about as many
        distinct customers as it has events; one event in ``DANGLING_EVERY`` points past
        the last customer (a deleted one).
        """
        rng = random.Random(f"events-{self.seed}-{self.customers}")
        for pk in range(1, self.events + 1):
            timestamp = EPOCH + timedelta(seconds=pk * 60 + rng.randrange(60))
            if rng.randrange(DANGLING_EVERY) == 0 or self.customers == 0:
                customer_id = self.customers + 1 + rng.randrange(1000)
            else:
                customer_id = 1 + rng.randrange(self.customers)
            event_type = rng.choices(EVENT_TYPES, EVENT_TYPE_WEIGHTS)[0]
            amount = Decimal(rng.randrange(100, 100_000)).scaleb(-2)
            yield pk, timestamp, customer_id, event_type, amount

    @property
    def tickets(self) -> int:
        return self.events // EVENTS_PER_TICKET

    def ticket_rows(self) -> Iterator[tuple[Any, ...]]:
        """``(id, opened_at, subject, status, customer_id)``: a customer's ticket (one in
        ``DANGLING_TICKET_EVERY`` of a deleted customer), or an anonymous one (``NULL``)."""
        rng = random.Random(f"tickets-{self.seed}-{self.customers}")
        for pk in range(1, self.tickets + 1):
            opened_at = EPOCH + timedelta(seconds=pk * 300 + rng.randrange(300))
            if self.customers == 0 or rng.randrange(DANGLING_TICKET_EVERY) == 0:
                customer_id: int | None = self.customers + 1 + rng.randrange(1000)
            elif rng.randrange(20) == 0:
                customer_id = None
            else:
                customer_id = 1 + rng.randrange(self.customers)
            subject = f"{rng.choice(TOPICS)} #{pk}"
            yield pk, opened_at, subject, rng.choice(STATUSES), customer_id


def _batches(rows: Iterable[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


def _db(model: type[models.Model]) -> str:
    return router.db_for_write(model) or DEFAULT_DB_ALIAS


def ensure_database(alias: str) -> None:
    """Create a missing PostgreSQL database (SQLite creates its file on connection)."""
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return
    # Asked before connecting: a connection pool would retry a missing database until its
    # timeout, then fail without saying why.
    name = connection.settings_dict["NAME"]
    with connection._nodb_cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is None:
            cursor.execute(f"CREATE DATABASE {connection.ops.quote_name(name)}")


def prepare_databases(aliases: Sequence[str] = ("default", "timeseries")) -> list[str]:
    """Create the databases and apply missing migrations; return the aliases migrated."""
    migrated = []
    for alias in aliases:
        ensure_database(alias)
        executor = MigrationExecutor(connections[alias])
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            call_command("migrate", database=alias, interactive=False, verbosity=0)
            migrated.append(alias)
    return migrated


def _expected_head(dataset: Dataset) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    return list(islice(dataset.customer_rows(), 3)), list(islice(dataset.event_rows(), 3))


def is_seeded(dataset: Dataset) -> bool:
    """Tell whether the databases already hold exactly ``dataset`` (counts and first rows)."""
    if (
        Customer.objects.count() != dataset.customers
        or OrderEvent.objects.count() != dataset.events
        or JoinedOrderEvent.objects.count() != dataset.events
        or SupportTicket.objects.count() != dataset.tickets
    ):
        return False
    customers, events = _expected_head(dataset)
    stored_customers = list(Customer.objects.order_by("pk").values_list(*CUSTOMER_COLUMNS)[:3])
    stored_events = list(OrderEvent.objects.order_by("pk").values_list(*EVENT_COLUMNS)[:3])
    return stored_customers == customers and stored_events == events


def _copy(
    model: type[models.Model], columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    """Stream rows into a PostgreSQL table with ``COPY … FROM STDIN``."""
    connection = connections[_db(model)]
    table = connection.ops.quote_name(model._meta.db_table)
    names = ", ".join(connection.ops.quote_name(column) for column in columns)
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor under Django's wrapper
        with raw.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def _bulk_create(
    model: type[models.Model], columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    manager = model._default_manager.db_manager(_db(model))
    for batch in _batches(rows, BATCH_SIZE):
        manager.bulk_create(
            [model(**dict(zip(columns, row, strict=True))) for row in batch],
            batch_size=BATCH_SIZE,
        )


def _insert(
    model: type[models.Model], columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    if connections[_db(model)].vendor == "postgresql":
        _copy(model, columns, rows)
    else:
        _bulk_create(model, columns, rows)


def _clear(model: type[models.Model]) -> None:
    """Delete every row in one statement (nothing to cascade) and restart the ids."""
    connection = connections[_db(model)]
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"TRUNCATE {table}")
            return
        cursor.execute(f"DELETE FROM {table}")
        if connection.vendor == "sqlite":  # AUTOINCREMENT remembers ids; restart from the rows
            cursor.execute("DELETE FROM sqlite_sequence WHERE name = %s", [model._meta.db_table])


def _reset_sequences(model: type[models.Model]) -> None:
    connection = connections[_db(model)]
    statements = connection.ops.sequence_reset_sql(no_style(), [model])
    if statements:
        with connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)


def _restart_auto_increment(model: type[models.Model]) -> None:
    """Let MySQL's next id follow the seeded rows (InnoDB raises ``AUTO_INCREMENT = 1`` to
    the largest id plus one). ``ALTER TABLE`` commits, so never inside a transaction."""
    connection = connections[_db(model)]
    if connection.vendor == "mysql" and not connection.in_atomic_block:
        table = connection.ops.quote_name(model._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table} AUTO_INCREMENT = 1")


def _analyze(model: type[models.Model]) -> None:
    """Refresh PostgreSQL's statistics now rather than whenever autovacuum gets to it, so the
    first measurements after seeding already use the right plans."""
    connection = connections[_db(model)]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


def _atomic_on(*aliases: str) -> ExitStack:
    """One transaction per database: far fewer commits, so far faster SQLite inserts."""
    stack = ExitStack()
    for alias in dict.fromkeys(aliases):
        stack.enter_context(transaction.atomic(using=alias))
    return stack


def seed(
    dataset: Dataset, *, force: bool = False, log: Callable[[str], None] | None = None
) -> bool:
    """Replace the example's rows with ``dataset``; return ``False`` when already there."""
    if not force and is_seeded(dataset):
        return False
    say = log or (lambda message: None)
    joined_columns = ("id", "timestamp", "customer_id", "event_type", "amount")
    seeded = (Customer, OrderEvent, JoinedOrderEvent, SupportTicket)
    with _atomic_on(*map(_db, seeded)):
        for model in (SupportTicket, JoinedOrderEvent, OrderEvent, Customer):
            _clear(model)
        say(f"Seeding {dataset.customers:,} customers into '{_db(Customer)}'…")
        _insert(Customer, CUSTOMER_COLUMNS, dataset.customer_rows())
        say(f"Seeding {dataset.events:,} order events into '{_db(OrderEvent)}'…")
        _insert(OrderEvent, EVENT_COLUMNS, dataset.event_rows())
        say(
            f"Seeding the same events into '{_db(JoinedOrderEvent)}', joined to the customers "
            "(the benchmark's single-database baseline)…"
        )
        _insert(JoinedOrderEvent, joined_columns, dataset.event_rows())
        say(
            f"Seeding {dataset.tickets:,} support tickets into '{_db(SupportTicket)}', with a "
            "ForeignKey to the customers…"
        )
        _insert(SupportTicket, TICKET_COLUMNS, dataset.ticket_rows())
        for model in seeded:
            _reset_sequences(model)
    for model in seeded:
        _restart_auto_increment(model)
        _analyze(model)
    return True


def describe_backend(alias: str) -> str:
    """``"SQLite 3.45.1"``, ``"PostgreSQL 15.4"`` or ``"MariaDB 10.11.9"``, for the demo's
    and benchmark's headers."""
    connection: BaseDatabaseWrapper = connections[alias]
    connection.ensure_connection()
    if connection.vendor == "sqlite":
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version}"
    if connection.vendor == "postgresql":
        version = connection.pg_version  # type: ignore[attr-defined]
        return f"PostgreSQL {version // 10000}.{version % 10000}"
    if connection.vendor == "mysql":
        name = "MariaDB" if getattr(connection, "mysql_is_mariadb", False) else "MySQL"
        return f"{name} {getattr(connection, 'mysql_server_info', '').split('-')[0]}"
    return connection.display_name
