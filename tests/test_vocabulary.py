"""One vocabulary for arguments: names alike on both filters, one exception per kind.

A wrong type raises ``TypeError``, a value of the right type that cannot be taken raises
``ValueError``, a bad setting raises ``ImproperlyConfigured`` — in specs, cache policies,
filters and settings alike, except that a filter keeps a value it cannot take as its
``problem``, for the system check ``crossprefetch.E408`` to report with the view and the
parameter (tests/test_filter_checks.py) rather than stop the URLconf importing.
``CrossDBFilter`` and ``CrossDBFilterSetFilter`` take the same
arguments, named as django-filter names them (``field_name``, ``lookup_expr``); the former
names still work, with a ``DeprecationWarning`` pointing at the caller.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from crossprefetch import CachePolicy, CrossDBPrefetch
from crossprefetch.conf import conf
from crossprefetch.filters import CrossDBFilter, CrossDBFilterSetFilter

Call = Callable[[], Any]


def spec(**kwargs: Any) -> Call:
    return lambda: CrossDBPrefetch("testapp.Customer", **{"key": "customer_id", **kwargs})


BAD_ARGUMENTS: list[tuple[str, Call, type[Exception]]] = [
    # specs
    ("spec timeout text", spec(timeout="1"), TypeError),
    ("spec timeout negative", spec(timeout=-1), ValueError),
    ("spec timeout infinite", spec(timeout=float("inf")), ValueError),
    ("spec coalesce text", spec(coalesce="5ms"), TypeError),
    ("spec coalesce negative", spec(coalesce=-0.1), ValueError),
    ("spec on_error other", spec(on_error="ignore"), ValueError),
    ("spec on_error not text", spec(on_error=1), TypeError),
    ("spec using empty", spec(using=""), ValueError),
    ("spec using not text", spec(using=3), TypeError),
    ("spec key empty", spec(key=""), ValueError),
    ("spec key number", spec(key=3), TypeError),
    ("spec fields empty", spec(fields=()), ValueError),
    ("spec fields numbers", spec(fields=(1,)), TypeError),
    ("spec cache text", spec(cache="1"), TypeError),
    ("spec cache zero", spec(cache=0), ValueError),
    # cache policies
    ("policy alias empty", lambda: CachePolicy(10, alias=""), ValueError),
    ("policy alias number", lambda: CachePolicy(10, alias=3), TypeError),  # type: ignore[arg-type]
    ("policy jitter", lambda: CachePolicy(10, jitter=2), ValueError),
    # filters, both kinds, the same rules
    ("filter spec None", lambda: CrossDBFilter(None), TypeError),  # type: ignore[arg-type]
    ("filter field number", lambda: CrossDBFilter("customers", 3), TypeError),  # type: ignore[arg-type]
    ("filter lookup number", lambda: CrossDBFilter("c", "tier", 3), TypeError),  # type: ignore[arg-type]
    ("filter help_text", lambda: CrossDBFilter("c", "tier", help_text=3), TypeError),  # type: ignore[arg-type]
    ("filterset spec number", lambda: CrossDBFilterSetFilter(3, "tier"), TypeError),  # type: ignore[arg-type]
    ("filterset field number", lambda: CrossDBFilterSetFilter("c", 3), TypeError),  # type: ignore[arg-type]
]

#: Values of the right type a filter cannot take: kept as its problem, never raised here.
BAD_FILTER_VALUES: list[tuple[str, Call, str]] = [
    ("filter spec empty", lambda: CrossDBFilter("", "tier"), "spec's name is empty"),
    ("filter field empty", lambda: CrossDBFilter("customers", ""), "field_name is empty"),
    ("filter lookup other", lambda: CrossDBFilter("c", "tier", "regex"), "'regex' is not"),
    ("filter no field", lambda: CrossDBFilter("customers"), "no field_name"),
    ("filterset spec empty", lambda: CrossDBFilterSetFilter("", "tier"), "spec's name is empty"),
    ("filterset field empty", lambda: CrossDBFilterSetFilter("c", ""), "field_name is empty"),
    ("filterset lookup other", lambda: CrossDBFilterSetFilter("c", "t", "regex"), "'regex'"),
    ("filterset no field", lambda: CrossDBFilterSetFilter("customers"), "no field_name"),
    ("filterset exclude", lambda: CrossDBFilterSetFilter("c", "t", exclude=True), "exclude"),
]


@pytest.mark.parametrize(
    ("call", "error"), [b[1:] for b in BAD_ARGUMENTS], ids=[b[0] for b in BAD_ARGUMENTS]
)
def test_one_exception_per_kind_of_bad_argument(call: Call, error: type[Exception]) -> None:
    with pytest.raises(Exception) as excinfo:  # noqa: PT011 - the type is the assertion
        call()
    assert type(excinfo.value) is error, excinfo.value


@pytest.mark.parametrize(
    ("make", "problem"), [b[1:] for b in BAD_FILTER_VALUES], ids=[b[0] for b in BAD_FILTER_VALUES]
)
def test_a_filter_keeps_a_value_it_cannot_take_as_its_problem(make: Call, problem: str) -> None:
    made = make()
    assert made.problem is not None
    assert problem in str(made.problem)
    assert made.problem.hint  # the fix, for the check's hint


def test_valid_filters_have_no_problem() -> None:
    assert CrossDBFilter("customers", "tier", "in").problem is None
    assert CrossDBFilter("customers", lookup_expr="isnull").problem is None
    assert CrossDBFilterSetFilter("customers", "tier", "icontains").problem is None


BAD_SETTINGS: list[tuple[str, Any, Callable[[], Any]]] = [
    ("TIMEOUT", "1s", lambda: conf.TIMEOUT),
    ("TIMEOUT", -1, lambda: conf.TIMEOUT),
    ("COALESCE", "5ms", lambda: conf.COALESCE),
    ("MAX_FILTER_KEYS", "many", lambda: conf.MAX_FILTER_KEYS),
    ("MAX_FILTER_KEYS", 0, lambda: conf.MAX_FILTER_KEYS),
    ("MAX_FILTER_VALUE_LENGTH", 1.5, lambda: conf.MAX_FILTER_VALUE_LENGTH),
    ("ON_ERROR", "ignore", lambda: CrossDBPrefetch("testapp.Customer", key="c").error_policy()),
]


@pytest.mark.parametrize(("name", "value", "read"), BAD_SETTINGS)
def test_a_bad_setting_is_improperly_configured(name: str, value: Any, read: Call) -> None:
    with override_settings(CROSSPREFETCH={name: value}), pytest.raises(ImproperlyConfigured) as e:
        read()
    assert name in str(e.value)


def test_the_filters_take_the_same_arguments() -> None:
    drf = CrossDBFilter("customers", "tier", "in")
    django_filter = CrossDBFilterSetFilter("customers", "tier", "in")
    assert (drf.field_name, drf.lookup_expr) == (django_filter.field_name, "in")
    assert django_filter.lookup_expr == "in"
    assert django_filter.cross_db_filter == drf
    keywords = CrossDBFilter("customers", field_name="tier", lookup_expr="in")
    assert keywords == drf
    assert CrossDBFilterSetFilter("customers", field_name="tier", lookup_expr="in").field_name == (
        "tier"
    )


@pytest.mark.parametrize(
    ("make", "old"),
    [
        (lambda: CrossDBFilter("customers", field="tier", lookup_expr="in"), "field="),
        (lambda: CrossDBFilter("customers", "tier", lookup="in"), "lookup="),
        (lambda: CrossDBFilterSetFilter("customers", remote_field="tier"), "remote_field="),
    ],
)
def test_former_names_still_work_with_a_deprecation_warning(make: Call, old: str) -> None:
    with pytest.warns(DeprecationWarning, match=old) as record:
        made = make()
    assert record[0].filename == __file__  # points at the code to change
    cross_filter = getattr(made, "cross_db_filter", made)
    assert cross_filter.field_name == "tier"


def test_former_attribute_names_read_with_a_deprecation_warning() -> None:
    cross_filter = CrossDBFilter("customers", "tier", "in")
    with pytest.warns(DeprecationWarning, match="lookup_expr"):
        assert cross_filter.lookup == "in"
    with pytest.warns(DeprecationWarning, match="field_name"):
        assert cross_filter.field == "tier"


def test_a_name_and_its_former_name_together_are_a_type_error() -> None:
    with pytest.raises(TypeError, match="lookup_expr= only"):
        CrossDBFilter("customers", "tier", "in", lookup="exact")
    with pytest.raises(TypeError, match="field_name= only"):
        CrossDBFilterSetFilter("customers", "tier", remote_field="name")


def test_current_names_warn_nothing_and_survive_pickling() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cross_filter = CrossDBFilter("customers", "tier", lookup_expr="in")
        CrossDBFilterSetFilter("customers", "tier", lookup_expr="in")
        assert pickle.loads(pickle.dumps(cross_filter)) == cross_filter
