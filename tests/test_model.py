"""The model's records (``reconciler.model``)."""

from __future__ import annotations

import inspect
import json
from dataclasses import MISSING, FrozenInstanceError, fields, replace

import pytest
import yaml

from reconciler import config
from reconciler.model import ACTIONS, Action, Change, Move
from tests.support.declarations import purchase
from tests.support.paths import ROOT
from tests.support.records import declared


def test_moved_leaves_the_digest_of_declarations_without_moves_alone() -> None:
    plain = config.load_text(yaml.safe_dump({"version": 1, "purchases": [purchase("acme/new", 2)]}))
    assert plain.moves == ()
    assert replace(plain, moves=(Move("acme/old", "acme/new"),)).digest() != plain.digest()


def test_every_action_is_in_the_plan_and_event_schemas() -> None:
    """A new action is a row of the action table and a word in both schemas: a plan or
    an event carrying an action a schema does not know would fail validation."""
    plan = json.loads((ROOT / "schemas" / "plan.schema.json").read_text(encoding="utf-8"))
    events = json.loads((ROOT / "schemas" / "apply-events.schema.json").read_text(encoding="utf-8"))
    actions = {a.value for a in Action}
    assert set(plan["$defs"]["change"]["properties"]["action"]["enum"]) == actions
    assert set(ACTIONS) == set(Action)
    summary = set(plan["properties"]["summary"]["properties"])
    assert {a.value for a in Action} <= summary
    # Every action apply carries out (by a state write or through the API) is an event's.
    carried = {a.value for a, info in ACTIONS.items() if info.changes}
    for kind in ("change_start", "change_complete", "change_failed", "change_pending"):
        assert set(events["$defs"][kind]["properties"]["action"]["enum"]) == carried, kind


def test_a_change_is_made_with_every_field_and_stays_frozen() -> None:
    """Change's hand-written ``__init__`` takes exactly its fields, in order, with
    their defaults; a change cannot be altered and compares by value."""
    params = list(inspect.signature(Change).parameters.values())
    assert [(p.name, p.default) for p in params] == [
        (f.name, f.default if f.default is not MISSING else inspect.Parameter.empty)
        for f in fields(Change)
    ]
    made = declared("acme/basic", 3)
    change = Change(made.address, Action.PURCHASE, 0, 3, 3, made.identity, made, note="n")
    assert (change.address, change.delta, change.note, change.steps) == ("acme/basic", 3, "n", ())
    assert replace(change, delta=2).delta == 2
    assert change == Change(made.address, Action.PURCHASE, 0, 3, 3, made.identity, made, note="n")
    with pytest.raises(FrozenInstanceError):
        change.delta = 5  # type: ignore[misc]
