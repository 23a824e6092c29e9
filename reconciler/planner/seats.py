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

from typing import TYPE_CHECKING

from reconciler.model import (
    Action,
    Change,
    PendingOperation,
    Purchase,
    RecordedPurchase,
    SubscriptionChange,
    UpdateField,
    describe_subscriptions,
)
from reconciler.planner.facts import (
    HOLDING,
    Address,
    conflict,
    count,
    seats,
)
from reconciler.planner.window import (
    cancel,
    decrease,
    offline_decrease,
    renewal_steps,
)

if TYPE_CHECKING:  # an offline plan loads nothing of observe or the API's records
    from reconciler.observe.ownership import AddressSeats

__all__ = ["Address", "change_of", "conflict", "seats"]


def change_of(facts: Address, seen: AddressSeats | None = None) -> Change:
    """The change of one address; ``seen`` overrides what Cloud-iQ shows for it."""
    if seen is None and facts.cloud is not None:
        seen = facts.cloud.seats.get(facts.address)
    if facts.pending is not None:
        return _pending(facts, facts.pending)
    desired, recorded = facts.desired, facts.recorded
    if desired is None:
        assert recorded is not None  # every address is declared, recorded or pending
        return _undeclared(facts, recorded, seen)
    refused = _refused(facts, desired)
    if refused is not None:
        return refused
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
    return _declared(facts, desired, recorded, seen)


def _refused(facts: Address, desired: Purchase) -> Change | None:
    """A conflict when the API refused to list the address's customer tenant."""
    refused = facts.cloud.refused.get(facts.tenant) if facts.cloud is not None else None
    if refused is None:
        return None
    recorded = facts.recorded
    return conflict(
        desired,
        recorded.quantity if recorded else 0,
        f"Cloud-iQ refused to list the subscriptions of customer tenant {facts.tenant}: "
        f"{refused}; nothing is bought or changed for it until it can be read",
    )


def _declared(
    facts: Address, desired: Purchase, recorded: RecordedPurchase, seen: AddressSeats | None
) -> Change:
    """The change of an address declared and recorded under the same identity."""
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
    if desired.quantity > before:
        return _buy(facts, desired, Action.INCREASE, before, seen if online else None)
    if desired.quantity < before:
        if not online or seen is None:
            return offline_decrease(facts, desired, before, seen)
        return decrease(facts, desired, recorded, seen)
    steps = renewal_steps(desired, seen) if online and seen is not None else ()
    return Change(
        desired.address,
        Action.UPDATE if steps else Action.NOOP,
        before,
        desired.quantity,
        0,
        desired.identity,
        desired,
        subscriptions=seen.subscription_ids if seen is not None else recorded.subscriptions,
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
    return cancel(facts, base, seen)


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
    note = f"adopts {describe_subscriptions(ids)} ({seats(adopted)}); nothing is bought for them"
    more = desired.quantity - after_adoption
    if more:
        note += f"; the {seats(more)} declared beyond them are bought by the next apply"
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
        note=note,
    )
