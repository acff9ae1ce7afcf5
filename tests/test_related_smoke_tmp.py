import pytest, json
from crossprefetch.related import prefetch_related_objects
from crossprefetch.testing import assert_num_queries
from tests.testapp.models import SalesRegion, SupportAccount, Ticket, AccountSettings

@pytest.mark.django_db(databases=["default", "timeseries", "legacy"])
def test_smoke(api):
    SalesRegion.objects.bulk_create([SalesRegion(code="EU", label="Europe"), SalesRegion(code="US", label="America")])
    accs = SupportAccount.objects.bulk_create([SupportAccount(name=f"a{i}", region_id=["EU","us",None,"XX"][i%4]) for i in range(6)])
    AccountSettings.objects.create(account_id=accs[0].id, locale="fr")
    Ticket.objects.bulk_create([Ticket(subject=f"t{i}", account_id=[accs[i%6].id, None, 999][i%3], region_id="eu") for i in range(12)])
    with assert_num_queries(default=1, legacy=2, timeseries=2):
        a = api.get("/api/tickets/").json()
    b = api.get("/api/naive-tickets/").json()
    assert a == b
    print(json.dumps(a["results"][:2]))
    with assert_num_queries(default=2, legacy=2, timeseries=1):
        a = api.get("/api/support-accounts/").json()
    b = api.get("/api/naive-support-accounts/").json()
    assert a == b
    print(json.dumps(a["results"][:2]))
    with assert_num_queries(default=1, timeseries=2):
        a = api.get("/api/method-tickets/").json()
    print(json.dumps(a["results"][:2]))

@pytest.mark.django_db(databases=["default", "timeseries", "legacy"])
def test_sql(api):
    from django.db import connections
    from django.test.utils import CaptureQueriesContext
    SalesRegion.objects.bulk_create([SalesRegion(code="EU", label="Europe")])
    accs = SupportAccount.objects.bulk_create([SupportAccount(name=f"a{i}", region_id="EU") for i in range(3)])
    Ticket.objects.bulk_create([Ticket(subject=f"t{i}", account_id=accs[i%3].id, region_id="eu") for i in range(5)])
    with CaptureQueriesContext(connections["default"]) as d, CaptureQueriesContext(connections["legacy"]) as l:
        api.get("/api/tickets/")
    for q in d.captured_queries + l.captured_queries: print(q["sql"])
