"""What the API's reads prove about a pending checkout (``reconciler.observe.evidence``),
matching rule by matching rule.

No files, no HTTP: the records the API reads would give are built by hand.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from reconciler.model import CheckoutRecord, Declarations, Identity, RecordedPurchase, State
from reconciler.observe import CLOCK_SKEW, Proof, Readings, observe
from tests.support.readings import asset_order, processed_order, subscription
from tests.support.records import BASIC, PREMIUM, TENANT, pending, state_of
from tests.support.times import AT, T0


def evidence_of(state: State, readings: Readings, address: str = "acme/basic") -> tuple[Proof, str]:
    found = observe(Declarations(()), state, readings).evidence[address]
    return found.proof, found.text


def test_asset_order_with_the_same_external_order_id_proves_the_purchase() -> None:
    readings = Readings({}, {TENANT: []}, {"ord-1": [asset_order("ord-1", 5)]})
    verdict, text = evidence_of(state_of(pending=[pending()]), readings)
    assert verdict is Proof.PURCHASED
    assert text == "asset order ord-1 was taken: CFQ7TTC0LF8R:0010 x5"


def test_asset_order_with_errors_proves_nothing_was_bought() -> None:
    readings = Readings({}, {}, {"ord-1": [asset_order("ord-1", 5, errors=("1001: quota",))]})
    verdict, text = evidence_of(state_of(pending=[pending()]), readings)
    assert verdict is Proof.NOT_PURCHASED
    assert text == "asset order ord-1 failed: 1001: quota"


def test_asset_order_of_another_quantity_proves_nothing() -> None:
    readings = Readings(
        {}, {TENANT: [processed_order("1001", 5)]}, {"ord-1": [asset_order("ord-1", 3)]}
    )
    verdict, text = evidence_of(state_of(pending=[pending()]), readings)
    assert verdict is Proof.UNKNOWN
    assert "does not show CFQ7TTC0LF8R:0010 x5" in text


def test_one_processed_order_candidate_proves_the_purchase() -> None:
    readings = Readings({}, {TENANT: [processed_order("1001", 5)]}, {"ord-1": []})
    verdict, text = evidence_of(state_of(pending=[pending()]), readings)
    assert verdict is Proof.PURCHASED
    assert text == (
        "processed order 1001 succeeded (the only unclaimed processed order of "
        "CFQ7TTC0LF8R:0010 x5 for tenant 111111 since 2026-11-26T18:50:00Z)"
    )


def test_two_processed_order_candidates_settle_nothing() -> None:
    readings = Readings(
        {}, {TENANT: [processed_order("1001", 5), processed_order("1002", 5)]}, {"ord-1": []}
    )
    verdict, text = evidence_of(state_of(pending=[pending()]), readings)
    assert verdict is Proof.UNKNOWN
    assert "2 processed orders of CFQ7TTC0LF8R:0010 x5" in text
    assert "orders 1001, 1002" in text


def test_no_candidate_settles_nothing() -> None:
    readings = Readings({}, {TENANT: []}, {"ord-1": []})
    verdict, text = evidence_of(state_of(pending=[pending()]), readings)
    assert verdict is Proof.UNKNOWN
    assert text == (
        "no asset order has externalOrderId ord-1; no processed order of CFQ7TTC0LF8R:0010 x5 "
        "for tenant 111111 since 2026-11-26T18:50:00Z"
    )


def test_an_order_of_another_quantity_is_no_candidate() -> None:
    readings = Readings({}, {TENANT: [processed_order("1001", 4)]}, {"ord-1": []})
    assert evidence_of(state_of(pending=[pending()]), readings)[0] is Proof.UNKNOWN


def test_an_order_of_another_product_or_term_is_no_candidate() -> None:
    other_term = Identity(TENANT, BASIC.product_id, BASIC.sku_id, "monthly", "P1Y")
    readings = Readings(
        {},
        {
            TENANT: [
                processed_order("1001", 5, identity=PREMIUM),
                processed_order("1002", 5, identity=other_term),
            ]
        },
        {"ord-1": []},
    )
    assert evidence_of(state_of(pending=[pending()]), readings)[0] is Proof.UNKNOWN


def test_an_order_created_too_early_is_no_candidate_but_clock_skew_is_allowed() -> None:
    early = processed_order("1001", 5, created=AT - CLOCK_SKEW - timedelta(seconds=1))
    readings = Readings({}, {TENANT: [early]}, {"ord-1": []})
    assert evidence_of(state_of(pending=[pending()]), readings)[0] is Proof.UNKNOWN

    skewed = processed_order("1001", 5, created=AT - CLOCK_SKEW + timedelta(seconds=1))
    readings = Readings({}, {TENANT: [skewed]}, {"ord-1": []})
    assert evidence_of(state_of(pending=[pending()]), readings)[0] is Proof.PURCHASED


def test_an_order_without_a_creation_time_is_no_candidate() -> None:
    readings = Readings({}, {TENANT: [processed_order("1001", 5, created=None)]}, {"ord-1": []})
    assert evidence_of(state_of(pending=[pending()]), readings)[0] is Proof.UNKNOWN


def test_an_order_already_cited_by_another_record_is_claimed() -> None:
    cited = CheckoutRecord("ord-0", 5, T0, "processed order 1001 succeeded (the only ...)")
    recorded = {"acme/other": RecordedPurchase("acme/other", BASIC, 5, (cited,))}
    readings = Readings({}, {TENANT: [processed_order("1001", 5)]}, {"ord-1": []})
    verdict, text = evidence_of(state_of(*recorded.values(), pending=[pending()]), readings)
    assert verdict is Proof.UNKNOWN
    assert "no processed order" in text


def test_a_recorded_checkout_of_the_same_product_and_quantity_claims_one_order() -> None:
    # A 204 recorded a minute before: one of the two orders is its, the other is ours.
    recorded = {
        "acme/other": RecordedPurchase(
            "acme/other", BASIC, 5, (CheckoutRecord("ord-0", 5, "2026-11-26T18:59:00Z"),)
        )
    }
    both = Readings(
        {}, {TENANT: [processed_order("1001", 5), processed_order("1002", 5)]}, {"ord-1": []}
    )
    verdict, text = evidence_of(state_of(*recorded.values(), pending=[pending()]), both)
    assert verdict is Proof.PURCHASED
    assert text.startswith("processed order 1001 or processed order 1002 succeeded")
    # Only its order was made: ours was not, so nothing is proven.
    one = Readings({}, {TENANT: [processed_order("1001", 5)]}, {"ord-1": []})
    verdict, text = evidence_of(state_of(*recorded.values(), pending=[pending()]), one)
    assert verdict is Proof.UNKNOWN
    assert text.endswith("(1 claimed by recorded checkouts)")


def test_a_checkout_recorded_long_before_claims_no_order_in_the_window() -> None:
    recorded = {
        "acme/other": RecordedPurchase(
            "acme/other", BASIC, 5, (CheckoutRecord("ord-0", 5, "2026-11-25T10:00:00Z"),)
        )
    }
    readings = Readings({}, {TENANT: [processed_order("1001", 5)]}, {"ord-1": []})
    state = state_of(*recorded.values(), pending=[pending()])
    assert evidence_of(state, readings)[0] is Proof.PURCHASED


def test_a_failed_order_as_the_only_candidate_proves_nothing_was_bought() -> None:
    failed = processed_order("1001", 5, state="failed", error="OutOfStock: no seats")
    readings = Readings({TENANT: []}, {TENANT: [failed]}, {"ord-1": []}, clock_skew=timedelta(0))
    verdict, text = evidence_of(state_of(pending=[pending()]), readings)
    assert verdict is Proof.NOT_PURCHASED
    assert text.startswith("processed order 1001 failed: OutOfStock: no seats")


def test_a_failed_order_proves_nothing_when_the_apis_clock_was_not_measured() -> None:
    failed = processed_order("1001", 5, state="failed", error="OutOfStock: no seats")
    readings = Readings({TENANT: []}, {TENANT: [failed]}, {"ord-1": []})
    verdict, text = evidence_of(state_of(pending=[pending()]), readings)
    assert verdict is Proof.UNKNOWN
    assert text.endswith(
        "but the API's clock could not be compared with ours, so that proves nothing"
    )


def test_a_failed_order_proves_nothing_beside_an_active_subscription_no_address_owns() -> None:
    failed = processed_order("1001", 5, state="failed", error="OutOfStock: no seats")
    readings = Readings(
        {TENANT: [subscription(500001, BASIC, 5)]},
        {TENANT: [failed]},
        {"ord-1": []},
        clock_skew=timedelta(0),
    )
    verdict, text = evidence_of(state_of(pending=[pending()]), readings)
    assert verdict is Proof.UNKNOWN
    assert "Cloud-iQ lists 5 active seats of this identity that no address owns" in text


@pytest.mark.parametrize("minutes", [0, 5, 15, 60, -5, -15, -60])
def test_under_clock_skew_a_lost_checkout_is_never_proven_not_purchased(minutes: int) -> None:
    """The runner's clock is ``minutes`` ahead of the API's (negative: behind). The
    checkout went through (an order and a subscription exist, its asset order is not
    found yet); later a person's failed attempt of the same identity and quantity
    appears. Whatever the skew, the failed order must not prove "not purchased"."""
    skew = timedelta(minutes=-minutes)  # the API's clock relative to ours
    sent_local = AT  # the pending entry's time, on our clock
    api_time = sent_local + skew  # when the order really was made, on the API's clock
    real = processed_order("1001", 5, created=api_time + timedelta(seconds=2))
    failed = processed_order(
        "1002", 5, state="failed", error="OutOfStock", created=api_time + timedelta(minutes=3)
    )
    readings = Readings(
        {TENANT: [subscription(500001, BASIC, 5)]},
        {TENANT: [real, failed]},
        {"ord-1": []},
        clock_skew=skew,
    )
    assert evidence_of(state_of(pending=[pending()]), readings)[0] is not Proof.NOT_PURCHASED
    # Without the real order in the list (not there yet), the failed one is the only
    # candidate: still never "not purchased", the active subscription is unowned.
    alone = replace(readings, processed_orders={TENANT: [failed]})
    assert evidence_of(state_of(pending=[pending()]), alone)[0] is not Proof.NOT_PURCHASED


@pytest.mark.parametrize("minutes", [0, 5, -5])
def test_with_the_skew_measured_the_real_order_is_matched_on_the_apis_clock(
    minutes: int,
) -> None:
    skew = timedelta(minutes=minutes)
    real = processed_order("1001", 5, created=AT + skew + timedelta(seconds=2))
    readings = Readings({TENANT: []}, {TENANT: [real]}, {"ord-1": []}, clock_skew=skew)
    assert evidence_of(state_of(pending=[pending()]), readings)[0] is Proof.PURCHASED


def test_a_skew_beyond_what_orders_can_be_matched_across_proves_no_failure() -> None:
    failed = processed_order(
        "1001", 5, state="failed", error="OutOfStock", created=AT + timedelta(minutes=20)
    )
    readings = Readings(
        {TENANT: []}, {TENANT: [failed]}, {"ord-1": []}, clock_skew=timedelta(minutes=20)
    )
    verdict, text = evidence_of(state_of(pending=[pending()]), readings)
    assert verdict is Proof.UNKNOWN
    assert "the API's clock is 20 minutes ahead of ours" in text


def test_a_failed_order_created_before_the_checkout_was_sent_proves_nothing() -> None:
    """Within the clock-skew allowance but before the pending entry: an earlier attempt's
    failure must not prove this checkout failed (the next apply would buy again)."""
    earlier = processed_order(
        "1001", 5, state="failed", error="OutOfStock", created=AT - timedelta(minutes=5)
    )
    readings = Readings({}, {TENANT: [earlier]}, {"ord-1": []})
    verdict, text = evidence_of(state_of(pending=[pending()]), readings)
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
        {},
        {TENANT: [processed_order("1001", 5), processed_order("1002", 5, state="failed")]},
        {"ord-1": []},
    )
    state = state_of(*recorded.values(), pending=[pending()])
    assert evidence_of(state, readings)[0] is Proof.UNKNOWN


def test_an_order_still_processing_settles_nothing() -> None:
    readings = Readings(
        {}, {TENANT: [processed_order("1001", 5, state="processing")]}, {"ord-1": []}
    )
    verdict, text = evidence_of(state_of(pending=[pending()]), readings)
    assert verdict is Proof.UNKNOWN
    assert "is processing, not settled yet" in text


def test_two_pending_checkouts_of_the_same_product_and_quantity_settle_nothing() -> None:
    readings = Readings({}, {TENANT: [processed_order("1001", 5)]}, {"ord-1": [], "ord-2": []})
    state = state_of(pending=[pending(), pending("acme/basic-2", "ord-2")])
    verdict, text = evidence_of(state, readings)
    assert verdict is Proof.UNKNOWN
    assert "the pending checkout of acme/basic-2 is also" in text


def test_without_processed_orders_nothing_is_proven() -> None:
    verdict, text = evidence_of(state_of(pending=[pending()]), Readings({}))
    assert verdict is Proof.UNKNOWN
    assert text == "asset orders were not read; processed orders were not read"


@pytest.mark.parametrize("minutes", [15, 60, 60 * 24])
def test_a_failed_order_proves_nothing_beside_an_older_succeeded_order_nothing_claims(
    minutes: int,
) -> None:
    """The entry was written by a runner whose clock was ``minutes`` ahead; the run
    reading back has a right clock (skew 0). The real order is older than the window
    the entry's time gives, Cloud-iQ does not list its subscription yet, and a person's
    failed attempt is the one candidate: the unclaimed succeeded order keeps it from
    proving "not purchased" (the next apply would buy again)."""
    real = processed_order("1001", 5, created=AT - timedelta(minutes=minutes))
    failed = processed_order(
        "1002", 5, state="failed", error="Payment declined", created=AT + timedelta(minutes=1)
    )
    readings = Readings(
        {TENANT: []}, {TENANT: [real, failed]}, {"ord-1": []}, clock_skew=timedelta(0)
    )
    verdict, text = evidence_of(state_of(pending=[pending()]), readings)
    assert verdict is Proof.UNKNOWN
    assert text.startswith("processed order 1002 failed: Payment declined")
    assert text.endswith(
        "but 1 processed order (1001) of CFQ7TTC0LF8R:0010 x5 for tenant 111111 succeeded "
        "and no recorded checkout accounts for it: this checkout may have made one (the "
        "entry's time may come from a clock that was off), so that proves nothing"
    )


def test_an_older_succeeded_order_a_recorded_checkout_owns_leaves_the_failure_proven() -> None:
    real = processed_order("1001", 5, created=AT - timedelta(days=3))
    failed = processed_order("1002", 5, state="failed", created=AT + timedelta(minutes=1))
    readings = Readings(
        {TENANT: []}, {TENANT: [real, failed]}, {"ord-1": []}, clock_skew=timedelta(0)
    )
    earlier = RecordedPurchase(
        "acme/other", BASIC, 5, (CheckoutRecord("ord-0", 5, "2026-11-23T19:00:00Z"),)
    )
    state = state_of(earlier, pending=[pending()])
    assert evidence_of(state, readings)[0] is Proof.NOT_PURCHASED
    cited = RecordedPurchase(
        "acme/other",
        BASIC,
        5,
        (CheckoutRecord("ord-0", 5, "2026-11-23T19:00:00Z", "processed order 1001 succeeded"),),
    )
    assert evidence_of(state_of(cited, pending=[pending()]), readings)[0] is Proof.NOT_PURCHASED
    # A second unclaimed one is one too many for the one recorded checkout.
    more = replace(
        readings,
        processed_orders={
            TENANT: [real, processed_order("1003", 5, created=AT - timedelta(days=2)), failed]
        },
    )
    verdict, text = evidence_of(state, more)
    assert verdict is Proof.UNKNOWN
    assert "2 processed orders (1001, 1003)" in text
    assert "only 1 recorded checkout can account for them" in text
