"""The ``apply --json`` events (``reconciler.render.events``), valid against their schema."""

from __future__ import annotations

import json

import jsonschema

from reconciler import render
from reconciler.model import Action, ApplyResult, Change, ChangeResult, Outcome
from tests.support.paths import schema
from tests.support.records import BASIC, change, make_plan


def _result(*outcomes: Outcome, interrupted: bool = False) -> ApplyResult:
    return ApplyResult(
        tuple(ChangeResult(f"a/{i}", 1, o, 0.5, f"order-{i}") for i, o in enumerate(outcomes)),
        interrupted,
    )


def test_every_apply_event_matches_the_schema() -> None:
    validator = jsonschema.Draft202012Validator(schema("apply-events"))
    moved = Change("a/new", Action.MOVE, 5, 8, 3, BASIC, moved_from="a/old")
    bought = change("b/buy", Action.PURCHASE, 0, 2, 2)
    failed = ChangeResult("b/buy", 2, Outcome.FAILED, 0.25, "o-2", ("verify: E: no",))
    events = [
        render.version_event(),
        render.apply_start_event(make_plan(moved, bought)),
        render.move_event(moved),
        render.change_start_event(moved),
        render.change_result_event(moved, ChangeResult("a/new", 3, Outcome.PURCHASED, 1.5, "o-1")),
        render.change_start_event(bought),
        render.change_result_event(bought, failed),
        render.change_result_event(bought, ChangeResult("b/buy", 2, Outcome.PENDING, 9, "o-3")),
        render.change_result_event(bought, ChangeResult("b/buy", 2, Outcome.SKIPPED)),
        render.apply_complete_event("failed", result=_result(Outcome.PURCHASED, Outcome.FAILED)),
        render.apply_complete_event("error", errors=["no state at s.json"]),
    ]

    for event in events:
        validator.validate(event)
        assert json.loads(render.event_line(event)) == event
        assert "\n" not in render.event_line(event)
    assert [e["type"] for e in events] == [
        "version",
        "apply_start",
        "change_complete",
        "change_start",
        "change_complete",
        "change_start",
        "change_failed",
        "change_pending",
        "change_failed",
        "apply_complete",
        "apply_complete",
    ]
    assert events[1] == {
        "type": "apply_start",
        "changes": 2,
        "seats": 5,
        "lineage": "lineage-1",
        "serial": 7,
        "targets": [],
    }
    assert events[2] == {
        "type": "change_complete",
        "address": "a/new",
        "action": "move",
        "from": "a/old",
        "seats": 0,
        "external_order_id": None,
        "elapsed_seconds": 0.0,
        "outcome": "moved",
    }
    assert events[6]["errors"] == ["verify: E: no"]
    assert events[8]["outcome"] == "skipped"
    assert events[8]["errors"][0].startswith("not checked out: apply stopped")
