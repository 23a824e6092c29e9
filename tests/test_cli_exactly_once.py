"""Exactly once through the real CLI where it was found to break: a lost
checkout under clock skew beside a person's later failed portal order, and a saved
plan applied to a copy of a file state after the original applied it.

Each test drives ``apply``, ``plan`` and ``refresh`` against the simulator over a
socket and judges what the simulator took: no seat of an address is ever bought
twice, whatever the clocks say, whether Cloud-iQ already lists the new
subscription, and whatever state a saved plan is applied to.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from reconciler.simulator import Simulator
from tests.support.records import BASIC, E3, PREMIUM, TENANT
from tests.support.simulator import Project

#: The declared seats of tests.support.simulator.PROJECT_DECLARATIONS.
DECLARED = {"acme/basic": (BASIC.product, 5), "acme/premium": (PREMIUM.product, 3),
            "acme/e3": (E3.product, 2)}  # fmt: skip


def apply(project: Project) -> int:
    """A plain ``apply --auto-approve``; exits 0, or 1 while something is pending."""
    done = project.run("apply", str(project.decl), "--auto-approve")
    assert done.exit_code in (0, 1), done.stdout + done.stderr
    return done.exit_code


def assert_each_seat_bought_once(sim: Simulator) -> None:
    """The simulator took each declared seat once (pending entries included)."""
    for _address, (product, seats) in DECLARED.items():
        assert sim.seats(TENANT, product) <= seats, (product, sim.checkouts)
    ids = [c.external_order_id for c in sim.checkouts]
    assert len(ids) == len(set(ids))


# --------------------------------------------------------------------------- clock skew


def _lose_a_checkout_then_a_person_fails(
    project: Project, runner_ahead: int, *, listed: bool
) -> str:
    """The runner's clock ``runner_ahead`` minutes ahead of the API's (behind when
    negative); acme/basic's checkout is taken but its answer lost, its asset order
    not found; a minute later a person's portal attempt of the same product and
    quantity fails. ``listed``: Cloud-iQ already lists the new subscription."""
    sim = project.sim
    sim.advance_clock(minutes=-runner_ahead)
    sim.hide_asset_orders(True)
    sim.hide_subscriptions(not listed)
    sim.drop_after_checkout(1)
    assert apply(project) == 1
    (pending,) = project.state_document()["pending"].values()
    assert sim.seats(TENANT, BASIC.product) == 5  # taken
    sim.advance_clock(minutes=1)
    sim.portal_failed_order(TENANT, BASIC.product, 5, error="Payment declined")
    return str(pending["externalOrderId"])


@pytest.mark.parametrize("listed", [True, False], ids=["listed", "not-listed-yet"])
@pytest.mark.parametrize("runner_ahead", [0, 5, 15, 60, -5, -15, -60])
def test_a_lost_checkout_beside_a_later_failed_portal_order_is_never_bought_again(
    project: Project, runner_ahead: int, listed: bool
) -> None:
    sim = project.sim
    _lose_a_checkout_then_a_person_fails(project, runner_ahead, listed=listed)
    for _ in range(2):
        apply(project)  # the others are bought; acme/basic may stay pending
        assert sim.seats(TENANT, BASIC.product) == 5
    refreshed = project.run("refresh", str(project.decl), "--auto-approve")
    assert refreshed.exit_code in (0, 1), refreshed.stdout + refreshed.stderr
    document = project.state_document()
    if "acme/basic" in document["pending"]:
        assert "Traceback" not in refreshed.stderr
        assert "reconciler state resolve acme/basic" in refreshed.stderr
    else:
        assert document["purchases"]["acme/basic"]["quantity"] == 5
    assert_each_seat_bought_once(sim)
    # Once Cloud-iQ shows the asset order, the next apply settles it and is done.
    sim.hide_asset_orders(False)
    sim.hide_subscriptions(False)
    assert apply(project) == 0
    document = project.state_document()
    assert document["pending"] == {}
    for address, (product, seats) in DECLARED.items():
        assert document["purchases"][address]["quantity"] == seats
        assert sim.seats(TENANT, product) == seats
    assert "No changes." in project.ok("plan", str(project.decl)).stdout


@pytest.mark.parametrize("listed", [True, False], ids=["listed", "not-listed-yet"])
@pytest.mark.parametrize("runner_ahead", [15, 60])
def test_a_checkout_lost_while_the_runners_clock_was_ahead_is_not_bought_again_once_fixed(
    project: Project, runner_ahead: int, listed: bool
) -> None:
    """The entry was written pending by a runner whose clock was ahead (another CI
    machine, or before an NTP step); the run that reads Cloud-iQ back has a right
    clock. The real order is then older than the entry's time says, so it falls out
    of the matching window, and the person's failed attempt is the one candidate: it
    must still not prove the checkout "not purchased"."""
    sim = project.sim
    sim.advance_clock(minutes=-runner_ahead)
    sim.hide_asset_orders(True)
    sim.hide_subscriptions(not listed)
    sim.drop_after_checkout(1)
    assert apply(project) == 1
    sim.advance_clock(minutes=runner_ahead)  # the clocks agree now
    time.sleep(1.2)  # the person's attempt comes after the entry's time, whatever rounding
    sim.portal_failed_order(TENANT, BASIC.product, 5, error="Payment declined")
    for _ in range(2):
        apply(project)
        assert sim.seats(TENANT, BASIC.product) == 5
    assert_each_seat_bought_once(sim)
    sim.hide_asset_orders(False)
    sim.hide_subscriptions(False)
    assert apply(project) == 0
    assert project.state_document()["purchases"]["acme/basic"]["quantity"] == 5
    assert sim.seats(TENANT, BASIC.product) == 5


def test_a_failed_portal_order_alone_still_settles_a_checkout_that_never_arrived(
    project: Project,
) -> None:
    """The rules still prove a failure when they can: a checkout answered 500 without
    being taken, and the person's failed attempt the only order; so no person is
    needed and the next apply buys the seats once."""
    sim = project.sim
    sim.hide_subscriptions(True)  # nothing unowned could be this checkout's either
    sim.fail_checkout_unrecorded(1)
    assert apply(project) == 1
    # Later than the entry by more than the second the Date header and the entry's
    # time are rounded to (moving the simulated clock would move the skew with it).
    time.sleep(1.2)
    sim.portal_failed_order(TENANT, BASIC.product, 5)
    sim.hide_subscriptions(False)
    assert apply(project) == 0
    assert sim.seats(TENANT, BASIC.product) == 5
    assert project.state_document()["pending"] == {}


# --------------------------------------------------------------------------- saved plans


def test_a_saved_plan_applied_to_a_copy_of_the_state_after_the_original_does_not_buy_twice(
    project: Project,
) -> None:
    """A file state copied (same lineage and serial) before the saved plan was applied
    to the original: the copy accepts the plan, but apply reads Cloud-iQ first and the
    seats are there, owned by no address it records."""
    saved = project.tmp / "reviewed.plan"
    project.ok("plan", str(project.decl), "--out", str(saved))
    copy = project.tmp / "copy.state.json"
    shutil.copy(project.state, copy)
    project.ok("apply", "--plan", str(saved), "--auto-approve")
    bought = project.buys()
    taken = list(project.sim.checkouts)

    again = project.run("apply", "--plan", str(saved), "--auto-approve", "--state", str(copy))
    assert again.exit_code == 1, again.stdout + again.stderr
    assert "Traceback" not in again.stderr
    assert project.buys() == bought
    assert project.sim.checkouts == taken
    copied = json.loads(copy.read_text(encoding="utf-8"))
    assert copied["purchases"] == {}
    assert copied["pending"] == {}
    # A plain apply on the copy says why too, and buys nothing.
    plain = project.run("apply", str(project.decl), "--auto-approve", "--state", str(copy))
    assert plain.exit_code == 1
    assert "already holds" in plain.stdout + plain.stderr
    assert project.buys() == bought


def test_the_same_saved_plan_applied_twice_to_one_state_is_refused_as_stale(
    project: Project, tmp_path: Path
) -> None:
    saved = tmp_path / "reviewed.plan"
    project.ok("plan", str(project.decl), "--out", str(saved))
    project.ok("apply", "--plan", str(saved), "--auto-approve")
    bought = project.buys()
    again = project.run("apply", "--plan", str(saved), "--auto-approve")
    assert again.exit_code == 1
    assert "stale" in (again.stdout + again.stderr).lower()
    assert project.buys() == bought
