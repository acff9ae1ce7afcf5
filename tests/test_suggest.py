"""The one did-you-mean of every message: one edit first, then difflib's closeness."""

from __future__ import annotations

import pytest

from crossprefetch._suggest import closest, did_you_mean, one_edit

EDITS: list[tuple[str, str, bool]] = [
    ("customer_teir", "customer_tier", True),  # two neighbours swapped
    ("customer_tie", "customer_tier", True),  # one deleted
    ("customer_tierr", "customer_tier", True),  # one inserted
    ("customer_tiar", "customer_tier", True),  # one replaced
    ("Customer_tier", "customer_tier", True),  # letter case is an edit
    ("customer_tier_in", "customer_tier__in", True),
    ("customer_tier", "customer_tier", False),  # the same name is no typo
    ("customer_tear", "customer_tire", False),  # two edits
    ("tier", "customer_tier", False),
    ("", "a", True),
    ("ab", "ba", True),
    ("abc", "cba", False),
]


@pytest.mark.parametrize(("a", "b", "expected"), EDITS, ids=[f"{a}~{b}" for a, b, _ in EDITS])
def test_one_edit(a: str, b: str, expected: bool) -> None:
    assert one_edit(a, b) is expected
    assert one_edit(b, a) is expected  # symmetric


def test_one_edit_wins_over_difflib_closeness() -> None:
    """difflib rates ``abcd`` closer to ``ab`` than ``ba``, two edits against one."""
    assert closest("ab", ["abcd", "ba"]) == "ba"


def test_a_swap_wins_over_an_insertion() -> None:
    """``teir`` is one edit from both; difflib alone would say ``their``."""
    assert closest("teir", ["their", "tier"]) == "tier"


def test_closest_never_returns_the_name_itself_nor_something_far() -> None:
    assert closest("name", ["name"]) is None
    assert closest("regex", ["exact", "iexact", "in", "gt"]) is None
    assert closest("icontain", ["contains", "icontains"]) == "icontains"


def test_did_you_mean_is_a_sentence_to_append() -> None:
    assert did_you_mean("nmae", ["name", "email"]) == " Did you mean 'name'?"
    assert did_you_mean("zzz", ["name"]) == ""


def test_names_of_the_wrong_type_get_no_suggestion_rather_than_a_type_error() -> None:
    assert closest(None, ["tier"]) is None  # type: ignore[arg-type]
    assert closest("teir", [None, 3, "tier"]) == "tier"  # type: ignore[list-item]
    assert did_you_mean(3, ["tier"]) == ""  # type: ignore[arg-type]
