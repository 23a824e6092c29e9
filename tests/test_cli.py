"""Tests of the commands that never call the API: plan, show, state, usage and colour.

Every test drives the real click command tree through ``CliRunner`` with its own
``--state`` under ``tmp_path``. States are created as a user creates them, with
``reconciler init``, and filled through ``JsonFileStateStore``'s writer;
declarations are small YAML files, and assertions are about what a user (or a CI
script) sees: stdout, stderr, exit codes and the files left behind.
"""

from __future__ import annotations

import json
import os
import pty
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest
import yaml
from click.testing import CliRunner, Result

import reconciler
from reconciler.cli import cli
from reconciler.model import CheckoutRecord, Identity, PendingOperation
from reconciler.state import JsonFileStateStore

ROOT = Path(__file__).resolve().parents[1]
PLAN_SCHEMA = json.loads((ROOT / "schemas" / "plan.schema.json").read_text(encoding="utf-8"))
ANSI = re.compile(r"\x1b\[[0-9;]*m")
T0 = "2026-11-26T19:00:00Z"
TENANT = 111111
BASIC = Identity(
    customer_tenant_id=TENANT,
    product_id="CFQ7TTC0LF8R",
    sku_id="0010",
    billing_cycle="monthly",
    term_duration="P1M",
)


# --- helpers -------------------------------------------------------------------


def run(*args: str, env: dict[str, str] | None = None, color: bool = False) -> Result:
    """Invoke the CLI; an exception that escaped the error boundary fails the test."""
    result = CliRunner().invoke(cli, list(args), env=env, color=color, prog_name="reconciler")
    if isinstance(result.exception, Exception):
        import traceback

        trace = "".join(traceback.format_exception(result.exception))
        pytest.fail(f"reconciler {' '.join(args)} raised instead of exiting:\n{trace}")
    return result


def purchase(name: str, quantity: int, **fields: Any) -> dict[str, Any]:
    """A declared purchase of BASIC unless ``fields`` override identity fields."""
    return {
        "name": name,
        "customerTenantId": TENANT,
        "productId": "CFQ7TTC0LF8R",
        "skuId": "0010",
        "quantity": quantity,
        "billingCycle": "monthly",
        "termDuration": "P1M",
        **fields,
    }


def declare(directory: Path, *purchases: dict[str, Any], name: str = "purchases.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(
        yaml.safe_dump({"version": 1, "purchases": list(purchases)}, sort_keys=False),
        encoding="utf-8",
    )
    return path


def init(state: Path) -> Path:
    """Create an empty state as a user does: ``reconciler init --state STATE``."""
    result = run("init", "--state", str(state))
    assert result.exit_code == 0, result.output
    return state


def record(
    state: Path, address: str, quantity: int, identity: Identity = BASIC, order: str | None = None
) -> None:
    """Record a checkout that got its 204, as apply would."""
    record = CheckoutRecord(order or f"order-{address}-{quantity}", quantity, T0)
    with JsonFileStateStore(state).lock("test") as writer:
        writer.record_checkout(address, identity, record)


def add_pending(
    state: Path, address: str, quantity: int, order: str, identity: Identity = BASIC
) -> None:
    op = PendingOperation(address, identity, order, quantity, T0)
    with JsonFileStateStore(state).lock("test") as writer:
        writer.add_pending(op)


def state_import(address: str, quantity: int, config: Path, state: Path) -> Result:
    return run(
        "state", "import", address, "--quantity", str(quantity), "--config", str(config),
        "--state", str(state), "--yes",
    )  # fmt: skip


def state_json(state: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(state.read_text(encoding="utf-8"))
    return data


def last_line(text: str) -> str:
    return text.rstrip("\n").splitlines()[-1]


def block(text: str, address: str) -> list[str]:
    """The lines of the plan block for ``address``: its head line and indented details."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(rf"^  \S {re.escape(address)}  ", line):
            details = []
            for following in lines[i + 1 :]:
                if not following.startswith("      "):
                    break
                details.append(following.strip())
            return [line, *details]
    raise AssertionError(f"no plan block for {address} in:\n{text}")


def assert_no_traceback(result: Result) -> None:
    assert "Traceback" not in result.output
    assert "Traceback" not in result.stderr


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """An empty state created by ``reconciler init``."""
    return init(tmp_path / "reconciler.state.json")


@pytest.fixture
def decl(tmp_path: Path) -> Path:
    return tmp_path / "decl"


@pytest.fixture
def matching(decl: Path, state: Path) -> Path:
    """2 purchases (+32 seats), 1 increase (+6 seats), 1 noop: the contract's example line."""
    record(state, "acme/grow", 10)
    record(state, "acme/same", 4)
    declare(
        decl,
        purchase("acme/new-a", 20),
        purchase("acme/new-b", 12, productId="CFQ7TTC0LH18", skuId="0001"),
        purchase("acme/grow", 16),
        purchase("acme/same", 4),
    )
    return decl


@pytest.fixture
def every_action(decl: Path, state: Path) -> Path:
    """One address per action: purchase, increase, noop, two conflicts, pending, orphan."""
    record(state, "b/grow", 10)
    record(state, "c/shrink", 10)
    record(state, "d/moved", 5)
    # Its own sku: with a/new's identity, a/new would be a rename conflict (CONTRACT 10).
    record(state, "f/gone", 3, Identity(TENANT, "CFQ7TTC0LF8R", "0001", "monthly", "P1M"))
    record(state, "g/same", 7)
    add_pending(state, "e/pending", 5, "order-pending-e")
    declare(
        decl,
        purchase("a/new", 20),
        purchase("b/grow", 16),
        purchase("c/shrink", 4),
        purchase("d/moved", 5, customerTenantId=222222),
        purchase("e/pending", 5),
        purchase("g/same", 7),
    )
    return decl


# --- plan: text -------------------------------------------------------------------


def test_plan_text_ends_with_the_contract_summary_line(matching: Path, state: Path) -> None:
    result = run("plan", str(matching), "--state", str(state))

    assert result.exit_code == 0, result.output
    assert last_line(result.stdout) == (
        "Plan: 2 to purchase (+32 seats), 1 to increase (+6 seats), 0 conflicts, 0 pending."
    )
    assert "1 unchanged." in result.stdout.splitlines()
    assert result.stderr == ""


def test_plan_text_shows_a_block_per_change_with_symbol_seats_and_identity(
    matching: Path, state: Path
) -> None:
    out = run("plan", str(matching), "--state", str(state)).stdout

    new_a = block(out, "acme/new-a")
    assert new_a[0].startswith("  + acme/new-a  ")
    assert "purchase, 0 -> 20 seats (+20)" in new_a[0]
    assert new_a[1] == "tenant 111111, CFQ7TTC0LF8R:0010, monthly P1M subscription"
    new_b = block(out, "acme/new-b")
    assert "0 -> 12 seats (+12)" in new_b[0]
    assert "CFQ7TTC0LH18:0001" in new_b[1]
    grow = block(out, "acme/grow")
    assert grow[0].startswith("  ~ acme/grow  ")
    assert "increase, 10 -> 16 seats (+6)" in grow[0]
    # Blocks come in address order.
    heads = [line.split()[1] for line in out.splitlines() if re.match(r"^  \S \S", line)]
    assert heads == ["acme/grow", "acme/new-a", "acme/new-b"]


def test_plan_text_counts_noops_without_listing_them(matching: Path, state: Path) -> None:
    out = run("plan", str(matching), "--state", str(state)).stdout

    assert "acme/same" not in out
    assert "1 unchanged." in out


def test_plan_text_shows_conflicts_pending_and_orphans_with_their_reasons(
    every_action: Path, state: Path
) -> None:
    result = run("plan", str(every_action), "--state", str(state))
    out = result.stdout

    shrink = block(out, "c/shrink")
    assert shrink[0].startswith("  ! c/shrink  ")
    assert "conflict, 10 -> 4 seats" in shrink[0]
    assert any("decrease" in line and "10" in line and "4" in line for line in shrink[1:])
    moved = block(out, "d/moved")
    assert moved[0].startswith("  ! d/moved  ")
    assert "tenant 222222" in moved[1]
    assert any(
        "identity changed" in line and "customerTenantId" in line and "222222" in line
        for line in moved[1:]
    )
    pending = block(out, "e/pending")
    assert pending[0].startswith("  ? e/pending  ")
    assert any("order-pending-e" in line and "unknown" in line for line in pending[1:])
    gone = block(out, "f/gone")
    assert gone[0].startswith("  - f/gone  ")
    assert gone[0] == "  - f/gone  orphan, 3 seats, no longer declared (not cancelled)"
    assert "g/same" not in out
    assert "1 unchanged." in out
    assert last_line(out) == (
        "Plan: 1 to purchase (+20 seats), 1 to increase (+6 seats), 2 conflicts, 1 pending, "
        "1 orphan."
    )
    # The whole plan was printed, then the refusal.
    assert result.exit_code == 1
    assert "conflict" in result.stderr
    assert "pending" in result.stderr


def test_plan_with_nothing_to_do_says_no_changes(decl: Path, state: Path) -> None:
    record(state, "acme/same", 4)
    declare(decl, purchase("acme/same", 4))

    result = run("plan", str(decl), "--state", str(state), "--detailed-exitcode")

    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "No changes. Declared purchases match the state."
    assert "1 unchanged." in lines
    assert last_line(result.stdout) == (
        "Plan: 0 to purchase (+0 seats), 0 to increase (+0 seats), 0 conflicts, 0 pending."
    )


def test_plan_with_no_declarations_and_an_empty_state_says_no_changes(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run("plan", str(empty), "--state", str(init(tmp_path / "s.json")))

    assert result.exit_code == 0, result.output
    assert "No changes. Declared purchases match the state." in result.stdout


def test_plan_never_writes_the_state(matching: Path, state: Path) -> None:
    before = state.read_bytes()
    listing = sorted(state.parent.iterdir())
    fresh = state.with_name("fresh.json")

    assert run("plan", str(matching), "--state", str(state)).exit_code == 0
    # Nor creates one: a missing state is refused (CONTRACT section 8).
    assert run("plan", str(matching), "--state", str(fresh)).exit_code == 1

    assert state.read_bytes() == before
    assert not fresh.exists()
    assert sorted(state.parent.iterdir()) == listing  # no lock file, no journal


def test_plan_with_pending_names_the_state_resolve_commands(
    every_action: Path, state: Path
) -> None:
    result = run("plan", str(every_action), "--state", str(state))

    assert result.exit_code == 1
    assert "reconciler state resolve e/pending" in result.output


# --- colour -------------------------------------------------------------------


def test_plan_has_no_colour_when_not_a_tty(every_action: Path, state: Path) -> None:
    # color=True: the runner would keep escape codes if the command emitted any.
    result = run("plan", str(every_action), "--state", str(state), color=True)

    assert "+ a/new" in result.stdout
    assert not ANSI.search(result.output)


def _run_on_tty(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run ``python -m reconciler`` with stdout on a pseudo-terminal."""
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", *args],
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=ROOT,
    )
    os.close(secondary)
    chunks = []
    while True:
        try:
            data = os.read(primary, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(primary)
    return proc.wait(timeout=60), b"".join(chunks).decode("utf-8")


@pytest.fixture
def tty_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def test_plan_is_coloured_on_a_tty(
    every_action: Path, state: Path, tty_env: dict[str, str]
) -> None:
    code, out = _run_on_tty(["plan", str(every_action), "--state", str(state)], tty_env)

    assert code == 1  # conflicts and pending
    assert "\x1b[32m  + a/new\x1b[0m" in out
    assert ANSI.search(out)


def test_no_color_env_turns_colour_off_on_a_tty(
    every_action: Path, state: Path, tty_env: dict[str, str]
) -> None:
    _, out = _run_on_tty(
        ["plan", str(every_action), "--state", str(state)], {**tty_env, "NO_COLOR": "1"}
    )

    assert "  + a/new  purchase" in out
    assert not ANSI.search(out)


def test_no_color_option_turns_colour_off_on_a_tty(
    every_action: Path, state: Path, tty_env: dict[str, str]
) -> None:
    _, out = _run_on_tty(["--no-color", "plan", str(every_action), "--state", str(state)], tty_env)

    assert "  + a/new  purchase" in out
    assert not ANSI.search(out)


def test_no_color_option_is_accepted_after_the_command(matching: Path, state: Path) -> None:
    result = run("plan", str(matching), "--state", str(state), "--no-color")

    assert result.exit_code == 0, result.output
    assert not ANSI.search(result.output)


# --- plan --json ----------------------------------------------------------------


def test_plan_json_is_alone_on_stdout_and_matches_the_schema(
    every_action: Path, state: Path
) -> None:
    result = run("plan", str(every_action), "--state", str(state), "--json")

    data = json.loads(result.stdout)
    jsonschema.Draft202012Validator(PLAN_SCHEMA).validate(data)
    assert data["format_version"] == 1
    # Warnings and errors go to stderr, never into the JSON.
    assert "f/gone" in result.stderr
    assert "warning" in result.stderr
    assert result.exit_code == 1


def test_plan_json_changes_are_sorted_with_before_after_delta(
    every_action: Path, state: Path
) -> None:
    data = json.loads(run("plan", str(every_action), "--state", str(state), "--json").stdout)

    rows = [
        (c["address"], c["action"], c["before"], c["after"], c["delta"]) for c in data["changes"]
    ]
    assert rows == [
        ("a/new", "purchase", 0, 20, 20),
        ("b/grow", "increase", 10, 16, 6),
        ("c/shrink", "conflict", 10, 4, 0),
        ("d/moved", "conflict", 5, 5, 0),
        ("e/pending", "pending", 0, 5, 0),
        ("f/gone", "orphan", 3, None, 0),
        ("g/same", "noop", 7, 7, 0),
    ]
    by_address = {c["address"]: c for c in data["changes"]}
    assert by_address["d/moved"]["identity"]["customerTenantId"] == 222222
    assert "customerTenantId" in by_address["d/moved"]["reason"]
    assert data["summary"] == {
        "purchase": 1,
        "purchase_seats": 20,
        "increase": 1,
        "increase_seats": 6,
        "noop": 1,
        "conflict": 2,
        "orphan": 1,
        "pending": 1,
        "seats": 26,
    }
    assert data["lineage"] == state_json(state)["lineage"]
    assert data["serial"] == state_json(state)["serial"]


def test_plan_format_json_is_the_same_as_json(matching: Path, state: Path) -> None:
    by_flag = run("plan", str(matching), "--state", str(state), "--json")
    by_format = run("plan", str(matching), "--state", str(state), "--format", "json")
    both = run("plan", str(matching), "--state", str(state), "--json", "--format", "json")

    assert by_flag.exit_code == by_format.exit_code == both.exit_code == 0
    assert by_flag.stdout == by_format.stdout == both.stdout
    assert json.loads(by_flag.stdout)["summary"]["seats"] == 38


@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_plan_json_with_another_format_is_a_usage_error(
    matching: Path, state: Path, fmt: str
) -> None:
    result = run("plan", str(matching), "--state", str(state), "--json", "--format", fmt)

    assert result.exit_code == 1
    assert result.stdout == ""
    assert "--json" in result.stderr


def test_plan_json_orphans_only_warns_on_stderr(decl: Path, state: Path) -> None:
    record(state, "old/forgotten", 3)
    declare(decl)  # no purchases left

    result = run("plan", str(decl), "--state", str(state), "--json", "--detailed-exitcode")

    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert [c["action"] for c in data["changes"]] == ["orphan"]
    assert "old/forgotten" in result.stderr


# --- plan --format markdown -------------------------------------------------------


def _md_rows(markdown: str) -> list[str]:
    """The table rows of a plan comment (the header row names no address)."""
    return [line for line in markdown.splitlines() if line.startswith("| ") and "`" in line]


def _md_address(row: str) -> str:
    found = re.search(r"`([^`]+)`", row)
    assert found is not None, row
    return found.group(1)


def test_plan_markdown_starts_with_the_marker_the_verdict_then_a_table(
    matching: Path, state: Path
) -> None:
    result = run("plan", str(matching), "--state", str(state), "--format", "markdown")

    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[:3] == ["<!-- crayon-reconciler:plan -->", "", "### ✅ Plan: **ready to apply**"]
    summary = "Plan: 2 to purchase (+32 seats), 1 to increase (+6 seats), 0 conflicts, 0 pending."
    assert summary in lines
    assert "#### Customer tenant 111111" in lines
    table = [line for line in lines if line.startswith("|")]
    assert table[0] == (
        "| | address | product | type | term | seats | unit price | total | action |"
    )
    assert re.fullmatch(r"\|(---\|)+", table[1])
    rows = _md_rows(result.stdout)
    assert [_md_address(row) for row in rows] == ["acme/grow", "acme/new-a", "acme/new-b"]
    # Without a catalogue: codes, and prices said to be unknown, never 0.
    assert rows[1] == (
        "| + | `acme/new-a` | `CFQ7TTC0LF8R:0010` | subscription | P1M, monthly "
        "| 0 -> 20 seats (+20) | price unknown | price unknown | purchase |"
    )
    assert "0.00" not in result.stdout
    assert "1 unchanged." in lines
    assert "<details><summary>Full plan (text)</summary>" in lines
    lineage = state_json(state)["lineage"]
    digest = json.loads(run("plan", str(matching), "--state", str(state), "--json").stdout)[
        "declarations_digest"
    ]
    assert lines[-1] == (
        f"<sub>declarations `{digest}` · state lineage `{lineage}` serial 2 · "
        f"crayon-reconciler {reconciler.__version__}</sub>"
    )


def test_plan_markdown_lists_conflicts_and_pending_before_purchases(
    decl: Path, state: Path
) -> None:
    record(state, "z/conflict", 9)
    add_pending(state, "y/pending", 2, "order-y")
    declare(
        decl,
        purchase("a/buy", 1),
        purchase("y/pending", 2),
        purchase("z/conflict", 1),
    )

    result = run("plan", str(decl), "--state", str(state), "--format", "markdown")

    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[2] == "### ❌ Plan: **cannot be applied: 1 conflict, 1 pending**"
    rows = _md_rows(result.stdout)
    assert [_md_address(row) for row in rows] == ["z/conflict", "y/pending", "a/buy"]
    assert rows[0].endswith("| conflict (see above) |")
    # The reasons and the commands that settle a pending checkout, as lists.
    assert any(
        line.startswith(
            "- `z/conflict` conflict: decrease from 9 to 1 seat; a purchase cannot be undone "
            "through checkout. Reduce the seats in Cloud-iQ"
        )
        for line in lines
    )
    at = next(i for i, line in enumerate(lines) if line.startswith("- `y/pending` pending:"))
    assert "checkout order-y of 2 seats" in lines[at]
    assert lines[at + 1 : at + 3] == [
        f"  - `reconciler state resolve y/pending --purchased --state {state}`",
        f"  - `reconciler state resolve y/pending --not-purchased --state {state}`",
    ]


def test_plan_markdown_marker_names_the_targets(matching: Path, state: Path) -> None:
    result = run(
        "plan", str(matching), "--state", str(state), "--format", "markdown",
        "--target", "acme/new-a", "--target", "acme/grow",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == (
        "<!-- crayon-reconciler:plan target=acme/new-a,acme/grow -->"
    )


def test_plan_markdown_of_invalid_declarations_lists_the_located_errors(
    tmp_path: Path, state: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\npurchases:\n  - name: Acme\n    quantity: 0\n", encoding="utf-8")

    result = run("plan", str(bad), "--state", str(state), "--format", "markdown")

    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        "<!-- crayon-reconciler:plan -->",
        "",
        "### ❌ Plan: **cannot be applied: 7 errors in the declarations**",
    ]
    items = [line for line in lines if line.startswith("- ")]
    assert len(items) == 7
    assert f"- `{bad}:4:15`: `purchases[0].quantity`: 0 is less than the minimum of 1" in items
    # The same errors, as text, on stderr.
    assert f"{bad}:4:15: purchases[0].quantity: 0 is less than the minimum of 1" in result.stderr


def test_plan_markdown_without_a_state_says_why_in_the_comment(
    matching: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.json"

    result = run("plan", str(matching), "--state", str(missing), "--format", "markdown")

    assert result.exit_code == 1
    assert result.stdout.startswith("<!-- crayon-reconciler:plan -->\n")
    assert "cannot be applied" in result.stdout
    assert f"no state at {missing}" in result.stdout
    assert f"no state at {missing}" in result.stderr


def test_plan_markdown_with_no_changes(decl: Path, state: Path) -> None:
    record(state, "acme/same", 4)
    declare(decl, purchase("acme/same", 4))

    out = run("plan", str(decl), "--state", str(state), "--format", "markdown").stdout

    assert "No changes." in out
    assert "|" not in out


def test_plan_markdown_with_thousands_of_purchases_is_truncated(
    tmp_path: Path, state: Path
) -> None:
    decl = tmp_path / "bulk.yaml"
    decl.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "defaults": {
                    "customerTenantId": TENANT,
                    "productId": "CFQ7TTC0LF8R",
                    "skuId": "0010",
                    "billingCycle": "monthly",
                    "termDuration": "P1M",
                },
                "purchases": [
                    {"name": f"bulk/p{i:05d}", "quantity": 1 + i % 7} for i in range(3000)
                ],
            }
        ),
        encoding="utf-8",
    )

    result = run("plan", str(decl), "--state", str(state), "--format", "markdown")

    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert len(out) < 60_000
    assert out.splitlines()[0] == "<!-- crayon-reconciler:plan -->"
    assert any(line.startswith("Plan: 3000 to purchase") for line in out.splitlines())
    assert "runcated" in out
    assert "bulk/p00000" in out
    assert "bulk/p02999" not in out


# --- exit codes ------------------------------------------------------------------


def test_plan_without_detailed_exitcode_exits_0_with_purchases(matching: Path, state: Path) -> None:
    assert run("plan", str(matching), "--state", str(state)).exit_code == 0


def test_detailed_exitcode_2_when_purchases(matching: Path, state: Path) -> None:
    result = run("plan", str(matching), "--state", str(state), "--detailed-exitcode")

    assert result.exit_code == 2
    assert last_line(result.stdout).startswith("Plan: 2 to purchase")


def test_detailed_exitcode_0_with_orphans_only_and_a_warning(decl: Path, state: Path) -> None:
    record(state, "acme/same", 4)
    record(state, "acme/retired", 3)
    declare(decl, purchase("acme/same", 4))

    result = run("plan", str(decl), "--state", str(state), "--detailed-exitcode")

    assert result.exit_code == 0
    assert "- acme/retired" in result.stdout
    assert "warning" in result.stderr
    assert "acme/retired" in result.stderr
    assert "acme/same" not in result.stderr


@pytest.mark.parametrize("kind", ["conflict", "pending"])
def test_detailed_exitcode_1_on_conflict_or_pending_after_the_full_plan(
    decl: Path, state: Path, kind: str
) -> None:
    if kind == "conflict":
        record(state, "m/blocked", 9)
    else:
        add_pending(state, "m/blocked", 2, "order-m")
    declare(decl, purchase("a/buy", 3), purchase("m/blocked", 2), purchase("z/buy", 4))

    result = run("plan", str(decl), "--state", str(state), "--detailed-exitcode")

    assert result.exit_code == 1
    # Every block and the summary were printed before the refusal.
    for address in ("a/buy", "m/blocked", "z/buy"):
        block(result.stdout, address)
    assert last_line(result.stdout).startswith("Plan: 2 to purchase (+7 seats)")
    assert "error" in result.stderr


def test_invalid_declarations_exit_1_with_located_errors(tmp_path: Path, state: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\n"
        "purchases:\n"
        "  - name: acme/m365-basic\n"
        "    quantity: 20\n"
        "    customerTenantId: 111111\n"
        "    productId: CFQ7TTC0LF8R\n"
        '    skuId: "0010"\n'
        "    billingCycle: yearly\n"
        "    termDuration: P1M\n"
        "    colour: blue\n",
        encoding="utf-8",
    )
    before = state.read_bytes()
    listing = sorted(state.parent.iterdir())

    for extra in ([], ["--detailed-exitcode"], ["--json"]):
        result = run("plan", str(bad), "--state", str(state), *extra)

        assert result.exit_code == 1, extra
        assert result.stdout == ""
        assert f"{bad}:8:19: purchases[0].billingCycle: 'yearly'" in result.stderr
        assert f"{bad}:10:5:" in result.stderr
        assert "colour" in result.stderr
        assert_no_traceback(result)
    assert state.read_bytes() == before
    assert sorted(state.parent.iterdir()) == listing


def test_missing_declarations_path_exits_1(tmp_path: Path, state: Path) -> None:
    result = run("plan", str(tmp_path / "nowhere"), "--state", str(state))

    assert result.exit_code == 1
    assert "nowhere" in result.stderr
    assert_no_traceback(result)


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


def test_resolve_without_outcome_says_which_flags(tmp_path: Path) -> None:
    result = run("state", "resolve", "a/b", "--state", str(tmp_path / "s.json"))

    assert result.exit_code == 1
    assert "--purchased" in result.stderr
    assert "--not-purchased" in result.stderr


# --- plan --out and show --plan ---------------------------------------------------


def test_plan_out_saves_a_plan_matching_the_schema(matching: Path, state: Path) -> None:
    plan_file = state.with_name("tfplan.json")

    result = run("plan", str(matching), "--state", str(state), "--out", str(plan_file))

    assert result.exit_code == 0, result.output
    assert last_line(result.stdout).startswith("Plan: 2 to purchase")
    assert str(plan_file) in result.stderr
    data = json.loads(plan_file.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(PLAN_SCHEMA).validate(data)
    recorded = state_json(state)
    assert data["lineage"] == recorded["lineage"]
    assert data["serial"] == recorded["serial"] == 2
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", data["declarations_digest"])
    assert data["summary"]["seats"] == 38


def test_plan_out_with_json_keeps_stdout_pure(matching: Path, state: Path) -> None:
    plan_file = state.with_name("tfplan.json")

    result = run("plan", str(matching), "--state", str(state), "--json", "--out", str(plan_file))

    saved = json.loads(plan_file.read_text(encoding="utf-8"))
    # The file also says where the declarations are, relative to itself.
    assert saved.pop("declarations_path") == "decl"
    assert json.loads(result.stdout) == saved


def test_plan_out_digest_changes_with_the_declarations(matching: Path, state: Path) -> None:
    first, second = state.with_name("p1.json"), state.with_name("p2.json")
    run("plan", str(matching), "--state", str(state), "--out", str(first))
    declare(matching, purchase("acme/new-a", 21))
    run("plan", str(matching), "--state", str(state), "--out", str(second))

    digest = json.loads(first.read_text())["declarations_digest"]
    assert digest != json.loads(second.read_text())["declarations_digest"]


def test_plan_out_into_a_missing_directory_is_an_error_not_a_traceback(
    matching: Path, state: Path, tmp_path: Path
) -> None:
    result = run("plan", str(matching), "--state", str(state), "--out", str(tmp_path / "no/p.json"))

    assert result.exit_code == 1
    assert "no/p.json" in result.stderr


def test_show_plan_renders_a_saved_plan(every_action: Path, state: Path) -> None:
    plan_file = state.with_name("tfplan.json")
    planned = run("plan", str(every_action), "--state", str(state), "--out", str(plan_file))

    text = run("show", "--plan", str(plan_file), "--state", str(state))
    as_json = run("show", "--plan", str(plan_file), "--state", str(state), "--json")

    assert text.exit_code == 0
    assert text.stdout == planned.stdout
    assert "  ! c/shrink  conflict" in text.stdout
    assert as_json.exit_code == 0
    assert as_json.stdout == plan_file.read_text(encoding="utf-8")


def test_show_plan_does_not_need_the_state(matching: Path, state: Path, tmp_path: Path) -> None:
    plan_file = tmp_path / "tfplan.json"
    run("plan", str(matching), "--state", str(state), "--out", str(plan_file))
    state.write_text("not a state", encoding="utf-8")

    result = run("show", "--plan", str(plan_file), "--state", str(state))

    assert result.exit_code == 0
    assert "Plan: 2 to purchase" in result.stdout


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("{ not json", id="not-json"),
        pytest.param('{"format_version": 1}', id="not-a-plan"),
        pytest.param('{"format_version": 2, "changes": []}', id="newer-format"),
        None,
    ],
)
def test_show_a_corrupt_or_missing_plan_file_exits_1_naming_it(
    tmp_path: Path, content: str | None
) -> None:
    plan_file = tmp_path / "broken.plan"
    if content is not None:
        plan_file.write_text(content, encoding="utf-8")

    for extra in ([], ["--json"]):
        result = run("show", "--plan", str(plan_file), "--state", str(tmp_path / "s.json"), *extra)

        assert result.exit_code == 1
        assert str(plan_file) in result.stderr
        assert result.stdout == ""
        assert_no_traceback(result)


# --- show ---------------------------------------------------------------------------


def test_show_an_empty_state(state: Path) -> None:
    before = state.read_bytes()

    result = run("show", "--state", str(state))

    assert result.exit_code == 0
    assert "The state is empty" in result.stdout
    assert state.read_bytes() == before
    assert [p.name for p in state.parent.iterdir()] == [state.name]


def test_show_lists_purchases_with_checkouts_and_pending(state: Path) -> None:
    record(state, "acme/basic", 10, order="order-1")
    record(state, "acme/basic", 5, order="order-2")
    add_pending(state, "acme/basic", 3, "order-3")
    add_pending(state, "acme/later", 2, "order-4")

    result = run("show", "--state", str(state))

    assert result.exit_code == 0
    out = result.stdout
    assert re.search(r"^acme/basic\s+15 seats\s+tenant 111111, CFQ7TTC0LF8R:0010", out, re.M)
    assert re.search(r"^\s+2026-11-26T19:00:00Z\s+\+10\s+order-1$", out, re.M)
    assert re.search(r"^\s+2026-11-26T19:00:00Z\s+\+5\s+order-2$", out, re.M)
    pending = out[out.index("Pending") :]
    assert "reconciler state resolve" in pending
    assert re.search(r"\? acme/basic\s+3 seats\s+order-3", pending)
    assert re.search(r"\? acme/later\s+2 seats\s+order-4", pending)
    assert "Serial 4." in last_line(out)


def test_show_json(state: Path) -> None:
    record(state, "acme/basic", 10, order="order-1")
    add_pending(state, "acme/later", 2, "order-4")

    result = run("show", "--state", str(state), "--json")

    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["serial"] == 2
    assert data["lineage"] == state_json(state)["lineage"]
    basic = data["purchases"]["acme/basic"]
    assert basic["quantity"] == 10
    assert basic["checkouts"] == [{"externalOrderId": "order-1", "quantity": 10, "time": T0}]
    assert basic["customerTenantId"] == TENANT
    assert data["pending"]["acme/later"]["externalOrderId"] == "order-4"
    assert data["pending"]["acme/later"]["quantity"] == 2


def test_show_json_of_an_empty_state(state: Path) -> None:
    data = json.loads(run("show", "--state", str(state), "--json").stdout)

    assert data["purchases"] == {}
    assert data["pending"] == {}
    assert data["serial"] == 0
    assert data["lineage"] == state_json(state)["lineage"]


# --- state list / show ------------------------------------------------------------------


def test_state_list_marks_pending_addresses(state: Path) -> None:
    record(state, "b/bought", 3)
    record(state, "a/both", 3)
    add_pending(state, "a/both", 1, "order-a")
    add_pending(state, "c/only-pending", 1, "order-c")

    result = run("state", "list", "--state", str(state))

    assert result.exit_code == 0
    assert result.stdout.splitlines() == ["? a/both", "b/bought", "? c/only-pending"]


def test_state_list_of_an_empty_state_prints_nothing(state: Path) -> None:
    result = run("state", "list", "--state", str(state))

    assert result.exit_code == 0
    assert result.stdout == ""


def test_state_show_prints_json_for_an_address(state: Path) -> None:
    record(state, "acme/basic", 10, order="order-1")
    add_pending(state, "acme/basic", 3, "order-3")

    result = run("state", "show", "acme/basic", "--state", str(state))

    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["address"] == "acme/basic"
    assert data["purchases"]["quantity"] == 10
    assert data["purchases"]["checkouts"][0]["externalOrderId"] == "order-1"
    assert data["pending"]["externalOrderId"] == "order-3"


def test_state_show_unknown_address_exits_1(state: Path) -> None:
    record(state, "acme/basic", 10)

    result = run("state", "show", "acme/nope", "--state", str(state))

    assert result.exit_code == 1
    assert "acme/nope" in result.stderr
    assert result.stdout == ""


# --- state rm -------------------------------------------------------------------------


def test_state_rm_forgets_without_cancelling(state: Path, decl: Path) -> None:
    record(state, "acme/basic", 10)
    record(state, "acme/keep", 2)
    serial = state_json(state)["serial"]

    result = run("state", "rm", "acme/basic", "--state", str(state), "--yes")

    assert result.exit_code == 0, result.output
    assert "acme/basic" in result.stdout
    assert "not cancelled" in result.stdout
    after = state_json(state)
    assert list(after["purchases"]) == ["acme/keep"]
    assert after["serial"] == serial + 1
    assert run("state", "list", "--state", str(state)).stdout == "acme/keep\n"


def test_state_rm_unknown_address_exits_1_and_leaves_the_file(state: Path) -> None:
    record(state, "acme/basic", 10)
    before = state.read_bytes()

    result = run("state", "rm", "acme/nope", "--state", str(state))

    assert result.exit_code == 1
    assert "acme/nope" in result.stderr
    assert state.read_bytes() == before


def test_state_rm_refuses_an_address_with_a_pending_checkout(state: Path) -> None:
    record(state, "acme/basic", 10)
    add_pending(state, "acme/basic", 3, "order-3")
    before = state.read_bytes()

    result = run("state", "rm", "acme/basic", "--state", str(state))

    assert result.exit_code == 1
    assert "state resolve" in result.stderr
    assert state.read_bytes() == before


def test_state_rm_of_a_pending_only_address_names_state_resolve(state: Path) -> None:
    add_pending(state, "acme/first", 3, "order-3")

    result = run("state", "rm", "acme/first", "--state", str(state))

    assert result.exit_code == 1
    assert "state resolve" in result.stderr


# --- state import -----------------------------------------------------------------------


def test_state_import_takes_the_identity_from_the_declaration(decl: Path, state: Path) -> None:
    declare(decl, purchase("acme/annual", 8, billingCycle="annual", termDuration="P1Y"))

    result = state_import("acme/annual", 8, decl, state)

    assert result.exit_code == 0, result.output
    assert "acme/annual" in result.stdout
    assert "8 seats" in result.stdout
    recorded = state_json(state)
    assert recorded["serial"] == 1
    entry = recorded["purchases"]["acme/annual"]
    assert entry["quantity"] == 8
    assert entry["checkouts"] == []
    assert (entry["billingCycle"], entry["termDuration"]) == ("annual", "P1Y")
    assert entry["customerTenantId"] == TENANT
    plan = run("plan", str(decl), "--state", str(state), "--detailed-exitcode")
    assert plan.exit_code == 0
    assert plan.stdout.startswith("No changes.")


def test_state_import_fewer_seats_then_plan_increases(decl: Path, state: Path) -> None:
    declare(decl, purchase("acme/basic", 8))

    assert state_import("acme/basic", 5, decl, state).exit_code == 0

    plan = run("plan", str(decl), "--state", str(state), "--detailed-exitcode")
    assert plan.exit_code == 2
    assert "increase, 5 -> 8 seats (+3)" in plan.stdout


def test_state_import_of_an_undeclared_address_exits_1(decl: Path, state: Path) -> None:
    declare(decl, purchase("acme/basic", 8))
    before = state.read_bytes()

    result = state_import("acme/other", 8, decl, state)

    assert result.exit_code == 1
    assert "acme/other" in result.stderr
    assert "not declared" in result.stderr
    assert state.read_bytes() == before
    assert not state.with_name(state.name + ".journal").exists()


def test_state_import_with_invalid_declarations_exits_1(tmp_path: Path, state: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\npurchases:\n  - name: Not Valid\n", encoding="utf-8")

    result = state_import("acme/basic", 1, bad, state)

    assert result.exit_code == 1
    assert f"{bad}:3:" in result.stderr
    assert_no_traceback(result)


@pytest.mark.parametrize("kind", ["recorded", "pending"])
def test_state_import_of_an_address_already_in_state_exits_1(
    decl: Path, state: Path, kind: str
) -> None:
    declare(decl, purchase("acme/basic", 8))
    if kind == "recorded":
        record(state, "acme/basic", 3)
    else:
        add_pending(state, "acme/basic", 3, "order-3")
    before = state.read_bytes()

    result = state_import("acme/basic", 8, decl, state)

    assert result.exit_code == 1
    assert "acme/basic" in result.stderr
    assert "already" in result.stderr
    assert state.read_bytes() == before


# --- state resolve ---------------------------------------------------------------------


def test_state_resolve_purchased_records_the_pending_checkout(decl: Path, state: Path) -> None:
    record(state, "acme/basic", 10, order="order-1")
    add_pending(state, "acme/basic", 4, "order-pending")
    serial = state_json(state)["serial"]

    result = run("state", "resolve", "acme/basic", "--purchased", "--state", str(state))

    assert result.exit_code == 0, result.output
    assert "order-pending" in result.stdout
    assert "14 seats" in result.stdout
    after = state_json(state)
    assert after["serial"] == serial + 1
    assert after["pending"] == {}
    entry = after["purchases"]["acme/basic"]
    assert entry["quantity"] == 14
    assert entry["checkouts"][-1] == {"externalOrderId": "order-pending", "quantity": 4, "time": T0}
    declare(decl, purchase("acme/basic", 14))
    assert run("plan", str(decl), "--state", str(state), "--detailed-exitcode").exit_code == 0


def test_state_resolve_purchased_of_a_first_purchase_creates_the_record(state: Path) -> None:
    add_pending(state, "acme/first", 6, "order-first")

    assert (
        run("state", "resolve", "acme/first", "--purchased", "--state", str(state)).exit_code == 0
    )

    entry = state_json(state)["purchases"]["acme/first"]
    assert entry["quantity"] == 6
    assert entry["customerTenantId"] == TENANT
    assert [c["externalOrderId"] for c in entry["checkouts"]] == ["order-first"]


def test_state_resolve_not_purchased_drops_the_pending_and_plan_buys_again(
    decl: Path, state: Path
) -> None:
    add_pending(state, "acme/first", 6, "order-first")
    declare(decl, purchase("acme/first", 6))
    assert run("plan", str(decl), "--state", str(state)).exit_code == 1
    serial = state_json(state)["serial"]

    result = run("state", "resolve", "acme/first", "--not-purchased", "--state", str(state))

    assert result.exit_code == 0, result.output
    assert "order-first" in result.stdout
    after = state_json(state)
    assert after["serial"] == serial + 1
    assert after["pending"] == {}
    assert after["purchases"] == {}
    plan = run("plan", str(decl), "--state", str(state), "--detailed-exitcode")
    assert plan.exit_code == 2
    assert "+ acme/first  purchase, 0 -> 6 seats (+6)" in plan.stdout


@pytest.mark.parametrize("outcome", ["--purchased", "--not-purchased"])
def test_state_resolve_with_nothing_pending_exits_1(state: Path, outcome: str) -> None:
    record(state, "acme/basic", 10)
    before = state.read_bytes()

    result = run("state", "resolve", "acme/basic", outcome, "--state", str(state))

    assert result.exit_code == 1
    assert "acme/basic" in result.stderr
    assert "pending" in result.stderr
    assert state.read_bytes() == before


def test_state_resolve_with_both_outcomes_is_a_usage_error(state: Path) -> None:
    add_pending(state, "acme/first", 6, "order-first")
    before = state.read_bytes()

    result = run(
        "state", "resolve", "acme/first", "--not-purchased", "--purchased", "--state", str(state)
    )

    assert result.exit_code == 1
    assert state.read_bytes() == before


def test_every_state_write_bumps_the_serial_by_one(decl: Path, state: Path) -> None:
    declare(decl, purchase("acme/a", 2), purchase("acme/b", 3))
    add_pending(state, "acme/c", 1, "order-c")
    add_pending(state, "acme/d", 1, "order-d")
    serials = [state_json(state)["serial"]]
    commands = [
        ["state", "import", "acme/a", "--quantity", "2", "--config", str(decl), "--yes"],
        ["state", "import", "acme/b", "--quantity", "3", "--config", str(decl), "--yes"],
        ["state", "resolve", "acme/c", "--purchased"],
        ["state", "resolve", "acme/d", "--not-purchased"],
        ["state", "rm", "acme/a", "--yes"],
    ]
    for args in commands:
        assert run(*args, "--state", str(state)).exit_code == 0, args
        serials.append(state_json(state)["serial"])

    assert serials == [2, 3, 4, 5, 6, 7]
    # Each command folded its write into the JSON file; no journal is left behind.
    assert not state.with_name(state.name + ".journal").exists()
    assert run("state", "list", "--state", str(state)).stdout.splitlines() == ["acme/b", "acme/c"]


# --- init, and every other command refusing a missing state ------------------------------

MISSING = "error: no state at {path}; run 'reconciler init' to start an empty one\n"


@pytest.fixture
def nowhere(tmp_path: Path) -> Path:
    """A state path in an empty directory of its own, with no state at it."""
    directory = tmp_path / "states"
    directory.mkdir()
    return directory / "reconciler.state.json"


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


def test_init_creates_an_empty_state_and_says_where(nowhere: Path) -> None:
    result = run("init", "--state", str(nowhere))

    assert result.exit_code == 0, result.output
    data = state_json(nowhere)
    lineage = data["lineage"]
    assert result.stdout == f"Initialized an empty state at {nowhere} (lineage {lineage}).\n"
    assert result.stderr == ""
    document = {"lineage": lineage, "pending": {}, "purchases": {}, "serial": 0, "version": 1}
    assert nowhere.read_text(encoding="utf-8") == json.dumps(document, indent=2) + "\n"
    # Only the state file: init takes no lock and starts no journal.
    assert [p.name for p in nowhere.parent.iterdir()] == [nowhere.name]
    # Every command now accepts it.
    assert run("state", "list", "--state", str(nowhere)).exit_code == 0
    assert "The state is empty" in run("show", "--state", str(nowhere)).stdout


def test_init_gives_every_state_its_own_lineage(tmp_path: Path) -> None:
    one, two = init(tmp_path / "one.json"), init(tmp_path / "two.json")

    assert state_json(one)["lineage"] != state_json(two)["lineage"]


def test_init_of_an_existing_state_changes_nothing(nowhere: Path) -> None:
    init(nowhere)
    before = nowhere.read_bytes()

    result = run("init", "--state", str(nowhere))

    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"A state already exists at {nowhere} (serial 0, 0 purchases); nothing changed.\n"
    )
    assert nowhere.read_bytes() == before
    assert [p.name for p in nowhere.parent.iterdir()] == [nowhere.name]


def test_init_of_a_state_with_purchases_changes_nothing(state: Path) -> None:
    record(state, "acme/a", 2)
    record(state, "acme/b", 3)
    add_pending(state, "acme/c", 1, "order-c")
    before = state.read_bytes()

    result = run("init", "--state", str(state))

    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"A state already exists at {state} (serial 3, 2 purchases); nothing changed.\n"
    )
    assert state.read_bytes() == before


def test_init_refuses_a_corrupt_file_and_leaves_it(state: Path) -> None:
    state.write_bytes(b"this is not json {")

    result = run("init", "--state", str(state))

    assert result.exit_code == 1
    assert str(state) in result.stderr
    assert state.read_bytes() == b"this is not json {"


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
    assert "Error: --workspace needs a postgresql:// state; a state file holds one state" in (
        result.stderr
    )
    assert_no_traceback(result)
    assert {p.name: p.read_bytes() for p in nowhere.parent.iterdir()} == listing


# --- state pull --------------------------------------------------------------------------------


def test_state_pull_prints_exactly_the_state_file(state: Path) -> None:
    assert run("state", "pull", "--state", str(state)).stdout_bytes == state.read_bytes()
    record(state, "acme/basic", 10, order="order-1")
    record(state, "acme/basic", 5, order="order-2")
    add_pending(state, "acme/later", 2, "order-4")

    result = run("state", "pull", "--state", str(state))

    assert result.exit_code == 0
    assert result.stderr == ""
    assert result.stdout_bytes == state.read_bytes()
    assert json.loads(result.stdout)["serial"] == 3


# --- --lock-timeout ------------------------------------------------------------------------------

_HOLDER_SCRIPT = """
import sys, time
from reconciler.model import Identity
from reconciler.state import JsonFileStateStore

identity = Identity(111111, "CFQ7TTC0LF8R", "0010", "monthly", "P1M")
with JsonFileStateStore(sys.argv[1]).lock("reconciler apply") as writer:
    writer.import_purchase("acme/basic", identity, 4, "2026-11-26T19:00:00Z")
    print("ready", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _hold_the_lock(state: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process that holds the state's lock for ``seconds`` once it says "ready"."""
    env = {**os.environ}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER_SCRIPT, str(state), str(seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n", proc.stderr.read() if proc.stderr else ""
    return proc


def test_apply_with_lock_timeout_waits_for_the_holder_then_runs(decl: Path, state: Path) -> None:
    # The holder records acme/basic while it holds the lock: an apply that waited plans
    # from the state the holder left, so it has nothing to buy (and needs no API).
    declare(decl, purchase("acme/basic", 4))
    proc = _hold_the_lock(state, 0.5)
    try:
        started = time.monotonic()
        result = run(
            "apply", str(decl), "--auto-approve", "--lock-timeout", "2s", "--state", str(state)
        )
        waited = time.monotonic() - started
    finally:
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err

    assert result.exit_code == 0, result.output
    assert "locked" not in result.stderr
    assert 0.3 <= waited < 2.0
    assert result.stdout.startswith("No changes.")
    assert state_json(state)["purchases"]["acme/basic"]["quantity"] == 4


def test_apply_without_lock_timeout_fails_at_once_naming_the_holder(
    decl: Path, state: Path
) -> None:
    declare(decl, purchase("acme/basic", 4))
    proc = _hold_the_lock(state, 30)
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


def test_lock_timeout_gives_up_naming_the_holder(decl: Path, state: Path) -> None:
    declare(decl, purchase("acme/basic", 4))
    proc = _hold_the_lock(state, 30)
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


# --- locking, corrupt state ---------------------------------------------------------------


@pytest.fixture
def held(state: Path) -> Iterator[Path]:
    """A state whose lock another holder ("test") keeps for the whole test."""
    record(state, "acme/basic", 10)
    add_pending(state, "acme/first", 2, "order-first")
    with JsonFileStateStore(state).lock("test"):
        yield state


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["state", "rm", "acme/basic"], id="rm"),
        pytest.param(["state", "resolve", "acme/first", "--purchased"], id="resolve"),
        pytest.param(
            ["state", "import", "acme/new", "--quantity", "1", "--config", "{decl}"], id="import"
        ),
    ],
)
def test_state_writes_fail_at_once_while_the_lock_is_held(
    held: Path, decl: Path, args: list[str]
) -> None:
    declare(decl, purchase("acme/new", 1))
    before = held.read_bytes()

    result = run(*(a.format(decl=decl) for a in args), "--state", str(held))

    assert result.exit_code == 1
    assert "state is locked by" in result.stderr
    assert "'test'" in result.stderr
    assert_no_traceback(result)
    assert held.read_bytes() == before


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


def test_the_lock_is_released_after_each_command(state: Path) -> None:
    record(state, "acme/a", 1)
    record(state, "acme/b", 1)

    assert run("state", "rm", "acme/a", "--state", str(state), "--yes").exit_code == 0
    assert run("state", "rm", "acme/b", "--state", str(state), "--yes").exit_code == 0
    with JsonFileStateStore(state).lock("test") as writer:
        assert writer.state.purchases == {}


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


# --- help ------------------------------------------------------------------------------------


def _command_paths(
    command: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _command_paths(sub, (*path, name))


COMMANDS = list(_command_paths(cli))


def test_the_command_tree_has_the_contract_commands() -> None:
    paths = {" ".join(path) for path, _ in COMMANDS}

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
    ("path", "command"), COMMANDS, ids=[" ".join(p) or "reconciler" for p, _ in COMMANDS]
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
