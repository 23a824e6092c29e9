"""``reconciler init`` and ``reconciler state ...`` (``reconciler.cli.state``), end to end.

Listing, showing, forgetting, importing, resolving, moving and pulling, as a user
runs them on a state file under ``tmp_path``: what they print, what they write
(one serial per write) and what they refuse, leaving the file as it was.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import Result

from reconciler.model import PendingOperation, SubscriptionChange, UpdateField
from reconciler.state import JsonFileStateStore
from tests.support.cli import assert_no_traceback, init, run
from tests.support.declarations import declare, purchase
from tests.support.records import BASIC, TENANT
from tests.support.states import add_pending, read_state_file, record, state_json
from tests.support.times import T0


def state_import(address: str, quantity: int, config: Path, state: Path) -> Result:
    return run(
        "state", "import", address, "--quantity", str(quantity), "--config", str(config),
        "--state", str(state), "--yes",
    )  # fmt: skip


def test_resolve_without_outcome_says_which_flags(tmp_path: Path) -> None:
    result = run("state", "resolve", "a/b", "--state", str(tmp_path / "s.json"))

    assert result.exit_code == 1
    assert "--purchased" in result.stderr
    assert "--not-purchased" in result.stderr


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


# --- init ------------------------------------------------------------------------------


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


# --- locking ---------------------------------------------------------------------------


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


def test_the_lock_is_released_after_each_command(state: Path) -> None:
    record(state, "acme/a", 1)
    record(state, "acme/b", 1)

    assert run("state", "rm", "acme/a", "--state", str(state), "--yes").exit_code == 0
    assert run("state", "rm", "acme/b", "--state", str(state), "--yes").exit_code == 0
    with JsonFileStateStore(state).lock("test") as writer:
        assert writer.state.purchases == {}


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


@pytest.mark.parametrize(
    ("field", "before", "after", "seats"),
    [("quantity", 10, 7, 7), ("quantity", 10, 12, 12), ("autoRenew", 1, 0, 10)],
)
@pytest.mark.parametrize("made", [True, False])
def test_state_resolve_of_a_pending_update_records_that_update(
    state: Path, field: str, before: int, after: int, seats: int, made: bool
) -> None:
    record(state, "acme/basic", 10, order="order-1")
    step = SubscriptionChange(500001, UpdateField(field), before, after)
    with JsonFileStateStore(state).lock("test") as writer:
        writer.link_subscriptions("acme/basic", [(500001, "order-1")])
        writer.add_pending(
            PendingOperation("acme/basic", BASIC, step.operation, step.seats, T0, update=step)
        )

    flag = "--purchased" if made else "--not-purchased"
    result = run("state", "resolve", "acme/basic", flag, "--state", str(state))

    assert result.exit_code == 0, result.output
    assert step.operation in result.stdout
    entry = read_state_file(state)["purchases"]["acme/basic"]
    assert read_state_file(state)["pending"] == {}
    assert [c["externalOrderId"] for c in entry["checkouts"]] == ["order-1"]  # nothing bought
    if made:
        assert "recorded as made" in result.stdout
        assert entry["quantity"] == seats
        assert [u["subscription"] for u in entry["updates"]] == [500001]
    else:
        assert "recorded as not made" in result.stdout
        assert entry["quantity"] == 10
        assert entry.get("updates", []) == []
