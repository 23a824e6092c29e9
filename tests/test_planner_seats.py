"""The planner against what Cloud-iQ shows: seats per address, both ways.

Every case builds what the API read (``Readings``), observes it against the state
and plans; no file, no HTTP. The properties at the end hold over random clouds:
the plan never lowers an address below its declaration, never lowers seats
outside the cancellation window, never cancels an address no ``removed:`` line
names, and never buys seats Cloud-iQ already holds.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.api.records import Subscription
from reconciler.model import (
    Action,
    Adopt,
    Change,
    CheckoutRecord,
    Declarations,
    Purchase,
    RecordedPurchase,
    Removal,
    State,
    SubscriptionChange,
    UpdateField,
    UpdateRecord,
)
from reconciler.observe import Readings, observe
from reconciler.planner import plan
from tests.support.readings import subscription
from tests.support.records import BASIC, TENANT, declared, state_of
from tests.support.times import AT, T0

#: When Cloud-iQ was read: two days after ``T0``.
NOW = AT + timedelta(days=2)
RECENT = AT + timedelta(days=1)  # inside the 7-day window at NOW
OLD = AT - timedelta(days=30)  # outside it


def owning(address: str, quantity: int, *ids: int, **more: object) -> RecordedPurchase:
    """A recorded purchase that owns subscriptions ``ids``."""
    return replace(
        RecordedPurchase(address, BASIC, quantity, (CheckoutRecord("ord-0", quantity, T0),)),
        subscriptions=ids,
        **more,  # type: ignore[arg-type]
    )


def planned(
    decl: Declarations | tuple[Purchase, ...],
    state: State,
    subs: list[Subscription],
    *,
    now: datetime = NOW,
) -> dict[str, Change]:
    declarations = decl if isinstance(decl, Declarations) else Declarations(decl)
    readings = Readings({TENANT: subs}, now=now)
    found = observe(declarations, state, readings)
    result = plan(declarations, state, (), found)
    return {c.address: c for c in result.changes}


def test_fewer_seats_inside_the_window_lower_the_subscription() -> None:
    changes = planned(
        (declared("acme/basic", 25),),
        state_of(owning("acme/basic", 30, 500001)),
        [subscription(500001, BASIC, 30, created=RECENT)],
    )
    change = changes["acme/basic"]
    assert change.action is Action.DECREASE
    assert change.delta == -5
    assert change.steps == (SubscriptionChange(500001, UpdateField.QUANTITY, 30, 25),)
    assert change.window_ends == "2026-12-04T19:00:00Z"
    assert "prorated credit" in (change.note or "")


def test_fewer_seats_outside_the_window_are_a_conflict_saying_when_and_how() -> None:
    changes = planned(
        (declared("acme/basic", 25),),
        state_of(owning("acme/basic", 30, 500001)),
        [subscription(500001, BASIC, 30, created=OLD, end=AT + timedelta(days=60))],
    )
    change = changes["acme/basic"]
    assert change.action is Action.CONFLICT
    reason = change.reason or ""
    assert (
        "none of the 5 seats to remove are inside Microsoft's 7-day cancellation window" in reason
    )
    assert "at renewal (2027-01-25T19:00:00Z)" in reason
    assert "`autoRenew: false`" in reason
    assert change.window_ends == "2027-01-25T19:00:00Z"


def test_seats_added_in_the_portal_outside_the_window_advise_keeping_them_first() -> None:
    changes = planned(
        (declared("acme/basic", 25),),
        state_of(owning("acme/basic", 25, 500001)),
        [subscription(500001, BASIC, 30, created=OLD)],
    )
    change = changes["acme/basic"]
    assert change.action is Action.CONFLICT
    assert (change.reason or "").startswith(
        "5 seats were added outside this repository: raise `quantity` to 30 to keep them"
    )


def test_seats_added_in_the_portal_inside_the_window_are_lowered_back_and_flagged() -> None:
    changes = planned(
        (declared("acme/basic", 25),),
        state_of(owning("acme/basic", 25, 500001)),
        [subscription(500001, BASIC, 30, created=RECENT)],
    )
    change = changes["acme/basic"]
    assert change.action is Action.DECREASE
    assert "5 seats were added outside this repository" in (change.note or "")
    assert "raise `quantity` to 30 to keep them" in (change.note or "")


def test_a_decrease_takes_the_newest_subscription_first_and_cancels_it_when_emptied() -> None:
    changes = planned(
        (declared("acme/basic", 10),),
        state_of(owning("acme/basic", 14, 500001, 500002)),
        [
            subscription(500001, BASIC, 10, created=RECENT - timedelta(hours=5)),
            subscription(500002, BASIC, 4, created=RECENT),
        ],
    )
    change = changes["acme/basic"]
    assert change.steps == (SubscriptionChange(500002, UpdateField.CANCEL, 4, 0),)


def test_after_a_decrease_more_seats_are_an_increase() -> None:
    # Cloud-iQ shows 8 (a decrease was recorded); 12 are declared: buy 4.
    state = state_of(
        owning(
            "acme/basic",
            8,
            500001,
            updates=(UpdateRecord(SubscriptionChange(500001, UpdateField.QUANTITY, 10, 8), T0),),
        )
    )
    changes = planned(
        (declared("acme/basic", 12),), state, [subscription(500001, BASIC, 8, created=OLD)]
    )
    change = changes["acme/basic"]
    assert (change.action, change.delta) == (Action.INCREASE, 4)


def test_seat_changes_update_raises_the_newest_subscription() -> None:
    want = replace(declared("acme/basic", 15), seat_changes="update")
    changes = planned(
        (want,),
        state_of(owning("acme/basic", 10, 500001)),
        [subscription(500001, BASIC, 10, created=OLD)],
    )
    change = changes["acme/basic"]
    assert change.action is Action.INCREASE
    assert change.steps == (SubscriptionChange(500001, UpdateField.QUANTITY, 10, 15),)


def test_auto_renew_that_differs_is_an_update() -> None:
    want = replace(declared("acme/basic", 10), auto_renew=False)
    changes = planned(
        (want,),
        state_of(owning("acme/basic", 10, 500001)),
        [subscription(500001, BASIC, 10, created=OLD, auto_renew=True)],
    )
    change = changes["acme/basic"]
    assert change.action is Action.UPDATE
    assert change.steps == (SubscriptionChange(500001, UpdateField.AUTO_RENEW, 1, 0),)


@pytest.mark.parametrize(
    ("removal", "created", "action"),
    [
        (None, RECENT, Action.ORPHAN),
        (Removal("acme/basic", cancel=False), RECENT, Action.FORGET),
        (Removal("acme/basic", cancel=True), RECENT, Action.CANCEL),
        (Removal("acme/basic", cancel=True), OLD, Action.CONFLICT),
    ],
)
def test_an_undeclared_address_is_cancelled_only_by_a_removed_line(
    removal: Removal | None, created: datetime, action: Action
) -> None:
    decl = Declarations((), removals=(removal,) if removal else ())
    changes = planned(
        decl,
        state_of(owning("acme/basic", 10, 500001)),
        [subscription(500001, BASIC, 10, created=created)],
    )
    assert changes["acme/basic"].action is action


def test_import_adopts_existing_subscriptions_and_buys_nothing_for_them() -> None:
    decl = Declarations((declared("acme/visio", 2),), adoptions=(Adopt("acme/visio", (500028,)),))
    changes = planned(decl, State("lineage"), [subscription(500028, BASIC, 2, created=RECENT)])
    change = changes["acme/visio"]
    assert (change.action, change.delta) == (Action.ADOPT, 0)
    assert change.subscriptions == (500028,)


def test_a_purchase_of_seats_cloud_iq_already_holds_is_a_conflict_naming_them() -> None:
    changes = planned(
        (declared("acme/visio", 2),), State("lineage"), [subscription(500028, BASIC, 2)]
    )
    change = changes["acme/visio"]
    assert change.action is Action.CONFLICT
    assert "`import: [{to: acme/visio, subscriptions: [500028]}]`" in (change.reason or "")


def test_a_checkout_whose_subscription_is_not_listed_yet_still_counts() -> None:
    # 204 for 10 seats, then an immediate plan: Cloud-iQ lists nothing yet.
    bought = RecordedPurchase(
        "acme/basic", BASIC, 10, (CheckoutRecord("ord-1", 10, T0),), unseen=("ord-1",)
    )
    changes = planned((declared("acme/basic", 10),), state_of(bought), [])
    assert changes["acme/basic"].action is Action.NOOP


def test_an_unseen_checkout_takes_the_one_new_subscription_of_its_size() -> None:
    bought = RecordedPurchase(
        "acme/basic", BASIC, 10, (CheckoutRecord("ord-1", 10, T0),), unseen=("ord-1",)
    )
    state = state_of(bought)
    declarations = Declarations((declared("acme/basic", 10),))
    found = observe(
        declarations,
        state,
        Readings({TENANT: [subscription(500001, BASIC, 10, created=AT)]}, now=NOW),
    )
    (link,) = found.links
    assert (link.address, link.subscription, link.order) == ("acme/basic", 500001, "ord-1")
    assert found.seats["acme/basic"].seats == 10
    assert found.unmanaged == ()


def test_a_state_without_subscriptions_takes_over_those_of_its_identity() -> None:
    legacy = RecordedPurchase("acme/basic", BASIC, 10, (CheckoutRecord("ord-0", 10, T0),))
    declarations = Declarations((declared("acme/basic", 10),))
    found = observe(
        declarations,
        state_of(legacy),
        Readings({TENANT: [subscription(500001, BASIC, 10, created=OLD)]}, now=NOW),
    )
    assert [link.subscription for link in found.links] == [500001]


def test_a_suspended_subscription_is_a_conflict() -> None:
    changes = planned(
        (declared("acme/basic", 12),),
        state_of(owning("acme/basic", 10, 500001)),
        [subscription(500001, BASIC, 10, status="suspended", created=OLD)],
    )
    assert changes["acme/basic"].action is Action.CONFLICT


def test_without_cloud_iq_fewer_seats_are_a_conflict_that_asks_for_credentials() -> None:
    declarations = Declarations((declared("acme/basic", 5),))
    result = plan(declarations, state_of(owning("acme/basic", 10, 500001)))
    (change,) = result.changes
    assert change.action is Action.CONFLICT
    assert "Cloud-iQ was not read" in (change.reason or "")


# --- properties -----------------------------------------------------------------------

clouds = st.lists(
    st.tuples(
        st.integers(1, 40),  # seats
        st.integers(0, 20 * 24),  # hours old at NOW
        st.booleans(),  # owned
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(cloud=clouds, wanted=st.integers(1, 80), allow=st.booleans())
def test_the_plan_never_lowers_below_the_declaration_or_outside_the_window_nor_buys_what_exists(
    cloud: list[tuple[int, int, bool]], wanted: int, allow: bool
) -> None:
    subs = [
        subscription(500001 + i, BASIC, seats, created=NOW - timedelta(hours=age))
        for i, (seats, age, _) in enumerate(cloud)
    ]
    ids = tuple(s.id for s, (_, _, mine) in zip(subs, cloud, strict=True) if mine)
    owned_seats = sum(s.quantity for s in subs if s.id in ids)
    state = state_of(owning("acme/basic", owned_seats, *ids)) if ids else State("lineage")
    want = replace(declared("acme/basic", wanted), allow_additional_subscription=allow)
    change = planned((want,), state, subs)["acme/basic"]
    action = change.action
    steps = change.steps
    after = owned_seats + sum(step.seats for step in steps)
    if steps and action is not Action.INCREASE:
        assert after >= wanted  # never below what is declared
    for step in steps:
        sub = next(s for s in subs if s.id == step.subscription)
        assert step.subscription in ids  # only the address's own subscriptions
        if step.seats < 0:
            assert sub.creation_date is not None
            assert NOW - sub.creation_date < timedelta(hours=168)  # inside the window
    assert action is not Action.CANCEL  # no removed: line, no cancellation
    unowned = sum(s.quantity for s in subs if s.id not in ids)
    if action in (Action.PURCHASE, Action.INCREASE):
        assert wanted > owned_seats
        assert allow or unowned == 0  # never buys what Cloud-iQ already holds


def test_an_acknowledged_purchase_buys_a_second_subscription() -> None:
    want = replace(declared("acme/visio", 2), allow_additional_subscription=True)
    changes = planned((want,), State("lineage"), [subscription(500028, BASIC, 2)])
    assert changes["acme/visio"].action is Action.PURCHASE


def test_seats_another_address_owns_do_not_block_a_purchase() -> None:
    changes = planned(
        (declared("acme/a", 5), declared("acme/b", 2)),
        state_of(owning("acme/a", 5, 500001)),
        [subscription(500001, BASIC, 5)],
    )
    assert (changes["acme/a"].action, changes["acme/b"].action) == (Action.NOOP, Action.PURCHASE)


def test_an_increase_beside_seats_no_address_owns_is_a_conflict_naming_import() -> None:
    changes = planned(
        (declared("acme/a", 8),),
        state_of(owning("acme/a", 5, 500001)),
        [subscription(500001, BASIC, 5), subscription(500002, BASIC, 3)],
    )
    change = changes["acme/a"]
    assert change.action is Action.CONFLICT
    assert "`import: [{to: acme/a, subscriptions: [500002]}]`" in (change.reason or "")
