"""The planner: table-driven cases for every action and conflict reason, and its invariants."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler import planner
from reconciler.model import (
    Action,
    Change,
    Declarations,
    Identity,
    Move,
    PendingOperation,
    Plan,
    Purchase,
    RecordedPurchase,
    State,
)
from tests.support.records import ANNUAL, BASIC, declared, pending, recorded, state_of


def only_change(decl: tuple[Purchase, ...], state: State) -> Change:
    plan = planner.plan(Declarations(decl), state)
    assert len(plan.changes) == 1
    return plan.changes[0]


def test_new_address_is_a_purchase_of_its_quantity() -> None:
    change = only_change((declared("a/x", 20),), state_of())
    assert (change.action, change.before, change.after, change.delta) == (
        Action.PURCHASE,
        0,
        20,
        20,
    )


def test_more_seats_is_an_increase_of_the_difference() -> None:
    change = only_change((declared("a/x", 26),), state_of(recorded("a/x", 20)))
    assert (change.action, change.before, change.after, change.delta) == (
        Action.INCREASE,
        20,
        26,
        6,
    )


def test_same_seats_is_a_noop() -> None:
    change = only_change((declared("a/x", 20),), state_of(recorded("a/x", 20)))
    assert (change.action, change.delta) == (Action.NOOP, 0)


def test_fewer_seats_is_a_conflict_naming_the_decrease() -> None:
    change = only_change((declared("a/x", 15),), state_of(recorded("a/x", 20)))
    assert change.action is Action.CONFLICT
    assert change.delta == 0
    assert change.reason is not None
    assert "decrease from 20 to 15 seats" in change.reason


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("customer_tenant_id", 222222, "customerTenantId 111111 -> 222222"),
        ("product_id", "CFQ7TTC0LDPB", "productId 'CFQ7TTC0LF8R' -> 'CFQ7TTC0LDPB'"),
        ("sku_id", "0001", "skuId '0010' -> '0001'"),
        ("billing_cycle", "annual", "billingCycle 'monthly' -> 'annual'"),
        ("term_duration", "P1Y", "termDuration 'P1M' -> 'P1Y'"),
        ("type", "software", "type 'subscription' -> 'software'"),
    ],
)
def test_changed_identity_field_is_a_conflict_naming_it(
    field: str, value: object, shown: str
) -> None:
    changed: dict[str, Any] = {field: value}
    change = only_change(
        (declared("a/x", 25, replace(BASIC, **changed)),), state_of(recorded("a/x", 20))
    )
    assert change.action is Action.CONFLICT
    assert change.delta == 0
    assert change.reason is not None
    assert shown in change.reason


def test_undeclared_recorded_address_is_an_orphan() -> None:
    change = only_change((), state_of(recorded("a/x", 20)))
    assert (change.action, change.before, change.after, change.delta) == (
        Action.ORPHAN,
        20,
        None,
        0,
    )


def test_pending_entry_wins_over_everything() -> None:
    op = pending("a/x", "reconciler-p", 5)
    change = only_change((declared("a/x", 30),), state_of(recorded("a/x", 20), pending=(op,)))
    assert (change.action, change.delta) == (Action.PENDING, 0)
    assert change.reason is not None
    assert "reconciler-p" in change.reason


def test_pending_without_declaration_or_record_is_still_listed() -> None:
    op = pending("a/x", "reconciler-p", 5)
    change = only_change((), state_of(pending=(op,)))
    assert change.action is Action.PENDING


def test_plan_records_what_it_was_made_against() -> None:
    decl = Declarations((declared("a/x", 1),))
    plan = planner.plan(decl, state_of())
    assert (plan.lineage, plan.serial, plan.declarations_digest) == ("lineage", 3, decl.digest())


def test_summary_counts_actions_and_seats() -> None:
    decl = (
        declared("a/new", 10),
        declared("a/more", 8),
        declared("a/same", 3),
        declared("a/less", 1),
    )
    # a/gone has its own identity: with a/new's it would make a/new a rename conflict.
    gone = recorded("a/gone", 4, replace(BASIC, sku_id="0001"))
    state = state_of(recorded("a/more", 5), recorded("a/same", 3), recorded("a/less", 2), gone)
    summary = planner.plan(Declarations(decl), state).summary
    assert (summary.count(Action.PURCHASE), summary.seats_of(Action.PURCHASE)) == (1, 10)
    assert (summary.count(Action.INCREASE), summary.seats_of(Action.INCREASE)) == (1, 3)
    assert [
        summary.count(a) for a in (Action.NOOP, Action.CONFLICT, Action.ORPHAN, Action.PENDING)
    ] == [1, 1, 1, 0]


# --- properties -------------------------------------------------------------------------

addresses = st.sampled_from([f"c{i}/p{j}" for i in range(3) for j in range(4)])
identities = st.builds(
    Identity,
    customer_tenant_id=st.sampled_from([111111, 222222]),
    product_id=st.sampled_from(["P1", "P2"]),
    sku_id=st.sampled_from(["0001", "0010"]),
    billing_cycle=st.sampled_from(["monthly", "annual"]),
    term_duration=st.sampled_from(["P1M", "P1Y"]),
    type=st.sampled_from(["subscription", "software"]),
)
quantities = st.integers(min_value=1, max_value=500)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Declarations, State]:
    decl = draw(st.dictionaries(addresses, st.tuples(identities, quantities)))
    rec = draw(st.dictionaries(addresses, st.tuples(identities, quantities)))
    pend = draw(st.dictionaries(addresses, st.tuples(identities, quantities), max_size=2))
    declarations = Declarations(tuple(declared(a, q, i) for a, (i, q) in sorted(decl.items())))
    state = State(
        lineage="lin",
        serial=draw(st.integers(0, 100)),
        purchases={a: RecordedPurchase(a, i, q) for a, (i, q) in rec.items()},
        pending={a: PendingOperation(a, i, "reconciler-p", q, "t") for a, (i, q) in pend.items()},
    )
    return declarations, state


@given(scenarios())
def test_never_buys_when_desired_is_not_above_recorded(
    scenario: tuple[Declarations, State],
) -> None:
    declarations, state = scenario
    for change in planner.plan(declarations, state).changes:
        if change.delta > 0:
            assert change.action in (Action.PURCHASE, Action.INCREASE)
            assert change.address not in state.pending
            assert change.after is not None
            assert change.after > change.before
        recorded_ = state.purchases.get(change.address)
        wanted = declarations.by_address().get(change.address)
        if wanted is not None and recorded_ is not None and wanted.quantity <= recorded_.quantity:
            assert change.delta == 0


@given(scenarios())
def test_delta_is_after_minus_before_for_buying_changes(
    scenario: tuple[Declarations, State],
) -> None:
    for change in planner.plan(*scenario).changes:
        if change.action in (Action.PURCHASE, Action.INCREASE):
            assert change.after is not None
            assert change.delta == change.after - change.before > 0
        else:
            assert change.delta == 0


@given(scenarios())
def test_one_change_per_address_sorted_and_deterministic(
    scenario: tuple[Declarations, State],
) -> None:
    declarations, state = scenario
    plan = planner.plan(declarations, state)
    got = [c.address for c in plan.changes]
    expected = sorted(set(declarations.by_address()) | set(state.purchases) | set(state.pending))
    assert got == expected
    assert planner.plan(declarations, state) == plan


@given(scenarios())
def test_applying_the_deltas_leaves_nothing_to_buy(scenario: tuple[Declarations, State]) -> None:
    declarations, state = scenario
    plan = planner.plan(declarations, state)
    purchases = dict(state.purchases)
    for change in plan.buying():
        before = purchases.get(change.address)
        quantity = (before.quantity if before else 0) + change.delta
        purchases[change.address] = RecordedPurchase(change.address, change.identity, quantity)
    after = planner.plan(declarations, replace(state, purchases=purchases, serial=state.serial + 1))
    assert after.buying() == ()
    for change in after.changes:
        assert change.action in (Action.NOOP, Action.ORPHAN, Action.CONFLICT, Action.PENDING)
    # conflicts and pendings are exactly those of the first plan: applying changes nothing else
    blocked = {c.address for c in plan.changes if c.action in (Action.CONFLICT, Action.PENDING)}
    assert blocked == {
        c.address for c in after.changes if c.action in (Action.CONFLICT, Action.PENDING)
    }


# --- rename detection ----------------------------------------------------------------

RENAME_REASON = (
    "same identity as a/old, recorded but no longer declared; if this is a rename, add "
    "`moved: [{from: a/old, to: a/new}]` to the declarations or run "
    "`reconciler state mv a/old a/new`; if a/old is really gone, add "
    "`removed: [{address: a/old, cancel: false}]` or run `reconciler state rm a/old` first"
)


def test_a_rename_is_a_conflict_naming_the_orphan_and_both_ways_out() -> None:
    plan = planner.plan(Declarations((declared("a/new", 20),)), state_of(recorded("a/old", 20)))
    new, old = plan.changes[0], plan.changes[1]
    assert (new.address, new.action, new.before, new.after, new.delta, new.reason) == (
        "a/new",
        Action.CONFLICT,
        0,
        20,
        0,
        RENAME_REASON,
    )
    assert (old.address, old.action) == ("a/old", Action.ORPHAN)
    assert plan.buying() == ()


@pytest.mark.parametrize(
    ("decl", "state", "expected"),
    [
        pytest.param(
            (declared("a/new", 20, ANNUAL),),
            state_of(recorded("a/old", 20)),
            Action.PURCHASE,
            id="orphan-of-another-identity",
        ),
        pytest.param(
            (declared("a/new", 20), declared("a/old", 20)),
            state_of(recorded("a/old", 20)),
            Action.PURCHASE,
            id="old-address-still-declared",
        ),
        pytest.param(
            (declared("a/new", 5),),
            state_of(recorded("a/old", 20)),
            Action.CONFLICT,
            id="fewer-seats-still-a-rename",
        ),
        pytest.param(
            (declared("a/new", 5),),
            state_of(pending=(pending("a/old", "o-1", 5),)),
            Action.CONFLICT,
            id="pending-at-an-undeclared-address",
        ),
    ],
)
def test_rename_detection_table(decl: tuple[Purchase, ...], state: State, expected: Action) -> None:
    change = {c.address: c for c in planner.plan(Declarations(decl), state).changes}["a/new"]
    assert change.action is expected


def test_several_orphans_of_the_same_identity_are_all_named() -> None:
    plan = planner.plan(
        Declarations((declared("a/new", 1),)), state_of(recorded("a/old", 2), recorded("a/x", 3))
    )
    reason = plan.changes[0].reason
    assert reason is not None
    assert reason.startswith("same identity as a/old (and a/x), recorded but no longer declared")


@given(scenarios(), st.data())
def test_renames_without_moved_never_buy_licences_recorded_elsewhere(
    scenario: tuple[Declarations, State], data: st.DataObject
) -> None:
    declarations, state = scenario
    # Rename some declared addresses to fresh ones, as a user editing names would.
    renamed = []
    for number, purchase in enumerate(declarations.purchases):
        if data.draw(st.booleans()):
            purchase = replace(purchase, address=f"renamed/{number}")
        renamed.append(purchase)
    renamed_declarations = Declarations(tuple(renamed))
    wanted = renamed_declarations.by_address()
    elsewhere = {
        entry.identity
        for table in (state.purchases, state.pending)
        for address, entry in table.items()
        if address not in wanted
    }
    for change in planner.plan(renamed_declarations, state).changes:
        if change.action is Action.PURCHASE:
            assert change.identity not in elsewhere, change


# --- moved: ------------------------------------------------------------------------


def moved_plan(decl: tuple[Purchase, ...], state: State, *moves: tuple[str, str]) -> Plan:
    return planner.plan(Declarations(decl, moves=tuple(Move(f, t) for f, t in moves)), state)


def test_a_move_carries_the_recorded_purchase_and_buys_nothing() -> None:
    plan = moved_plan((declared("a/new", 20),), state_of(recorded("a/old", 20)), ("a/old", "a/new"))
    (change,) = plan.changes
    assert (change.address, change.action, change.before, change.after, change.delta) == (
        "a/new",
        Action.MOVE,
        20,
        20,
        0,
    )
    assert change.moved_from == "a/old"
    assert plan.buying() == ()
    assert plan.moving() == (change,)
    summary = plan.summary
    assert (summary.count(Action.MOVE), summary.count(Action.INCREASE), summary.seats) == (1, 0, 0)
    assert summary.has_changes
    assert not summary.has_purchases


def test_a_move_with_more_seats_is_a_move_and_an_increase() -> None:
    plan = moved_plan((declared("a/new", 26),), state_of(recorded("a/old", 20)), ("a/old", "a/new"))
    (change,) = plan.changes
    assert (change.action, change.before, change.delta, change.moved_from) == (
        Action.MOVE,
        20,
        6,
        "a/old",
    )
    assert plan.buying() == (change,)
    summary = plan.summary
    assert (
        summary.count(Action.MOVE),
        summary.count(Action.INCREASE),
        summary.seats_of(Action.INCREASE),
    ) == (1, 1, 6)


@pytest.mark.parametrize(
    ("decl", "state", "expected"),
    [
        pytest.param(
            (declared("a/new", 20),),
            state_of(recorded("a/new", 20)),
            [("a/new", Action.NOOP)],
            id="leftover-after-apply-is-a-noop",
        ),
        pytest.param(
            (declared("a/new", 20),),
            state_of(),
            [("a/new", Action.PURCHASE)],
            id="source-never-recorded",
        ),
        pytest.param(
            (declared("a/new", 20),),
            state_of(recorded("a/old", 20), recorded("a/new", 20)),
            [("a/new", Action.NOOP), ("a/old", Action.ORPHAN)],
            id="both-recorded-is-no-move",
        ),
        pytest.param(
            (declared("a/new", 15),),
            state_of(recorded("a/old", 20)),
            [("a/new", Action.CONFLICT)],
            id="fewer-seats-is-a-conflict",
        ),
        pytest.param(
            (declared("a/new", 20, replace(BASIC, sku_id="0001")),),
            state_of(recorded("a/old", 20)),
            [("a/new", Action.CONFLICT)],
            id="other-identity-is-a-conflict",
        ),
        pytest.param(
            (declared("a/new", 20),),
            state_of(
                recorded("a/old", 20),
                pending=(pending("a/old", "o-1", 5),),
            ),
            [("a/new", Action.CONFLICT), ("a/old", Action.PENDING)],
            id="pending-source-blocks-the-move",
        ),
    ],
)
def test_move_table(
    decl: tuple[Purchase, ...], state: State, expected: list[tuple[str, Action]]
) -> None:
    plan = moved_plan(decl, state, ("a/old", "a/new"))
    assert [(c.address, c.action) for c in plan.changes] == expected


def test_a_blocked_move_says_why() -> None:
    state = state_of(recorded("a/old", 20), pending=(pending("a/old", "o-1", 5),))
    change = moved_plan((declared("a/new", 20),), state, ("a/old", "a/new")).changes[0]
    assert change.reason == (
        "moved from a/old, which has a pending operation (o-1); settle it first: "
        "`reconciler refresh` records what Cloud-iQ shows of it"
    )
    shrunk = moved_plan(
        (declared("a/new", 15),), state_of(recorded("a/old", 20)), ("a/old", "a/new")
    )
    assert shrunk.changes[0].reason is not None
    assert shrunk.changes[0].reason.startswith("moved from a/old: decrease from 20 to 15 seats")


@given(scenarios(), st.data())
def test_moving_every_renamed_address_buys_only_what_was_added(
    scenario: tuple[Declarations, State], data: st.DataObject
) -> None:
    declarations, state = scenario
    renamed, moves = [], []
    for number, purchase in enumerate(declarations.purchases):
        if purchase.address in state.purchases and data.draw(st.booleans()):
            moves.append(Move(purchase.address, f"renamed/{number}"))
            purchase = replace(purchase, address=f"renamed/{number}")
        renamed.append(purchase)
    before = planner.plan(declarations, state)
    after = planner.plan(Declarations(tuple(renamed), moves=tuple(moves)), state)
    bought = {c.address: c.delta for c in before.buying()}
    for move in moves:
        change = next(c for c in after.changes if c.address == move.target)
        old = next(c for c in before.changes if c.address == move.source)
        # Exactly what the plan without the rename said, at the new address.
        if old.action in (Action.NOOP, Action.INCREASE):
            assert (change.action, change.delta) == (Action.MOVE, bought.get(move.source, 0))
        else:
            # A pending checkout at the source blocks its move; a conflict stays one.
            assert change.action is Action.CONFLICT
            assert old.action in (Action.PENDING, Action.CONFLICT)
    # A blocked move leaves its source undeclared, which may hold back a purchase
    # of the same identity (rename detection): never more seats, possibly fewer.
    assert after.summary.seats <= before.summary.seats


# --- --target ---------------------------------------------------------------------


@given(scenarios(), st.lists(st.sampled_from(["c0/", "c1/p1", "c2/", "c9/"]), max_size=3))
def test_a_targeted_plan_is_the_whole_plan_restricted_to_its_targets(
    scenario: tuple[Declarations, State], targets: list[str]
) -> None:
    declarations, state = scenario
    whole = planner.plan(declarations, state)
    part = planner.plan(declarations, state, targets)
    if not targets:
        assert part == whole
        return
    expected = tuple(
        c for c in whole.changes if any(c.address.startswith(t.rstrip("/")) for t in targets)
    )
    assert part.changes == expected
    assert (part.targets, part.addresses) == (tuple(targets), len(whole.changes))


def test_a_target_matches_an_address_or_a_subtree_only() -> None:
    decl = (declared("a/x", 1), declared("a/xy", 1), declared("ab/x", 1), declared("a/x/y", 1))
    picked = planner.plan(Declarations(decl), state_of(), ["a/x", "a/x/"])
    assert [c.address for c in picked.changes] == ["a/x", "a/x/y"]
    subtree = planner.plan(Declarations(decl), state_of(), ["a/"])
    assert [c.address for c in subtree.changes] == ["a/x", "a/x/y", "a/xy"]
