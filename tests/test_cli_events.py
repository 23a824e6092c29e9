"""``apply --json`` (``reconciler.cli.events``): the run as JSON lines on stdout, end to
end against the simulator; every line is an event valid against its schema."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import yaml
from click.testing import Result

import reconciler
from tests.support.declarations import edit_purchase, file_declaring, read_declared
from tests.support.paths import schema
from tests.support.simulator import TEAMS, Harness


def events(result: Result) -> list[dict[str, Any]]:
    """stdout of ``apply --json``: every line one event valid against the schema."""
    validator = jsonschema.Draft202012Validator(schema("apply-events"))
    found = []
    for line in result.stdout.splitlines():
        event = json.loads(line)
        validator.validate(event)
        found.append(event)
    return found


def test_apply_json_prints_only_events_in_order(h: Harness) -> None:
    result = h.apply("--json")

    assert result.exit_code == 0, result.stderr
    found = events(result)
    types = [e["type"] for e in found]
    assert types[:2] == ["version", "apply_start"]
    assert types[-1] == "apply_complete"
    assert sorted(types[2:-1]) == ["change_complete"] * 10 + ["change_start"] * 10
    # At parallelism 1 the next change may start (its verify) while the previous 204
    # is recorded: a change_start may come before the previous change_complete, but
    # never two ahead, and each change starts before it completes, in address order.
    order = [(e["type"], e["address"]) for e in found[2:-1]]
    starts = [a for t, a in order if t == "change_start"]
    assert starts == sorted(read_declared(h.decl))
    for i, (kind, address) in enumerate(order):
        if kind == "change_complete":
            assert order.index(("change_start", address)) < i
        else:
            previous = starts.index(address) - 1
            if previous >= 1:
                assert order.index(("change_complete", starts[previous - 1])) < i
    assert found[0]["reconciler"] == reconciler.__version__
    assert (found[1]["changes"], found[1]["seats"]) == (10, 333)
    completes = [e for e in found if e["type"] == "change_complete"]
    assert [e["address"] for e in completes] == sorted(read_declared(h.decl))
    assert {e["outcome"] for e in completes} == {"purchased"}
    orders = {e["external_order_id"] for e in completes}
    assert orders == {c.external_order_id for c in h.sim.checkouts}
    end = found[-1]
    assert (end["outcome"], end["purchased"], end["failed"], end["pending"], end["seats"]) == (
        "applied",
        10,
        0,
        0,
        333,
    )
    # The plan and the human summary went to stderr.
    assert "Plan: 10 to purchase (+333 seats)" in result.stderr
    assert "Apply complete: 10 purchased (+333 seats), 0 failed, 0 pending." in result.stderr
    h.assert_bought_exactly_once()


def test_apply_json_reports_a_refused_order_and_fails(h: Harness) -> None:
    edit_purchase(h.decl, TEAMS, quantity=25)

    result = h.apply("--json")

    assert result.exit_code == 1
    found = events(result)
    (failed,) = [e for e in found if e["type"] == "change_failed"]
    assert (failed["address"], failed["outcome"], failed["seats"]) == (TEAMS, "failed", 25)
    assert any("QuantityOutOfRange" in error for error in failed["errors"])
    assert found[-1]["outcome"] == "failed"
    assert (found[-1]["purchased"], found[-1]["failed"]) == (9, 1)


def test_apply_json_reports_a_checkout_of_unknown_outcome(h: Harness) -> None:
    h.sim.drop_after_checkout(1)

    result = h.apply("--json")

    assert result.exit_code == 1
    found = events(result)
    (pending,) = [e for e in found if e["type"] == "change_pending"]
    (taken,) = h.sim.checkouts
    assert pending["external_order_id"] == taken.external_order_id
    assert pending["outcome"] == "pending"
    assert (found[-1]["outcome"], found[-1]["pending"], found[-1]["skipped"]) == ("failed", 1, 9)
    assert "reconciler state resolve contoso/m365-business-basic --purchased" in result.stderr


def test_apply_json_refused_before_it_starts_ends_with_the_error(h: Harness) -> None:
    h.sim.drop_after_checkout(1)
    assert h.apply().exit_code == 1  # leaves a pending checkout

    result = h.apply("--json", "--refresh=false")  # offline, only a person can settle it

    assert result.exit_code == 1
    found = events(result)
    assert [e["type"] for e in found] == ["version", "apply_complete"]
    assert found[-1]["outcome"] == "error"
    assert any("pending operation" in error for error in found[-1]["errors"])
    assert "error: the state has 1 pending operation whose outcome is unknown" in result.stderr


def test_apply_json_of_invalid_declarations_ends_with_the_located_errors(h: Harness) -> None:
    (h.decl / "customers" / "broken.yaml").write_text(
        "version: 1\npurchases: 3\n", encoding="utf-8"
    )

    result = h.apply("--json")

    assert result.exit_code == 1
    found = events(result)
    assert [e["type"] for e in found] == ["version", "apply_complete"]
    assert found[-1]["errors"] == [
        f"{h.decl / 'customers' / 'broken.yaml'}:2:12: purchases: 3 is not of type 'array'"
    ]
    assert h.sim.calls == []


def test_apply_json_needs_auto_approve_or_a_saved_plan(h: Harness) -> None:
    result = h.run("apply", str(h.decl), "--state", str(h.state), "--json")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert "--json needs --auto-approve or --plan" in result.stderr
    assert h.sim.calls == []


def test_apply_json_reports_moves(h: Harness) -> None:
    assert h.apply().exit_code == 0
    file, data, purchase = file_declaring(h.decl, TEAMS)
    purchase["name"] = "northwind/teams"
    purchase["quantity"] += 2
    data["moved"] = [{"from": TEAMS, "to": "northwind/teams"}]
    file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

    result = h.apply("--json")

    assert result.exit_code == 0, result.stderr
    found = events(result)
    assert [e["type"] for e in found] == [
        "version", "refresh", "apply_start", "change_complete", "change_start",
        "change_complete", "apply_complete",
    ]  # fmt: skip
    moved, _, bought = found[3], found[4], found[5]
    assert (moved["address"], moved["from"], moved["outcome"], moved["seats"]) == (
        "northwind/teams",
        TEAMS,
        "moved",
        0,
    )
    assert (bought["address"], bought["outcome"], bought["seats"]) == (
        "northwind/teams",
        "purchased",
        2,
    )
    assert (found[-1]["moved"], found[-1]["purchased"]) == (1, 1)


def test_a_saved_plan_is_still_refused_when_the_state_moved_on(h: Harness) -> None:
    plan_file = h.tmp / "tfplan.json"
    assert (
        h.run("plan", str(h.decl), "--state", str(h.state), "--out", str(plan_file)).exit_code == 0
    )
    northwind = h.decl / "customers" / "northwind.yaml"
    assert h.apply_path(northwind).exit_code == 0

    result = h.run("apply", "--plan", str(plan_file), "--state", str(h.state), "--json")

    assert result.exit_code == 1
    assert "is stale" in result.stderr
    found = events(result)
    assert found[-1]["outcome"] == "error"
    assert any("is stale" in error for error in found[-1]["errors"])
