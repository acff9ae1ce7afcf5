"""The code blocks of the documentation's pages, as the tests read and run them.

A block is one of three things:

- a snippet: ``.. code-block:: python`` without a caption (a fenced ``python`` block in
  Markdown), run by ``tests/test_docs.py`` in the page's namespace;
- a file: a block of any language whose ``:caption:`` is a relative path
  (``:caption: mysite/settings.py``) is that file, whole; the blocks of one page with the
  same caption are one file, in order;
- commands: a ``.. code-block:: console`` holds one command per ``$`` line, and the lines
  up to the next command are its output (``...`` elides lines, or the rest of a line).

A block is left out when the line before it (blank lines aside) is the comment
``.. test: skip`` (``<!-- test: skip -->`` in Markdown). See ``docs/contributing.rst``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parent.parent
SKIP = {".rst": ".. test: skip", ".md": "<!-- test: skip -->"}

_RST_DIRECTIVE = re.compile(r"^(?P<indent>\s*)\.\. code-block:: (?P<language>\S+)\s*$")
_RST_OPTION = re.compile(r"^\s+:(?P<name>[\w-]+):\s*(?P<value>.*)$")
_MD_FENCE = re.compile(r"^(?P<indent>\s*)```(?P<language>\w+)\s*$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  #: 1-based line of the first line of code
    language: str
    caption: str
    code: str

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def file(self) -> str | None:
        """The path of the file the block is, if its caption names one."""
        caption = PurePosixPath(self.caption)
        if " " in self.caption or caption.is_absolute() or not caption.suffix:
            return None
        return self.caption


def _skipped(lines: list[str], index: int, marker: str) -> bool:
    """Whether the nearest non-blank line before ``lines[index]`` is the skip marker."""
    for previous in reversed(lines[:index]):
        if previous.strip():
            return previous.strip() == marker
    return False


def _dedent(body: list[str]) -> str:
    return textwrap.dedent("\n".join(body)).strip("\n") + "\n"


def rst_blocks(path: Path) -> Iterator[Block]:
    lines = path.read_text().splitlines()
    index = 0
    while index < len(lines):
        match = _RST_DIRECTIVE.match(lines[index])
        if not match:
            index += 1
            continue
        indent = len(match["indent"])
        start = index
        index += 1
        options = {}
        while index < len(lines) and (option := _RST_OPTION.match(lines[index])):
            options[option["name"]] = option["value"].strip()
            index += 1
        body: list[str] = []
        first = index
        while index < len(lines):
            line = lines[index]
            if line.strip() and len(line) - len(line.lstrip()) <= indent:
                break
            body.append(line)
            index += 1
        while body and not body[0].strip():
            body.pop(0)
            first += 1
        if body and not _skipped(lines, start, SKIP[".rst"]):
            caption = options.get("caption", "")
            yield Block(path, first + 1, match["language"], caption, _dedent(body))


def md_blocks(path: Path) -> Iterator[Block]:
    lines = path.read_text().splitlines()
    index = 0
    while index < len(lines):
        match = _MD_FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        start = index
        index += 1
        body: list[str] = []
        while index < len(lines) and lines[index].strip() != "```":
            body.append(lines[index])
            index += 1
        index += 1
        if not _skipped(lines, start, SKIP[".md"]):
            yield Block(path, start + 2, match["language"], "", _dedent(body))


def blocks(path: Path) -> list[Block]:
    return list(md_blocks(path) if path.suffix == ".md" else rst_blocks(path))


def snippets(path: Path) -> list[Block]:
    return [b for b in blocks(path) if b.language == "python" and b.file is None]


def files(path: Path) -> dict[str, str]:
    """The files the page shows, by path: the blocks captioned with it, joined in order."""
    found: dict[str, list[str]] = {}
    for block in blocks(path):
        if block.file is not None:
            found.setdefault(block.file, []).append(block.code)
    return {name: "\n\n".join(parts) for name, parts in found.items()}


@dataclass(frozen=True)
class Command:
    block: Block
    command: str
    output: tuple[str, ...]  #: the lines the page shows after it


@dataclass(frozen=True)
class File:
    block: Block
    name: str
    content: str  #: the file as it stands at this block: the blocks so far joined


def steps(path: Path) -> list[File | Command]:
    """The page's files and commands, in the order a reader meets them."""
    found: list[File | Command] = []
    written: dict[str, str] = {}
    for block in blocks(path):
        if block.file is not None:
            previous = written.get(block.file)
            written[block.file] = block.code if previous is None else f"{previous}\n\n{block.code}"
            found.append(File(block, block.file, written[block.file]))
        elif block.language == "console":
            for session in re.split(r"^(?=\$ )", block.code, flags=re.MULTILINE):
                command, *output = session.rstrip("\n").split("\n")
                if command.startswith("$ "):
                    found.append(Command(block, command[2:], tuple(output)))
    return found


def environment() -> dict[str, str]:
    """The environment of a reader's shell with this interpreter's environment active: its
    scripts (``python``, ``pip``, ``django-admin``, ``pytest``) first on ``PATH``; nothing of
    the suite's own run (its settings module, its database names)."""
    scripts = [sysconfig.get_path("scripts"), str(Path(sys.executable).parent)]
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"DJANGO_SETTINGS_MODULE", "CROSSPREFETCH_TEST_SUFFIX", "PYTHONPATH"}
        and not name.startswith("PYTEST_")
    }
    env["PATH"] = os.pathsep.join([*scripts, env.get("PATH", "")])
    return env


def run(steps: list[File | Command], directory: Path, timeout: float = 120) -> list[str]:
    """Write each file and run each command in ``directory``, as the page says, in order;
    fail at the first command that fails or does not print what the page shows. ``pip
    install`` is not run: the suite's environment has what the page installs. Returns the
    commands run."""
    ran = []
    for step in steps:
        if isinstance(step, File):
            target = directory / step.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(step.content)
            continue
        if step.command.startswith("pip install"):
            continue
        result = subprocess.run(
            step.command,
            shell=True,
            cwd=directory,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        printed = result.stdout + result.stderr
        where = f"$ {step.command} (at {step.block}) in {directory}"
        assert result.returncode == 0, f"{where} exited with {result.returncode}:\n{printed}"
        missing = _missing_output(step.output, printed.splitlines())
        assert missing is None, f"{where} did not print {missing!r}:\n{printed}"
        ran.append(step.command)
    return ran


def _missing_output(shown: tuple[str, ...], printed: list[str]) -> str | None:
    """The first line the page shows that the command did not print (in the page's order),
    or None. A line ``...`` elides lines; ``...`` inside a line stands for any text."""
    lines = iter(printed)
    for line in shown:
        if line.strip() == "...":
            continue
        text = ".*".join(re.escape(part) for part in line.strip().split("..."))
        pattern = re.compile(rf"(?<!\w){text}(?!\w)")
        if not any(pattern.search(printed_line) for printed_line in lines):
            return line
    return None
