"""Sphinx configuration of crossprefetch's documentation.

Build with warnings as errors, from the repository root::

    sphinx-build -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import ast
import inspect
import os
import re
import sys
from pathlib import Path
from typing import Any

import django
from docutils import nodes
from docutils.parsers.rst import Directive, directives
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.nodes import nested_parse_with_titles

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

import crossprefetch  # noqa: E402  (needs the app registry)

project = "crossprefetch"
author = "crossprefetch contributors"
copyright = "crossprefetch contributors"
release = crossprefetch.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
# Included by benchmarks/index.rst (when the benchmark has written it), not a page itself.
exclude_patterns = ["_build", "benchmarks/results.md"]
templates_path: list[str] = []

html_theme = "furo"
html_title = f"crossprefetch {release}"
html_static_path: list[str] = []

autodoc_member_order = "bysource"
# The docstrings say what each argument takes; hints in signatures would only repeat
# them less readably (``Source`` aliases, ``from __future__`` strings).
autodoc_typehints = "none"
autodoc_preserve_defaults = True
autodoc_inherit_docstrings = False
autodoc_default_options = {"show-inheritance": False}

myst_heading_anchors = 3


# -- settings reference, read from crossprefetch/conf.py -----------------------------------


def _settings() -> list[tuple[str, str, str, str]]:
    """``(name, type, default, docstring)`` of every property of ``conf.Settings``.

    Read from the source, not evaluated: a default such as ``DEBUG`` is shown as the
    expression it is, not as the value it has while the docs build.
    """
    tree = ast.parse((ROOT / "crossprefetch" / "conf.py").read_text())
    (cls,) = (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings")
    found = []
    for item in cls.body:
        if not isinstance(item, ast.FunctionDef) or item.name.startswith("_"):
            continue
        calls = [
            n
            for n in ast.walk(item)
            if isinstance(n, ast.Call)
            and isinstance(n.func, ast.Name)
            and n.func.id == "_get"
            and len(n.args) == 2
        ]
        if len(calls) != 1:
            raise ValueError(f"conf.Settings.{item.name}: expected one _get(name, default) call")
        default = ast.unparse(calls[0].args[1]).replace("django_settings.", "settings.")
        kind = ast.unparse(item.returns) if item.returns else ""
        found.append((item.name, kind, default, ast.get_docstring(item) or ""))
    return found


class CrossPrefetchSettings(Directive):
    """``.. crossprefetch-settings::`` — one entry per key of the ``CROSSPREFETCH`` dict."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        env = self.state.document.settings.env
        env.note_dependency(str(ROOT / "crossprefetch" / "conf.py"))
        lines: list[str] = []
        for name, kind, default, doc in _settings():
            lines += [
                f".. setting:: {name}",
                "",
                f"   :Type: ``{kind}``" if kind else "",
                f"   :Default: ``{default}``",
                "",
                *(f"   {line}" for line in doc.splitlines()),
                "",
            ]
        container = nodes.container()
        nested_parse_with_titles(self.state, StringList(lines, "crossprefetch/conf.py"), container)
        return container.children


_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})(\s)")


def _nest_headings(markdown: str) -> str:
    """Shift Markdown headings so the highest becomes ``#``: nested under the includer."""
    lines = markdown.splitlines()
    levels = []
    fenced = False
    for line in lines:
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and (match := _HEADING.match(line)):
            levels.append(len(match[1]))
    shift = min(levels, default=1) - 1
    fenced = False
    for index, line in enumerate(lines):
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and _HEADING.match(line):
            lines[index] = line[shift:]
    return "\n".join(lines) + "\n"


class MarkdownIfExists(Directive):
    """``.. markdown-if-exists:: path`` — include a Markdown file if it exists.

    For a page that another tool writes (the benchmark results), so that the
    documentation builds before and after it does. ``path`` is relative to the current
    document. Its headings become subsections of the current section, whatever level
    they start at; the directive's content (a section title, say) comes first.
    """

    required_arguments = 1
    has_content = True

    def run(self) -> list[nodes.Node]:
        env = self.state.document.settings.env
        base = (DOCS / env.docname).parent
        source = base / self.arguments[0]
        if not source.exists():
            return []
        env.note_dependency(str(source))
        nested = Path(env.app.doctreedir) / "markdown-if-exists" / f"{env.docname}.md"
        nested.parent.mkdir(parents=True, exist_ok=True)
        nested.write_text(_nest_headings(source.read_text()))
        lines = [
            *self.content,
            "",
            f".. include:: {os.path.relpath(nested, base)}",
            "   :parser: myst_parser.sphinx_",
            "",
        ]
        self.state_machine.insert_input(lines, str(source))
        return []


class _Default:
    """A default shown by name (DRF's ``empty``) rather than by its ``repr``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


def _class_signature(
    app: Sphinx,
    what: str,
    name: str,
    obj: Any,
    options: Any,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str, str | None] | None:
    """Show ``__init__``'s signature where a base's ``__new__`` hides it (DRF fields).

    A protocol shows the signature of its ``__call__``: that is what it describes.
    """
    if what not in ("class", "exception") or signature != "(*args, **kwargs)":
        return None
    if getattr(obj, "_is_protocol", False):
        method = obj.__dict__.get("__call__")
    else:
        method = obj.__dict__.get("__init__")
    if method is None:
        return None
    parameters = []
    for parameter in list(inspect.signature(method).parameters.values())[1:]:
        default = parameter.default
        if default is not inspect.Parameter.empty and isinstance(default, type):
            default = _Default(default.__name__)
        parameters.append(parameter.replace(annotation=inspect.Parameter.empty, default=default))
    return (str(inspect.Signature(parameters)), return_annotation)


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("autodoc-process-signature", _class_signature)
    app.add_object_type(
        "setting",
        "setting",
        indextemplate="pair: %s; setting",
        objname="CROSSPREFETCH setting",
    )
    app.add_object_type(
        "check",
        "check",
        indextemplate="pair: %s; system check",
        objname="system check",
    )
    directives.register_directive("crossprefetch-settings", CrossPrefetchSettings)
    directives.register_directive("markdown-if-exists", MarkdownIfExists)
    return {"parallel_read_safe": True}
