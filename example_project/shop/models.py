"""The example scenario: order events in a time-series database, customers in the app database.

``OrderEvent.customer_id`` is a plain integer, not a ForeignKey: the two tables live in
different databases, so the ORM cannot join them.
"""

from __future__ import annotations

from django.db import models


class Customer(models.Model):
    name = models.CharField(max_length=100)
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
