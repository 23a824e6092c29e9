"""The evidence the API holds about a pending checkout, by the matching rules.

Matching rules for a pending checkout (docs/reference/exactly-once.md):

1. An asset order with the same externalOrderId is proof: without errors, and
   with a line of the same product, sku and quantity, the checkout was made; with
   errors, it failed (nothing was bought). Orders that disagree prove nothing.
2. Otherwise a processed order is a candidate when it is of the same tenant,
   product:sku and quantity (and billing cycle and term, when it gives them), was
   created no earlier than the pending entry's time minus ``CLOCK_SKEW``, and is
   not claimed: an order another checkout's evidence cites is claimed, and each
   recorded checkout of the same product and quantity from that time on claims
   one succeeded order (it has one, and which one cannot be told).
   Exactly one unclaimed candidate is proof: succeeded, the checkout was made;
   failed, and created no earlier than the pending entry itself, it was not (the
   skew allowance never lets an earlier failed attempt prove "not purchased").
   Two or more, none, one still processing, or another pending checkout of the
   same product and quantity (the orders cannot tell them apart) settle nothing.
3. "Not purchased" lets the next apply buy again, so a failed processed order
   proves it only when the API's clock was measured (its ``Date`` header) and is
   within ``CLOCK_SKEW`` of ours, Cloud-iQ lists no subscription of the identity
   that no address owns (the seats the checkout may have made), and no succeeded
   processed order of the same tenant, product and quantity, created at any time,
   is unaccounted for (neither cited by a recorded checkout's evidence nor owned
   by a recorded checkout of the same product and quantity that cites none). The
   times of the pending entry are moved to the API's clock by the skew measured
   now before they are compared with the orders' creation times; the entry's own
   time was written by whatever clock the run that sent it had, which may have
   been off by more (another runner, a clock corrected since), so the checkout's
   real order can lie outside the window, and only an order nothing else claims
   at any time is sure not to be it.

Pure: no I/O, no clock, no environment. It must not compare seats (``ownership``
and ``cloud`` do) nor change the state; it only says what the readings prove.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from reconciler.api.records import AssetOrder, ProcessedOrder, Subscription
from reconciler.model import CheckoutRecord, PendingOperation, State, UpdateField, UpdateRecord
from reconciler.observe.readings import Readings

#: How far the API's clock may be behind ours: an order created up to this long
#: before a pending entry was written may still be its checkout's.
CLOCK_SKEW = timedelta(minutes=10)

#: How evidence cites a processed order; claims are read back with ``_CITED``.
_CITE = "processed order {}"
_CITED = re.compile(r"processed order ([^\s,;:()]+)")


class Proof(enum.StrEnum):
    """What the API shows about a pending checkout."""

    PURCHASED = "purchased"
    NOT_PURCHASED = "not-purchased"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Evidence:
    """What was found for one pending entry, and whether it proves the outcome."""

    pending: PendingOperation
    proof: Proof
    #: How it matched (or why nothing did), for people and for the state.
    text: str
    #: The subscription the checkout made, when its asset order names it.
    subscription: int | None = None

    def update_record(self) -> UpdateRecord:
        """The update as recorded once proven made (a pending update's evidence)."""
        change = self.pending.update
        assert change is not None, "only a pending update has an update record"
        return UpdateRecord(change, self.pending.time, self.text)

    def record(self) -> CheckoutRecord:
        """The checkout as recorded once proven made."""
        op = self.pending
        return CheckoutRecord(
            op.external_order_id, op.quantity, op.time, self.text, self.subscription
        )

    @property
    def address(self) -> str:
        return self.pending.address

    @property
    def proven(self) -> bool:
        return self.proof is not Proof.UNKNOWN


def evidence_for(
    pending: PendingOperation, state: State, readings: Readings, *, unowned: int = 0
) -> Evidence:
    """What the API shows about ``pending``'s checkout, by the matching rules.

    ``unowned`` is the seats of active subscriptions of the pending entry's identity
    that no address owns.
    """
    assets = readings.asset_orders.get(pending.external_order_id)
    if assets:
        return _asset_evidence(pending, assets)
    orders = readings.processed_orders.get(pending.identity.customer_tenant_id)
    lead = (
        f"no asset order has externalOrderId {pending.external_order_id}"
        if assets is not None
        else "asset orders were not read"
    )
    if orders is None:
        return Evidence(pending, Proof.UNKNOWN, f"{lead}; processed orders were not read")
    found = _order_evidence(pending, state, orders, lead, readings.clock_skew or timedelta(0))
    if found.proof is Proof.NOT_PURCHASED:
        doubt = _doubt(readings.clock_skew, unowned) or _unaccounted(pending, state, orders)
        if doubt is not None:
            return Evidence(pending, Proof.UNKNOWN, f"{found.text}, but {doubt}")
    return found


def update_evidence(pending: PendingOperation, listing: Sequence[Subscription]) -> Evidence:
    """What the subscriptions list shows about a pending update (a PUT whose answer was
    lost): its subscription as the update leaves it proves it was made; as it was
    before, that it was not (sending it again is safe: the values are absolute);
    anything else, that someone else changed it, which settles nothing."""
    change = pending.update
    assert change is not None, "only a pending update is settled by the list"
    found = next((s for s in listing if s.id == change.subscription), None)
    if found is None:
        return Evidence(pending, Proof.UNKNOWN, f"subscription {change.subscription} is not listed")
    if change.field is UpdateField.CANCEL:
        now: int | None = 0 if found.status != "active" else found.quantity
        shown = found.status if found.status != "active" else f"active, {found.quantity} seats"
    elif change.field is UpdateField.AUTO_RENEW:
        now = None if found.auto_renew is None else int(found.auto_renew)
        shown = f"auto-renew {'unknown' if now is None else ('on' if now else 'off')}"
    else:
        now = found.quantity if found.status == "active" else None
        shown = f"{found.status}, {found.quantity} seats"
    what = f"subscription {change.subscription} is {shown}"
    if now == change.after:
        return Evidence(pending, Proof.PURCHASED, f"{what}: the update was made")
    if now == change.before:
        return Evidence(pending, Proof.NOT_PURCHASED, f"{what}: the update was not made")
    return Evidence(
        pending,
        Proof.UNKNOWN,
        f"{what}, neither what the update found ({change.before}) nor what it set "
        f"({change.after}): someone else changed it",
    )


def _doubt(skew: timedelta | None, unowned: int) -> str | None:
    """Why a failed processed order may not be this checkout's failure, or None."""
    if skew is None:
        return "the API's clock could not be compared with ours, so that proves nothing"
    if abs(skew) > CLOCK_SKEW:
        minutes = round(skew.total_seconds() / 60)
        return (
            f"the API's clock is {abs(minutes)} minutes {'ahead of' if minutes > 0 else 'behind'} "
            "ours, more than the orders' times can be matched across, so that proves nothing"
        )
    if unowned:
        return (
            f"Cloud-iQ lists {unowned} active seats of this identity that no address owns, "
            "which this checkout may have bought, so that proves nothing"
        )
    return None


def _unaccounted(
    pending: PendingOperation, state: State, orders: Sequence[ProcessedOrder]
) -> str | None:
    """Why a failed order cannot prove ``pending`` not purchased when a succeeded order of
    its tenant, product and quantity, of any time, is claimed by no recorded checkout:
    it may be this checkout's, sent while the clock that dated the entry was off."""
    identity = pending.identity
    claimed = _claimed_references(state)
    succeeded = [
        o
        for o in orders
        if o.succeeded
        and o.customer_tenant_id == identity.customer_tenant_id
        and o.product_id == identity.product_id
        and o.sku_id == identity.sku_id
        and o.quantity == pending.quantity
        and o.billing_cycle in (None, identity.billing_cycle)
        and o.term_duration in (None, identity.term_duration)
        and o.order_reference_id not in claimed
    ]
    # Every recorded checkout of this product and quantity that cites no order owns one.
    owners = _possible_owners(state, pending, datetime.min.replace(tzinfo=UTC), timedelta(0))
    if len(succeeded) <= owners:
        return None
    shown = ", ".join(o.order_reference_id for o in succeeded)
    them = "it" if len(succeeded) == 1 else "them"
    if owners == 0:
        accounted = f"no recorded checkout accounts for {them}"
    else:
        accounted = f"only {_plural(owners, 'recorded checkout')} can account for {them}"
    return (
        f"{_plural(len(succeeded), 'processed order')} ({shown}) of {identity.product} "
        f"x{pending.quantity} for tenant {identity.customer_tenant_id} succeeded and "
        f"{accounted}: this checkout may have made one (the entry's time may come from a "
        "clock that was off), so that proves nothing"
    )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _asset_evidence(pending: PendingOperation, assets: Sequence[AssetOrder]) -> Evidence:
    order_id = pending.external_order_id
    failed = [a for a in assets if a.errors]
    taken = [a for a in assets if not a.errors]
    if failed and not taken:
        errors = "; ".join(e for a in failed for e in a.errors)
        return Evidence(
            pending,
            Proof.NOT_PURCHASED,
            f"asset order {order_id} failed: {_short(errors)}",
        )
    identity = pending.identity
    matching = [
        a
        for a in taken
        if any(
            line.product_id == identity.product_id
            and line.sku_id == identity.sku_id
            and line.quantity == pending.quantity
            for line in a.lines
        )
    ]
    if taken and not failed and len(matching) == len(taken):
        made = {line.subscription_id for a in matching for line in a.lines} - {None}
        return Evidence(
            pending,
            Proof.PURCHASED,
            f"asset order {order_id} was taken: {identity.product} x{pending.quantity}",
            made.pop() if len(made) == 1 else None,
        )
    if failed:
        reason = f"{len(taken)} asset orders {order_id} were taken and {len(failed)} failed"
    else:
        reason = f"asset order {order_id} does not show {identity.product} x{pending.quantity}"
    return Evidence(pending, Proof.UNKNOWN, f"{reason}; nothing is proven")


def _order_evidence(
    pending: PendingOperation,
    state: State,
    orders: Sequence[ProcessedOrder],
    lead: str,
    skew: timedelta,
) -> Evidence:
    identity = pending.identity
    sent = _parse_time(pending.time) + skew  # on the API's clock
    since = sent - CLOCK_SKEW
    what = f"{identity.product} x{pending.quantity}"
    rivals = sorted(
        other.address
        for other in state.pending.values()
        if other.address != pending.address and _same_group(other, pending)
    )
    if rivals:
        return Evidence(
            pending,
            Proof.UNKNOWN,
            f"{lead}; the pending checkout of {', '.join(rivals)} is also {what} for tenant "
            f"{identity.customer_tenant_id}, and processed orders cannot tell them apart",
        )
    candidates = _candidates(pending, orders, since, _claimed_references(state))
    succeeded = [o for o in candidates if o.succeeded]
    others = [o for o in candidates if not o.succeeded]
    # Each recorded checkout of the same product and quantity that may have made one of
    # these orders owns one of the succeeded ones; which one cannot be told.
    owners = _possible_owners(state, pending, since - CLOCK_SKEW, skew)
    free = max(0, len(succeeded) - owners)
    window = f"{what} for tenant {identity.customer_tenant_id} since {_show_time(since)}"
    if free + len(others) == 0:
        taken = f" ({len(succeeded)} claimed by recorded checkouts)" if succeeded else ""
        return Evidence(pending, Proof.UNKNOWN, f"{lead}; no processed order of {window}{taken}")
    if free + len(others) > 1 or (others and succeeded):
        # A failed order proves nothing beside succeeded ones that may be this checkout's.
        shown = ", ".join(o.order_reference_id for o in candidates)
        return Evidence(
            pending,
            Proof.UNKNOWN,
            f"{lead}; {len(candidates)} processed orders of {window} (orders {shown}), "
            f"{free + len(others)} of them unclaimed; only exactly one proves anything",
        )
    if others:
        return _one_unsucceeded(pending, others[0], lead, window, sent)
    cited = " or ".join(_CITE.format(o.order_reference_id) for o in succeeded)
    return Evidence(
        pending,
        Proof.PURCHASED,
        f"{cited} succeeded (the only unclaimed processed order of {window})",
    )


def _candidates(
    pending: PendingOperation,
    orders: Sequence[ProcessedOrder],
    since: datetime,
    claimed: set[str],
) -> list[ProcessedOrder]:
    """The processed orders that may be ``pending``'s checkout's: same tenant, product,
    quantity and terms, created since ``since`` (the API's clock) and not claimed."""
    identity = pending.identity
    return [
        o
        for o in orders
        if o.customer_tenant_id == identity.customer_tenant_id
        and o.product_id == identity.product_id
        and o.sku_id == identity.sku_id
        and o.quantity == pending.quantity
        and o.billing_cycle in (None, identity.billing_cycle)
        and o.term_duration in (None, identity.term_duration)
        and o.created is not None
        and o.created >= since
        and o.order_reference_id not in claimed
    ]


def _one_unsucceeded(
    pending: PendingOperation, order: ProcessedOrder, lead: str, window: str, sent: datetime
) -> Evidence:
    """What the only candidate proves when it did not succeed: failed after the checkout
    was sent, not purchased; anything else, nothing yet."""
    if order.failed and order.created is not None and order.created < sent:
        # "Not purchased" lets the next apply buy again: only an order created after
        # this checkout was written pending can be its failure, not an earlier attempt
        # the clock-skew allowance lets into the window.
        return Evidence(
            pending,
            Proof.UNKNOWN,
            f"{lead}; {_CITE.format(order.order_reference_id)} of {window} failed, but it "
            "was created before this checkout was sent, so it may be an earlier attempt",
        )
    if order.failed:
        error = f": {_short(order.error)}" if order.error else ""
        return Evidence(
            pending,
            Proof.NOT_PURCHASED,
            f"{_CITE.format(order.order_reference_id)} failed{error} "
            f"(the only processed order of {window})",
        )
    return Evidence(
        pending,
        Proof.UNKNOWN,
        f"{lead}; {_CITE.format(order.order_reference_id)} of {window} is "
        f"{order.order_state}, not settled yet",
    )


def _same_group(a: PendingOperation, b: PendingOperation) -> bool:
    return (
        a.identity.customer_tenant_id == b.identity.customer_tenant_id
        and a.identity.product_id == b.identity.product_id
        and a.identity.sku_id == b.identity.sku_id
        and a.quantity == b.quantity
    )


def _claimed_references(state: State) -> set[str]:
    """The processed orders that recorded checkouts' evidence cites."""
    claimed: set[str] = set()
    for purchase in state.purchases.values():
        for checkout in purchase.checkouts:
            if checkout.evidence:
                claimed.update(_CITED.findall(checkout.evidence))
    return claimed


def _possible_owners(
    state: State, pending: PendingOperation, since: datetime, skew: timedelta
) -> int:
    """Recorded checkouts of ``pending``'s tenant, product and quantity, made from
    ``since`` on, that cite no processed order: each has one of the orders seen."""
    identity = pending.identity
    owners = 0
    for purchase in state.purchases.values():
        other = purchase.identity
        if (other.customer_tenant_id, other.product_id, other.sku_id) != (
            identity.customer_tenant_id,
            identity.product_id,
            identity.sku_id,
        ):
            continue
        for checkout in purchase.checkouts:
            if checkout.quantity != pending.quantity:
                continue
            if checkout.evidence and _CITED.search(checkout.evidence):
                continue
            if _parse_time(checkout.time) + skew >= since:
                owners += 1
    return owners


def _parse_time(text: str) -> datetime:
    """A state time (UTC, ``Z``) as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _show_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
