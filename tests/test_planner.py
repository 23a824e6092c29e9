"""The planner: table-driven cases for every action and conflict reason, and its invariants."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler import planner
from reconciler.model import (
    Action,
    CheckoutRecord,
    Declarations,
    Identity,
    PendingOperation,
    Purchase,
    RecordedPurchase,
    State,
)

M365 = Identity(111111, "CFQ7TTC0LF8R", "0010", "monthly", "P1M", "subscription")


def declared(address: str, quantity: int, identity: Identity = M365) -> Purchase:
    return Purchase(address=address, identity=identity, quantity=quantity)


def recorded(address: str, quantity: int, identity: Identity = M365) -> RecordedPurchase:
    return RecordedPurchase(
        address,
        identity,
        quantity,
        (CheckoutRecord("reconciler-x", quantity, "2026-01-01T00:00:00Z"),),
    )


def state_of(*purchases: RecordedPurchase, pending: tuple[PendingOperation, ...] = ()) -> State:
    return State(
        lineage="lin",
        serial=3,
        purchases={p.address: p for p in purchases},
        pending={p.address: p for p in pending},
    )


def only_change(decl: tuple[Purchase, ...], state: State):  # type: ignore[no-untyped-def]
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
    change = only_change(
        (declared("a/x", 25, replace(M365, **{field: value})),), state_of(recorded("a/x", 20))
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
    op = PendingOperation("a/x", M365, "reconciler-p", 5, "2026-01-01T00:00:00Z")
    change = only_change((declared("a/x", 30),), state_of(recorded("a/x", 20), pending=(op,)))
    assert (change.action, change.delta) == (Action.PENDING, 0)
    assert change.reason is not None
    assert "reconciler-p" in change.reason


def test_pending_without_declaration_or_record_is_still_listed() -> None:
    op = PendingOperation("a/x", M365, "reconciler-p", 5, "2026-01-01T00:00:00Z")
    change = only_change((), state_of(pending=(op,)))
    assert change.action is Action.PENDING


def test_plan_records_what_it_was_made_against() -> None:
    decl = Declarations((declared("a/x", 1),))
    plan = planner.plan(decl, state_of())
    assert (plan.lineage, plan.serial, plan.declarations_digest) == ("lin", 3, decl.digest())


def test_summary_counts_actions_and_seats() -> None:
    decl = (
        declared("a/new", 10),
        declared("a/more", 8),
        declared("a/same", 3),
        declared("a/less", 1),
    )
    state = state_of(
        recorded("a/more", 5), recorded("a/same", 3), recorded("a/less", 2), recorded("a/gone", 4)
    )
    summary = planner.plan(Declarations(decl), state).summary
    assert (summary.to_purchase, summary.purchase_seats) == (1, 10)
    assert (summary.to_increase, summary.increase_seats) == (1, 3)
    assert (summary.noop, summary.conflicts, summary.orphans, summary.pending) == (1, 1, 1, 0)


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
