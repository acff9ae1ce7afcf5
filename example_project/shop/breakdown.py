"""Where the time of a request goes, phase by phase, for the benchmark's ``--breakdown``.

A whole-request ratio says *that* two variants differ; this says *where*. Each variant's
work is replayed outside the view, one phase at a time, on the same page of events:

* ``filter``: building the filtered or ordered QuerySet: for crossprefetch, the remote
  query of the filter (matching keys) or of the ordering (ranks); nothing through a join;
* ``count``: the paginator's ``COUNT(*)``;
* ``page``: the page's query and its model instances (with ``select_related``, the join and
  a second instance per row);
* ``lookups``: the customers of the page (the hand-written dict, or crossprefetch's engine);
* ``serialize``: DRF's fields turning instances into primitives;
* ``render``: JSON rendering.

Phases are timed with the variants interleaved, as the requests are, and reported as
medians.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

from django.test import RequestFactory
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request

from crossprefetch import prefetch_cross_db
from crossprefetch.filters import CrossDBFilterBackend, CrossDBOrderingFilter
from crossprefetch.rest_framework._known import known_rows  # what the mixin passes on
from shop.comparison import (
    CROSSPREFETCH,
    FILTER_QUERY,
    FILTERED,
    JOINED,
    JOINED_FILTERED,
    JOINED_ORDERED,
    ORDER_QUERY,
    ORDERED,
    PER_PAGE,
    Variant,
)
from shop.joined import joined_filter
from shop.measuring import median
from shop.models import Customer, JoinedOrderEvent, OrderEvent
from shop.serializers import (
    ContextDictOrderEventSerializer,
    JoinedOrderEventSerializer,
    OrderEventSerializer,
)
from shop.views import CUSTOMER_FIELDS, OrderEventViewSet

PHASES = {
    "filter": "remote filter or ranks",
    "count": "paginator count",
    "page": "page query and model instances",
    "lookups": "customers of the page",
    "serialize": "serialization (DRF fields)",
    "render": "JSON rendering",
}
VARIANTS = (PER_PAGE, CROSSPREFETCH, JOINED)
#: The filtered and ordered pages, each beside its counterpart through the join.
FILTER_VARIANTS = (FILTERED, JOINED_FILTERED, ORDERED, JOINED_ORDERED)


def _per_page_dict(events: list[Any], known: Any = None) -> dict[str, Any]:
    ids = {event.customer_id for event in events}
    customers = Customer.objects.filter(id__in=ids).values("id", *CUSTOMER_FIELDS)
    return {"customers": {customer["id"]: customer for customer in customers}}


def _crossprefetch(events: list[Any], known: Any = None) -> dict[str, Any]:
    return dict(prefetch_cross_db(events, OrderEventViewSet.cross_db_fields, known=known))


def _nothing(events: list[Any], known: Any = None) -> dict[str, Any]:
    return {}


def _through_backends(query: str) -> Callable[[], Any]:
    """The events as ``events/?query`` lists them: the view's filter backends applied."""

    def queryset() -> Any:
        view = OrderEventViewSet()
        view.request = Request(RequestFactory().get(f"/?{query}"))
        view.format_kwarg = None
        events: Any = OrderEvent.objects.all()
        for backend in (CrossDBFilterBackend, CrossDBOrderingFilter):
            events = backend().filter_queryset(view.request, events, view)
        # the rows a filter's query read answer the page's lookup, as in the view
        return events, known_rows(view, view.request, view.get_cross_db_fields())

    return queryset


def _through_join(query: str) -> Callable[[], Any]:
    params = dict(part.split("=", 1) for part in query.split("&"))
    return lambda: (
        joined_filter(JoinedOrderEvent.objects.select_related("customer"), params),
        None,
    )


#: (its QuerySet and the rows its filter read, the page's lookups, its serializer)
Recipe = tuple[Callable[[], Any], Callable[..., dict[str, Any]], type]

#: variant -> its recipe
RECIPES: dict[Variant, Recipe] = {
    FILTERED: (_through_backends(FILTER_QUERY), _crossprefetch, OrderEventSerializer),
    JOINED_FILTERED: (_through_join(FILTER_QUERY), _nothing, JoinedOrderEventSerializer),
    ORDERED: (_through_backends(ORDER_QUERY), _crossprefetch, OrderEventSerializer),
    JOINED_ORDERED: (_through_join(ORDER_QUERY), _nothing, JoinedOrderEventSerializer),
    PER_PAGE: (
        lambda: (OrderEvent.objects.all(), None),
        _per_page_dict,
        ContextDictOrderEventSerializer,
    ),
    CROSSPREFETCH: (lambda: (OrderEvent.objects.all(), None), _crossprefetch, OrderEventSerializer),
    JOINED: (
        lambda: (JoinedOrderEvent.objects.select_related("customer"), None),
        _nothing,
        JoinedOrderEventSerializer,
    ),
}


def stage_times(recipe: Recipe, page_size: int) -> dict[str, float]:
    """Seconds per phase of one page served by ``recipe``."""
    make_queryset, lookups, serializer_class = recipe
    times: dict[str, float] = {}
    start = time.perf_counter()
    queryset, known = make_queryset()
    times["filter"] = time.perf_counter() - start
    start = time.perf_counter()
    queryset.count()
    times["count"] = time.perf_counter() - start
    start = time.perf_counter()
    page = list(queryset[:page_size])
    times["page"] = time.perf_counter() - start
    start = time.perf_counter()
    context = lookups(page, known)
    times["lookups"] = time.perf_counter() - start
    start = time.perf_counter()
    data = serializer_class(page, many=True, context=context).data
    times["serialize"] = time.perf_counter() - start
    start = time.perf_counter()
    JSONRenderer().render(data)
    times["render"] = time.perf_counter() - start
    return times


def median_stages(
    recipes: dict[Variant, Recipe], page_size: int, repeat: int
) -> dict[str, dict[str, float]]:
    """``{variant key: {phase: median seconds}}`` over ``repeat`` rounds, the variants'
    order rotated each round, after one warm-up page each."""
    samples: dict[Variant, dict[str, list[float]]] = {
        variant: {phase: [] for phase in PHASES} for variant in recipes
    }
    variants = list(recipes)
    for variant in variants:
        stage_times(recipes[variant], page_size)  # warm-up
    for round_ in range(repeat):
        shift = round_ % len(variants)
        for variant in [*variants[shift:], *variants[:shift]]:
            gc.collect()
            for phase, seconds in stage_times(recipes[variant], page_size).items():
                samples[variant][phase].append(seconds)
    return {
        variant.key: {phase: median(values) for phase, values in phases.items()}
        for variant, phases in samples.items()
    }


def breakdown(
    page_size: int, repeat: int, variants: tuple[Variant, ...] = VARIANTS
) -> dict[str, dict[str, float]]:
    """``{variant key: {phase: median seconds}}`` for a page of ``page_size`` events."""
    return median_stages({variant: RECIPES[variant] for variant in variants}, page_size, repeat)
