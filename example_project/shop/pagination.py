"""Page-number pagination with a client-chosen ``page_size`` of up to 10,000 events."""

from __future__ import annotations

from rest_framework.pagination import PageNumberPagination


class EventPagination(PageNumberPagination):
    page_size = 10
    page_size_query_param = "page_size"
    max_page_size = 10_000
