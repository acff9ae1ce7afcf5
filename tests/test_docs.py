"""The code in the documentation runs, and its install lines work.

Every ``.. code-block:: python`` of ``docs/**/*.rst`` and every fenced ``python`` block of
``README.md`` is executed, in document order, in one namespace per document (so a snippet
may use what an earlier one on the same page defined). A block is left out when the line
before it (blank lines aside) is the comment ``.. test: skip`` (``<!-- test: skip -->`` in
Markdown); a block whose caption names a file is that file, not a snippet (the tutorial's
test file is saved and run as the tutorial says). The namespace starts with the example's
``Customer`` and ``OrderEvent`` models and a DRF test ``client``; the databases hold a few
customers and 150 events referencing them, some of which reference a deleted customer.
See ``docs/contributing.rst`` and ``tests/doc_pages.py``.
"""

from __future__ import annotations

import code
import datetime as dt
import re
import shutil
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from shop.models import Customer, OrderEvent, SupportTicket
from tests.doc_pages import ROOT, Block, File, files, run, snippets, steps

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest's own dependency before Python 3.11
    import tomli as tomllib

DOCS = ROOT / "docs"
DOCUMENTS = [
    path
    for path in [ROOT / "README.md", *sorted(DOCS.rglob("*.rst"))]
    if "_build" not in path.parts and snippets(path)
]


def seed() -> None:
    """A few customers in ``default``, 150 events and 60 support tickets in
    ``timeseries``; 1 in 10 dangling, and 1 ticket in 7 without a customer."""
    tiers = ["basic", "silver", "gold"]
    customers = Customer.objects.bulk_create(
        Customer(name=f"Customer {i}", email=f"customer{i}@example.com", tier=tiers[i % 3])
        for i in range(1, 31)
    )
    ids = [customer.pk for customer in customers]
    start = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    OrderEvent.objects.bulk_create(
        OrderEvent(
            timestamp=start + dt.timedelta(minutes=i),
            customer_id=10_000 + i if i % 10 == 9 else ids[i % len(ids)],
            event_type=["created", "paid", "shipped"][i % 3],
            amount=Decimal(i) + Decimal("0.50"),
        )
        for i in range(150)
    )
    SupportTicket.objects.bulk_create(
        SupportTicket(
            opened_at=start + dt.timedelta(hours=i),
            subject=f"Ticket {i}",
            status=["open", "solved"][i % 2],
            customer_id=None if i % 7 == 6 else 10_000 + i if i % 10 == 9 else ids[i % len(ids)],
        )
        for i in range(60)
    )


def namespace(path: Path) -> dict[str, Any]:
    return {
        "__name__": f"snippets_{path.stem.replace('-', '_')}",
        "Customer": Customer,
        "OrderEvent": OrderEvent,
        "client": APIClient(),
    }


@pytest.mark.django_db(databases="__all__")
@pytest.mark.parametrize("path", DOCUMENTS, ids=[str(p.relative_to(ROOT)) for p in DOCUMENTS])
def test_snippets_run(path: Path) -> None:
    seed()
    ns = namespace(path)
    with override_settings(CROSSPREFETCH={"STRICT": True}):
        for snippet in snippets(path):
            code = compile("\n" * (snippet.line - 1) + snippet.code, str(snippet.path), "exec")
            try:
                exec(code, ns)
            except Exception as exc:
                raise AssertionError(f"the snippet at {snippet} failed: {exc!r}") from exc


def test_snippets_are_found() -> None:
    assert ROOT / "README.md" in DOCUMENTS
    assert DOCS / "tutorial.rst" in DOCUMENTS
    (readme,) = [s for s in snippets(ROOT / "README.md") if "cross_db_fields" in s.code]
    assert readme.code.startswith("# views.py\nfrom rest_framework import")


def test_every_check_id_is_documented() -> None:
    source = "\n".join(p.read_text() for p in (ROOT / "crossprefetch").rglob("*.py"))
    ids = set(re.findall(r"crossprefetch\.[EW]\d{3}", source))
    ids |= {f"crossprefetch.{c}" for c in re.findall(r'_error\(\s*\w+,\s*"([EW]\d{3})"', source)}
    page = (DOCS / "reference" / "checks.rst").read_text()
    assert ids
    assert sorted(i for i in ids if i not in page) == []


class _PasteConsole(code.InteractiveConsole):
    """The console of ``manage.py shell``, fed a snippet line by line as a paste does;
    runs nothing, records what it could not compile."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[str] = []

    def runcode(self, code: Any) -> None:
        pass

    def showsyntaxerror(self, filename: str | None = None, **kwargs: Any) -> None:
        self.errors.append(repr(sys.exc_info()[1]))


#: Pages that say their snippets can be pasted into ``manage.py shell``.
PASTED = [DOCS / "tutorial.rst"]


@pytest.mark.parametrize("path", PASTED, ids=[str(p.relative_to(ROOT)) for p in PASTED])
def test_snippets_paste_into_the_shell(path: Path) -> None:
    """Python's interactive console ends a block at the first blank line: a class with a
    blank line between its methods, pasted as written, fails with an IndentationError."""
    for snippet in snippets(path):
        if "manage.py shell" not in _introduction(path, snippet):
            continue
        console = _PasteConsole()
        for line in snippet.code.splitlines():
            console.push(line)
        console.push("")
        assert console.errors == [], f"the snippet at {snippet} does not paste: {console.errors}"


def _introduction(path: Path, snippet: Block) -> str:
    """The page's text up to the snippet."""
    return "\n".join(path.read_text().splitlines()[: snippet.line - 1])


@pytest.mark.django_db(databases="__all__")
def test_readme_example_serves_a_page_in_one_query_per_database() -> None:
    """The 30-second example, as written, with its pagination settings: 100 events, one
    query on ``default``."""
    from django.utils.module_loading import import_string
    from rest_framework.test import APIRequestFactory

    from crossprefetch.testing import assert_num_queries

    seed()
    ns = namespace(ROOT / "README.md")
    for snippet in snippets(ROOT / "README.md"):
        exec(compile(snippet.code, str(snippet.path), "exec"), ns)
    # DRF reads its pagination settings when it is imported, long before this test: apply
    # them as a project importing DRF after its settings would.
    pagination = ns["REST_FRAMEWORK"]
    paginator = type(
        "ReadmePagination",
        (import_string(pagination["DEFAULT_PAGINATION_CLASS"]),),
        {"page_size": pagination["PAGE_SIZE"]},
    )
    viewset = type("ReadmeViewSet", (ns["OrderEventViewSet"],), {"pagination_class": paginator})
    view = viewset.as_view({"get": "list"})
    with assert_num_queries(default=1, timeseries=2):
        response = view(APIRequestFactory().get("/events/"))
    assert response.data["count"] == 150
    assert len(response.data["results"]) == 100
    assert {row["customer_name"] for row in response.data["results"]} >= {"Unknown customer"}
    assert [pattern.name for pattern in ns["urlpatterns"]][:1] == ["event-list"]


# -- install lines and addresses ------------------------------------------------------------

#: Every page that tells a reader what to install, and the code whose messages may.
INSTALL_PAGES = [
    ROOT / "README.md",
    ROOT / "example_project" / "README.md",
    *(p for p in sorted(DOCS.rglob("*.*")) if p.suffix in {".rst", ".md"}),
    *sorted((ROOT / "crossprefetch").rglob("*.py")),
    *sorted((ROOT / "example_project").rglob("*.py")),
]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = set(PROJECT["optional-dependencies"])

_PIP_INSTALL = re.compile(r"\bpip install\b")
_TOKEN = re.compile(r"[^\s'\"`]+")  # quotes only group what has no space: paths, extras
#: The project publishes no address of its own (no repository, documentation or index page).
_OWN_URL = re.compile(r"https?://[^\s<>`\"')]*crossprefetch[^\s<>`\"')]*", re.IGNORECASE)


def install_commands(text: str) -> Iterator[tuple[int, str]]:
    """``(line, arguments)`` of every ``pip install`` in ``text``: to the end of the line in
    a console block, to the closing backtick in an inline literal (which may wrap)."""
    for match in _PIP_INSTALL.finditer(text):
        line_start = text.rfind("\n", 0, match.start()) + 1
        inline = len(re.findall(r"`+", text[line_start : match.start()])) % 2 == 1
        end = text.find("`" if inline else "\n", match.end())
        arguments = re.split(r"&&|;|\|\||\s#", text[match.end() : end if end >= 0 else None])[0]
        yield text.count("\n", 0, match.start()) + 1, " ".join(arguments.split())


def _index_name(requirement: str) -> str:
    """The normalised name of ``requirement``: ``Cross.Prefetch>=1`` → ``cross-prefetch``."""
    name = re.match(r"[\w.-]*", requirement)
    return re.sub(r"[-_.]+", "-", name[0] if name else "").lower()


def install_problems(arguments: str) -> list[str]:
    """What is wrong with ``pip install <arguments>``: crossprefetch named by an index name (it
    is not published: it installs from a path), or an extra that pyproject.toml lacks."""
    problems = []
    for token in _TOKEN.findall(arguments):
        if token.startswith("-"):
            continue
        target, _, rest = token.partition("[")
        extras = rest.partition("]")[0].split(",")
        if target.startswith((".", "/", "~")) or "/" in target:
            missing = [extra for extra in extras if extra and extra not in EXTRAS]
            problems += [f"no extra {extra!r} in pyproject.toml" for extra in missing]
        elif _index_name(target) == "crossprefetch":
            problems.append(f"{token!r} is not on the package index: install from a path")
    return problems


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        ("$ pip install .", []),
        ('$ pip install ".[redis]"', []),
        ('$ pip install -e ".[test,lint,docs]" && pytest', []),
        ('$ pip install "/path/to/crossprefetch[redis,postgres]" pytest-django', []),
        ('with ``pip install\n   -e ".[example,bench]"``)', []),
        ("``pip install django-filter``", []),
        ("pip install crossprefetch", ["'crossprefetch' is not on the package index"]),
        ('``pip install "crossprefetch[redis]"``', ["'crossprefetch[redis]' is not on"]),
        ("`pip install CrossPrefetch==0.1`", ["'CrossPrefetch==0.1' is not on the package"]),
        ('$ pip install ".[redis,toolbar]"', ["no extra 'toolbar' in pyproject.toml"]),
        ('``pip install "/src/crossprefetch[cache]"``', ["no extra 'cache' in pyproject.toml"]),
        ('raise CommandError(f"{exc}: pip install crossprefetch")', ["'crossprefetch' is not"]),
        ("f\"{exc}: install httpx (pip install -e '.[examples]').\"", ["no extra 'examples'"]),
    ],
)
def test_install_problems(text: str, problems: list[str]) -> None:
    found = [p for _, arguments in install_commands(text) for p in install_problems(arguments)]
    assert len(found) == len(problems), found
    assert all(f.startswith(p) for f, p in zip(found, problems, strict=True)), found


def test_every_install_line_installs_from_a_path() -> None:
    """The package is installed from a checkout of its source, by path, with extras that
    exist; every page says so the same way."""
    found = [
        f"{path.relative_to(ROOT)}:{line}: pip install {arguments}: {problem}"
        for path in INSTALL_PAGES
        for line, arguments in install_commands(path.read_text())
        for problem in install_problems(arguments)
    ]
    assert ROOT / "README.md" in INSTALL_PAGES
    assert DOCS / "index.rst" in INSTALL_PAGES
    assert not found, "\n".join(found)


def test_no_invented_addresses() -> None:
    """No page or metadata points at a repository, documentation site or index page of the
    project's own: it publishes none."""
    files = [*INSTALL_PAGES, ROOT / "pyproject.toml", DOCS / "conf.py"]
    found = [
        f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}: {match[0]}"
        for path in files
        for text in [path.read_text()]
        for match in _OWN_URL.finditer(text)
    ]
    assert not found, "\n".join(found)


def test_the_install_page_lists_every_extra() -> None:
    page = (DOCS / "install.rst").read_text()
    rows = re.findall(r"^   \* - ((?:``[\w-]+``(?:, )?)+)$", page, re.MULTILINE)
    assert {name for row in rows for name in re.findall(r"``([\w-]+)``", row)} == EXTRAS


# -- the tutorial's test, saved and run as the tutorial says --------------------------------

#: What of the checkout the tutorial's test runs in: the suite's settings, the example.
CHECKOUT = ["pyproject.toml", "tests", "example_project"]


def test_the_tutorial_test_passes_as_the_tutorial_says(tmp_path: Path) -> None:
    """Its blocks saved where the tutorial says, in a copy of the checkout, then run with the
    command the tutorial shows: every test passes, as many as the tutorial says."""
    page = DOCS / "tutorial.rst"
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in CHECKOUT:
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "var", "*.sqlite3")
            shutil.copytree(ROOT / name, checkout / name, ignore=ignore)
        else:
            shutil.copy(ROOT / name, checkout / name)
    tutorial = steps(page)
    first_file = next(i for i, step in enumerate(tutorial) if isinstance(step, File))
    ran = run(tutorial[first_file:], checkout, timeout=300)
    assert ran == ["pytest tests/test_event_queries.py"]
    assert list(files(page)) == ["tests/test_event_queries.py"]


def test_every_file_a_page_shows_is_run() -> None:
    """A block captioned with a path is a file, which no snippet run executes: only the pages
    whose files a test writes and runs may show one."""
    pages = [ROOT / "README.md", *sorted(DOCS.rglob("*.rst"))]
    assert [p for p in pages if files(p)] == [DOCS / "from-scratch.rst", DOCS / "tutorial.rst"]
