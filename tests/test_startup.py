"""Start-up: the quick commands do not pay for the libraries they never use.

``reconciler --help``, ``validate`` and ``plan`` without ``--verify`` or
``--refresh`` make no HTTP call, read no saved plan and open no database, so
they must not import ``requests``, ``jsonschema``, ``psycopg`` or the
simulator. A user notices this as speed; it is asserted here without timing,
from ``python -X importtime`` in a fresh interpreter.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
import types
from pathlib import Path

import click
import pytest

from reconciler import api, observe, render
from reconciler.cli import COMMANDS, cli

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("requests", "jsonschema", "psycopg", "reconciler.simulator")


def imported_modules(*args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "reconciler", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return {
        line.rpartition("|")[2].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }


@pytest.mark.parametrize(
    "args",
    [("--help",), ("validate", "examples/customers"), ("plan", "--help")],
    ids=["help", "validate", "plan-help"],
)
def test_quick_commands_import_no_heavy_library(args: tuple[str, ...]) -> None:
    modules = imported_modules(*args)
    assert "reconciler" in modules  # the probe itself works
    assert not {m for m in modules for heavy in HEAVY if m == heavy or m.startswith(heavy + ".")}


def test_help_imports_no_command_module() -> None:
    modules = imported_modules("--help")
    assert not {m for m in modules if m.startswith(("reconciler.cli.", "reconciler.state"))}


def test_plan_without_verify_imports_no_heavy_library(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    imported_modules("init", "--state", str(state))
    modules = imported_modules("plan", "examples/customers", "--state", str(state))
    assert not {m for m in modules for heavy in HEAVY if m == heavy or m.startswith(heavy + ".")}
    # Nor the API's records or the reading back of Cloud-iQ (--verify, --refresh), nor
    # the pull-request comment: only what a text plan uses.
    unused = ("reconciler.api.", "reconciler.observe.", "reconciler.render.markdown")
    assert not {m for m in modules if m.startswith(unused)}


@pytest.mark.parametrize("package", [api, observe, render])
def test_lazy_packages_export_exactly_what_they_import_for_type_checkers(
    package: types.ModuleType,
) -> None:
    # The names under TYPE_CHECKING (what mypy sees) and the names read on demand.
    tree = ast.parse(Path(str(package.__file__)).read_text(encoding="utf-8"))
    checked = {
        alias.asname or alias.name: f"{node.module}.{alias.name}"
        for block in tree.body
        if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert sorted(checked) == sorted(package.__all__)
    # A name that is also a module's would turn into the module once that is imported.
    modules = {info.name for info in pkgutil.iter_modules(package.__path__)}
    assert not modules & set(checked)
    for name, origin in checked.items():
        module, _, attribute = origin.rpartition(".")
        assert getattr(package, name) is getattr(importlib.import_module(module), attribute)
    assert set(package.__all__) <= set(dir(package))
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        package.nothing_here  # noqa: B018


@pytest.mark.parametrize("width", [40, 80, 120])
def test_the_help_listing_is_the_commands_own(width: int) -> None:
    # The lazy listing against click's own, built from the loaded commands.
    ctx = click.Context(cli, info_name="reconciler", terminal_width=width)
    lazy, eager = click.HelpFormatter(width=width), click.HelpFormatter(width=width)
    cli.format_commands(ctx, lazy)
    click.Group.format_commands(cli, ctx, eager)
    assert lazy.getvalue() == eager.getvalue()
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None
        assert command.name == name
        assert not command.hidden
        assert not command.deprecated
        assert command.short_help is None
        assert (command.help or "").partition("\n\n")[0] == COMMANDS[name][2]
