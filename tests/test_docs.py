"""The documentation keeps up with the code: every module is on the architecture page,
every reference page is linked from the README, the commands page names every option,
links between the pages resolve, and nothing cites a document outside the repository.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from reconciler.cli import cli
from tests.support.paths import README, ROOT

PACKAGE = ROOT / "reconciler"
DOCS = ROOT / "docs"
REFERENCE = DOCS / "reference"
ARCHITECTURE = DOCS / "architecture.md"
COMMANDS = REFERENCE / "commands.md"

#: What a reader of the repository cannot follow: the contract and API notes kept outside
#: it, and issue or hole numbers. Spelled so that this file does not match itself.
OUTSIDE = re.compile(r"CONTR[A]CT|crayon-api[.]md|\b(?:issue|hole) [0-9]")

_LINK = re.compile(r"\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6} (.+?)\s*$", re.MULTILINE)


def _modules() -> list[str]:
    return sorted(path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py"))


def test_every_module_is_named_in_the_architecture_page() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")

    missing = [module for module in _modules() if f"`{module}`" not in text]

    assert missing == [], "name each module, by its path below reconciler/, in docs/architecture.md"


def test_every_named_module_exists() -> None:
    """A module renamed or removed leaves no stale row behind."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    packages = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").exists()}
    named = {
        module
        for module in re.findall(r"`((?:[a-z_]+/)?[a-z_]+\.py)`", text)
        if "/" not in module or module.split("/")[0] in packages
    }

    assert sorted(named - set(_modules())) == []


def test_every_reference_page_is_linked_from_the_readme() -> None:
    readme = README.read_text(encoding="utf-8")
    pages = sorted(REFERENCE.glob("*.md"))

    assert pages, "docs/reference/ holds the reference pages"
    unlinked = [page.name for page in pages if f"](docs/reference/{page.name})" not in readme]
    assert unlinked == []


def _doc_pages() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def _slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces
    as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(heading) for heading in _HEADING.findall(page.read_text(encoding="utf-8"))}


@pytest.mark.parametrize("page", _doc_pages(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_links_between_the_pages_resolve(page: Path) -> None:
    broken = []
    for target in _LINK.findall(page.read_text(encoding="utf-8")):
        if "://" in target or target.startswith("mailto:"):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{target}: no such heading")
    assert broken == []


def _commands(
    group: click.Group, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, click.Command]]:
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None
        yield " ".join((*path, name)), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


def _section(text: str, command: str) -> str:
    """The part of the commands page under the heading that names ``command``."""
    found = re.search(rf"^(#+) `reconciler {re.escape(command)}`\n", text, re.MULTILINE)
    assert found is not None, f"docs/reference/commands.md has no heading for {command}"
    rest = text[found.end() :]
    following = re.search(r"^#+ ", rest, re.MULTILINE)
    return rest[: following.start()] if following else rest


@pytest.mark.parametrize(("name", "command"), list(_commands(cli)), ids=lambda v: str(v))
def test_the_commands_page_names_every_option(name: str, command: click.Command) -> None:
    section = _section(COMMANDS.read_text(encoding="utf-8"), name)
    options = [
        flag
        for param in command.params
        if isinstance(param, click.Option)
        for flag in (*param.opts, *param.secondary_opts)
        if flag.startswith("--") and flag != "--help"
    ]

    assert [flag for flag in options if not _names(section, flag)] == []


def _names(text: str, flag: str) -> bool:
    """Whether ``text`` names ``flag`` (``--state``, not ``--state-file``)."""
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text) is not None


def test_the_commands_page_names_the_global_options() -> None:
    text = COMMANDS.read_text(encoding="utf-8")
    flags = [flag for param in cli.params for flag in getattr(param, "opts", ())]

    assert [flag for flag in flags if not _names(text, flag)] == []


def _cited() -> Iterator[str]:
    for folder in ("reconciler", "tests", "docs"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix not in (".py", ".md") or not path.is_file():
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if OUTSIDE.search(line):
                    yield f"{path.relative_to(ROOT)}:{number}: {line.strip()}"


def test_nothing_cites_a_document_outside_the_repository() -> None:
    assert list(_cited()) == []
