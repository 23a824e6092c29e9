"""``reconciler refresh`` and ``reconciler import`` (``reconciler.cli.refresh``): reading
Cloud-iQ back, end to end against the simulator.

Each test judges a run as an operator would: the exit code and output, the state,
and what the simulator recorded (every seat bought once; refresh and import never
call verify or checkout).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import jsonschema
import pytest
import yaml

from reconciler.api.client import CrayonClient
from reconciler.api.settings import ApiSettings
from reconciler.simulator import Simulator
from tests.support.paths import ROOT, schema
from tests.support.records import BASIC, E3, PREMIUM, TENANT
from tests.support.simulator import PROJECT_DECLARATIONS, Project, make_project

PLAN_SCHEMA = schema("plan")
STATE_SCHEMA = schema("state")


# --------------------------------------------------------------------------- drift


def test_refresh_records_drift_as_adjustments_and_a_lower_quantity_then_plans_noop(
    project: Project,
) -> None:
    project.ok("apply", str(project.decl), "--auto-approve")
    project.sim.portal_set_quantity(project.subscription(BASIC.product), 3)  # two seats cancelled
    before = project.buys()

    done = project.ok("refresh", str(project.decl), "--auto-approve")
    subscription = project.subscription(BASIC.product)
    assert f"Recorded subscription {subscription} at acme/basic" in done.stdout
    assert "Adjusted acme/basic: -2 seats (5 -> 3), recorded as an adjustment." in done.stdout
    assert project.buys() == before
    document = project.state_document()
    jsonschema.Draft202012Validator(STATE_SCHEMA).validate(document)
    basic = document["purchases"]["acme/basic"]
    assert basic["quantity"] == 3
    assert basic["subscriptions"] == [subscription]
    (adjustment,) = basic["adjustments"]
    assert (adjustment["quantity"], adjustment["source"]) == (-2, "refresh")
    assert adjustment["evidence"] == (
        f"Cloud-iQ showed 3 seats (subscription {subscription}); 5 were recorded"
    )
    assert len(basic["checkouts"]) == 1  # an adjustment, never a checkout

    # The declarations still say 5: Cloud-iQ's 3 seats are what the address has, so
    # the plan buys 2 (a recorded decrease never blocks a later increase)...
    plan = project.ok("plan", str(project.decl))
    assert "~ acme/basic  increase, 3 -> 5 seats (+2)" in plan.stdout
    assert project.buys() == before
    # ...and lowering the quantity to match is a noop.
    text = (project.decl / "acme.yaml").read_text(encoding="utf-8")
    (project.decl / "acme.yaml").write_text(text.replace("quantity: 5", "quantity: 3"))
    assert "No changes." in project.ok("plan", str(project.decl), "--detailed-exitcode").stdout
    again = project.ok("refresh", str(project.decl), "--auto-approve")
    assert "Nothing to record" in again.stdout


def test_two_addresses_of_one_identity_each_own_their_subscription_and_drift_alone(
    project: Project,
) -> None:
    (project.decl / "more.yaml").write_text(
        "version: 1\npurchases:\n  - {name: acme/basic-2, customerTenantId: 111111, "
        'productId: CFQ7TTC0LF8R, skuId: "0010", billingCycle: monthly, termDuration: P1M, '
        "quantity: 1}\n",
        encoding="utf-8",
    )
    project.ok("apply", str(project.decl), "--auto-approve")
    ids = [s.id for s in project.sim.subscriptions if s.product == BASIC.product]
    first, second = sorted(ids)
    linked = project.ok("refresh", str(project.decl), "--auto-approve")
    assert linked.stdout.count("Recorded subscription") == 4
    project.sim.portal_set_quantity(first, 9)  # acme/basic's, bought first
    done = project.ok("refresh", str(project.decl), "--auto-approve")
    assert "Adjusted acme/basic: +4 seats (5 -> 9), recorded as an adjustment." in done.stdout
    purchases = project.state_document()["purchases"]
    assert purchases["acme/basic"]["subscriptions"] == [first]
    assert purchases["acme/basic-2"]["subscriptions"] == [second]
    assert "adjustments" not in purchases["acme/basic-2"]


# --------------------------------------------------------------------------- pending checkouts


def _settle_a_dropped_checkout(project: Project, mode: Literal["drop", "500"]) -> None:
    project.sim.drop_after_checkout(1, mode=mode)
    failed = project.ok("apply", str(project.decl), "--auto-approve", code=1)
    assert "1 pending" in failed.stdout
    before = project.buys()

    # The plan reads Cloud-iQ: the checkout is proven made, so it is planned as recorded
    # (nothing is written by plan).
    plan = project.ok("plan", str(project.decl))
    assert "proven purchased" in plan.stdout
    data = json.loads(project.ok("plan", str(project.decl), "--json").stdout)
    jsonschema.Draft202012Validator(PLAN_SCHEMA).validate(data)
    changes = {c["address"]: c["action"] for c in data["changes"]}
    assert changes["acme/basic"] == "noop"
    assert "acme/basic" in project.state_document()["pending"]

    done = project.ok("refresh", str(project.decl), "--auto-approve")
    assert "Settled acme/basic: " in done.stdout
    assert "recorded as purchased (+5)." in done.stdout
    assert project.buys() == before  # refresh never verifies or checks out
    document = project.state_document()
    assert document["pending"] == {}
    (checkout,) = document["purchases"]["acme/basic"]["checkouts"]
    assert checkout["evidence"].startswith("asset order reconciler-")

    project.ok("apply", str(project.decl), "--auto-approve")
    for product, seats in ((BASIC.product, 5), (PREMIUM.product, 3), (E3.product, 2)):
        assert project.sim.seats(TENANT, product) == seats  # every seat bought once
    assert "No changes." in project.ok("plan", str(project.decl)).stdout


@pytest.mark.parametrize("mode", ["drop", "500"])
def test_a_checkout_recorded_then_lost_is_settled_by_refresh_and_apply_completes(
    project: Project, mode: Literal["drop", "500"]
) -> None:
    _settle_a_dropped_checkout(project, mode)


def test_the_same_on_postgresql(simulator: Simulator, tmp_path: Path, pg_database: str) -> None:
    project = make_project(simulator, tmp_path, pg_database)
    _settle_a_dropped_checkout(project, "drop")
    # The evidence and the history are in the database's rows.
    ops = [e["op"] for e in json.loads(project.ok("state", "history", "--json").stdout)]
    assert ops[:2] == ["add_pending", "record_checkout"]
    assert ops.count("add_pending") == 3  # the lost one included
    # The settled checkout names the subscription its asset order created.
    (subscription,) = [s.id for s in project.sim.subscriptions if s.product_id == BASIC.product_id]
    assert project.state_document()["purchases"]["acme/basic"]["subscriptions"] == [subscription]


def test_a_checkout_answered_500_without_being_recorded_stays_pending(project: Project) -> None:
    project.sim.fail_checkout_unrecorded(1)
    project.ok("apply", str(project.decl), "--auto-approve", code=1)
    before = project.buys()
    left = project.ok("refresh", str(project.decl), "--auto-approve", code=1)
    assert "Nothing to record" in left.stdout
    assert "1 pending checkout still pending: the API does not prove their outcome" in left.stderr
    assert "found: no asset order has externalOrderId reconciler-" in left.stderr
    assert "no processed order of CFQ7TTC0LF8R:0010 x5 for tenant 111111" in left.stderr
    assert "reconciler state resolve acme/basic --not-purchased" in left.stderr
    assert project.buys() == before
    assert list(project.state_document()["pending"]) == ["acme/basic"]


def test_refresh_without_a_terminal_needs_auto_approve(project: Project) -> None:
    project.ok("apply", str(project.decl), "--auto-approve")
    project.sim.portal_set_quantity(project.subscription(BASIC.product), 6)
    refused = project.ok("refresh", str(project.decl), code=1)
    assert "pass --auto-approve" in refused.stderr
    assert "adjustments" not in project.state_document()["purchases"]["acme/basic"]


# --------------------------------------------------------------------------- import


def test_import_adopts_five_subscriptions_then_plan_is_noop_and_apply_buys_nothing(
    simulator: Simulator, tmp_path: Path
) -> None:
    sim = simulator
    ids = [
        sim.portal_add_subscription(TENANT, BASIC.product, 10),
        sim.portal_add_subscription(TENANT, BASIC.product, 2),  # same identity: one purchase of 12
        sim.portal_add_subscription(
            TENANT, BASIC.product, 4, billing_cycle="annual", term_duration="P1Y"
        ),
        sim.portal_add_subscription(TENANT, PREMIUM.product, 7, record_order=False),
        sim.portal_add_subscription(TENANT, "CFQ7TTC0MM8R:0002", 1),
    ]
    sim.portal_add_subscription(222222, BASIC.product, 3)  # another tenant: left alone
    project = make_project(sim, tmp_path, str(tmp_path / "state.json"), declarations=False)
    decl = project.decl
    before = project.buys()

    done = project.ok("import", str(decl), "--tenant", "111111", "--auto-approve")
    assert "recorded 4 purchases as imported (24 seats); nothing was bought." in done.stdout
    written = (decl / "tenant-111111.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(written)
    names = {p["name"]: p["quantity"] for p in data["purchases"]}
    assert names == {
        "tenant-111111/microsoft-365-business-basic-monthly-p1m": 12,
        "tenant-111111/microsoft-365-business-basic-annual-p1y": 4,
        "tenant-111111/microsoft-365-business-premium": 7,
        "tenant-111111/visio-plan-2": 1,
    }
    assert f"subscriptions {ids[0]}, {ids[1]}" in written
    for n in ids[2:]:
        assert f"subscription {n}" in written

    assert project.ok("validate", str(decl)).stdout == "OK: 4 purchases in 1 file\n"
    plan = project.ok("plan", str(decl), "--detailed-exitcode")
    assert "No changes." in plan.stdout
    assert "0 addresses drifted, 0 unmanaged" in plan.stdout
    applied = project.ok("apply", str(decl), "--auto-approve")
    assert "Apply complete" not in applied.stdout  # nothing to buy
    assert project.buys() == before
    document = project.state_document()
    assert all(p["checkouts"] == [] for p in document["purchases"].values())

    again = project.ok("import", str(decl), "--tenant", "111111", "--auto-approve")
    assert "Nothing to import" in again.stdout


def test_import_records_a_declared_but_unrecorded_address_and_refuses_to_overwrite(
    simulator: Simulator, tmp_path: Path
) -> None:
    sim = simulator
    sim.portal_add_subscription(TENANT, BASIC.product, 5)
    sim.portal_add_subscription(TENANT, E3.product, 2)
    visio = sim.portal_add_subscription(TENANT, "CFQ7TTC0MM8R:0002", 1)
    project = make_project(sim, tmp_path, str(tmp_path / "state.json"))
    (project.decl / "tenant-111111.yaml").write_text("version: 1\n", encoding="utf-8")
    refused = project.ok(
        "import", str(project.decl), "--tenant", "111111", "--auto-approve", code=1
    )
    assert "tenant-111111.yaml already exists; choose another file with --out" in refused.stderr
    assert project.state_document()["purchases"] == {}

    out = str(project.decl / "visio.yaml")
    done = project.ok(
        "import", str(project.decl), "--tenant", "111111", "--out", out, "--auto-approve"
    )
    assert "Declared but not recorded (recorded as imported, nothing bought):" in done.stdout
    assert "  + acme/basic  5 seats" in done.stdout
    assert "  + acme/e3  2 seats" in done.stdout
    # The new purchase takes the prefix the tenant's declarations already use.
    assert f"  + acme/visio-plan-2  1 seat  subscription {visio}" in done.stdout
    assert project.ok("validate", str(project.decl)).exit_code == 0
    plan = project.ok("plan", str(project.decl))
    assert "+ acme/premium  purchase, 0 -> 3 seats (+3)" in plan.stdout
    assert "1 to purchase (+3 seats)" in plan.stdout
    assert "2 unchanged" in plan.stdout or "3 unchanged" in plan.stdout


@pytest.mark.slow  # a benchmark in a subprocess
@pytest.mark.parametrize(
    "extra", [(), ("--unrecorded-rate", "0.1", "--no-asset-orders", "--parallelism", "4")]
)
def test_a_fault_storm_leaves_no_checkout_the_api_recorded_for_a_person(
    extra: tuple[str, ...],
) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "storm_refresh.py"),
            "--purchases",
            "60",
            "--rate",
            "0.2",
            "--seed",
            "3",
            "--json",
            *extra,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr  # every seat bought exactly once
    counts = json.loads(done.stdout)
    assert counts["recorded_then_failed"] > 0
    assert counts["settled_purchased"] == counts["recorded_then_failed"]
    assert counts["left_recorded"] == 0
    assert counts["left_unrecorded"] == counts["unrecorded"]


def test_a_subscription_cloud_iq_shows_cancelled_is_recorded_gone_and_bought_again_openly(
    project: Project,
) -> None:
    """An owned subscription the API lists as cancelled holds no seats: refresh records
    that, and the plan buys the declared seats again, saying why."""
    project.ok("apply", str(project.decl), "--auto-approve")
    cancelled = project.subscription(BASIC.product)
    project.sim.portal_cancel(cancelled)
    done = project.ok("refresh", str(project.decl), "--auto-approve")
    assert "Adjusted acme/basic: -5 seats (5 -> 0), recorded as an adjustment." in done.stdout
    assert project.state_document()["purchases"]["acme/basic"]["quantity"] == 0
    plan = project.ok("plan", str(project.decl), "--detailed-exitcode", code=2)
    assert "~ acme/basic  increase, 0 -> 5 seats (+5)" in plan.stdout
    assert f"buys again seats of subscriptions that are gone in Cloud-iQ: {cancelled}" in (
        plan.stdout
    )


def test_an_import_that_cannot_write_its_file_leaves_orphans_never_purchases(
    simulator: Simulator, tmp_path: Path
) -> None:
    """The state is written before the declarations: a run that dies (here: the file
    cannot be written) between the two must never leave declared-but-unrecorded seats,
    which the next plan would buy again."""
    sim = simulator
    sim.portal_add_subscription(TENANT, BASIC.product, 10)
    project = make_project(sim, tmp_path, str(tmp_path / "state.json"), declarations=False)
    decl = project.decl
    before = project.buys()
    blocked = tmp_path / "no-such-directory" / "tenant.yaml"
    failed = project.ok(
        "import", str(decl), "--tenant", "111111", "--out", str(blocked), "--auto-approve", code=1
    )
    assert "error:" in failed.stderr
    recorded = project.state_document()["purchases"]
    assert list(recorded) == ["tenant-111111/microsoft-365-business-basic"]
    plan = project.ok("plan", str(decl), "--detailed-exitcode")
    assert "purchase" not in plan.stdout.replace("to purchase", "")
    assert "Plan: 0 to purchase (+0 seats)" in plan.stdout
    assert project.buys() == before


def test_an_unreadable_subscription_holds_back_buying_for_its_tenant_only(
    project: Project,
) -> None:
    """One item of the list cannot be read: it is named, the tenant's recorded seats stay
    as they are, and nothing new is bought for that tenant (the item may be the seats)."""
    head, _, _ = PROJECT_DECLARATIONS.partition("  - name: acme/premium")
    (project.decl / "acme.yaml").write_text(head, encoding="utf-8")
    project.ok("apply", str(project.decl), "--auto-approve")
    (project.decl / "acme.yaml").write_text(PROJECT_DECLARATIONS, encoding="utf-8")
    with CrayonClient(ApiSettings.from_env(project.sim.env())) as client:
        items = client.list_subscriptions(TENANT)
    broken = {**items[0], "Id": 999999, "Quantity": "lots"}
    project.sim.fail_next("subscriptions", 200, body={"Items": [*items, broken], "TotalHits": 2})
    before = project.buys()
    held = project.run("apply", str(project.decl), "--auto-approve")
    assert held.exit_code == 1, held.stdout + held.stderr
    shown = held.stdout + held.stderr
    assert "could not be read" in shown
    assert "item 1 (id 999999)" in shown
    assert project.buys() == before  # premium and e3 are not bought
    assert project.sim.active_seats(TENANT, BASIC.product) == 5
    assert "acme/basic" in project.state_document()["purchases"]
    # Once the list reads again, they are bought.
    project.ok("apply", str(project.decl), "--auto-approve")
    assert project.sim.active_seats(TENANT, PREMIUM.product) == 3


def test_seats_changed_in_the_portal_beside_a_pending_checkout_wait_for_it(
    project: Project,
) -> None:
    """An address with a checkout nobody can settle yet and seats changed in the portal:
    its drift waits for the checkout; the run goes on for every other address."""
    project.ok("apply", str(project.decl), "--auto-approve")
    sub = project.subscription(BASIC.product)
    text = (project.decl / "acme.yaml").read_text(encoding="utf-8")
    (project.decl / "acme.yaml").write_text(
        text.replace("    quantity: 5\n", "    quantity: 8\n", 1).replace(
            "    quantity: 3\n", "    quantity: 4\n", 1
        ),
        encoding="utf-8",
    )
    project.sim.fail_checkout_unrecorded(1)
    project.ok("apply", str(project.decl), "--auto-approve", "--target", "acme/basic", code=1)
    assert "acme/basic" in project.state_document()["pending"]
    project.sim.portal_set_quantity(sub, 7)

    refreshed = project.run("refresh", str(project.decl), "--auto-approve")
    assert refreshed.exit_code == 1  # the checkout stays pending
    assert "Traceback" not in refreshed.output
    assert project.state_document()["purchases"]["acme/basic"].get("adjustments", []) == []
    applied = project.run("apply", str(project.decl), "--auto-approve")
    assert applied.exit_code == 1, applied.output
    assert "cannot adjust" not in applied.output
    # The other address of the same tenant is not held back by a pending operation.
    assert project.sim.active_seats(TENANT, PREMIUM.product) == 4


def test_plan_says_what_cloud_iq_shows_of_a_pending_checkout(project: Project) -> None:
    project.sim.fail_checkout_unrecorded(1)
    project.ok("apply", str(project.decl), "--auto-approve", code=1)
    planned = project.ok("plan", str(project.decl), code=1)
    assert "Cloud-iQ shows: " in planned.stderr
    assert "Cloud-iQ was not read" not in planned.stderr
    offline = project.ok("plan", str(project.decl), "--refresh=false", code=1)
    assert "Cloud-iQ was not read" in offline.stderr


# --------------------------------------------------------------------------- a list that lags


def test_a_checkout_cloud_iq_does_not_list_yet_keeps_its_seats(project: Project) -> None:
    """Right after a 204 the new subscription may not be listed: its seats still count,
    so nothing is bought again and nothing is recorded as gone."""
    project.ok("apply", str(project.decl), "--auto-approve")
    project.sim.hide_subscriptions(True)
    before = project.buys()
    done = project.ok("refresh", str(project.decl), "--auto-approve")
    assert "Nothing to record" in done.stdout
    assert project.state_document()["purchases"]["acme/basic"]["unseen"]
    assert "No changes." in project.ok("plan", str(project.decl), "--detailed-exitcode").stdout
    project.ok("apply", str(project.decl), "--auto-approve")
    assert project.buys() == before

    # What a user expects besides: the checkout waits as "not yet listed", linked to no
    # subscription (Cloud-iQ does not show one, although its asset order names it), with
    # no adjustment; once the list shows it, refresh links it and the wait ends.
    recorded = project.state_document()["purchases"]["acme/basic"]
    (checkout,) = recorded["checkouts"]
    assert recorded["unseen"] == [checkout["externalOrderId"]]
    assert recorded.get("subscriptions", []) == []
    assert "adjustments" not in recorded
    shown = project.ok("show").stdout
    assert f"not yet listed by Cloud-iQ: {checkout['externalOrderId']}" in shown
    project.sim.hide_subscriptions(False)
    linked = project.ok("refresh", str(project.decl), "--auto-approve")
    subscription = project.subscription(BASIC.product)
    assert f"Recorded subscription {subscription} at acme/basic" in linked.stdout
    recorded = project.state_document()["purchases"]["acme/basic"]
    assert (recorded["subscriptions"], recorded.get("unseen", [])) == ([subscription], [])
    assert "adjustments" not in recorded
    assert "No changes." in project.ok("plan", str(project.decl), "--detailed-exitcode").stdout
    assert project.buys() == before


def test_a_subscription_listed_minutes_after_its_checkout_is_bought_once(
    project: Project,
) -> None:
    """The list lags by ten minutes: applies and plans in between see the seats of the
    checkouts and buy nothing; the subscriptions are linked once they are listed."""
    project.sim.lag_listing("subscriptions", 600)
    project.ok("apply", str(project.decl), "--auto-approve")
    before = project.buys()
    for _ in range(2):
        project.sim.advance_clock(minutes=4)
        assert "No changes." in project.ok("plan", str(project.decl)).stdout
        project.ok("apply", str(project.decl), "--auto-approve")
    assert project.buys() == before
    assert all(p["unseen"] for p in project.state_document()["purchases"].values())
    project.sim.advance_clock(minutes=3)
    project.ok("apply", str(project.decl), "--auto-approve")  # its refresh links them
    purchases = project.state_document()["purchases"]
    for address, product in (
        ("acme/basic", BASIC.product),
        ("acme/premium", PREMIUM.product),
        ("acme/e3", E3.product),
    ):
        assert purchases[address]["subscriptions"] == [project.subscription(product)]
        assert "unseen" not in purchases[address]
    assert project.buys() == before
