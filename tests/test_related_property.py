"""On random data, relations served with nothing declared render as Django's per row."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from crossprefetch.testing import assert_max_num_queries
from tests.related_data import ALL_DATABASES
from tests.testapp.models import AccountSettings, SalesRegion, SupportAccount, Ticket

pytestmark = [
    pytest.mark.django_db(databases=ALL_DATABASES),
    pytest.mark.urls("tests.related_urls"),  # the naive twins, for the oracle
]

MAX_PK = 30
names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=8)
#: letters that case-insensitive collations fold together
codes = st.text(st.sampled_from("aAbBeE"), min_size=1, max_size=3)


@st.composite
def keys(draw: st.DrawFn, pks: list[int]) -> int | None:
    """A ForeignKey's value as another database holds it: live, dangling or null."""
    kind = draw(st.sampled_from(["live", "live", "live", "dangling", "null"]))
    if kind == "live" and pks:
        return draw(st.sampled_from(pks))
    if kind == "null":
        return None
    return draw(st.integers(min_value=1, max_value=2 * MAX_PK))


@st.composite
def text_keys(draw: st.DrawFn, stored: list[str]) -> str | None:
    """A text key: a stored code, its case changed or a space added, another, or null."""
    kind = draw(st.sampled_from(["stored", "stored", "other", "null"]))
    if kind == "null":
        return None
    code = draw(st.sampled_from(stored)) if kind == "stored" and stored else draw(codes)
    code = "".join(c.swapcase() if draw(st.booleans()) else c for c in code)
    return code + " " * draw(st.integers(min_value=0, max_value=1))


Dataset = tuple[list[str], list[dict[str, object]], list[int], list[dict[str, object]]]


@st.composite
def datasets(draw: st.DrawFn) -> Dataset:
    regions = draw(st.lists(codes, max_size=6))
    pks = draw(st.lists(st.integers(min_value=1, max_value=MAX_PK), unique=True, max_size=12))
    accounts = [
        {
            "pk": pk,
            "name": draw(names),
            "tier": draw(st.sampled_from(["basic", "gold"])),
            "region_id": draw(text_keys(regions)),
        }
        for pk in pks
    ]
    with_settings = draw(st.lists(st.sampled_from(pks), unique=True) if pks else st.just([]))
    tickets = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "subject": names,
                    "status": st.sampled_from(["open", "closed"]),
                    "account_id": keys(pks),
                    "region_id": text_keys(regions),
                }
            ),
            max_size=25,
        )
    )
    return regions, accounts, with_settings, tickets


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=datasets(), page_size=st.sampled_from([1, 7, 100]))
def test_same_json_as_django_per_row(data: Dataset, page_size: int) -> None:
    regions, accounts, with_settings, tickets = data
    for model in (Ticket, AccountSettings, SupportAccount, SalesRegion):
        model.objects.all().delete()
    # codes the collation holds equal to an earlier one are refused by the unique index
    SalesRegion.objects.bulk_create(
        (SalesRegion(code=code, label=f"Region {code!r}") for code in regions),
        ignore_conflicts=True,
    )
    SupportAccount.objects.bulk_create(SupportAccount(**account) for account in accounts)
    AccountSettings.objects.bulk_create(
        AccountSettings(account_id=pk, locale=f"l{pk}") for pk in with_settings
    )
    Ticket.objects.bulk_create(Ticket(**ticket) for ticket in tickets)  # type: ignore[arg-type]
    api = APIClient()
    page = f"?page_size={page_size}"
    for ours_url, naive_url, bound in (
        ("/api/tickets/", "/api/naive-tickets/", {"default": 1, "legacy": 2}),
        (
            "/api/support-accounts/",
            "/api/naive-support-accounts/",
            {"timeseries": 1, "legacy": 2},
        ),
    ):
        naive = api.get(naive_url + page)
        with assert_max_num_queries(**bound):
            ours = api.get(ours_url + page)
        assert naive.status_code == ours.status_code == 200
        assert ours.json()["results"] == naive.json()["results"]
        assert ours.json()["count"] == naive.json()["count"]
