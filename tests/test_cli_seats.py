"""Seats both ways through the real CLI and the simulator over a socket: decreases
inside Microsoft's cancellation window and conflicts outside it, increases by update,
renewal settings, ``import:`` and ``removed:``, and updates whose answers are lost.

Cloud-iQ is the truth here: each test checks what the simulator's subscriptions hold
after the commands, not only what the state says.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal

import jsonschema
import pytest

from reconciler.simulator import Simulator
from tests.support.cli import run
from tests.support.paths import schema
from tests.support.records import BASIC, TENANT
from tests.support.simulator import Project, make_project

PLAN_SCHEMA = schema("plan")

HEAD = """\
version: 1
defaults:
  customerTenantId: 111111
  billingCycle: monthly
  termDuration: P1M
purchases:
"""


def declare(project: Project, body: str) -> None:
    """Replace the project's declarations with ``HEAD`` followed by ``body``."""
    (project.decl / "acme.yaml").write_text(HEAD + body, encoding="utf-8")


def basic(quantity: int, *extra: str) -> str:
    """The acme/basic purchase with ``quantity`` seats and extra fields (YAML lines)."""
    lines = [
        "  - name: acme/basic",
        "    productId: CFQ7TTC0LF8R",
        '    skuId: "0010"',
        f"    quantity: {quantity}",
        *(f"    {line}" for line in extra),
    ]
    return "\n".join(lines) + "\n"


def plan_json(project: Project, code: int = 0) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        project.ok("plan", str(project.decl), "--json", code=code).stdout
    )
    jsonschema.Draft202012Validator(PLAN_SCHEMA).validate(data)
    return data


def change(data: dict[str, Any], address: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [c for c in data["changes"] if c["address"] == address]
    assert len(found) == 1, found
    return found[0]


def apply(project: Project, code: int = 0) -> str:
    return project.ok("apply", str(project.decl), "--auto-approve", code=code).stdout


def subscription_of(sim: Simulator) -> int:
    (sub,) = [s.id for s in sim.subscriptions if s.product == BASIC.product]
    return sub


@pytest.fixture
def bought(project: Project) -> Project:
    """acme/basic bought with 5 seats (one subscription) and nothing else declared."""
    declare(project, basic(5))
    apply(project)
    assert project.sim.active_seats(TENANT, BASIC.product) == 5
    return project


def test_fewer_seats_inside_the_window_are_cancelled_newest_first(bought: Project) -> None:
    sim = bought.sim
    sub = subscription_of(sim)
    bought.sim.advance_clock(hours=2)
    bought.sim.portal_set_quantity(sub, 5)  # unchanged; the clock moved
    declare(bought, basic(3))

    data = plan_json(bought, code=0)
    lowered = change(data, "acme/basic")
    assert lowered["action"] == "decrease"
    assert (lowered["before"], lowered["after"]) == (5, 3)
    assert lowered["subscriptions"] == [sub]
    assert lowered["window_ends"] is not None
    text = bought.ok("plan", str(bought.decl)).stdout
    assert "v acme/basic" in text
    assert "prorated credit" in text

    buys = bought.buys()
    out = apply(bought)
    assert "acme/basic" in out
    assert bought.buys() == buys  # nothing verified or checked out
    assert sim.subscription(sub).quantity == 3
    assert sim.count("update") == 1
    recorded = bought.state_document()["purchases"]["acme/basic"]
    assert recorded["quantity"] == 3
    assert "No changes." in bought.ok("plan", str(bought.decl)).stdout


def test_fewer_seats_outside_the_window_are_a_conflict_that_says_when(bought: Project) -> None:
    sim = bought.sim
    sub = subscription_of(sim)
    sim.advance_clock(hours=24 * 8)
    declare(bought, basic(3))

    data = plan_json(bought, code=1)
    refused = change(data, "acme/basic")
    assert refused["action"] == "conflict"
    assert "cancellation window" in refused["reason"] or "renew" in refused["reason"]
    failed = bought.run("apply", str(bought.decl), "--auto-approve")
    assert failed.exit_code == 1
    assert "acme/basic" in failed.stdout + failed.stderr
    assert sim.count("update") == 0
    assert sim.subscription(sub).quantity == 5


def test_more_seats_by_update_raise_the_one_subscription(bought: Project) -> None:
    sim = bought.sim
    sub = subscription_of(sim)
    declare(bought, basic(8, "seatChanges: update"))

    raised = change(plan_json(bought), "acme/basic")
    assert raised["action"] == "increase"
    assert raised["subscriptions"] == [sub]

    buys = bought.buys()
    apply(bought)
    assert bought.buys() == buys  # a PUT, no checkout
    assert [s.id for s in sim.subscriptions if s.product == BASIC.product] == [sub]
    assert sim.subscription(sub).quantity == 8
    assert bought.state_document()["purchases"]["acme/basic"]["quantity"] == 8
    assert "No changes." in bought.ok("plan", str(bought.decl)).stdout


def test_more_seats_by_order_buy_a_second_subscription(bought: Project) -> None:
    declare(bought, basic(8))
    apply(bought)
    held = sorted(s.quantity for s in bought.sim.subscriptions if s.product == BASIC.product)
    assert held == [3, 5]
    assert bought.sim.active_seats(TENANT, BASIC.product) == 8
    assert "No changes." in bought.ok("plan", str(bought.decl)).stdout


def test_renewal_follows_the_declaration(bought: Project) -> None:
    sim = bought.sim
    sub = subscription_of(sim)
    assert sim.subscription(sub).auto_renew is True
    declare(bought, basic(5, "autoRenew: false"))

    updated = change(plan_json(bought), "acme/basic")
    assert updated["action"] == "update"
    assert "* acme/basic" in bought.ok("plan", str(bought.decl)).stdout

    apply(bought)
    assert sim.subscription(sub).auto_renew is False
    assert sim.subscription(sub).quantity == 5
    assert "No changes." in bought.ok("plan", str(bought.decl)).stdout


def test_removed_with_cancel_cancels_inside_the_window(bought: Project) -> None:
    sim = bought.sim
    sub = subscription_of(sim)
    declare(bought, "  []\nremoved:\n  - address: acme/basic\n    cancel: true\n")

    cancelled = change(plan_json(bought), "acme/basic")
    assert cancelled["action"] == "cancel"
    assert cancelled["subscriptions"] == [sub]
    assert "x acme/basic" in bought.ok("plan", str(bought.decl)).stdout

    apply(bought)
    assert not sim.subscription(sub).active
    assert sim.active_seats(TENANT, BASIC.product) == 0
    # Done: a second apply sends nothing, and the entry is harmless.
    updates = sim.count("update")
    apply(bought)
    assert sim.count("update") == updates
    assert "No changes." in bought.ok("plan", str(bought.decl)).stdout


def test_undeclared_without_removed_is_an_orphan_and_nothing_is_cancelled(
    bought: Project,
) -> None:
    sim = bought.sim
    declare(bought, "  []\n")
    orphan = change(plan_json(bought), "acme/basic")
    assert orphan["action"] == "orphan"
    apply(bought)
    assert sim.count("update") == 0
    assert sim.active_seats(TENANT, BASIC.product) == 5


def test_removed_without_cancel_forgets_and_keeps_the_seats(bought: Project) -> None:
    sim = bought.sim
    declare(bought, "  []\nremoved:\n  - address: acme/basic\n    cancel: false\n")
    assert change(plan_json(bought), "acme/basic")["action"] == "forget"
    apply(bought)
    assert "acme/basic" not in bought.state_document()["purchases"]
    assert sim.count("update") == 0
    assert sim.active_seats(TENANT, BASIC.product) == 5


def test_import_adopts_a_portal_subscription_without_buying(project: Project) -> None:
    sim = project.sim
    sub = sim.portal_add_subscription(TENANT, BASIC.product, 7)
    declare(project, basic(7) + f"import:\n  - to: acme/basic\n    subscriptions: [{sub}]\n")

    adopted = change(plan_json(project), "acme/basic")
    assert adopted["action"] == "adopt"
    assert adopted["subscriptions"] == [sub]

    apply(project)
    assert project.buys() == (0, 0)
    recorded = project.state_document()["purchases"]["acme/basic"]
    assert (recorded["quantity"], recorded["subscriptions"]) == (7, [sub])
    assert "No changes." in project.ok("plan", str(project.decl)).stdout


def test_seats_added_in_the_portal_are_planned_back_down(bought: Project) -> None:
    sim = bought.sim
    sub = subscription_of(sim)
    sim.portal_set_quantity(sub, 9)

    back = change(plan_json(bought), "acme/basic")
    assert back["action"] == "decrease"
    assert (back["before"], back["after"]) == (9, 5)
    apply(bought)
    assert sim.subscription(sub).quantity == 5
    assert "No changes." in bought.ok("plan", str(bought.decl)).stdout


@pytest.mark.parametrize("fault", ["drop", "500"])
def test_an_update_whose_answer_is_lost_is_read_back_and_not_repeated(
    bought: Project, fault: Literal["drop", "500"]
) -> None:
    sim = bought.sim
    sub = subscription_of(sim)
    declare(bought, basic(2))
    sim.fail_updates(fault)
    apply(bought)  # the read back proves it made: done in the same run
    assert sim.subscription(sub).quantity == 2
    assert sim.count("update") == 1
    assert bought.state_document()["pending"] == {}
    assert "No changes." in bought.ok("plan", str(bought.decl)).stdout


def test_an_update_not_made_is_sent_again_after_the_read_back(bought: Project) -> None:
    sim = bought.sim
    sub = subscription_of(sim)
    declare(bought, basic(2))
    sim.fail_updates("unapplied")
    apply(bought)
    assert sim.subscription(sub).quantity == 2
    assert sim.count("update") == 2
    assert "No changes." in bought.ok("plan", str(bought.decl)).stdout


def test_a_subscription_changed_by_someone_else_is_a_conflict_not_a_put(
    bought: Project,
) -> None:
    sim = bought.sim
    sub = subscription_of(sim)
    declare(bought, basic(3))
    saved = bought.tmp / "reviewed.plan"
    bought.ok("plan", str(bought.decl), "--out", str(saved))
    sim.portal_set_quantity(sub, 4)  # between review and apply
    failed = bought.run("apply", "--plan", str(saved), "--auto-approve")
    assert failed.exit_code == 1
    assert sim.count("update") == 0
    assert sim.subscription(sub).quantity == 4


def test_seats_down_on_postgresql(simulator: Simulator, tmp_path: Path, pg_database: str) -> None:
    project = make_project(simulator, tmp_path, pg_database, declarations=False)
    declare(project, basic(5))
    apply(project)
    sub = subscription_of(simulator)
    declare(project, basic(2, "autoRenew: false"))
    simulator.fail_updates("drop")
    apply(project)
    detail = simulator.subscription(sub)
    assert (detail.quantity, detail.auto_renew) == (2, False)
    ops = [e["op"] for e in json.loads(project.ok("state", "history", "--json").stdout)]
    assert ops.count("record_update") == 2
    assert "No changes." in project.ok("plan", str(project.decl)).stdout


def test_apply_json_reports_a_decrease_as_an_update_of_negative_seats(bought: Project) -> None:
    declare(bought, basic(3))
    shown = bought.ok("apply", str(bought.decl), "--auto-approve", "--json").stdout
    events = [json.loads(line) for line in shown.splitlines()]
    validator = jsonschema.Draft202012Validator(schema("apply-events"))
    for event in events:
        validator.validate(event)
    by_type = {e["type"]: e for e in events}
    assert by_type["apply_start"]["changes"] == 1
    done = by_type["change_complete"]
    assert (done["action"], done["outcome"], done["seats"]) == ("decrease", "updated", -2)
    assert by_type["apply_complete"]["outcome"] == "applied"


def test_a_first_put_that_lands_late_never_undoes_the_next_step(bought: Project) -> None:
    """The decrease's PUT gets no answer in time: it is still on its way, a whole
    subscription with the renewal as it was, and lands after the read back showed it
    not made. Had apply sent it again and gone on to turn the renewal off, the late
    one would turn it back on while apply said done. Apply leaves it pending instead;
    the next apply finds it made and turns the renewal off."""
    sim = bought.sim
    sub = subscription_of(sim)
    declare(bought, basic(3, "autoRenew: false"))
    sim.delay_next("update", 0.6)
    env = {**sim.env(), "RECONCILER_STATE": bought.state, "RECONCILER_READ_TIMEOUT": "0.25"}
    first = run("apply", str(bought.decl), "--auto-approve", env=env)
    assert sim.wait_idle(5)
    time.sleep(0.5)  # the late PUT has landed
    detail = sim.subscription(sub)
    if first.exit_code == 0:  # said done: Cloud-iQ must show it
        assert (detail.quantity, detail.auto_renew) == (3, False), first.stdout
    else:
        assert "pending" in first.stdout + first.stderr
        assert bought.state_document()["pending"]
    apply(bought)
    detail = sim.subscription(sub)
    assert (detail.quantity, detail.auto_renew) == (3, False)
    assert bought.state_document()["pending"] == {}
    assert "No changes." in bought.ok("plan", str(bought.decl)).stdout
