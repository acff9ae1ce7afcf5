"""The filters and orderings of ``events/``, written for the single-database copy.

``JoinedOrderEvent`` has a real ForeignKey to ``Customer``, so each crossprefetch filter is
a filter through the join (an inner join's answer: events without a customer never match)
and each remote ordering an ``ORDER BY`` on the joined column, nulls last, then the
model's own ordering. The benchmark compares the two endpoints on the same data, and the
tests use this as the oracle of the cross-database filters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import F, Q, QuerySet

from shop.models import JoinedOrderEvent

#: ``?parameter`` -> the lookup through the join.
FILTERS = {
    "customer_tier": "customer__tier",
    "customer_tier__in": "customer__tier__in",
    "customer_name": "customer__name__icontains",
    "customer_active": "customer__is_active",
    "customer_id__gte": "customer__id__gte",
}
ORDERINGS = {
    "customer_name": "customer__name",
    "customer_tier": "customer__tier",
    "timestamp": "timestamp",
    "amount": "amount",
}
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def joined_filter(
    queryset: QuerySet[JoinedOrderEvent], params: Mapping[str, Any]
) -> QuerySet[JoinedOrderEvent]:
    """Apply ``events/``'s query parameters to ``queryset`` through the join."""
    for name, lookup in FILTERS.items():
        if name not in params:
            continue
        value: Any = params[name]
        if lookup.endswith("__in"):
            value = value.split(",")
        elif name == "customer_active":
            value = _BOOLEANS[value.lower()]
        # the name is never null: this keeps the join that the id alone would skip
        queryset = queryset.filter(Q(customer__name__isnull=False), **{lookup: value})
    if "customer_missing" in params:
        missing = _BOOLEANS[params["customer_missing"].lower()]
        queryset = queryset.filter(customer__name__isnull=missing)
    ordering = params.get("ordering")
    if ordering:
        terms: list[Any] = []
        for term in ordering.split(","):
            name = term.lstrip("-")
            field = ORDERINGS[name]
            expression = F(field)
            descending = term.startswith("-")
            if field.startswith("customer__"):
                terms.append(
                    expression.desc(nulls_last=True)
                    if descending
                    else expression.asc(nulls_last=True)
                )
            else:
                terms.append(f"-{field}" if descending else field)
        queryset = queryset.order_by(*terms, *JoinedOrderEvent._meta.ordering)
    return queryset
