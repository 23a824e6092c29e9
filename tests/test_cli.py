"""The ``reconciler`` command group (``reconciler.cli``): usage errors, help, version,
Ctrl-C, and a start-up that imports only what the command needs.

The start-up tests read ``python -X importtime`` of a fresh interpreter: the quick
commands (``--help``, ``validate``, ``plan`` without ``--verify`` or ``--refresh``)
make no HTTP call, read no saved plan and open no database, so they must not import
``requests``, ``jsonschema``, ``psycopg`` or the simulator.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from reconciler.cli import COMMANDS, cli
from reconciler.state import JsonFileStateStore
from tests.support.cli import assert_no_traceback, run
from tests.support.declarations import declare, purchase
from tests.support.fixtures import LockHolder
from tests.support.paths import ROOT
from tests.support.processes import TIMEOUT, python_env
from tests.support.states import lock_file


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["plan", "--bogus"], id="unknown-option"),
        pytest.param(["frobnicate"], id="unknown-command"),
        pytest.param(["state", "frobnicate"], id="unknown-state-command"),
        pytest.param(["state", "show"], id="state-show-missing-address"),
        pytest.param(["state", "rm"], id="state-rm-missing-address"),
        pytest.param(["state", "import", "a/b"], id="state-import-missing-quantity"),
        pytest.param(["state", "import", "a/b", "--quantity", "0"], id="quantity-zero"),
        pytest.param(["state", "import", "a/b", "--quantity", "x"], id="quantity-not-int"),
        pytest.param(["state", "resolve", "a/b"], id="resolve-without-outcome"),
        pytest.param(["plan", "--format", "yaml"], id="unknown-format"),
        pytest.param(["plan", "--json", "--format", "text"], id="json-and-format-text"),
    ],
)
def test_usage_errors_exit_1_never_2(tmp_path: Path, args: list[str]) -> None:
    state = tmp_path / "s.json"
    with_state = [*args, "--state", str(state)] if args[0] in ("plan", "state") else args

    result = run(*with_state)

    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert "rror" in result.stderr
    assert_no_traceback(result)
    assert not state.exists()


# --- help ------------------------------------------------------------------------------------


def _command_paths(
    command: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _command_paths(sub, (*path, name))


COMMAND_TREE = list(_command_paths(cli))


def test_the_command_tree_has_the_documented_commands() -> None:
    paths = {" ".join(path) for path, _ in COMMAND_TREE}

    assert {
        "init",
        "validate",
        "plan",
        "apply",
        "show",
        "state list",
        "state show",
        "state rm",
        "state import",
        "state resolve",
        "state pull",
        "simulator",
        "demo",
    } <= paths


@pytest.mark.parametrize(
    ("path", "command"), COMMAND_TREE, ids=[" ".join(p) or "reconciler" for p, _ in COMMAND_TREE]
)
def test_every_command_has_help(path: tuple[str, ...], command: click.Command) -> None:
    for flag in ("--help", "-h"):
        result = run(*path, flag)

        assert result.exit_code == 0, result.output
        assert result.stdout.startswith(f"Usage: reconciler {' '.join(path)}".rstrip())
        assert command.help, path
        description = command.help.strip().splitlines()[0]
        assert description in result.stdout
    for param in command.params:
        if isinstance(param, click.Option) and param.name != "help":
            assert param.help, f"{' '.join(path)} {param.opts} has no help"
            assert param.opts[0] in result.stdout


def test_version() -> None:
    result = run("--version")

    assert result.exit_code == 0
    assert result.stdout.startswith("reconciler, version ")


# --- start-up ----------------------------------------------------------------------------

HEAVY = ("requests", "jsonschema", "psycopg", "reconciler.simulator")


def imported_modules(*args: str) -> set[str]:
    """The modules ``python -X importtime -m reconciler ARGS`` imports."""
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
@pytest.mark.slow  # fresh interpreters
def test_quick_commands_import_no_heavy_library(args: tuple[str, ...]) -> None:
    modules = imported_modules(*args)
    assert "reconciler" in modules  # the probe itself works
    assert not {m for m in modules for heavy in HEAVY if m == heavy or m.startswith(heavy + ".")}


@pytest.mark.slow  # fresh interpreters
def test_help_imports_no_command_module() -> None:
    modules = imported_modules("--help")
    assert not {m for m in modules if m.startswith(("reconciler.cli.", "reconciler.state"))}


@pytest.mark.slow  # fresh interpreters
def test_plan_without_verify_imports_no_heavy_library(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    imported_modules("init", "--state", str(state))
    modules = imported_modules("plan", "examples/customers", "--state", str(state))
    assert not {m for m in modules for heavy in HEAVY if m == heavy or m.startswith(heavy + ".")}
    # Nor the API's records or the reading back of Cloud-iQ (without credentials plan is
    # offline), nor the pull-request comment: only what a text plan uses. The API's
    # settings are read to learn that no credentials are set.
    unused = ("reconciler.api.", "reconciler.observe.", "reconciler.render.markdown")
    loaded = {m for m in modules if m.startswith(unused)}
    assert loaded <= {"reconciler.api.settings"}


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


# --- Ctrl-C ------------------------------------------------------------------------------


@pytest.mark.slow  # another process holds the lock; the interrupted apply is a process too
def test_ctrl_c_while_waiting_for_the_lock_exits_130_without_a_traceback(
    file_store: JsonFileStateStore, state_path: Path, tmp_path: Path, hold_lock: LockHolder
) -> None:
    hold_lock(state_path)
    decl = declare(tmp_path / "decl", purchase("acme/a", 1))
    apply = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", str(decl), "--state", str(state_path),
         "--auto-approve", "--lock-timeout", "60s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=python_env(),
    )  # fmt: skip
    # It waits once it has the lock file open.
    deadline = time.monotonic() + TIMEOUT
    fds = Path(f"/proc/{apply.pid}/fd")
    while not any(os.path.realpath(fd) == str(lock_file(state_path)) for fd in _links(fds)):
        assert apply.poll() is None, apply.communicate()
        assert time.monotonic() < deadline, "apply never opened the lock file"
        time.sleep(0.02)
    apply.send_signal(signal.SIGINT)
    out, err = apply.communicate(timeout=TIMEOUT)
    assert apply.returncode == 130, err
    assert err.strip() == "Interrupted."
    assert "Traceback" not in out + err


def _links(directory: Path) -> list[str]:
    try:
        return [os.readlink(entry) for entry in directory.iterdir()]
    except OSError:
        return []
