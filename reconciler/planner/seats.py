"""The change of one address: what it should have against what it has.

The seats it has are Cloud-iQ's (its owned subscriptions) when its tenant was
read, else the seats recorded. More wanted: a ``purchase`` (a new address) or an
``increase`` (by checkout, or with ``seatChanges: update`` by raising its newest
subscription). Fewer wanted: a ``decrease``, newest subscription first, only
seats inside Microsoft's cancellation window (a subscription brought to 0 is
cancelled); seats outside it make the change a ``conflict`` that says when they
can go and how. ``autoRenew`` differing: an ``update``. ``import:`` entries
``adopt`` subscriptions; ``removed:`` entries ``forget`` or ``cancel`` an address.
Read before buying: a purchase or increase of an identity Cloud-iQ holds seats of
in subscriptions no address owns is a conflict, so a lost or copied state can
never buy the same licences again.

Pure; no I/O, no clock (the read's time comes with the observations).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from reconciler.model import (
    HOLDING_STATUSES,
    Action,
    Adopt,
    Change,
    PendingOperation,
    Purchase,
    RecordedPurchase,
    Removal,
    SubscriptionChange,
    UpdateField,
    describe_subscriptions,
)

if TYPE_CHECKING:  # an offline plan loads nothing of observe or the API's records
    from reconciler.api.records import Subscription
    from reconciler.observe.cloud import Observations
    from reconciler.observe.ownership import AddressSeats

HOLDING = HOLDING_STATUSES


#: Microsoft's cancellation window: seats can be removed this long after they were
#: bought (or the term renewed); afterwards only at the end of the term.
WINDOW = timedelta(hours=168)


@dataclass(frozen=True)
class Address:
    """Everything known of one address."""

    address: str
    desired: Purchase | None
    recorded: RecordedPurchase | None
    pending: PendingOperation | None
    cloud: Observations | None
    removal: Removal | None = None
    adoption: Adopt | None = None

    @property
    def tenant(self) -> int:
        for entry in (self.desired, self.recorded, self.pending):
            if entry is not None:
                return entry.identity.customer_tenant_id
        raise AssertionError("an address is declared, recorded or pending")

    @property
    def online(self) -> bool:
        """Whether Cloud-iQ was read for this address's tenant."""
        return self.cloud is not None and self.cloud.read(self.tenant)


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def seats(n: int) -> str:
    return count(n, "seat")


def conflict(
    desired: Purchase,
    before: int,
    reason: str,
    *,
    subscriptions: tuple[int, ...] = (),
    window_ends: str | None = None,
    cloud: bool = False,
) -> Change:
    return Change(
        desired.address,
        Action.CONFLICT,
        before,
        desired.quantity,
        0,
        desired.identity,
        desired,
        reason=reason,
        subscriptions=subscriptions,
        window_ends=window_ends,
        cloud=cloud,
    )


def change_of(facts: Address, seen: AddressSeats | None = None) -> Change:
    """The change of one address; ``seen`` overrides what Cloud-iQ shows for it."""
    if seen is None and facts.cloud is not None:
        seen = facts.cloud.seats.get(facts.address)
    if facts.pending is not None:
        return _pending(facts, facts.pending)
    desired, recorded = facts.desired, facts.recorded
    refused = facts.cloud.refused.get(facts.tenant) if facts.cloud is not None else None
    if refused is not None and desired is not None:
        return conflict(
            desired,
            recorded.quantity if recorded else 0,
            f"Cloud-iQ refused to list the subscriptions of customer tenant {facts.tenant}: "
            f"{refused}; nothing is bought or changed for it until it can be read",
        )
    if desired is None:
        assert recorded is not None  # every address is declared, recorded or pending
        return _undeclared(facts, recorded, seen)
    if recorded is None:
        if facts.adoption is not None:
            return _adopt(facts, desired, 0, ())
        return _buy(facts, desired, Action.PURCHASE, 0, None)
    changed = desired.identity.differences(recorded.identity)
    if changed:
        old, new = recorded.identity.as_dict(), desired.identity.as_dict()
        details = ", ".join(f"{name} {old[name]!r} -> {new[name]!r}" for name in changed)
        return conflict(
            desired,
            recorded.quantity,
            f"identity changed ({details}); declare it under a new name instead",
        )
    online = facts.online and seen is not None and seen.doubtful is None
    if facts.online and seen is not None and seen.held is not None:
        return conflict(
            desired,
            seen.recorded,
            f"{seen.held}: its seats can neither be counted nor changed; settle it in "
            "Cloud-iQ first",
            subscriptions=seen.subscription_ids,
        )
    if facts.adoption is not None and seen is not None:
        fresh = [i for i in facts.adoption.subscriptions if i not in seen.subscription_ids]
        if fresh:
            return _adopt(facts, desired, seen.seats, seen.subscription_ids)
    before = seen.seats if (online and seen is not None) else recorded.quantity
    owned = seen.subscription_ids if seen is not None else recorded.subscriptions
    if desired.quantity > before:
        return _buy(facts, desired, Action.INCREASE, before, seen if online else None)
    if desired.quantity < before:
        if not online or seen is None:
            return _offline_decrease(facts, desired, before, seen)
        return _decrease(facts, desired, recorded, seen)
    steps = _renewal_steps(desired, seen) if online and seen is not None else ()
    return Change(
        desired.address,
        Action.UPDATE if steps else Action.NOOP,
        before,
        desired.quantity,
        0,
        desired.identity,
        desired,
        subscriptions=owned,
        steps=steps,
        cloud=online,
    )


def _pending(facts: Address, pending: PendingOperation) -> Change:
    desired, recorded = facts.desired, facts.recorded
    found = facts.cloud.evidence.get(facts.address) if facts.cloud is not None else None
    what = (
        f"update of subscription {pending.update.subscription} "
        f"({pending.update.before} -> {pending.update.after})"
        if pending.update is not None
        else f"checkout {pending.external_order_id} of {seats(pending.quantity)}"
    )
    reason = f"{what} ({pending.time}) has an unknown outcome"
    if found is not None:
        reason += f"; Cloud-iQ shows: {found.text}"
    return Change(
        facts.address,
        Action.PENDING,
        recorded.quantity if recorded else 0,
        desired.quantity if desired else None,
        0,
        desired.identity if desired else pending.identity,
        desired,
        reason=reason,
    )


def _undeclared(facts: Address, recorded: RecordedPurchase, seen: AddressSeats | None) -> Change:
    before = seen.seats if (facts.online and seen is not None) else recorded.quantity
    owned = seen.subscription_ids if seen is not None else recorded.subscriptions
    removal = facts.removal
    holding = seen.holding if (facts.online and seen is not None) else ()
    if before == 0 and not holding and (removal is None or removal.cancel):
        # Cancelled (by a `removed:` entry applied earlier): kept as the record of it.
        done = "; the `removed:` entry may be deleted" if removal is not None else ""
        return Change(
            facts.address,
            Action.NOOP,
            0,
            None,
            0,
            recorded.identity,
            subscriptions=owned,
            reason=f"cancelled, no seats left{done}",
            cloud=facts.online and seen is not None,
        )
    base = Change(
        facts.address,
        Action.ORPHAN,
        before,
        None,
        0,
        recorded.identity,
        subscriptions=owned,
        reason="recorded but no longer declared; nothing is cancelled unless a `removed:` "
        "entry says so",
    )
    if removal is None:
        return base
    if not removal.cancel:
        return Change(
            facts.address,
            Action.FORGET,
            before,
            None,
            0,
            recorded.identity,
            subscriptions=owned,
            reason="forgotten (`removed:` with `cancel: false`); its subscriptions stay as "
            "they are",
        )
    return _cancel(facts, base, seen)


def _cancel(facts: Address, base: Change, seen: AddressSeats | None) -> Change:
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
    now = _now(facts)
    steps, ends, late = [], [], []
    for sub in seen.holding:
        opened = _term_start(sub)
        if now is not None and opened is not None and now - opened < WINDOW:
            steps.append(SubscriptionChange(sub.id, UpdateField.CANCEL, sub.quantity, 0))
            ends.append(opened + WINDOW)
        else:
            late.append(sub)
    if late:
        return refuse(_too_late(late, "cancelled"))
    return Change(
        base.address,
        Action.CANCEL,
        base.before,
        None,
        -base.before,
        base.identity,
        subscriptions=base.subscriptions,
        steps=tuple(steps),
        window_ends=_show(min(ends)) if ends else None,
        cloud=True,
        note="prorated credit: cancelled inside Microsoft's cancellation window",
    )


def _buy(
    facts: Address, desired: Purchase, action: Action, before: int, seen: AddressSeats | None
) -> Change:
    delta = desired.quantity - before
    guard = _guard(facts, desired, action, before)
    if guard is not None:
        return guard
    steps: tuple[SubscriptionChange, ...] = ()
    if action is Action.INCREASE and desired.seat_changes == "update" and seen is not None:
        newest = seen.holding[0] if seen.holding else None
        if newest is not None:
            quantity = newest.quantity
            step = SubscriptionChange(newest.id, UpdateField.QUANTITY, quantity, quantity + delta)
            steps = (step,)
    owned = seen.subscription_ids if seen is not None else ()
    return Change(
        desired.address,
        action,
        before,
        desired.quantity,
        delta,
        desired.identity,
        desired,
        subscriptions=owned,
        steps=steps,
        cloud=seen is not None or (facts.online and action is Action.PURCHASE),
        note=_regained(seen),
    )


def _regained(seen: AddressSeats | None) -> str | None:
    if seen is None or not seen.gone:
        return None
    gone = ", ".join(f"{s.id} ({s.status})" for s in seen.gone)
    return f"buys again seats of subscriptions that are gone in Cloud-iQ: {gone}"


def _guard(facts: Address, desired: Purchase, action: Action, before: int) -> Change | None:
    """Read before buying: a conflict when Cloud-iQ may already hold the seats."""
    cloud = facts.cloud
    if cloud is None or not facts.online or desired.allow_additional_subscription:
        return None
    unreadable = cloud.unreadable.get(facts.tenant)
    if unreadable:
        return conflict(
            desired,
            before,
            "Cloud-iQ may already hold seats of this identity: "
            f"{count(len(unreadable), 'subscription')} of customer tenant {facts.tenant} "
            f"could not be read "
            f"({'; '.join(unreadable[:3])}), so buying could add a second subscription",
        )
    extra = cloud.unowned(desired.identity)
    if extra.seats <= 0:
        return None
    held = f"{extra.seats} seats ({describe_subscriptions(extra.subscriptions)})"
    ids = ", ".join(str(i) for i in extra.subscriptions)
    adopt = f"`import: [{{to: {desired.address}, subscriptions: [{ids}]}}]`"
    if action is Action.PURCHASE:
        reason = (
            f"Cloud-iQ already holds {held} of this identity that no address owns; buying "
            f"would add a second subscription. Adopt them with {adopt} in the declarations "
            f"(or `reconciler import --tenant {facts.tenant}`), or set "
            "`allowAdditionalSubscription: true` on this purchase if a second subscription "
            "is wanted"
        )
    else:
        reason = (
            f"Cloud-iQ holds {held} of this identity besides this address's own; they may "
            f"be the seats wanted. Adopt them with {adopt}, or set "
            "`allowAdditionalSubscription: true` on this purchase to buy anyway"
        )
    return conflict(desired, before, reason)


def _offline_decrease(
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


def _decrease(
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
            window_ends=_renewal(seen),
            cloud=True,
        )
    cancelled = {s.subscription for s in steps if s.field is UpdateField.CANCEL}
    steps += [s for s in _renewal_steps(desired, seen) if s.subscription not in cancelled]
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
        window_ends=_show(min(ends)) if ends else None,
        cloud=True,
        note=note,
    )


def _reductions(
    facts: Address, recorded: RecordedPurchase, seen: AddressSeats, need: int
) -> tuple[list[SubscriptionChange], list[datetime]]:
    """PUTs that remove up to ``need`` seats, newest subscription first, each taking
    only seats inside the window (a subscription taken down to 0 is cancelled)."""
    now = _now(facts)
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
    opened = _term_start(sub)
    if opened is not None and now - opened < WINDOW:
        return sub.quantity, opened + WINDOW
    skew = cloud.clock_skew if cloud is not None and cloud.clock_skew else timedelta(0)
    added, closes = 0, None
    for update in recorded.updates:
        change = update.change
        if change.subscription != sub.id or change.field is not UpdateField.QUANTITY:
            continue
        when = _time(update.time) + skew
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
    renewal = _renewal(seen)
    when = f" at renewal ({renewal})" if renewal else " at the end of the term"
    parts.append(
        f"the others can go{when}: set `autoRenew: false` to let a subscription end, or "
        "lower `quantity` once it has renewed"
    )
    if _now(facts) is None:
        parts.append("(the time of the Cloud-iQ read is unknown, so no window can be proven)")
    return "; ".join(parts)


def _added_outside(facts: Address, seen: AddressSeats) -> int:
    """Seats Cloud-iQ shows beyond those recorded before this read (added in the portal)."""
    cloud = facts.cloud
    if cloud is None:
        return 0
    drift = next((d for d in cloud.drift if d.address == facts.address), None)
    return max(0, drift.delta) if drift is not None else 0


def _renewal_steps(desired: Purchase, seen: AddressSeats) -> tuple[SubscriptionChange, ...]:
    wanted = desired.auto_renew
    if wanted is None:
        return ()
    after = int(wanted)
    return tuple(
        SubscriptionChange(sub.id, UpdateField.AUTO_RENEW, 1 - after, after)
        for sub in seen.holding
        if sub.auto_renew is not wanted
    )


def _adopt(facts: Address, desired: Purchase, before: int, owned: tuple[int, ...]) -> Change:
    adoption = facts.adoption
    assert adoption is not None
    cloud = facts.cloud
    if cloud is None or not facts.online:
        return conflict(
            desired,
            before,
            "`import:` adopts subscriptions only from what Cloud-iQ shows, and it was not "
            "read: plan again with Cloud-iQ's credentials",
        )
    from reconciler.observe.readings import seat_key, subscription_key

    listing = {s.id: s for found in cloud.unmanaged for s in found.subscriptions}
    problems = []
    taking = []
    key = seat_key(desired.identity)
    for sid in adoption.subscriptions:
        if sid in owned:
            continue
        sub = listing.get(sid)
        owner = next((a for a, f in cloud.seats.items() if sid in f.subscription_ids), None)
        if owner is not None:
            problems.append(f"subscription {sid} is owned by {owner}")
        elif sub is None:
            problems.append(f"subscription {sid} is not an active subscription Cloud-iQ lists")
        elif subscription_key(sub) != key or sub.status not in HOLDING:
            problems.append(f"subscription {sid} is {sub.part_number}, not this identity")
        else:
            taking.append(sub)
    if problems:
        return conflict(desired, before, "`import:` cannot adopt: " + "; ".join(problems))
    adopted = sum(s.quantity for s in taking)
    after_adoption = before + adopted
    if desired.quantity < after_adoption:
        return conflict(
            desired,
            after_adoption,
            f"`import:` adopts {seats(adopted)}, {seats(after_adoption)} in all, but "
            f"{desired.quantity} are declared: declare {after_adoption}, then lower it in "
            "a later change",
        )
    ids = tuple(s.id for s in taking)
    return Change(
        desired.address,
        Action.ADOPT,
        after_adoption,
        desired.quantity,
        desired.quantity - after_adoption,
        desired.identity,
        desired,
        subscriptions=(*owned, *ids),
        cloud=True,
        note=f"adopts {describe_subscriptions(ids)} ({seats(adopted)}); nothing is bought for them",
    )


def _too_late(subs: Sequence[Subscription], what: str) -> str:
    shown = ", ".join(
        f"{s.id} (since {_show(_term_start(s)) if _term_start(s) else 'an unknown date'})"
        for s in subs
    )
    return (
        f"subscriptions {shown} are outside Microsoft's 7-day cancellation window and "
        f"cannot be {what} now; declare the address again with `autoRenew: false` to let "
        "them end at renewal"
    )


def _now(facts: Address) -> datetime | None:
    cloud = facts.cloud
    return _utc(cloud.now) if cloud is not None and cloud.now is not None else None


def _term_start(sub: Subscription) -> datetime | None:
    """When the window of ``sub``'s seats opened: its purchase, or its term's renewal."""
    moments = [_utc(m) for m in (sub.creation_date, sub.start_date) if m is not None]
    return max(moments) if moments else None


def _renewal(seen: AddressSeats) -> str | None:
    ends = [_utc(s.end_date) for s in seen.holding if s.end_date is not None]
    return _show(min(ends)) if ends else None


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _show(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else ""
