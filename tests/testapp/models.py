"""The test scenario: events in ``timeseries`` referencing rows in ``default`` and ``legacy``.

References are plain values, except for the tickets, accounts and regions at the end:
real ForeignKeys whose target the router sends to another database.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.signals import pre_migrate

#: A collation under which ``"abc"`` finds ``"ABC"`` on the ``legacy`` alias's backend:
#: SQLite's NOCASE, a nondeterministic ICU collation on PostgreSQL (created below), and on
#: MariaDB the server's default (case-insensitive, PAD SPACE), as a legacy table has.
TEXT_KEY_COLLATION: str | None = {
    "sqlite": "NOCASE",
    "mixed": "NOCASE",
    "postgres": "crossprefetch_ci",
    "mariadb": None,
}[settings.TEST_DB]


def _create_collation(using: str, **kwargs: Any) -> None:
    """The PostgreSQL collation of :data:`TEXT_KEY_COLLATION`, before the tables need it."""
    from django.db import connections

    connection: BaseDatabaseWrapper = connections[using]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE COLLATION IF NOT EXISTS crossprefetch_ci "
                "(provider = icu, locale = 'und-u-ks-level2', deterministic = false)"
            )


pre_migrate.connect(_create_collation, dispatch_uid="testapp_create_collation")


class Customer(models.Model):
    database = "default"
    also_in = ("legacy",)  # a stale copy, for specs with an explicit ``using``

    name = models.CharField(max_length=100)
    email = models.EmailField(blank=True)
    tier = models.CharField(max_length=20, default="basic")
    is_active = models.BooleanField(default=True)
    tenant = models.CharField(max_length=20, default="acme")
    region_code = models.CharField(max_length=10, blank=True)
    external_id = models.UUIDField(default=uuid.uuid4, unique=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class Region(models.Model):
    database = "legacy"

    code = models.CharField(max_length=10, unique=True)
    name = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.code


class Account(models.Model):
    """Identified by (tenant_id, number), the composite key of a legacy system."""

    database = "legacy"

    tenant_id = models.IntegerField()
    number = models.IntegerField()
    label = models.CharField(max_length=100)

    class Meta:
        unique_together = [("tenant_id", "number")]

    def __str__(self) -> str:
        return self.label


class LowercaseField(models.CharField):  # type: ignore[type-arg]
    """Stores text lowercased: the database value of ``"ABC"`` is ``"abc"``, so a per-row
    ``filter(handle="ABC")`` finds the row holding ``"abc"``."""

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        return value.lower() if isinstance(value, str) else value


class Supplier(models.Model):
    """A reference table keyed by text, compared by the column's collation."""

    database = "legacy"

    code = models.CharField(max_length=20, unique=True, db_collation=TEXT_KEY_COLLATION)
    name = models.CharField(max_length=100)
    handle = LowercaseField(max_length=20, null=True)

    def __str__(self) -> str:
        return self.code


class OrderEvent(models.Model):
    database = "timeseries"

    timestamp = models.DateTimeField()
    customer_id = models.IntegerField(null=True)
    seller_id = models.IntegerField(null=True)
    #: a 64-bit reference, beyond the range of a 32-bit integer
    big_ref = models.BigIntegerField(null=True)
    # Nullable strings on purpose: a null reference is not the same as an empty one.
    customer_ref = models.CharField(max_length=40, blank=True, null=True)  # noqa: DJ001
    customer_uuid = models.UUIDField(null=True)
    region_code = models.CharField(max_length=10, null=True)  # noqa: DJ001
    supplier_code = models.CharField(max_length=20, null=True)  # noqa: DJ001
    account_tenant = models.IntegerField(null=True)
    account_number = models.IntegerField(null=True)
    event_type = models.CharField(max_length=20, default="created")
    amount = models.DecimalField(max_digits=10, decimal_places=2, default=0)

    class Meta:
        ordering = ["-timestamp", "-id"]

    def __str__(self) -> str:
        return f"{self.event_type} #{self.pk}"


class Vendor(models.Model):
    """Remote rows keyed by a code longer than the column that references it: a code
    ``ABCDEFGHIJ`` must never match a parcel of vendor ``ABCDEFGH``."""

    database = "default"

    code = models.CharField(max_length=12, unique=True)
    name = models.CharField("trading name", max_length=100)
    # choices: a select in the browsable API's Filters dialog
    tier = models.CharField(
        max_length=20, choices=[("bronze", "Bronze"), ("silver", "Silver"), ("gold", "Gold")]
    )
    notes = models.TextField(blank=True)
    rating = models.DecimalField(max_digits=6, decimal_places=2, default=0)
    since = models.DateField(null=True)

    def __str__(self) -> str:
        return self.code


class Parcel(models.Model):
    """References a :class:`Vendor` by code in a narrower column (``varchar(8)``)."""

    database = "legacy"

    vendor_code = models.CharField(max_length=8, null=True)  # noqa: DJ001
    weight = models.IntegerField(default=0)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"parcel #{self.pk}"


class JoinedParcel(models.Model):
    """The same parcels stored beside :class:`Vendor`: the single-database oracle."""

    database = "default"

    vendor_code = models.CharField(max_length=8, null=True)  # noqa: DJ001
    weight = models.IntegerField(default=0)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"parcel #{self.pk}"


# The models of the peers' test suites, ported (DRF's tests/test_filters.py) -------------


class OrderingItem(models.Model):
    """DRF's ``OrderingFilterModel``, referencing a :class:`Vendor` in another database."""

    database = "timeseries"

    title = models.CharField(max_length=20, verbose_name="verbose title")
    text = models.CharField(max_length=100)
    vendor_code = models.CharField(max_length=12, null=True)  # noqa: DJ001

    def __str__(self) -> str:
        return self.title


class OrderingItemPart(models.Model):
    """DRF's ``OrderingFilterRelatedModel``."""

    database = "timeseries"

    item = models.ForeignKey(OrderingItem, related_name="relateds", on_delete=models.CASCADE)

    def __str__(self) -> str:
        return f"part of {self.item_id}"


class Credential(models.Model):
    """DRF's ``SensitiveOrderingFilterModel``."""

    database = "timeseries"

    username = models.CharField(max_length=20)
    password = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.username


# --- ForeignKeys across databases ------------------------------------------------------
# Real ForeignKeys whose target lives in another database (``db_constraint=False``: no
# database can hold a constraint on another's table): tickets in ``timeseries`` name an
# account in ``default``, which names its region in ``legacy`` by a text code.


class SalesRegion(models.Model):
    """Keyed by a text code, compared by the column's collation: case-insensitive on
    MariaDB (the server's default), exact elsewhere. (No ``db_collation``: a ForeignKey's
    column takes its target's, and the tickets' database may be of another backend.)"""

    database = "legacy"

    code = models.CharField(max_length=10, unique=True)
    label = models.CharField(max_length=100)
    timezone = models.CharField(max_length=40, default="UTC")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.label


class SupportAccount(models.Model):
    database = "default"

    name = models.CharField(max_length=100)
    tier = models.CharField(max_length=20, default="basic")
    notes = models.TextField(blank=True)
    region = models.ForeignKey(
        SalesRegion,
        to_field="code",
        null=True,
        db_constraint=False,
        on_delete=models.DO_NOTHING,
        related_name="accounts",
    )

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name

    @property
    def display_name(self) -> str:
        """Read by serializers through a dotted source: inference cannot see its columns."""
        return f"{self.name} ({self.tier})"


class AccountSettings(models.Model):
    """One row per account at most, in a third database: a one-to-one across databases."""

    database = "legacy"

    account = models.OneToOneField(
        SupportAccount,
        null=True,
        db_constraint=False,
        on_delete=models.DO_NOTHING,
        related_name="settings",
    )
    locale = models.CharField(max_length=10, default="en")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.locale


class Ticket(models.Model):
    database = "timeseries"

    subject = models.CharField(max_length=100)
    status = models.CharField(max_length=20, default="open")
    account = models.ForeignKey(
        SupportAccount,
        null=True,
        db_constraint=False,
        on_delete=models.DO_NOTHING,
        related_name="tickets",
    )
    region = models.ForeignKey(
        SalesRegion,
        to_field="code",
        null=True,
        db_constraint=False,
        on_delete=models.DO_NOTHING,
        related_name="tickets",
    )
    #: a ForeignKey within the tickets' own database: not served by crossprefetch
    parent = models.ForeignKey(
        "self", null=True, on_delete=models.DO_NOTHING, related_name="children"
    )

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.subject


# The aggregate scenario's models, in their own module (they need TEXT_KEY_COLLATION above).
from tests.testapp.aggregate_models import (  # noqa: E402, F401
    CodedEntry,
    Entry,
    JoinedEntry,
    Member,
)
