"""The example scenario: order events in a time-series database, customers in the app database.

``OrderEvent.customer_id`` is a plain integer, not a ForeignKey: the two tables live in
different databases, so the ORM cannot join them. ``SupportTicket`` shows the other way
schemas hold such references: a real ForeignKey to ``Customer`` without a database
constraint, its table in the time-series database. ``JoinedOrderEvent`` is the same data as
``OrderEvent`` in one database with a real ForeignKey, kept only as the benchmark's
``select_related`` baseline.
"""

from __future__ import annotations

from django.db import models


class Customer(models.Model):
    # indexed: events/ can be ordered by the customer's name (?ordering=customer_name),
    # which reads the customers in that order
    name = models.CharField(max_length=100, db_index=True)
    email = models.EmailField()
    tier = models.CharField(max_length=20)
    is_active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.name


class OrderEvent(models.Model):
    timestamp = models.DateTimeField(db_index=True)
    customer_id = models.IntegerField(db_index=True)
    event_type = models.CharField(max_length=20)
    amount = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        ordering = ["-timestamp", "-id"]

    def __str__(self) -> str:
        return f"{self.event_type} #{self.pk}"


class JoinedOrderEvent(models.Model):
    """The same events as ``OrderEvent``, stored next to ``Customer`` with a real ForeignKey.

    It exists for the benchmark's single-database baselines: ``select_related("customer")``
    joins the two tables in one query, and ``Customer.objects.annotate(events=Count(
    "joined_events"))`` counts each customer's events through the same join. Rows carry the
    same ids and values as ``OrderEvent``, dangling references included (events of customers
    deleted since), which is why the key is nullable (Django then uses a LEFT OUTER JOIN that
    keeps those events) and no constraint is enforced in the database. Reading is unaffected
    by either choice.
    """

    timestamp = models.DateTimeField(db_index=True)
    customer = models.ForeignKey(
        Customer,
        on_delete=models.DO_NOTHING,
        null=True,
        db_constraint=False,
        related_name="joined_events",
    )
    event_type = models.CharField(max_length=20)
    amount = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        ordering = ["-timestamp", "-id"]

    def __str__(self) -> str:
        return f"{self.event_type} #{self.pk}"


class SupportTicket(models.Model):
    """A ticket opened by a customer: a real ForeignKey into the other database.

    The router sends tickets to ``timeseries`` and customers to ``default``, so no database
    could hold the constraint (``db_constraint=False``), and a ticket may outlive its
    customer (``DO_NOTHING``; the key then dangles). Django follows ``ticket.customer`` one
    query per ticket; crossprefetch serves it per page with nothing declared.
    """

    opened_at = models.DateTimeField(db_index=True)
    subject = models.CharField(max_length=200)
    status = models.CharField(max_length=20)
    customer = models.ForeignKey(
        Customer,
        null=True,
        db_constraint=False,
        on_delete=models.DO_NOTHING,
        related_name="tickets",
    )

    class Meta:
        ordering = ["-opened_at", "-id"]

    def __str__(self) -> str:
        return self.subject
