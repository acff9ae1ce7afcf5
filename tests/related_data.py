"""Tickets, accounts and regions across three databases, with nulls and dangling keys."""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.testapp.models import AccountSettings, SalesRegion, SupportAccount, Ticket

ALL_DATABASES = ["default", "timeseries", "legacy"]


@dataclass
class Tickets:
    regions: list[SalesRegion] = field(default_factory=list)
    accounts: list[SupportAccount] = field(default_factory=list)
    settings: list[AccountSettings] = field(default_factory=list)
    tickets: list[Ticket] = field(default_factory=list)


def make_tickets(tickets: int = 60, accounts: int = 12) -> Tickets:
    """Regions keyed by code (an account may spell it in another case), accounts with and
    without a region or settings, tickets with a live, null or dangling account, some with
    a parent ticket of their own database."""
    regions = SalesRegion.objects.bulk_create(
        SalesRegion(code=code, label=label, timezone=tz)
        for code, label, tz in (
            ("EU", "Europe", "Europe/Paris"),
            ("US", "Americas", "America/New_York"),
            ("APAC", "Asia-Pacific", "Asia/Tokyo"),
        )
    )
    # "us" finds "US" on MariaDB (its collation ignores case), nowhere else; "XX" dangles
    codes = ["EU", "us", None, "APAC", "XX"]
    people = SupportAccount.objects.bulk_create(
        SupportAccount(
            name=f"Account {i}",
            tier=["basic", "gold"][i % 2],
            notes="x" * 50,
            region_id=codes[i % len(codes)],
        )
        for i in range(accounts)
    )
    people = list(SupportAccount.objects.order_by("id"))
    settings = AccountSettings.objects.bulk_create(
        AccountSettings(account_id=account.id, locale=["en", "fr"][i % 2])
        for i, account in enumerate(people)
        if i % 3 == 0
    )
    ids = [a.id for a in people]
    rows = []
    for i in range(tickets):
        if i % 10 == 7:
            account_id: int | None = None
        elif i % 10 == 9:
            account_id = 1_000_000 + i  # dangling
        else:
            account_id = ids[i % len(ids)]
        rows.append(
            Ticket(
                subject=f"Ticket {i}",
                status=["open", "closed"][i % 2],
                account_id=account_id,
                region_id=["EU", None, "apac", "ZZ"][i % 4],
            )
        )
    Ticket.objects.bulk_create(rows)
    made = list(Ticket.objects.order_by("id"))
    for child, parent in zip(made[1::3], made[0::3], strict=False):
        child.parent_id = parent.id
    Ticket.objects.bulk_update(made, ["parent"])
    return Tickets(list(regions), people, list(settings), list(Ticket.objects.order_by("id")))
