"""The aggregate scenario: members in ``default``, their entries in another database.

``Entry`` holds a plain ``member_id`` and lives in ``timeseries`` (and in ``legacy``, so that
the same aggregates run on each backend the suite puts there). ``JoinedEntry`` is the same
rows next to ``Member`` with a real ForeignKey: ``annotate()`` through the join in one
database is the oracle of ``CrossDBAggregate``. ``CodedEntry`` references members by a text
code under the ``legacy`` alias's case-insensitive collation.
"""

from __future__ import annotations

from django.db import models

from tests.testapp.models import TEXT_KEY_COLLATION


class Member(models.Model):
    database = "default"

    name = models.CharField(max_length=20)
    code = models.CharField(max_length=20, blank=True)
    #: a nullable reference to the entries, for objects whose key is null
    ref = models.IntegerField(null=True)

    class Meta:
        app_label = "testapp"
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class Entry(models.Model):
    database = "timeseries"
    also_in = ("legacy",)

    member_id = models.IntegerField(null=True)
    kind = models.CharField(max_length=10, default="paid")
    amount = models.DecimalField(max_digits=10, decimal_places=2, null=True)
    quantity = models.IntegerField(null=True)
    at = models.DateTimeField(null=True)

    class Meta:
        app_label = "testapp"
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk}"


class JoinedEntry(models.Model):
    """``Entry``'s rows beside ``Member``, joined by a ForeignKey: the oracle."""

    database = "default"

    member = models.ForeignKey(
        Member,
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="joined_entries",
    )
    kind = models.CharField(max_length=10, default="paid")
    amount = models.DecimalField(max_digits=10, decimal_places=2, null=True)
    quantity = models.IntegerField(null=True)
    at = models.DateTimeField(null=True)

    class Meta:
        app_label = "testapp"

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk}"


class CodedEntry(models.Model):
    """Entries referencing a member's ``code``, compared by the column's collation."""

    database = "legacy"

    member_code = models.CharField(max_length=20, db_collation=TEXT_KEY_COLLATION)
    amount = models.DecimalField(max_digits=10, decimal_places=2)

    class Meta:
        app_label = "testapp"

    def __str__(self) -> str:
        return self.member_code
