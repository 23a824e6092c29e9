"""``reconciler plan`` and ``show`` (``reconciler.cli.plan``), end to end.

Every test drives the real click command tree in-process with its own ``--state``
under ``tmp_path``: states are created with ``reconciler init`` and filled through
the file store's writer, declarations are small YAML files, and assertions are
about what a user (or a CI script) sees: stdout, stderr, exit codes and the files
left behind. ``plan --verify`` and ``plan --refresh`` run against the simulator.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
import yaml

import reconciler
from reconciler import api
from reconciler.state import JsonFileStateStore
from tests.support.cli import ANSI, assert_no_traceback, init, last_line, run
from tests.support.declarations import declare, edit_purchase, purchase, renamed
from tests.support.fixtures import LockHolder
from tests.support.paths import ROOT, schema
from tests.support.records import BASIC, E3, TENANT
from tests.support.simulator import TEAMS, Harness, Project
from tests.support.states import add_pending, record, state_json
from tests.support.times import T0

PLAN_SCHEMA = schema("plan")


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


@pytest.fixture
def matching(decl: Path, state: Path) -> Path:
    """2 purchases (+32 seats), 1 increase (+6 seats), 1 noop: the README's example line."""
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
    # Its own sku: with a/new's identity, a/new would be a rename conflict.
    record(state, "f/gone", 3, replace(BASIC, sku_id="0001"))
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


def test_plan_text_ends_with_the_documented_summary_line(matching: Path, state: Path) -> None:
    result = run("plan", str(matching), "--state", str(state))

    assert result.exit_code == 0, result.output
    assert last_line(result.stdout) == (
        "Plan: 2 to purchase (+32 seats), 1 to increase (+6 seats), 0 conflicts, 0 pending."
    )
    assert "1 unchanged." in result.stdout.splitlines()
    # Without credentials the plan is made from the state alone, and says so.
    assert result.stderr.startswith("note: Cloud-iQ not read (no credentials")


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
    # Nor creates one: a missing state is refused.
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


@pytest.mark.slow  # a subprocess on a pseudo-terminal
def test_plan_is_coloured_on_a_tty(
    every_action: Path, state: Path, tty_env: dict[str, str]
) -> None:
    code, out = _run_on_tty(["plan", str(every_action), "--state", str(state)], tty_env)

    assert code == 1  # conflicts and pending
    assert "\x1b[32m  + a/new\x1b[0m" in out
    assert ANSI.search(out)


@pytest.mark.slow  # a subprocess on a pseudo-terminal
def test_no_color_env_turns_colour_off_on_a_tty(
    every_action: Path, state: Path, tty_env: dict[str, str]
) -> None:
    _, out = _run_on_tty(
        ["plan", str(every_action), "--state", str(state)], {**tty_env, "NO_COLOR": "1"}
    )

    assert "  + a/new  purchase" in out
    assert not ANSI.search(out)


@pytest.mark.slow  # a subprocess on a pseudo-terminal
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
    assert result.stdout.count("\n") == 1  # one line, for scripts and log processors
    jsonschema.Draft202012Validator(PLAN_SCHEMA).validate(data)
    assert data["format_version"] == 2
    assert data["cloud"] == {
        "read": False,
        "reason": "no credentials (the CRAYON_* variables are not set)",
    }
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
            "- `z/conflict` conflict: decrease from 9 to 1 seat, but Cloud-iQ was not read "
            "(no credentials, or --refresh=false)"
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
    # The file also says where the declarations are, relative to itself; stdout says
    # why Cloud-iQ was not read.
    assert saved.pop("declarations_path") == "decl"
    shown = json.loads(result.stdout)
    assert shown["cloud"].pop("reason").startswith("no credentials")
    assert shown == saved


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
    assert "`reconciler refresh` settles" in pending
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


# --- plan --verify -----------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_plan_verify_shows_line_errors_and_never_checks_out(h: Harness, fmt: str) -> None:
    edit_purchase(h.decl, TEAMS, quantity=25)
    before = h.state.read_bytes()
    listing = sorted(h.tmp.iterdir())

    result = h.run("plan", str(h.decl), "--state", str(h.state), "--verify", "--format", fmt)

    assert result.exit_code == 1
    assert f"verify refused 1 order: {TEAMS}" in result.stderr
    assert h.sim.count("verify") == 10
    assert h.sim.count("checkout") == 0
    assert h.sim.checkouts == []
    assert h.state.read_bytes() == before  # plan never writes the state
    assert sorted(h.tmp.iterdir()) == listing  # nor a lock file or a journal
    description = "Quantity 25 is outside the allowed range 1-20."
    if fmt == "json":
        plan = json.loads(result.stdout)
        changes = {c["address"]: c for c in plan["changes"]}
        assert changes[TEAMS]["verify_errors"] == [
            {"code": "QuantityOutOfRange", "description": description}
        ]
        assert all(c["verify_errors"] == [] for a, c in changes.items() if a != TEAMS)
    elif fmt == "markdown":
        lines = result.stdout.splitlines()
        assert lines[:3] == [
            "<!-- crayon-reconciler:plan -->",
            "",
            "### ❌ Plan: **cannot be applied: 1 order refused by verify**",
        ]
        assert any(line.startswith("Plan: 10 to purchase (+353 seats)") for line in lines)
        at = lines.index(f"- `{TEAMS}` refused by verify:")
        assert lines[at + 1] == f"  - `QuantityOutOfRange`: {description}"
        (row,) = [
            line
            for line in lines
            if line.startswith(f"| ! | `{TEAMS}`")
            or (line.startswith("| ") and f"`{TEAMS}`" in line)
        ]
        assert row.endswith("| purchase, **refused by verify** (see above) |")
    else:
        lines = result.stdout.splitlines()
        at = next(i for i, line in enumerate(lines) if TEAMS in line)
        assert f"verify: QuantityOutOfRange: {description}" in "\n".join(lines[at : at + 4])
        assert result.stdout.count("verify:") == 1


def test_plan_verify_without_credentials_names_the_missing_variables(h: Harness) -> None:
    env: dict[str, str | None] = {name: None for name in h.sim.env()}
    env["CRAYON_API_URL"] = h.sim.url

    result = h.run("plan", str(h.decl), "--state", str(h.state), "--verify", env=env)

    assert result.exit_code == 1
    for name in api.CREDENTIAL_VARIABLES:
        assert name in result.stderr
    assert h.sim.calls == []


def test_plan_verify_says_how_many_changes_it_verified(h: Harness) -> None:
    result = h.run("plan", str(h.decl), "--state", str(h.state), "--verify")

    assert result.exit_code == 0, result.stderr
    assert (
        "Verified 10 changes with the API's verify endpoint: no errors (nothing was bought)."
        in result.stderr
    )
    assert h.sim.count("checkout") == 0


@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
def test_plan_verify_shows_a_refused_order_in_every_format(
    h: Harness, fmt: str, status: int
) -> None:
    """A definitive refusal of verify (an HTTP 4xx) is shown with its change, never a crash."""
    h.sim.fail_next("verify", status)

    result = h.run("plan", str(h.decl), "--state", str(h.state), "--verify", "--format", fmt)

    assert result.exit_code == 1
    assert "verify refused 1 order:" in result.stderr
    assert h.sim.count("checkout") == 0
    if fmt == "json":
        refused = [c for c in json.loads(result.stdout)["changes"] if c["verify_errors"]]
        assert len(refused) == 1
        assert refused[0]["verify_errors"][0]["code"]
    elif fmt == "markdown":
        assert "cannot be applied: 1 order refused by verify" in result.stdout
    else:
        assert result.stdout.count("verify:") == 1


def test_plan_verify_of_an_unknown_tenant_shows_the_api_message(h: Harness) -> None:
    edit_purchase(h.decl, "northwind/exchange-online-plan-1", customerTenantId=999999)

    result = h.run("plan", str(h.decl), "--state", str(h.state), "--verify", "--format", "markdown")

    assert result.exit_code == 1
    assert "Customer tenant 999999 was not found." in result.stdout
    assert h.sim.count("checkout") == 0


# --- renames and moves -------------------------------------------------------------


def test_a_rename_without_moved_buys_nothing_and_exits_1(state: Path, decl: Path) -> None:
    record(state, "acme/old", 10, order="order-1")
    before = state.read_bytes()

    plan = run("plan", str(renamed(decl, 10, moved=False)), "--state", str(state))
    apply = run("apply", str(decl), "--state", str(state), "--auto-approve", "--refresh=false")

    assert plan.exit_code == 1
    assert "  ! acme/new  conflict, 0 -> 10 seats\n" in plan.stdout
    assert (
        "      same identity as acme/old, recorded but no longer declared; if this is a rename, "
        "add `moved: [{from: acme/old, to: acme/new}]` to the declarations or run "
        "`reconciler state mv acme/old acme/new`; if acme/old is really gone, add "
        "`removed: [{address: acme/old, cancel: false}]` or run "
        "`reconciler state rm acme/old` first\n" in plan.stdout
    )
    assert plan.stdout.endswith(
        "Plan: 0 to purchase (+0 seats), 0 to increase (+0 seats), 1 conflict, 0 pending, "
        "1 orphan.\n"
    )
    assert apply.exit_code == 1
    assert "nothing was bought" in apply.stderr
    assert state.read_bytes() == before


def test_a_moves_only_plan_has_changes_in_every_format(state: Path, decl: Path) -> None:
    record(state, "acme/old", 10, order="order-1")
    renamed(decl, 10, moved=True)

    text = run("plan", str(decl), "--state", str(state), "--detailed-exitcode")
    as_json = run("plan", str(decl), "--state", str(state), "--json")
    markdown = run("plan", str(decl), "--state", str(state), "--format", "markdown")

    assert text.exit_code == 2, text.output
    assert text.stdout == (
        "  > acme/new  move, 10 -> 10 seats\n"
        "      tenant 111111, CFQ7TTC0LF8R:0010, monthly P1M subscription\n"
        "      moved from acme/old (a state write; nothing bought)\n"
        "\n"
        "Plan: 1 to move, 0 to purchase (+0 seats), 0 to increase (+0 seats), 0 conflicts, "
        "0 pending.\n"
    )
    data = json.loads(as_json.stdout)
    jsonschema.validate(data, PLAN_SCHEMA)
    (change,) = data["changes"]
    assert (change["address"], change["action"], change["from"], change["delta"]) == (
        "acme/new",
        "move",
        "acme/old",
        0,
    )
    assert data["summary"]["move"] == 1
    assert "| > | `acme/new` |" in markdown.stdout
    assert "| move from `acme/old` |" in markdown.stdout


# --- --target ---------------------------------------------------------------------


def test_plan_target_limits_the_plan_and_says_it_is_partial(state: Path, decl: Path) -> None:
    record(state, "acme/grow", 1)
    record(state, "other/shrink", 10)
    add_pending(state, "other/waiting", 1, "order-w")
    declare(
        decl,
        purchase("acme/grow", 3),
        purchase("acme/new", 2, skuId="0001"),
        purchase("other/shrink", 5),
        purchase("other/waiting", 1),
        purchase("acmeish/x", 1, skuId="0002"),
    )

    whole = run("plan", str(decl), "--state", str(state))
    acme = run("plan", str(decl), "--state", str(state), "--target", "acme/", "--detailed-exitcode")
    one = run("plan", str(decl), "--state", str(state), "--target", "acme/grow", "--json")

    assert whole.exit_code == 1
    assert acme.exit_code == 2, acme.output
    assert "acmeish/x" not in acme.stdout
    assert "other/" not in acme.stdout
    assert acme.stdout.endswith(
        "Plan: 1 to purchase (+2 seats), 1 to increase (+2 seats), 0 conflicts, 0 pending. "
        "(targeted: 2 of 5 addresses)\n"
    )
    data = json.loads(one.stdout)
    jsonschema.validate(data, PLAN_SCHEMA)
    assert [c["address"] for c in data["changes"]] == ["acme/grow"]
    assert (data["targets"], data["addresses"]) == (["acme/grow"], 5)


@pytest.mark.parametrize("bad", ["Acme/", "acme//", "/", "acme/ x"])
def test_a_target_that_is_no_address_is_a_usage_error(state: Path, bad: str) -> None:
    result = run("plan", ".", "--state", str(state), "--target", bad)

    assert result.exit_code == 1
    assert f"Invalid value for '--target': {bad!r} is not an address" in result.stderr


# --- plan --refresh ----------------------------------------------------------------


def test_portal_drift_shows_in_every_plan_format(project: Project) -> None:
    project.ok("apply", str(project.decl), "--auto-approve")
    project.sim.portal_set_quantity(project.subscription(BASIC.product), 8)
    project.sim.portal_cancel(project.subscription(E3.product))
    added = project.sim.portal_add_subscription(TENANT, "CFQ7TTC0LCHC:0002", 4)
    before = project.buys()

    offline = project.ok("plan", str(project.decl), "--refresh=false")
    assert "Cloud-iQ" not in offline.stdout  # with --refresh=false the plan stays offline
    assert "note: Cloud-iQ not read (--refresh=false)" in offline.stderr

    text = project.ok("plan", str(project.decl)).stdout
    assert "  ~ acme/basic  5 recorded, 8 in Cloud-iQ (+3)" in text
    assert "  ~ acme/e3  2 recorded, 0 in Cloud-iQ (-2)" in text
    assert "Microsoft 365 Business Basic, EUR 5.60 a seat" in text
    assert f"  * 4 seats  subscription {added}" in text
    assert "`reconciler import --tenant 111111` adopts the others." in text
    assert "Cloud-iQ (1 customer tenant read): 2 addresses drifted, 1 unmanaged." in text
    # Seats cancelled in the portal are bought again (said so); the 3 added are lowered
    # back inside the cancellation window.
    assert "buys again seats of subscriptions that are gone in Cloud-iQ" in text
    assert "3 seats were added outside this repository" in text

    data = json.loads(project.ok("plan", str(project.decl), "--json").stdout)
    jsonschema.Draft202012Validator(PLAN_SCHEMA).validate(data)
    drift = {d["addresses"][0]: (d["recorded"], d["actual"]) for d in data["drift"]}
    assert drift == {"acme/basic": (5, 8), "acme/e3": (2, 0)}
    (unmanaged,) = data["unmanaged"]
    assert (unmanaged["identity"]["productId"], unmanaged["seats"], unmanaged["subscriptions"]) == (
        "CFQ7TTC0LCHC",
        4,
        [added],
    )

    markdown = project.ok("plan", str(project.decl), "--format", "markdown").stdout
    assert "#### Cloud-iQ" in markdown
    assert "| `acme/basic` |" in markdown
    assert "| 5 | 8 | +3 |" in markdown
    assert markdown.rstrip().splitlines()[-1].startswith("<sub>declarations")

    assert project.buys() == before  # reading never verifies or checks out


def test_fewer_seats_inside_the_window_are_a_decrease_of_the_subscription(
    project: Project,
) -> None:
    project.ok("apply", str(project.decl), "--auto-approve")
    text = (project.decl / "acme.yaml").read_text(encoding="utf-8")
    (project.decl / "acme.yaml").write_text(text.replace("quantity: 5", "quantity: 4"))
    plan = project.ok("plan", str(project.decl), "--detailed-exitcode", code=2)
    subscription = project.subscription(BASIC.product)
    assert "  v acme/basic  decrease, 5 -> 4 seats (-1)" in plan.stdout
    assert f"PUT subscription {subscription}: 5 -> 4 seats" in plan.stdout
    assert "prorated credit" in plan.stdout
    assert "Plan: 0 to purchase (+0 seats), 0 to increase (+0 seats), 1 to decrease" in (
        plan.stdout
    )


# --- beside a running apply ---------------------------------------------------------


@pytest.mark.slow  # another process holds the lock
def test_plan_beside_a_running_apply_says_its_checkouts_are_in_flight(
    file_store: JsonFileStateStore, state_path: Path, tmp_path: Path, hold_lock: LockHolder
) -> None:
    store = file_store
    assert store.locked_by() is None
    decl = declare(tmp_path / "decl", purchase("acme/a", 3))
    running = hold_lock(state_path, 120, "pending")
    held_by = store.locked_by()
    assert held_by is not None
    assert held_by.startswith(f"pid {running.pid} on host ")
    assert "(command 'reconciler apply', since " in held_by

    result = run("plan", str(decl), "--state", str(state_path))
    assert result.exit_code == 1
    assert (
        f"error: an apply holds the lock on the state ({held_by}); its 1 in-flight "
        "checkout is pending for that reason and it records each outcome itself. "
        "Wait for it to finish, then plan again; do not resolve it while it runs"
    ) in result.stderr
    assert "state resolve" not in result.stderr

    running.kill()
    running.communicate()
    assert store.locked_by() is None  # a dead holder's description is not a lock
    result = run("plan", str(decl), "--state", str(state_path))
    assert result.exit_code == 1
    assert "an apply holds the lock" not in result.stderr
    assert "reconciler state resolve acme/a --purchased" in result.stderr
