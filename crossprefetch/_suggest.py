"""Did-you-mean: the one way every message of crossprefetch names the closest valid name.

System checks, runtime errors and STRICT's 400s all ask :func:`closest`, so a typo gets the
same suggestion wherever it is reported. :func:`one_edit` is the narrower test STRICT uses
on query parameters, which other apps share: only a name one keystroke away from a
declared one is taken for a typo of it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

#: difflib's default: close enough to be the same word mistyped.
CUTOFF = 0.6


def closest(name: str, choices: Iterable[str], *, cutoff: float = CUTOFF) -> str | None:
    """The choice nearest to ``name``, or ``None``.

    One edit away first (of those, one as long as ``name`` first: a swapped or mistyped
    letter is likelier than a missing one), then the closest by difflib.
    """
    if not isinstance(name, str):
        return None  # a name of the wrong type: its own error says so, not a suggestion
    options = [c for c in dict.fromkeys(choices) if isinstance(c, str) and c != name]
    near = [c for c in options if one_edit(name, c)]
    if near:
        options = [c for c in near if len(c) == len(name)] or near
        cutoff = 0.0
    close = difflib.get_close_matches(name, options, n=1, cutoff=cutoff)
    return close[0] if close else None


def did_you_mean(name: str, choices: Iterable[str], *, cutoff: float = CUTOFF) -> str:
    """``" Did you mean 'x'?"`` for the closest choice, or ``""``: appended to a sentence."""
    found = closest(name, choices, cutoff=cutoff)
    return f" Did you mean {found!r}?" if found is not None else ""


def one_edit(a: str, b: str) -> bool:
    """Whether ``b`` is ``a`` with one character inserted, deleted, replaced, or two
    neighbours swapped (``teir`` / ``tier``): the Damerau distance is exactly 1."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    start = 0
    while start < len(a) and a[start] == b[start]:
        start += 1
    if len(a) < len(b):  # one insertion
        return a[start:] == b[start + 1 :]
    if a[start + 1 :] == b[start + 1 :]:  # one replacement
        return True
    return (  # one swap of neighbours
        start + 1 < len(a)
        and a[start] == b[start + 1]
        and a[start + 1] == b[start]
        and a[start + 2 :] == b[start + 2 :]
    )
