"""Refactoring without buying twice (CONTRACT section 10), through the real CLI.

``state mv`` keeps every checkout under the new address; state repairs need
``--yes`` without a terminal; ``state rm`` of a still-declared address warns
that the next apply buys it again. The helpers are the CLI suite's own.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest

from reconciler import config
from reconciler.errors import ConfigError
from reconciler.model import Move, PendingOperation
from reconciler.state import JsonFileStateStore
from tests.test_apply import TEAMS, HarnessFactory, edit_purchase, make_harness
from tests.test_cli import (
    PLAN_SCHEMA,
    T0,
    add_pending,
    declare,
    init,
    purchase,
    record,
    run,
    state_json,
)

__all__ = ["make_harness"]  # a fixture, used by name


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return init(tmp_path / "reconciler.state.json")


@pytest.fixture
def decl(tmp_path: Path) -> Path:
    return tmp_path / "decl"


# --- state mv ---------------------------------------------------------------------


def test_state_mv_keeps_every_checkout_under_the_new_address(state: Path) -> None:
    record(state, "acme/old", 10, order="order-1")
    record(state, "acme/old", 5, order="order-2")
    before = state_json(state)

    result = run("state", "mv", "acme/old", "acme/new", "--state", str(state), "--yes")

    assert result.exit_code == 0, result.output
    assert result.stdout == f"Moved acme/old (15 seats) to acme/new in {state}.\n"
    after = state_json(state)
    assert list(after["purchases"]) == ["acme/new"]
    assert after["purchases"]["acme/new"] == before["purchases"]["acme/old"]
    assert after["serial"] == before["serial"] + 1
    assert run("state", "list", "--state", str(state)).stdout == "acme/new\n"


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        ("acme/nope", "acme/new", "error: acme/nope is not recorded in {state}\n"),
        ("acme/old", "acme/taken", "error: acme/taken is already in the state {state}\n"),
        (
            "acme/waiting",
            "acme/new",
            "error: acme/waiting has a pending checkout; resolve it first with "
            "`reconciler state resolve acme/waiting --purchased|--not-purchased --state {state}`\n",
        ),
    ],
)
def test_state_mv_refusals_exit_1_and_leave_the_file(
    state: Path, source: str, target: str, message: str
) -> None:
    record(state, "acme/old", 10)
    record(state, "acme/taken", 1)
    record(state, "acme/waiting", 2)
    add_pending(state, "acme/waiting", 1, "order-w")
    before = state.read_bytes()

    result = run("state", "mv", source, target, "--state", str(state), "--yes")

    assert result.exit_code == 1
    assert result.stderr == message.format(state=state)
    assert state.read_bytes() == before


# --- confirmation without a terminal ------------------------------------------------


@pytest.mark.parametrize(
    ("args", "question"),
    [
        pytest.param(["state", "rm", "acme/basic"], "Forget acme/basic (3 seats)?", id="rm"),
        pytest.param(
            ["state", "mv", "acme/basic", "acme/renamed"],
            "Move acme/basic (3 seats) to acme/renamed?",
            id="mv",
        ),
        pytest.param(
            ["state", "import", "acme/new", "--quantity", "2", "--config", "{decl}"],
            "Record 2 seats at acme/new as already bought?",
            id="import",
        ),
    ],
)
def test_state_repairs_without_a_terminal_need_yes(
    state: Path, decl: Path, args: list[str], question: str
) -> None:
    declare(decl, purchase("acme/new", 2))
    record(state, "acme/basic", 3)
    before = state.read_bytes()
    args = [a.format(decl=decl) for a in args]

    refused = run(*args, "--state", str(state))

    assert refused.exit_code == 1
    assert refused.stderr == (
        f"error: {question} needs confirmation and there is no terminal to ask on; "
        "pass --yes (-y) to go ahead without asking\n"
    )
    assert state.read_bytes() == before
    done = run(*args, "--state", str(state), "-y")
    assert done.exit_code == 0, done.output
    assert state_json(state)["serial"] == 2


def test_state_rm_of_a_declared_address_warns_that_apply_buys_it_again(
    state: Path, decl: Path
) -> None:
    declare(decl, purchase("acme/basic", 3))
    record(state, "acme/basic", 3)
    record(state, "acme/gone", 1)

    declared = run("state", "rm", "acme/basic", "--config", str(decl), "--state", str(state), "-y")
    gone = run("state", "rm", "acme/gone", "--config", str(decl), "--state", str(state), "-y")

    assert declared.exit_code == 0, declared.output
    assert declared.stderr == (
        f"warning: acme/basic is still declared in {decl}; the next apply will buy it again. "
        "Remove its declaration, or use `reconciler state mv` for a rename.\n"
    )
    assert gone.exit_code == 0, gone.output
    assert gone.stderr == ""


def test_state_rm_warns_nothing_when_the_declarations_do_not_load(
    state: Path, tmp_path: Path
) -> None:
    record(state, "acme/basic", 3)

    result = run(
        "state", "rm", "acme/basic", "--config", str(tmp_path / "missing"),
        "--state", str(state), "-y",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert result.stderr == ""


# --- moved: in the declarations ---------------------------------------------------

MOVED_DECL = """\
version: 1
purchases:
  - name: acme/new
    customerTenantId: 111111
    productId: CFQ7TTC0LF8R
    skuId: "0010"
    quantity: 2
    billingCycle: monthly
    termDuration: P1M
moved:
  - from: acme/old
    to: acme/new
  - from: acme/old
    to: acme/new
  - from: acme/x
    to: acme/nope
  - {from: acme/new, to: acme/new}
  - {from: acme/y, to: acme/old}
"""


def test_moved_entries_are_read_and_their_mistakes_located(tmp_path: Path) -> None:
    head = MOVED_DECL.split("moved:")[0]
    good = config.load_text(head + "moved:\n  - {from: acme/old, to: acme/new}\n")
    assert [(m.source, m.target) for m in good.moves] == [("acme/old", "acme/new")]

    with pytest.raises(ConfigError) as caught:
        config.load_text(MOVED_DECL, "d.yaml")
    assert [str(p) for p in caught.value.problems] == [
        "d.yaml:11:11: moved[0].from: 'acme/old' is itself moved from 'acme/y' (a chain or "
        "cycle); move each old name straight to its final name, e.g. "
        "{from: acme/y, to: acme/new}",
        "d.yaml:13:11: moved[1].from: 'acme/old' is itself moved from 'acme/y' (a chain or "
        "cycle); move each old name straight to its final name, e.g. "
        "{from: acme/y, to: acme/new}",
        "d.yaml:13:11: moved[1].from: duplicate move from 'acme/old': in d.yaml:13 and in "
        "d.yaml:11",
        "d.yaml:14:9: moved[1].to: 'acme/new' is already the target of the move from "
        "'acme/old' (d.yaml:11); two purchases cannot move to one address",
        "d.yaml:16:9: moved[2].to: 'acme/nope' is not declared; 'to' must name a declared purchase",
        "d.yaml:17:26: moved[3].to: 'acme/new' is already the target of the move from "
        "'acme/old' (d.yaml:11); two purchases cannot move to one address",
        "d.yaml:17:26: moved[3].to: moves 'acme/new' to itself",
        "d.yaml:18:24: moved[4].to: 'acme/old' is not declared; 'to' must name a declared purchase",
    ]


def test_a_duplicate_from_across_files_is_located_in_both(tmp_path: Path) -> None:
    declare(tmp_path, purchase("acme/a", 1), purchase("acme/b", 1), name="a.yaml")
    for name, target in (("m1.yaml", "acme/a"), ("m2.yaml", "acme/b")):
        (tmp_path / name).write_text(
            f"version: 1\nmoved:\n  - {{from: acme/old, to: {target}}}\n", encoding="utf-8"
        )

    with pytest.raises(ConfigError) as caught:
        config.load(tmp_path)

    m1, m2 = tmp_path / "m1.yaml", tmp_path / "m2.yaml"
    assert [str(p) for p in caught.value.problems] == [
        f"{m2}:3:12: moved[0].from: duplicate move from 'acme/old': in {m2}:3 and in {m1}:3"
    ]


def test_two_moves_to_one_address_are_refused_not_half_ignored(tmp_path: Path) -> None:
    declare(tmp_path, purchase("acme/new", 1), name="a.yaml")
    (tmp_path / "m.yaml").write_text(
        "version: 1\nmoved:\n  - {from: acme/old1, to: acme/new}\n"
        "  - {from: acme/old2, to: acme/new}\n",
        encoding="utf-8",
    )

    with pytest.raises(ConfigError) as caught:
        config.load(tmp_path)

    m = tmp_path / "m.yaml"
    assert [str(p) for p in caught.value.problems] == [
        f"{m}:4:27: moved[1].to: 'acme/new' is already the target of the move from "
        f"'acme/old1' ({m}:3); two purchases cannot move to one address"
    ]


def test_moved_leaves_the_digest_of_declarations_without_moves_alone() -> None:
    plain = config.load_text(MOVED_DECL.split("moved:")[0])
    assert plain.moves == ()
    assert replace(plain, moves=(Move("acme/old", "acme/new"),)).digest() != plain.digest()


# --- the plan and apply of a rename, through the CLI --------------------------------


def renamed(decl: Path, quantity: int, *, moved: bool) -> Path:
    """acme/new declared (BASIC), acme/old no longer; with ``moved`` an entry says so."""
    path = declare(decl, purchase("acme/new", quantity))
    if moved:
        with path.open("a", encoding="utf-8") as handle:
            handle.write("moved:\n- from: acme/old\n  to: acme/new\n")
    return decl


def test_a_rename_without_moved_buys_nothing_and_exits_1(state: Path, decl: Path) -> None:
    record(state, "acme/old", 10, order="order-1")
    before = state.read_bytes()

    plan = run("plan", str(renamed(decl, 10, moved=False)), "--state", str(state))
    apply = run("apply", str(decl), "--state", str(state), "--auto-approve")

    assert plan.exit_code == 1
    assert "  ! acme/new  conflict, 0 -> 10 seats\n" in plan.stdout
    assert (
        "      same identity as acme/old, recorded but no longer declared; if this is a rename, "
        "add `moved: [{from: acme/old, to: acme/new}]` to the declarations or run "
        "`reconciler state mv acme/old acme/new`; if acme/old is really gone, run "
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


def test_apply_of_a_move_makes_no_api_call_and_keeps_the_checkouts(state: Path, decl: Path) -> None:
    record(state, "acme/old", 10, order="order-1")
    record(state, "acme/old", 2, order="order-2")
    checkouts = state_json(state)["purchases"]["acme/old"]
    renamed(decl, 12, moved=True)

    # No API settings at all: a call to the API would fail the run.
    result = run("apply", str(decl), "--state", str(state), "--auto-approve")

    assert result.exit_code == 0, result.output
    assert result.stdout.endswith("Moved acme/old to acme/new in the state.\n")
    after = state_json(state)
    assert after["purchases"] == {"acme/new": checkouts}
    again = run("plan", str(decl), "--state", str(state), "--detailed-exitcode")
    # The leftover moved: entry is a harmless noop.
    assert again.exit_code == 0, again.output
    assert "No changes." in again.stdout


def test_a_moves_only_apply_without_a_terminal_needs_auto_approve(state: Path, decl: Path) -> None:
    record(state, "acme/old", 10, order="order-1")
    before = state.read_bytes()
    renamed(decl, 10, moved=True)

    refused = run("apply", str(decl), "--state", str(state))

    assert refused.exit_code == 1
    assert "pass --auto-approve to apply without asking" in refused.stderr
    assert state.read_bytes() == before


def test_a_saved_plan_keeps_its_moves(state: Path, decl: Path, tmp_path: Path) -> None:
    record(state, "acme/old", 10, order="order-1")
    renamed(decl, 10, moved=True)
    saved = tmp_path / "tfplan.json"

    planned = run("plan", str(decl), "--state", str(state), "--out", str(saved))
    applied = run("apply", str(decl), "--state", str(state), "--plan", str(saved), "--auto-approve")

    assert planned.exit_code == 0, planned.output
    assert json.loads(saved.read_text(encoding="utf-8"))["changes"][0]["from"] == "acme/old"
    assert applied.exit_code == 0, applied.output
    assert list(state_json(state)["purchases"]) == ["acme/new"]


def test_a_move_with_more_seats_moves_then_buys_the_difference(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness()
    assert h.apply().exit_code == 0
    old = h.state_file()["purchases"][TEAMS]
    edit_purchase(h.decl, TEAMS, name="northwind/teams", quantity=old["quantity"] + 2)
    file = h.decl / "customers" / "northwind.yaml"
    with file.open("a", encoding="utf-8") as handle:
        handle.write(f"moved:\n- from: {TEAMS}\n  to: northwind/teams\n")
    calls = len(h.sim.calls)

    result = h.apply()

    assert result.exit_code == 0, result.output
    assert f"Moved {TEAMS} to northwind/teams in the state." in result.stdout
    state = h.state_file()
    assert TEAMS not in state["purchases"]
    moved = state["purchases"]["northwind/teams"]
    assert moved["quantity"] == old["quantity"] + 2
    assert moved["checkouts"][:-1] == old["checkouts"]
    assert moved["checkouts"][-1]["quantity"] == 2
    # One verify and one checkout for the two added seats; nothing for the move.
    paths = [c.path for c in h.sim.calls[calls:]]
    assert sum("checkout" in p.lower() for p in paths) == 1


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


def test_apply_target_buys_one_customer_while_another_is_blocked(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness()
    assert h.apply().exit_code == 0
    state = h.state_file()
    basic = state["purchases"]["contoso/m365-business-basic"]["quantity"]
    edit_purchase(h.decl, "contoso/m365-business-basic", quantity=basic + 3)
    teams = state["purchases"][TEAMS]["quantity"]
    edit_purchase(h.decl, TEAMS, quantity=teams - 1)  # a conflict elsewhere
    waiting = "northwind/exchange-online-plan-1"
    recorded = JsonFileStateStore(h.state).load().purchases[waiting]
    with JsonFileStateStore(h.state).lock("test") as writer:
        writer.add_pending(PendingOperation(waiting, recorded.identity, "order-w", 1, T0))
    saved = h.tmp / "contoso.plan"

    refused = h.apply()
    planned = h.run(
        "plan", str(h.decl), "--state", str(h.state), "--target", "contoso/", "--out", str(saved)
    )
    other = h.apply("--plan", str(saved), "--target", "fabrikam/")
    applied = h.apply("--plan", str(saved))

    assert refused.exit_code == 1
    assert planned.exit_code == 0, planned.output
    assert other.exit_code == 1
    assert other.stderr == (
        f"error: saved plan {saved} was made with --target contoso/; apply it without "
        "--target or run `reconciler plan` again\n"
    )
    assert applied.exit_code == 0, applied.output
    after = h.state_file()
    assert after["purchases"]["contoso/m365-business-basic"]["quantity"] == basic + 3
    assert after["purchases"][TEAMS]["quantity"] == teams
    assert list(after["pending"]) == [waiting]
