"""What Cloud-iQ shows against the state (``reconciler.observe``): the subscriptions each
address owns, the seats that gives it, its drift from the seats recorded, and the
subscriptions no address owns.

No files, no HTTP: the records the API reads would give are built by hand.
"""

from __future__ import annotations

from dataclasses import replace

from reconciler.model import CheckoutRecord, Declarations, Purchase, RecordedPurchase
from reconciler.observe import Proof, Readings, observe, project
from tests.support.readings import asset_order, subscription
from tests.support.records import BASIC, PREMIUM, TENANT, declarations, declared, pending, state_of
from tests.support.times import AT, T0


def owning(address: str, quantity: int, *ids: int) -> RecordedPurchase:
    return RecordedPurchase(address, BASIC, quantity, subscriptions=ids)


def test_seats_added_to_an_owned_subscription_are_drift_at_its_address() -> None:
    decl = declarations(declared("acme/basic", 5))
    state = state_of(owning("acme/basic", 5, 500001))
    readings = Readings({TENANT: [subscription(500001, BASIC, 8)]})
    found = observe(decl, state, readings)
    assert [(d.address, d.recorded, d.actual) for d in found.drift] == [("acme/basic", 5, 8)]
    assert found.drift[0].evidence() == (
        "Cloud-iQ showed 8 seats (subscription 500001); 5 were recorded"
    )
    assert found.unmanaged == ()
    assert project(state, found).purchases["acme/basic"].quantity == 8


def test_an_owned_subscription_that_was_cancelled_holds_no_seats() -> None:
    state = state_of(owning("acme/basic", 5, 500001))
    readings = Readings({TENANT: [subscription(500001, BASIC, 5, status="cancelled")]})
    found = observe(Declarations(()), state, readings)
    assert [(d.recorded, d.actual) for d in found.drift] == [(5, 0)]
    assert [s.id for s in found.seats["acme/basic"].gone] == [500001]


def test_an_owned_subscription_cloud_iq_does_not_list_leaves_the_seats_as_recorded() -> None:
    state = state_of(owning("acme/basic", 5, 500001))
    found = observe(Declarations(()), state, Readings({TENANT: []}))
    seen = found.seats["acme/basic"]
    assert seen.doubtful == "Cloud-iQ does not list its subscription 500001"
    assert seen.seats == 5
    assert found.drift == ()


def test_a_suspended_subscription_is_held() -> None:
    state = state_of(owning("acme/basic", 5, 500001))
    readings = Readings({TENANT: [subscription(500001, BASIC, 5, status="suspended")]})
    seen = observe(Declarations(()), state, readings).seats["acme/basic"]
    assert seen.held == "subscription 500001 is suspended"


def test_a_state_without_subscriptions_takes_over_the_exact_set_of_its_seats() -> None:
    # Two addresses have the identity; the recorded one takes the subscription holding
    # its 5 seats, and the 3 others stay unmanaged (the new address cannot buy over them).
    decl = declarations(declared("acme/a", 5), declared("acme/b", 3))
    state = state_of(RecordedPurchase("acme/a", BASIC, 5, (CheckoutRecord("o", 5, T0),)))
    readings = Readings({TENANT: [subscription(500001, BASIC, 5), subscription(500002, BASIC, 3)]})
    found = observe(decl, state, readings)
    assert [(link.address, link.subscription) for link in found.links] == [("acme/a", 500001)]
    (free,) = found.unmanaged
    assert (free.subscription_ids, free.of) == ((500002,), ("acme/a", "acme/b"))


def test_no_takeover_when_several_sets_hold_the_recorded_seats_and_others_share_it() -> None:
    decl = declarations(declared("acme/a", 5), declared("acme/b", 5))
    state = state_of(RecordedPurchase("acme/a", BASIC, 5))
    readings = Readings({TENANT: [subscription(500001, BASIC, 5), subscription(500002, BASIC, 5)]})
    found = observe(decl, state, readings)
    assert found.links == ()
    assert found.seats["acme/a"].doubtful is not None


def test_an_acknowledged_address_takes_over_only_the_exact_set() -> None:
    decl = Declarations((Purchase("acme/basic", BASIC, 5, allow_additional_subscription=True),))
    state = state_of(RecordedPurchase("acme/basic", BASIC, 5))
    readings = Readings({TENANT: [subscription(500001, BASIC, 5), subscription(500002, BASIC, 4)]})
    found = observe(decl, state, readings)
    assert [link.subscription for link in found.links] == [500001]
    assert [u.subscription_ids for u in found.unmanaged] == [(500002,)]


def test_a_proven_pending_checkout_is_settled_before_the_seats_are_counted() -> None:
    state = state_of(owning("acme/basic", 5, 500001), pending=[pending(quantity=2)])
    readings = Readings(
        {TENANT: [subscription(500001, BASIC, 5), subscription(500002, BASIC, 2, created=AT)]},
        {TENANT: []},
        {"ord-1": [asset_order("ord-1", 2)]},
    )
    found = observe(Declarations(()), state, readings)
    assert [e.proof for e in found.settled] == [Proof.PURCHASED]
    assert [(link.subscription, link.order) for link in found.links] == [(500002, "ord-1")]
    assert found.drift == ()
    settled = project(state, found)
    assert settled.pending == {}
    assert settled.purchases["acme/basic"].subscriptions == (500001, 500002)


def test_an_asset_order_naming_its_subscription_links_it() -> None:
    bought = RecordedPurchase(
        "acme/basic", BASIC, 5, (CheckoutRecord("ord-1", 5, T0),), unseen=("ord-1",)
    )
    line = replace(asset_order("ord-1", 5).lines[0], subscription_id=500009)
    order = replace(asset_order("ord-1", 5), lines=(line,))
    readings = Readings({TENANT: [subscription(500009, BASIC, 5)]}, asset_orders={"ord-1": [order]})
    found = observe(Declarations(()), state_of(bought), readings)
    assert [(link.subscription, link.order) for link in found.links] == [(500009, "ord-1")]
    assert "names subscription 500009" in found.links[0].how


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
    assert (unmanaged.identity, unmanaged.seats, unmanaged.subscription_ids, unmanaged.of) == (
        PREMIUM,
        5,
        (500002, 500003),
        (),
    )
    assert unmanaged.product_name == "Premium"
    assert found.drift == ()


def test_a_tenant_that_was_not_read_shows_nothing() -> None:
    state = state_of(owning("acme/basic", 5, 500001))
    found = observe(Declarations(()), state, Readings({222222: []}))
    assert (found.drift, found.unmanaged, dict(found.seats)) == ((), (), {})
