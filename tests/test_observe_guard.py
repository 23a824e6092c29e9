"""Reading before buying (``reconciler.observe.guard``): a purchase of seats Cloud-iQ
already shows becomes a conflict.

No files, no HTTP: the records the API reads would give are built by hand.
"""

from __future__ import annotations

from reconciler.model import Action, Declarations, Purchase, RecordedPurchase
from reconciler.observe import Readings, guard_purchases, observe
from reconciler.planner import plan
from tests.support.readings import subscription
from tests.support.records import BASIC, TENANT, declarations, declared, state_of


def test_a_purchase_of_an_identity_with_unaccounted_seats_becomes_a_conflict() -> None:
    decl = declarations(declared("acme/basic", 5))
    state = state_of()
    readings = Readings({TENANT: [subscription(500001, BASIC, 5)]})
    guarded = guard_purchases(plan(decl, state), observe(decl, state, readings))
    (change,) = guarded.changes
    assert change.action is Action.CONFLICT
    assert change.delta == 0
    assert change.reason is not None
    assert "5 active seats (subscription 500001)" in change.reason
    assert "reconciler import --tenant 111111" in change.reason
    assert "allowAdditionalSubscription: true" in change.reason
    assert guarded.summary.count(Action.CONFLICT) == 1


def test_an_acknowledged_purchase_buys_a_second_subscription() -> None:
    decl = Declarations((Purchase("acme/basic", BASIC, 5, allow_additional_subscription=True),))
    state = state_of()
    readings = Readings({TENANT: [subscription(500001, BASIC, 5)]})
    guarded = guard_purchases(plan(decl, state), observe(decl, state, readings))
    assert [c.action for c in guarded.changes] == [Action.PURCHASE]


def test_seats_accounted_for_by_another_address_do_not_block_a_purchase() -> None:
    decl = declarations(declared("acme/a", 5), declared("acme/b", 2))
    state = state_of(RecordedPurchase("acme/a", BASIC, 5))
    readings = Readings({TENANT: [subscription(500001, BASIC, 5)]})
    guarded = guard_purchases(plan(decl, state), observe(decl, state, readings))
    assert [(c.address, c.action) for c in guarded.changes] == [
        ("acme/a", Action.NOOP),
        ("acme/b", Action.PURCHASE),
    ]


def test_an_increase_over_unrecorded_portal_seats_is_a_conflict_naming_refresh() -> None:
    decl = declarations(declared("acme/basic", 8))
    state = state_of(RecordedPurchase("acme/basic", BASIC, 5))
    readings = Readings({TENANT: [subscription(500001, BASIC, 5), subscription(500002, BASIC, 3)]})
    (change,) = guard_purchases(plan(decl, state), observe(decl, state, readings)).changes
    assert change.action is Action.CONFLICT
    assert change.reason is not None
    assert "run `reconciler refresh`" in change.reason


def test_a_plan_without_unaccounted_seats_is_returned_unchanged() -> None:
    decl = declarations(declared("acme/basic", 5))
    state = state_of()
    before = plan(decl, state)
    assert guard_purchases(before, observe(decl, state, Readings({TENANT: []}))) is before
