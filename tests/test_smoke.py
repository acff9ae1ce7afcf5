import pytest

from tests.testapp.models import Customer


@pytest.mark.django_db(databases=["default"])
def test_smoke() -> None:
    assert Customer.objects.count() == 0
