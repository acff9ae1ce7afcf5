"""The example's data: deterministic, idempotent, with dangling references."""

from __future__ import annotations

from itertools import islice

import pytest

from shop.models import Customer, JoinedOrderEvent, OrderEvent
from shop.seeding import DANGLING_EVERY, Dataset, is_seeded, seed
from tests.example.conftest import SHOP_DATABASES


def test_rows_are_deterministic() -> None:
    dataset = Dataset(customers=1000, events=500)
    again = Dataset(customers=1000, events=500)
    assert list(dataset.customer_rows()) == list(again.customer_rows())
    assert list(dataset.event_rows()) == list(again.event_rows())
    other_seed = Dataset(customers=1000, events=500, seed=1)
    assert list(islice(other_seed.event_rows(), 10)) != list(islice(dataset.event_rows(), 10))


def test_events_reference_customers_and_some_deleted_ones() -> None:
    dataset = Dataset(customers=1000, events=5000)
    ids = [row[2] for row in dataset.event_rows()]
    dangling = [i for i in ids if i > dataset.customers]
    assert all(i >= 1 for i in ids)
    assert 0.5 / DANGLING_EVERY < len(dangling) / len(ids) < 2 / DANGLING_EVERY
    timestamps = [row[1] for row in dataset.event_rows()]
    assert timestamps == sorted(set(timestamps)), "timestamps are unique and increasing"


# Transactional: MySQL restarts AUTO_INCREMENT only with ALTER TABLE, which commits.
@pytest.mark.django_db(databases=SHOP_DATABASES, transaction=True)
def test_seed_is_idempotent_and_copies_the_events() -> None:
    dataset = Dataset(customers=40, events=90)
    assert seed(dataset) is True
    assert is_seeded(dataset)
    assert seed(dataset) is False
    assert Customer.objects.count() == 40
    events = list(OrderEvent.objects.order_by("pk").values_list())
    joined = list(
        JoinedOrderEvent.objects.order_by("pk").values_list(
            "id", "timestamp", "customer_id", "event_type", "amount"
        )
    )
    assert events == joined
    assert not is_seeded(Dataset(customers=40, events=90, seed=7))
    assert seed(Dataset(customers=30, events=10)) is True
    assert (Customer.objects.count(), OrderEvent.objects.count()) == (30, 10)
    created = Customer.objects.create(name="New", email="new@example.com", tier="gold")
    assert created.pk == 31, "sequences follow the seeded ids"
