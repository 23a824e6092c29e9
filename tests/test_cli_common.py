"""What every command shares (``reconciler.cli.common``): the state options.

Every command but ``init`` refuses a missing state, naming it as the user gave it;
``--workspace`` needs a database; ``--lock-timeout`` waits for another run's lock,
and reads never need it; a corrupt state is refused by name, never overwritten.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.support.cli import assert_no_traceback, init, last_line, run
from tests.support.declarations import declare, purchase
from tests.support.processes import hold_the_lock
from tests.support.states import record, state_json

# --- a missing state ---------------------------------------------------------------------

MISSING = "error: no state at {path}; run 'reconciler init' to start an empty one\n"


#: Every command but init, by name; "{decl}" stands for declarations declaring acme/basic.
COMMANDS_BUT_INIT: dict[str, list[str]] = {
    "plan": ["plan", "{decl}"],
    "apply": ["apply", "{decl}", "--auto-approve"],
    "show": ["show"],
    "state-list": ["state", "list"],
    "state-show": ["state", "show", "acme/basic"],
    "state-rm": ["state", "rm", "acme/basic", "--yes"],
    "state-import": [
        "state",
        "import",
        "acme/basic",
        "--quantity",
        "1",
        "--yes",
        "--config",
        "{decl}",
    ],
    "state-resolve": ["state", "resolve", "acme/basic", "--purchased"],
    "state-pull": ["state", "pull"],
}


@pytest.mark.parametrize("command", COMMANDS_BUT_INIT.values(), ids=COMMANDS_BUT_INIT.keys())
def test_every_command_but_init_refuses_a_missing_state_and_creates_nothing(
    decl: Path, nowhere: Path, command: list[str]
) -> None:
    # The declarations are valid and declare the address, so only the state can be refused.
    declare(decl, purchase("acme/basic", 1))
    args = [a.format(decl=decl) for a in command]

    result = run(*args, "--state", str(nowhere))

    assert result.exit_code == 1, args
    assert result.stderr == MISSING.format(path=nowhere), args
    assert result.stdout == "", args
    assert list(nowhere.parent.iterdir()) == [], args  # no state, no lock file, no journal


def test_the_refusal_names_the_state_as_the_user_gave_it(
    decl: Path, nowhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    declare(decl, purchase("acme/basic", 1))
    monkeypatch.chdir(nowhere.parent)

    for command in COMMANDS_BUT_INIT.values():
        args = [a.format(decl=decl) for a in command]
        result = run(*args, "--state", nowhere.name)

        assert result.exit_code == 1, args
        assert result.stderr == MISSING.format(path=nowhere.name), args
    assert list(nowhere.parent.iterdir()) == []


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["init"], id="init"),
        pytest.param(["plan", "{decl}"], id="plan"),
        pytest.param(["apply", "{decl}", "--auto-approve"], id="apply"),
        pytest.param(["show"], id="show"),
        pytest.param(["state", "list"], id="state-list"),
        pytest.param(["state", "pull"], id="state-pull"),
        pytest.param(["state", "rm", "acme/basic", "--yes"], id="state-rm"),
    ],
)
@pytest.mark.parametrize("exists", [False, True], ids=["missing", "existing"])
def test_workspace_with_a_state_file_is_a_usage_error(
    decl: Path, nowhere: Path, args: list[str], exists: bool
) -> None:
    declare(decl, purchase("acme/basic", 1))
    if exists:
        init(nowhere)
        record(nowhere, "acme/basic", 1)
    listing = {p.name: p.read_bytes() for p in nowhere.parent.iterdir()}

    result = run(
        *(a.format(decl=decl) for a in args), "--state", str(nowhere), "--workspace", "foo"
    )

    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert "--workspace needs a postgresql:// state" in (result.stderr)
    assert_no_traceback(result)
    assert {p.name: p.read_bytes() for p in nowhere.parent.iterdir()} == listing


# --- --lock-timeout ------------------------------------------------------------------------


@pytest.mark.slow  # another process holds the lock
def test_apply_with_lock_timeout_waits_for_the_holder_then_runs(decl: Path, state: Path) -> None:
    # The holder records acme/basic while it holds the lock: an apply that waited plans
    # from the state the holder left, so it has nothing to buy (and needs no API).
    declare(decl, purchase("acme/basic", 4))
    proc = hold_the_lock(state, 0.5, "import")
    try:
        started = time.monotonic()
        result = run(
            "apply", str(decl), "--auto-approve", "--lock-timeout", "2s", "--state", str(state),
            "--refresh=false",
        )  # fmt: skip
        waited = time.monotonic() - started
    finally:
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err

    assert result.exit_code == 0, result.output
    assert "locked" not in result.stderr
    assert 0.3 <= waited < 2.0
    assert result.stdout.startswith("No changes.")
    assert state_json(state)["purchases"]["acme/basic"]["quantity"] == 4


@pytest.mark.slow  # another process holds the lock
def test_apply_without_lock_timeout_fails_at_once_naming_the_holder(
    decl: Path, state: Path
) -> None:
    declare(decl, purchase("acme/basic", 4))
    proc = hold_the_lock(state, 30, "import")
    try:
        before = state.read_bytes()
        started = time.monotonic()
        result = run("apply", str(decl), "--auto-approve", "--state", str(state))
        elapsed = time.monotonic() - started
        assert state.read_bytes() == before
    finally:
        proc.kill()
        proc.communicate(timeout=30)

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(
        f"error: state is locked by pid {proc.pid} on host {socket.gethostname()} "
        "(command 'reconciler apply', since "
    )
    assert result.stderr.endswith(
        ": another run is in progress; wait for it to finish, or give --lock-timeout DURATION "
        "(e.g. 10m) to wait for it\n"
    )
    assert elapsed < 1


@pytest.mark.slow  # another process holds the lock
def test_lock_timeout_gives_up_naming_the_holder(decl: Path, state: Path) -> None:
    declare(decl, purchase("acme/basic", 4))
    proc = hold_the_lock(state, 30, "import")
    try:
        started = time.monotonic()
        result = run(
            "apply", str(decl), "--auto-approve", "--lock-timeout", "300ms", "--state", str(state)
        )
        elapsed = time.monotonic() - started
    finally:
        proc.kill()
        proc.communicate(timeout=30)

    assert result.exit_code == 1
    assert f"error: state is locked by pid {proc.pid} " in result.stderr
    assert 0.3 <= elapsed < 2.0


@pytest.mark.parametrize("value", ["soon", "5 minutes", "-1s", ""])
def test_an_invalid_lock_timeout_is_a_usage_error(decl: Path, state: Path, value: str) -> None:
    declare(decl, purchase("acme/basic", 4))
    before = state.read_bytes()

    result = run(
        "apply", str(decl), "--auto-approve", "--lock-timeout", value, "--state", str(state)
    )

    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert (
        f"Invalid value for '--lock-timeout': {value!r} is not a duration like 30s, 5m or 1h"
        in (result.stderr)
    )
    assert_no_traceback(result)
    assert state.read_bytes() == before
    assert sorted(p.name for p in state.parent.iterdir()) == sorted([state.name, decl.name])


# --- a locked or corrupt state -------------------------------------------------------------


def test_reads_work_while_the_lock_is_held(held: Path, decl: Path) -> None:
    declare(decl, purchase("acme/basic", 10))

    plan = run("plan", str(decl), "--state", str(held))
    show = run("show", "--state", str(held))
    listed = run("state", "list", "--state", str(held))
    shown = run("state", "show", "acme/basic", "--state", str(held))

    assert plan.exit_code == 1  # the pending entry, not the lock
    assert "locked" not in plan.stderr
    assert last_line(plan.stdout).endswith("1 pending.")
    assert show.exit_code == 0
    assert "acme/basic" in show.stdout
    assert listed.exit_code == 0
    assert listed.stdout.splitlines() == ["acme/basic", "? acme/first"]
    assert shown.exit_code == 0


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"this is not json {", id="not-json"),
        pytest.param(b'{"version": 99, "lineage": "x", "serial": 1}\n', id="newer-version"),
        pytest.param(b"\xff\xfe garbage", id="not-utf8"),
    ],
)
def test_a_corrupt_state_is_an_error_naming_the_file_and_never_overwritten(
    decl: Path, state: Path, content: bytes
) -> None:
    declare(decl, purchase("acme/basic", 10))
    state.write_bytes(content)

    commands = [
        ["plan", str(decl)],
        ["plan", str(decl), "--json", "--detailed-exitcode"],
        ["show"],
        ["state", "list"],
        ["state", "rm", "acme/basic"],
        ["state", "import", "acme/basic", "--quantity", "1", "--config", str(decl)],
        ["state", "resolve", "acme/basic", "--not-purchased"],
    ]
    for args in commands:
        result = run(*args, "--state", str(state))

        assert result.exit_code == 1, args
        assert str(state) in result.stderr, args
        assert result.stdout == "", args
        assert_no_traceback(result)
        assert state.read_bytes() == content, args
