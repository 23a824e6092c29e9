"""Seats taken back: decreases and cancellations inside Microsoft's cancellation
window, the conflict that says when and how outside it, and renewal settings.

A decrease PUTs quantities down, newest subscription first, taking only seats
inside the window (168 hours from a subscription's start or renewal, or from the
update that added them); a subscription brought to 0 is cancelled. Seats outside
it make the change a conflict naming the renewal and the two ways out.

Pure; no I/O, no clock (the read's time comes with the observations).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from reconciler.model import (
    Action,
    Change,
    Purchase,
    RecordedPurchase,
    SubscriptionChange,
    UpdateField,
    describe_subscriptions,
)
from reconciler.planner.facts import (
    WINDOW,
    Address,
    conflict,
    now_of,
    parse_time,
    renewal,
    seats,
    show,
    term_start,
)

if TYPE_CHECKING:  # an offline plan loads nothing of observe or the API's records
    from reconciler.api.records import Subscription
    from reconciler.observe.cloud import Observations
    from reconciler.observe.ownership import AddressSeats


def cancel(facts: Address, base: Change, seen: AddressSeats | None) -> Change:
    def refuse(reason: str) -> Change:
        return Change(
            base.address,
            Action.CONFLICT,
            base.before,
            None,
            0,
            base.identity,
            subscriptions=base.subscriptions,
            reason=f"`removed:` asks to cancel it, but {reason}",
        )

    if not facts.online or seen is None:
        return refuse("Cloud-iQ was not read, so its subscriptions are not known")
    if seen.doubtful is not None or seen.held is not None:
        return refuse(seen.doubtful or seen.held or "")
    if seen.unseen:
        orders = ", ".join(c.external_order_id for c in seen.unseen)
        return refuse(f"Cloud-iQ does not list the subscription of checkout {orders} yet")
    now = now_of(facts)
    steps, ends, late = [], [], []
    for sub in seen.holding:
        opened = term_start(sub)
        if now is not None and opened is not None and now - opened < WINDOW:
            steps.append(SubscriptionChange(sub.id, UpdateField.CANCEL, sub.quantity, 0))
            ends.append(opened + WINDOW)
        else:
            late.append(sub)
    if late:
        return refuse(too_late(late, "cancelled"))
    return Change(
        base.address,
        Action.CANCEL,
        base.before,
        None,
        -base.before,
        base.identity,
        subscriptions=base.subscriptions,
        steps=tuple(steps),
        window_ends=show(min(ends)) if ends else None,
        cloud=True,
        note="prorated credit: cancelled inside Microsoft's cancellation window",
    )


def offline_decrease(
    facts: Address, desired: Purchase, before: int, seen: AddressSeats | None
) -> Change:
    why = (
        seen.doubtful
        if seen is not None and seen.doubtful is not None
        else "Cloud-iQ was not read (no credentials, or --refresh=false)"
    )
    return conflict(
        desired,
        before,
        f"decrease from {before} to {seats(desired.quantity)}, but {why}; seats are "
        "lowered only from what Cloud-iQ shows: plan again with Cloud-iQ's credentials",
    )


def decrease(
    facts: Address, desired: Purchase, recorded: RecordedPurchase, seen: AddressSeats
) -> Change:
    before = seen.seats
    need = before - desired.quantity
    steps, ends = _reductions(facts, recorded, seen, need)
    outside = _added_outside(facts, seen)
    if sum(-s.seats for s in steps) < need:
        return conflict(
            desired,
            before,
            _late_decrease(facts, desired, seen, need, steps, outside),
            subscriptions=seen.subscription_ids,
            window_ends=renewal(seen),
            cloud=True,
        )
    cancelled = {s.subscription for s in steps if s.field is UpdateField.CANCEL}
    steps += [s for s in renewal_steps(desired, seen) if s.subscription not in cancelled]
    note = "prorated credit: seats removed inside Microsoft's cancellation window"
    if outside:
        note = (
            f"{seats(outside)} were added outside this repository (in Cloud-iQ): this "
            f"lowers them back to the declared {desired.quantity}; raise `quantity` to "
            f"{before} to keep them. {note}"
        )
    return Change(
        desired.address,
        Action.DECREASE,
        before,
        desired.quantity,
        -need,
        desired.identity,
        desired,
        subscriptions=seen.subscription_ids,
        steps=tuple(steps),
        window_ends=show(min(ends)) if ends else None,
        cloud=True,
        note=note,
    )


def _reductions(
    facts: Address, recorded: RecordedPurchase, seen: AddressSeats, need: int
) -> tuple[list[SubscriptionChange], list[datetime]]:
    """PUTs that remove up to ``need`` seats, newest subscription first, each taking
    only seats inside the window (a subscription taken down to 0 is cancelled)."""
    now = now_of(facts)
    steps: list[SubscriptionChange] = []
    ends: list[datetime] = []
    if now is None:
        return steps, ends
    for sub in seen.holding:
        if need <= 0:
            break
        free, closes = _reducible(sub, recorded, now, facts.cloud)
        take = min(need, free)
        if take <= 0 or closes is None:
            continue
        if take == sub.quantity:
            steps.append(SubscriptionChange(sub.id, UpdateField.CANCEL, sub.quantity, 0))
        else:
            after = sub.quantity - take
            steps.append(SubscriptionChange(sub.id, UpdateField.QUANTITY, sub.quantity, after))
        ends.append(closes)
        need -= take
    return steps, ends


def _reducible(
    sub: Subscription, recorded: RecordedPurchase, now: datetime, cloud: Observations | None
) -> tuple[int, datetime | None]:
    """How many of ``sub``'s seats can be removed now, and when that window closes: all
    of them inside the window of its purchase (or renewal); else those this tool added
    to it inside the window."""
    opened = term_start(sub)
    if opened is not None and now - opened < WINDOW:
        return sub.quantity, opened + WINDOW
    skew = cloud.clock_skew if cloud is not None and cloud.clock_skew else timedelta(0)
    added, closes = 0, None
    for update in recorded.updates:
        change = update.change
        if change.subscription != sub.id or change.field is not UpdateField.QUANTITY:
            continue
        when = parse_time(update.time) + skew
        if now - when < WINDOW:
            added += change.seats
            if change.seats > 0:
                closes = min(closes, when + WINDOW) if closes else when + WINDOW
    return max(0, min(added, sub.quantity - 1)), closes


def _late_decrease(
    facts: Address,
    desired: Purchase,
    seen: AddressSeats,
    need: int,
    steps: Sequence[SubscriptionChange],
    outside: int,
) -> str:
    free = sum(-s.seats for s in steps)
    held = f"Cloud-iQ shows {seats(seen.seats)} ({describe_subscriptions(seen.subscription_ids)})"
    parts = []
    if outside:
        parts.append(
            f"{seats(outside)} were added outside this repository: raise `quantity` to "
            f"{seen.seats} to keep them"
        )
    inside = f"only {free} of the {need}" if free else f"none of the {need}"
    parts.append(
        f"{held}, {desired.quantity} declared; {inside} seats to remove are inside "
        "Microsoft's 7-day cancellation window"
    )
    renews = renewal(seen)
    when = f" at renewal ({renews})" if renews else " at the end of the term"
    parts.append(
        f"the others can go{when}: set `autoRenew: false` to let a subscription end, or "
        "lower `quantity` once it has renewed"
    )
    if now_of(facts) is None:
        parts.append("(the time of the Cloud-iQ read is unknown, so no window can be proven)")
    return "; ".join(parts)


def _added_outside(facts: Address, seen: AddressSeats) -> int:
    """Seats Cloud-iQ shows beyond those recorded before this read (added in the portal)."""
    cloud = facts.cloud
    if cloud is None:
        return 0
    drift = next((d for d in cloud.drift if d.address == facts.address), None)
    return max(0, drift.delta) if drift is not None else 0


def renewal_steps(desired: Purchase, seen: AddressSeats) -> tuple[SubscriptionChange, ...]:
    wanted = desired.auto_renew
    if wanted is None:
        return ()
    after = int(wanted)
    return tuple(
        SubscriptionChange(sub.id, UpdateField.AUTO_RENEW, 1 - after, after)
        for sub in seen.holding
        if sub.auto_renew is not wanted
    )


def too_late(subs: Sequence[Subscription], what: str) -> str:
    shown = ", ".join(
        f"{s.id} (since {show(term_start(s)) if term_start(s) else 'an unknown date'})"
        for s in subs
    )
    return (
        f"subscriptions {shown} are outside Microsoft's 7-day cancellation window and "
        f"cannot be {what} now; declare the address again with `autoRenew: false` to let "
        "them end at renewal"
    )
