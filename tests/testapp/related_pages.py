"""Django's generic views over ForeignKeys across databases, rendered by templates."""

from __future__ import annotations

from django.views.generic import DetailView, ListView

from crossprefetch import CrossDBPrefetch
from crossprefetch.views import CrossDBPrefetchViewMixin
from tests.testapp.models import SupportAccount, Ticket


class TicketListView(CrossDBPrefetchViewMixin, ListView):  # type: ignore[type-arg]
    queryset = Ticket.objects.order_by("id")
    paginate_by = 20
    cross_db_related = ("account__region",)
    # a plain lookup beside the relations: the parent ticket's subject, by its key
    cross_db_fields = {
        "parents": CrossDBPrefetch("testapp.Ticket", key="parent_id", fields=("subject",))
    }


class AccountDetailView(CrossDBPrefetchViewMixin, DetailView):  # type: ignore[type-arg]
    model = SupportAccount
    cross_db_related = ("region", "tickets")
