"""``plan --expect REVIEWED.plan``: the merge applies only what the review showed.

The pull-request job saves the reviewed plan (``plan --out``); the merge job plans again
with ``--expect`` and exits 1, saving nothing, when any address's action, seats or the
seats it starts from differ, or the targets do; otherwise it saves the plan that
``apply --plan`` then carries out. Against the simulator, through the real CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.simulator import Project


def _review(project: Project, *extra: str) -> Path:
    reviewed = project.tmp / "reviewed.plan"
    project.ok("plan", str(project.decl), "--out", str(reviewed), *extra)
    return reviewed


def test_the_reviewed_plan_passes_and_is_applied(project: Project) -> None:
    reviewed = _review(project)
    merged = project.tmp / "merge.plan"

    checked = project.ok("plan", str(project.decl), "--expect", str(reviewed), "--out", str(merged))

    assert "Plan: 3 to purchase (+10 seats)" in checked.stdout
    assert merged.is_file()
    project.ok("apply", "--plan", str(merged))
    assert project.buys() == (3, 3)


def test_other_seats_declared_after_the_review_are_refused_saying_what_differs(
    project: Project,
) -> None:
    reviewed = _review(project)
    acme = project.decl / "acme.yaml"
    acme.write_text(acme.read_text().replace("quantity: 5", "quantity: 50"), encoding="utf-8")
    merged = project.tmp / "merge.plan"

    refused = project.ok(
        "plan", str(project.decl), "--expect", str(reviewed), "--out", str(merged), code=1
    )

    assert "Plan: 3 to purchase (+55 seats)" in refused.stdout  # the plan is still shown
    assert refused.stderr.splitlines() == [
        f"error: this plan is not the reviewed plan {reviewed}; nothing may be applied "
        "without a review of what would now be done:",
        "  acme/basic: reviewed purchase 0 -> 5 seats (+5); now purchase 0 -> 50 seats (+50)",
        "Get a new review: push to the pull request (or run its plan again) so that the "
        "comment shows this plan, have it approved, then merge again",
    ]
    assert not merged.exists()
    assert project.buys() == (0, 0)


def test_seats_bought_since_the_review_make_a_difference(project: Project) -> None:
    reviewed = _review(project)
    project.ok("apply", str(project.decl), "--auto-approve", "--target", "acme/basic")

    refused = project.ok("plan", str(project.decl), "--expect", str(reviewed), code=1)

    assert "  acme/basic: reviewed purchase 0 -> 5 seats (+5); now no change" in refused.stderr


def test_seats_changed_in_cloud_iq_since_the_review_make_a_difference(project: Project) -> None:
    project.ok("apply", str(project.decl), "--auto-approve")
    acme = project.decl / "acme.yaml"
    acme.write_text(acme.read_text().replace("quantity: 5", "quantity: 8"), encoding="utf-8")
    reviewed = _review(project)
    basic = project.subscription("CFQ7TTC0LF8R:0010")
    project.sim.portal_set_quantity(basic, 6)

    refused = project.ok("plan", str(project.decl), "--expect", str(reviewed), code=1)

    assert (
        "  acme/basic: reviewed increase 5 -> 8 seats (+3); now increase 6 -> 8 seats (+2)"
        in refused.stderr
    )


def test_other_targets_than_the_reviewed_ones_are_refused(project: Project) -> None:
    reviewed = _review(project, "--target", "acme/basic")

    refused = project.ok("plan", str(project.decl), "--expect", str(reviewed), code=1)

    assert "  reviewed with --target acme/basic; now planned with no --target" in refused.stderr
    assert "  acme/e3: reviewed no change; now purchase 0 -> 2 seats (+2)" in refused.stderr


def test_expect_with_json_keeps_stdout_the_plan(project: Project) -> None:
    reviewed = _review(project)

    same = project.ok("plan", str(project.decl), "--expect", str(reviewed), "--json")

    assert json.loads(same.stdout)["summary"]["seats"] == 10
    assert same.stderr == ""


def test_a_missing_reviewed_plan_is_an_error_naming_it(project: Project) -> None:
    missing = project.tmp / "nowhere.plan"

    refused = project.ok("plan", str(project.decl), "--expect", str(missing), code=1)

    assert refused.stderr == f"error: plan file {missing} does not exist\n"
