"""The observations and the matching rules of ``reconciler.observe``, table by table.

No files, no HTTP: the records the API reads would give are built by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from reconciler.api.reads import (
    AssetOrder,
    AssetOrderLine,
    CatalogEntry,
    Price,
    ProcessedOrder,
    Subscription,
)
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
from reconciler.observe import (
    CLOCK_SKEW,
    Proof,
    Readings,
    catalogue_for,
    guard_purchases,
    observe,
)
from reconciler.planner import plan

TENANT = 111111
BASIC = Identity(TENANT, "CFQ7TTC0LF8R", "0010", "monthly", "P1M")
PREMIUM = Identity(TENANT, "CFQ7TTC0LH18", "0001", "annual", "P1Y")
T0 = "2026-11-26T19:00:00Z"
AT = datetime(2026, 11, 26, 19, 0, tzinfo=UTC)


def subscription(
    id_: int, identity: Identity, quantity: int, *, status: str = "active", name: str = "Basic"
) -> Subscription:
    return Subscription(
        id=id_,
        customer_tenant_id=identity.customer_tenant_id,
        product_id=identity.product_id,
        sku_id=identity.sku_id,
        part_number=identity.product,
        name=name,
        product_name=name,
        quantity=quantity,
        status=status,
        billing_cycle=identity.billing_cycle,
        term_duration=identity.term_duration,
        order_id=None,
        publisher_subscription_id=None,
        start_date=None,
        end_date=None,
        auto_renew=None,
    )


def order(
    reference: str,
    quantity: int,
    *,
    created: datetime | None = AT + timedelta(seconds=2),
    state: str = "succeeded",
    identity: Identity = BASIC,
    error: str | None = None,
) -> ProcessedOrder:
    return ProcessedOrder(
        order_reference_id=reference,
        customer_tenant_id=identity.customer_tenant_id,
        catalog_id=f"{identity.product}:X",
        product_id=identity.product_id,
        sku_id=identity.sku_id,
        name="Basic",
        quantity=quantity,
        billing_cycle=identity.billing_cycle,
        term_duration=identity.term_duration,
        created=created,
        order_state=state,
        error=error,
    )


def asset(order_id: str, quantity: int, *, errors: tuple[str, ...] = ()) -> AssetOrder:
    line = AssetOrderLine(BASIC.product_id, BASIC.sku_id, quantity, "monthly", "P1M", None, None)
    return AssetOrder(order_id, TENANT, (line,), errors)


def pending(
    address: str = "acme/basic", order_id: str = "ord-1", quantity: int = 5
) -> PendingOperation:
    return PendingOperation(address, BASIC, order_id, quantity, T0)


def declared(*purchases: tuple[str, Identity, int]) -> Declarations:
    return Declarations(tuple(Purchase(a, i, q) for a, i, q in purchases))


def state_with(
    *,
    purchases: dict[str, RecordedPurchase] | None = None,
    waiting: Sequence[PendingOperation] = (),
) -> State:
    return State("lineage", 3, purchases or {}, {p.address: p for p in waiting})


def evidence_of(state: State, readings: Readings, address: str = "acme/basic") -> tuple[Proof, str]:
    found = observe(Declarations(()), state, readings).evidence[address]
    return found.proof, found.text


# --------------------------------------------------------------------------- matching rules


def test_asset_order_with_the_same_external_order_id_proves_the_purchase() -> None:
    readings = Readings({}, {TENANT: []}, {"ord-1": [asset("ord-1", 5)]})
    verdict, text = evidence_of(state_with(waiting=[pending()]), readings)
    assert verdict is Proof.PURCHASED
    assert text == "asset order ord-1 was taken: CFQ7TTC0LF8R:0010 x5"


def test_asset_order_with_errors_proves_nothing_was_bought() -> None:
    readings = Readings({}, {}, {"ord-1": [asset("ord-1", 5, errors=("1001: quota",))]})
    verdict, text = evidence_of(state_with(waiting=[pending()]), readings)
    assert verdict is Proof.NOT_PURCHASED
    assert text == "asset order ord-1 failed: 1001: quota"


def test_asset_order_of_another_quantity_proves_nothing() -> None:
    readings = Readings({}, {TENANT: [order("1001", 5)]}, {"ord-1": [asset("ord-1", 3)]})
    verdict, text = evidence_of(state_with(waiting=[pending()]), readings)
    assert verdict is Proof.UNKNOWN
    assert "does not show CFQ7TTC0LF8R:0010 x5" in text


def test_one_processed_order_candidate_proves_the_purchase() -> None:
    readings = Readings({}, {TENANT: [order("1001", 5)]}, {"ord-1": []})
    verdict, text = evidence_of(state_with(waiting=[pending()]), readings)
    assert verdict is Proof.PURCHASED
    assert text == (
        "processed order 1001 succeeded (the only unclaimed processed order of "
        "CFQ7TTC0LF8R:0010 x5 for tenant 111111 since 2026-11-26T18:50:00Z)"
    )


def test_two_processed_order_candidates_settle_nothing() -> None:
    readings = Readings({}, {TENANT: [order("1001", 5), order("1002", 5)]}, {"ord-1": []})
    verdict, text = evidence_of(state_with(waiting=[pending()]), readings)
    assert verdict is Proof.UNKNOWN
    assert "2 processed orders of CFQ7TTC0LF8R:0010 x5" in text
    assert "orders 1001, 1002" in text


def test_no_candidate_settles_nothing() -> None:
    readings = Readings({}, {TENANT: []}, {"ord-1": []})
    verdict, text = evidence_of(state_with(waiting=[pending()]), readings)
    assert verdict is Proof.UNKNOWN
    assert text == (
        "no asset order has externalOrderId ord-1; no processed order of CFQ7TTC0LF8R:0010 x5 "
        "for tenant 111111 since 2026-11-26T18:50:00Z"
    )


def test_an_order_of_another_quantity_is_no_candidate() -> None:
    readings = Readings({}, {TENANT: [order("1001", 4)]}, {"ord-1": []})
    assert evidence_of(state_with(waiting=[pending()]), readings)[0] is Proof.UNKNOWN


def test_an_order_of_another_product_or_term_is_no_candidate() -> None:
    other_term = Identity(TENANT, BASIC.product_id, BASIC.sku_id, "monthly", "P1Y")
    readings = Readings(
        {},
        {TENANT: [order("1001", 5, identity=PREMIUM), order("1002", 5, identity=other_term)]},
        {"ord-1": []},
    )
    assert evidence_of(state_with(waiting=[pending()]), readings)[0] is Proof.UNKNOWN


def test_an_order_created_too_early_is_no_candidate_but_clock_skew_is_allowed() -> None:
    early = order("1001", 5, created=AT - CLOCK_SKEW - timedelta(seconds=1))
    readings = Readings({}, {TENANT: [early]}, {"ord-1": []})
    assert evidence_of(state_with(waiting=[pending()]), readings)[0] is Proof.UNKNOWN

    skewed = order("1001", 5, created=AT - CLOCK_SKEW + timedelta(seconds=1))
    readings = Readings({}, {TENANT: [skewed]}, {"ord-1": []})
    assert evidence_of(state_with(waiting=[pending()]), readings)[0] is Proof.PURCHASED


def test_an_order_without_a_creation_time_is_no_candidate() -> None:
    readings = Readings({}, {TENANT: [order("1001", 5, created=None)]}, {"ord-1": []})
    assert evidence_of(state_with(waiting=[pending()]), readings)[0] is Proof.UNKNOWN


def test_an_order_already_cited_by_another_record_is_claimed() -> None:
    cited = CheckoutRecord("ord-0", 5, T0, "processed order 1001 succeeded (the only ...)")
    recorded = {"acme/other": RecordedPurchase("acme/other", BASIC, 5, (cited,))}
    readings = Readings({}, {TENANT: [order("1001", 5)]}, {"ord-1": []})
    verdict, text = evidence_of(state_with(purchases=recorded, waiting=[pending()]), readings)
    assert verdict is Proof.UNKNOWN
    assert "no processed order" in text


def test_a_recorded_checkout_of_the_same_product_and_quantity_claims_one_order() -> None:
    # A 204 recorded a minute before: one of the two orders is its, the other is ours.
    recorded = {
        "acme/other": RecordedPurchase(
            "acme/other", BASIC, 5, (CheckoutRecord("ord-0", 5, "2026-11-26T18:59:00Z"),)
        )
    }
    both = Readings({}, {TENANT: [order("1001", 5), order("1002", 5)]}, {"ord-1": []})
    verdict, text = evidence_of(state_with(purchases=recorded, waiting=[pending()]), both)
    assert verdict is Proof.PURCHASED
    assert text.startswith("processed order 1001 or processed order 1002 succeeded")
    # Only its order was made: ours was not, so nothing is proven.
    one = Readings({}, {TENANT: [order("1001", 5)]}, {"ord-1": []})
    verdict, text = evidence_of(state_with(purchases=recorded, waiting=[pending()]), one)
    assert verdict is Proof.UNKNOWN
    assert text.endswith("(1 claimed by recorded checkouts)")


def test_a_checkout_recorded_long_before_claims_no_order_in_the_window() -> None:
    recorded = {
        "acme/other": RecordedPurchase(
            "acme/other", BASIC, 5, (CheckoutRecord("ord-0", 5, "2026-11-25T10:00:00Z"),)
        )
    }
    readings = Readings({}, {TENANT: [order("1001", 5)]}, {"ord-1": []})
    state = state_with(purchases=recorded, waiting=[pending()])
    assert evidence_of(state, readings)[0] is Proof.PURCHASED


def test_a_failed_order_as_the_only_candidate_proves_nothing_was_bought() -> None:
    failed = order("1001", 5, state="failed", error="OutOfStock: no seats")
    readings = Readings({}, {TENANT: [failed]}, {"ord-1": []})
    verdict, text = evidence_of(state_with(waiting=[pending()]), readings)
    assert verdict is Proof.NOT_PURCHASED
    assert text.startswith("processed order 1001 failed: OutOfStock: no seats")


def test_a_failed_order_created_before_the_checkout_was_sent_proves_nothing() -> None:
    """Within the clock-skew allowance but before the pending entry: an earlier attempt's
    failure must not prove this checkout failed (the next apply would buy again)."""
    earlier = order(
        "1001", 5, state="failed", error="OutOfStock", created=AT - timedelta(minutes=5)
    )
    readings = Readings({}, {TENANT: [earlier]}, {"ord-1": []})
    verdict, text = evidence_of(state_with(waiting=[pending()]), readings)
    assert verdict is Proof.UNKNOWN
    assert "processed order 1001 of CFQ7TTC0LF8R:0010 x5 for tenant 111111 since " in text
    assert text.endswith(
        "failed, but it was created before this checkout was sent, so it may be an earlier attempt"
    )


def test_a_failed_order_beside_a_claimed_succeeded_one_proves_nothing() -> None:
    recorded = {
        "acme/other": RecordedPurchase(
            "acme/other", BASIC, 5, (CheckoutRecord("ord-0", 5, "2026-11-26T18:59:00Z"),)
        )
    }
    readings = Readings(
        {}, {TENANT: [order("1001", 5), order("1002", 5, state="failed")]}, {"ord-1": []}
    )
    state = state_with(purchases=recorded, waiting=[pending()])
    assert evidence_of(state, readings)[0] is Proof.UNKNOWN


def test_an_order_still_processing_settles_nothing() -> None:
    readings = Readings({}, {TENANT: [order("1001", 5, state="processing")]}, {"ord-1": []})
    verdict, text = evidence_of(state_with(waiting=[pending()]), readings)
    assert verdict is Proof.UNKNOWN
    assert "is processing, not settled yet" in text


def test_two_pending_checkouts_of_the_same_product_and_quantity_settle_nothing() -> None:
    readings = Readings({}, {TENANT: [order("1001", 5)]}, {"ord-1": [], "ord-2": []})
    state = state_with(waiting=[pending(), pending("acme/basic-2", "ord-2")])
    verdict, text = evidence_of(state, readings)
    assert verdict is Proof.UNKNOWN
    assert "the pending checkout of acme/basic-2 is also" in text


def test_without_processed_orders_nothing_is_proven() -> None:
    verdict, text = evidence_of(state_with(waiting=[pending()]), Readings({}))
    assert verdict is Proof.UNKNOWN
    assert text == "asset orders were not read; processed orders were not read"


# --------------------------------------------------------------------------- drift and unmanaged


def test_portal_seats_of_a_recorded_identity_are_drift_written_at_its_address() -> None:
    decl = declared(("acme/basic", BASIC, 5))
    state = state_with(purchases={"acme/basic": RecordedPurchase("acme/basic", BASIC, 5)})
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
    state = state_with(purchases={"acme/basic": RecordedPurchase("acme/basic", BASIC, 5)})
    readings = Readings({TENANT: [subscription(500001, BASIC, 5, status="cancelled")]})
    found = observe(Declarations(()), state, readings)
    assert [(d.recorded, d.actual) for d in found.drift] == [(5, 0)]


def test_drift_of_an_identity_several_addresses_share_is_reported_not_written() -> None:
    state = state_with(
        purchases={
            "acme/a": RecordedPurchase("acme/a", BASIC, 2),
            "acme/b": RecordedPurchase("acme/b", BASIC, 3),
        }
    )
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
    state = state_with(purchases={"acme/basic": RecordedPurchase("acme/basic", BASIC, 5)})
    readings = Readings({TENANT: [subscription(500001, BASIC, 5), subscription(500002, BASIC, 4)]})
    (drift,) = observe(decl, state, readings).drift
    assert (drift.recorded, drift.actual, drift.target) == (5, 9, None)
    assert drift.held is not None
    assert "acme/basic sets allowAdditionalSubscription" in drift.held


def test_drift_beside_an_unsettled_pending_checkout_is_not_written() -> None:
    state = state_with(
        purchases={"acme/basic": RecordedPurchase("acme/basic", BASIC, 5)},
        waiting=[pending(quantity=2)],
    )
    readings = Readings({TENANT: [subscription(500001, BASIC, 7)]}, {TENANT: []}, {"ord-1": []})
    (drift,) = observe(Declarations(()), state, readings).drift
    assert drift.target is None
    assert drift.held is not None
    assert "pending checkout of acme/basic is not settled" in drift.held


def test_a_proven_pending_checkout_counts_as_recorded() -> None:
    state = state_with(
        purchases={"acme/basic": RecordedPurchase("acme/basic", BASIC, 5)},
        waiting=[pending(quantity=2)],
    )
    readings = Readings(
        {TENANT: [subscription(500001, BASIC, 5), subscription(500002, BASIC, 2)]},
        {TENANT: []},
        {"ord-1": [asset("ord-1", 2)]},
    )
    found = observe(Declarations(()), state, readings)
    assert found.drift == ()
    assert [e.proof for e in found.settled] == [Proof.PURCHASED]


def test_identities_no_address_has_are_unmanaged() -> None:
    decl = declared(("acme/basic", BASIC, 5))
    readings = Readings(
        {
            TENANT: [
                subscription(500002, PREMIUM, 4, name="Premium"),
                subscription(500003, PREMIUM, 1),
            ]
        }
    )
    found = observe(decl, state_with(), readings)
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
    decl = declared(("acme/basic", BASIC, 5))
    readings = Readings({TENANT: [subscription(500001, BASIC, 5)]})
    (drift,) = observe(decl, state_with(), readings).drift
    assert (drift.recorded, drift.actual, drift.target) == (0, 5, None)
    assert drift.held is not None
    assert "reconciler import --tenant 111111" in drift.held


def test_a_tenant_that_was_not_read_shows_nothing() -> None:
    state = state_with(purchases={"acme/basic": RecordedPurchase("acme/basic", BASIC, 5)})
    found = observe(Declarations(()), state, Readings({222222: []}))
    assert (found.drift, found.unmanaged) == ((), ())


# --------------------------------------------------------------------------- read before buying


def test_a_purchase_of_an_identity_with_unaccounted_seats_becomes_a_conflict() -> None:
    decl = declared(("acme/basic", BASIC, 5))
    state = state_with()
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
    state = state_with()
    readings = Readings({TENANT: [subscription(500001, BASIC, 5)]})
    guarded = guard_purchases(plan(decl, state), observe(decl, state, readings))
    assert [c.action for c in guarded.changes] == [Action.PURCHASE]


def test_seats_accounted_for_by_another_address_do_not_block_a_purchase() -> None:
    decl = declared(("acme/a", BASIC, 5), ("acme/b", BASIC, 2))
    state = state_with(purchases={"acme/a": RecordedPurchase("acme/a", BASIC, 5)})
    readings = Readings({TENANT: [subscription(500001, BASIC, 5)]})
    guarded = guard_purchases(plan(decl, state), observe(decl, state, readings))
    assert [(c.address, c.action) for c in guarded.changes] == [
        ("acme/a", Action.NOOP),
        ("acme/b", Action.PURCHASE),
    ]


def test_an_increase_over_unrecorded_portal_seats_is_a_conflict_naming_refresh() -> None:
    decl = declared(("acme/basic", BASIC, 8))
    state = state_with(purchases={"acme/basic": RecordedPurchase("acme/basic", BASIC, 5)})
    readings = Readings({TENANT: [subscription(500001, BASIC, 5), subscription(500002, BASIC, 3)]})
    (change,) = guard_purchases(plan(decl, state), observe(decl, state, readings)).changes
    assert change.action is Action.CONFLICT
    assert change.reason is not None
    assert "run `reconciler refresh`" in change.reason


def test_a_plan_without_unaccounted_seats_is_returned_unchanged() -> None:
    decl = declared(("acme/basic", BASIC, 5))
    state = state_with()
    before = plan(decl, state)
    assert guard_purchases(before, observe(decl, state, Readings({TENANT: []}))) is before


# --------------------------------------------------------------------------- catalogue


def entry(identity: Identity, price: Price | None) -> CatalogEntry:
    return CatalogEntry(
        identity.product_id,
        identity.sku_id,
        identity.product,
        None,
        "Microsoft 365 Business Basic",
        "Microsoft 365 Business Basic",
        price,
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("price", "unit", "currency"),
    [(Price(Decimal("5.60"), "EUR"), Decimal("5.60"), "EUR"), (None, None, None)],
)
def test_catalogue_gives_names_and_prices_and_unknown_for_absent_prices(
    price: Price | None, unit: Decimal | None, currency: str | None
) -> None:
    found = catalogue_for([BASIC, PREMIUM], {TENANT: [entry(BASIC, price)]})
    assert set(found) == {BASIC}
    info = found[BASIC]
    assert (info.name, info.unit_price, info.currency) == (
        "Microsoft 365 Business Basic",
        unit,
        currency,
    )
