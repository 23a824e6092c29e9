"""Seats Cloud-iQ shows against the state (``reconciler.observe.drift``): drift, written
only where one address holds the identity, and unmanaged subscriptions.

No files, no HTTP: the records the API reads would give are built by hand.
"""

from __future__ import annotations

from reconciler.model import Declarations, Purchase, RecordedPurchase
from reconciler.observe import Proof, Readings, observe
from tests.support.readings import asset_order, subscription
from tests.support.records import BASIC, PREMIUM, TENANT, declarations, declared, pending, state_of


def test_portal_seats_of_a_recorded_identity_are_drift_written_at_its_address() -> None:
    decl = declarations(declared("acme/basic", 5))
    state = state_of(RecordedPurchase("acme/basic", BASIC, 5))
    readings = Readings({TENANT: [subscription(500001, BASIC, 5), subscription(500002, BASIC, 3)]})
    found = observe(decl, state, readings)
    assert [(d.addresses, d.recorded, d.actual, d.target) for d in found.drift] == [
        (("acme/basic",), 5, 8, "acme/basic")
    ]
    assert found.drift[0].evidence() == (
        "Cloud-iQ showed 8 active seats (subscriptions 500001, 500002); 5 were recorded"
    )
    assert found.unmanaged == ()


def test_cancelled_subscriptions_do_not_count() -> None:
    state = state_of(RecordedPurchase("acme/basic", BASIC, 5))
    readings = Readings({TENANT: [subscription(500001, BASIC, 5, status="cancelled")]})
    found = observe(Declarations(()), state, readings)
    assert [(d.recorded, d.actual) for d in found.drift] == [(5, 0)]


def test_drift_of_an_identity_several_addresses_share_is_reported_not_written() -> None:
    state = state_of(RecordedPurchase("acme/a", BASIC, 2), RecordedPurchase("acme/b", BASIC, 3))
    readings = Readings({TENANT: [subscription(500001, BASIC, 9)]})
    (drift,) = observe(Declarations(()), state, readings).drift
    assert (drift.addresses, drift.recorded, drift.actual, drift.target) == (
        ("acme/a", "acme/b"),
        5,
        9,
        None,
    )
    assert drift.held is not None
    assert "2 addresses have this identity" in drift.held


def test_drift_of_an_acknowledged_purchase_is_reported_not_written() -> None:
    decl = Declarations((Purchase("acme/basic", BASIC, 5, allow_additional_subscription=True),))
    state = state_of(RecordedPurchase("acme/basic", BASIC, 5))
    readings = Readings({TENANT: [subscription(500001, BASIC, 5), subscription(500002, BASIC, 4)]})
    (drift,) = observe(decl, state, readings).drift
    assert (drift.recorded, drift.actual, drift.target) == (5, 9, None)
    assert drift.held is not None
    assert "acme/basic sets allowAdditionalSubscription" in drift.held


def test_drift_beside_an_unsettled_pending_checkout_is_not_written() -> None:
    state = state_of(RecordedPurchase("acme/basic", BASIC, 5), pending=[pending(quantity=2)])
    readings = Readings({TENANT: [subscription(500001, BASIC, 7)]}, {TENANT: []}, {"ord-1": []})
    (drift,) = observe(Declarations(()), state, readings).drift
    assert drift.target is None
    assert drift.held is not None
    assert "pending checkout of acme/basic is not settled" in drift.held


def test_a_proven_pending_checkout_counts_as_recorded() -> None:
    state = state_of(RecordedPurchase("acme/basic", BASIC, 5), pending=[pending(quantity=2)])
    readings = Readings(
        {TENANT: [subscription(500001, BASIC, 5), subscription(500002, BASIC, 2)]},
        {TENANT: []},
        {"ord-1": [asset_order("ord-1", 2)]},
    )
    found = observe(Declarations(()), state, readings)
    assert found.drift == ()
    assert [e.proof for e in found.settled] == [Proof.PURCHASED]


def test_identities_no_address_has_are_unmanaged() -> None:
    decl = declarations(declared("acme/basic", 5))
    readings = Readings(
        {
            TENANT: [
                subscription(500002, PREMIUM, 4, name="Premium"),
                subscription(500003, PREMIUM, 1),
            ]
        }
    )
    found = observe(decl, state_of(), readings)
    (unmanaged,) = found.unmanaged
    assert (unmanaged.identity, unmanaged.seats, unmanaged.subscription_ids) == (
        PREMIUM,
        5,
        (500002, 500003),
    )
    assert unmanaged.product_name == "Premium"
    # The declared, unrecorded identity has no seats in Cloud-iQ: no drift either.
    assert found.drift == ()


def test_seats_of_a_declared_but_unrecorded_identity_are_drift_pointing_at_import() -> None:
    decl = declarations(declared("acme/basic", 5))
    readings = Readings({TENANT: [subscription(500001, BASIC, 5)]})
    (drift,) = observe(decl, state_of(), readings).drift
    assert (drift.recorded, drift.actual, drift.target) == (0, 5, None)
    assert drift.held is not None
    assert "reconciler import --tenant 111111" in drift.held


def test_a_tenant_that_was_not_read_shows_nothing() -> None:
    state = state_of(RecordedPurchase("acme/basic", BASIC, 5))
    found = observe(Declarations(()), state, Readings({222222: []}))
    assert (found.drift, found.unmanaged) == ((), ())
