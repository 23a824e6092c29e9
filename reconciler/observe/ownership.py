"""Which Cloud-iQ subscriptions each address owns, and the seats that gives it.

The state records, per address, the ids of the subscriptions it owns and the
checkouts answered 204 whose subscription Cloud-iQ has not shown yet
(``unseen``). ``own`` reads one tenant's listing against that and finds the
links refresh may write:

1. a checkout whose subscription is named (its asset order's line, or the
   evidence that settled it) owns that subscription once it is listed;
2. otherwise an unseen checkout owns the one subscription of its identity and
   quantity created since it was sent that no address owns, when no other
   unseen checkout could own it too;
3. an address that owns nothing and waits for nothing (a state written before
   subscriptions were recorded, or seats recorded by hand) takes over the
   subscriptions of its identity no address owns whose seats add up to exactly
   the seats it records, when one such set is all there is; or every one of them
   when no other address declares or records that identity and it does not ask
   for a subscription of its own (``allowAdditionalSubscription``).

A subscription is never taken from the address that owns it. The seats an
address has are its active (or still provisioning) subscriptions' quantities
plus the seats of its unseen checkouts. When that cannot be told (an owned
subscription missing from the listing, an address whose identity Cloud-iQ lists
nothing of, items of the tenant that could not be read) the address is
``doubtful`` and keeps its recorded seats; an owned subscription suspended (or in
a state no source documents) is ``held``: its seats can neither be counted nor
changed.

Pure: no I/O, no clock; must not decide what a pending checkout's orders prove
(``evidence``) nor plan anything (``planner``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from reconciler.api.records import Subscription
from reconciler.model import (
    GONE_STATUSES,
    HOLDING_STATUSES,
    CheckoutRecord,
    Identity,
    RecordedPurchase,
    UpdateField,
)
from reconciler.observe.readings import SeatKey, seat_key, subscription_key

GONE = GONE_STATUSES
HOLDING = HOLDING_STATUSES


@dataclass(frozen=True)
class Link:
    """A subscription refresh records at an address; ``order`` is the unseen checkout
    (its externalOrderId) it was made by, or None when the address takes it over."""

    address: str
    subscription: int
    order: str | None
    how: str


@dataclass(frozen=True)
class AddressSeats:
    """What Cloud-iQ shows for one recorded address, after the links are made."""

    address: str
    identity: Identity
    #: The seats the state records.
    recorded: int
    #: The owned subscriptions as listed (the new links included), oldest first.
    owned: tuple[Subscription, ...]
    #: The links refresh writes for this address.
    links: tuple[Link, ...]
    #: Checkouts answered 204 whose subscription is still not listed.
    unseen: tuple[CheckoutRecord, ...]
    #: Why the seats cannot be told (they stay as recorded), or None.
    doubtful: str | None = None
    #: Why the seats can neither be counted nor changed (a suspended subscription).
    held: str | None = None

    @property
    def subscription_ids(self) -> tuple[int, ...]:
        return tuple(s.id for s in self.owned)

    @property
    def holding(self) -> tuple[Subscription, ...]:
        """The owned subscriptions that hold seats, newest first."""
        found = [s for s in self.owned if s.status in HOLDING]
        return tuple(sorted(found, key=_age, reverse=True))

    @property
    def seats(self) -> int:
        """The address's seats in Cloud-iQ (its recorded seats when ``doubtful``)."""
        if self.doubtful is not None:
            return self.recorded
        return sum(s.quantity for s in self.holding) + sum(c.quantity for c in self.unseen)

    @property
    def gone(self) -> tuple[Subscription, ...]:
        """Owned subscriptions whose seats are gone (cancelled, expired, ...)."""
        return tuple(s for s in self.owned if s.status in GONE)


def _age(subscription: Subscription) -> tuple[datetime, int]:
    moment = subscription.creation_date or subscription.start_date or datetime.min
    return (moment.replace(tzinfo=None), subscription.id)


def own(
    purchases: Sequence[RecordedPurchase],
    listing: Sequence[Subscription],
    *,
    holders: Mapping[SeatKey, frozenset[str]],
    acknowledged: frozenset[str],
    named: Mapping[str, int],
    skew: timedelta,
    unreadable: bool = False,
) -> dict[str, AddressSeats]:
    """The seats of each of ``purchases`` (one tenant's) against that tenant's ``listing``.

    ``holders`` are the addresses (declared or recorded) of each seat key;
    ``acknowledged`` the addresses that want a subscription of their own;
    ``named`` the subscription an unseen checkout's order names, by externalOrderId.
    """
    by_id = {s.id: s for s in listing}
    owner = {sid: p.address for p in purchases for sid in p.subscriptions}
    # A checkout's own subscription is found in any status (it may have been cancelled
    # since); an address takes over only subscriptions that hold seats.
    unowned = [s for s in listing if s.id not in owner]
    free = [s for s in unowned if s.status not in GONE]
    links = _order_links(purchases, by_id, owner, unowned, named, skew, acknowledged)
    taken = {link.subscription for link in links}
    links += _takeovers(purchases, free, taken, links, holders, acknowledged)
    found = {}
    for purchase in purchases:
        mine = tuple(link for link in links if link.address == purchase.address)
        found[purchase.address] = _seats(purchase, by_id, mine, unreadable)
    return found


def _order_links(
    purchases: Sequence[RecordedPurchase],
    by_id: Mapping[int, Subscription],
    owner: Mapping[int, str],
    free: Sequence[Subscription],
    named: Mapping[str, int],
    skew: timedelta,
    acknowledged: frozenset[str],
) -> list[Link]:
    """Rules 1 and 2: unseen checkouts to the subscriptions they made."""
    links: list[Link] = []
    candidates: dict[tuple[str, str], list[int]] = {}
    for purchase in purchases:
        for checkout in _unseen(purchase):
            sid = checkout.subscription or named.get(checkout.external_order_id)
            if sid is not None:
                listed = by_id.get(sid)
                if listed is not None and owner.get(sid, purchase.address) == purchase.address:
                    links.append(
                        Link(
                            purchase.address,
                            sid,
                            checkout.external_order_id,
                            f"its order {checkout.external_order_id} names subscription {sid}",
                        )
                    )
                continue
            candidates[(purchase.address, checkout.external_order_id)] = _made_by(
                purchase, checkout, free, skew, purchase.address in acknowledged
            )
    named_ids = {link.subscription for link in links}
    counts: dict[int, int] = {}
    for ids in candidates.values():
        for sid in ids:
            counts[sid] = counts.get(sid, 0) + 1
    for (address, order), ids in sorted(candidates.items()):
        unique = [sid for sid in ids if sid not in named_ids]
        if len(unique) == 1 and counts[unique[0]] == 1:
            links.append(
                Link(
                    address,
                    unique[0],
                    order,
                    f"the only subscription of its identity created since checkout {order} "
                    "was sent",
                )
            )
    return links


def _made_by(
    purchase: RecordedPurchase,
    checkout: CheckoutRecord,
    free: Sequence[Subscription],
    skew: timedelta,
    acknowledged: bool,
) -> list[int]:
    """The unowned subscriptions ``checkout`` may have made: of its identity, created
    since it was sent (the one there is, its seats may have changed since; the one of
    its seats among several), else undated ones, of its seats when there are several
    or the address already has a subscription of its own."""
    key = seat_key(purchase.identity)
    since = _time(checkout.time) - skew
    mine = [s for s in free if subscription_key(s) == key]
    dated = [s.id for s in mine if s.creation_date is not None and _aware(s.creation_date) >= since]
    sized = [s.id for s in mine if s.quantity == checkout.quantity]
    if len(dated) > 1:
        dated = [i for i in dated if i in sized]
    undated = [s for s in mine if s.creation_date is None]
    if (not dated and len(undated) > 1) or acknowledged:
        undated = [s for s in undated if s.quantity == checkout.quantity]
    return dated or [s.id for s in undated]


def _takeovers(
    purchases: Sequence[RecordedPurchase],
    free: Sequence[Subscription],
    taken: set[int],
    links: Sequence[Link],
    holders: Mapping[SeatKey, frozenset[str]],
    acknowledged: frozenset[str],
) -> list[Link]:
    """Rule 3: an address that owns nothing takes over its identity's subscriptions."""
    found: list[Link] = []
    linked = {link.address for link in links}
    for purchase in purchases:
        address = purchase.address
        if purchase.subscriptions or purchase.unseen or address in linked:
            continue
        key = seat_key(purchase.identity)
        mine = [s for s in free if subscription_key(s) == key and s.id not in taken]
        exact = _exactly(mine, purchase.quantity)
        if exact is not None:
            how = (
                f"the only set of its identity's subscriptions that holds its "
                f"{purchase.quantity} recorded seats"
            )
        elif holders.get(key, frozenset()) == {address} and address not in acknowledged:
            exact = mine
            how = "the only address of its identity, which owned no subscription yet"
        else:
            continue
        for sub in exact:
            taken.add(sub.id)
            found.append(Link(address, sub.id, None, how))
    return found


#: Beyond this many candidates no exact set is looked for (2**n sets).
_MOST_CANDIDATES = 12


def _exactly(subs: Sequence[Subscription], seats: int) -> list[Subscription] | None:
    """The one set of ``subs`` whose seats add up to ``seats``, or None (none or several)."""
    if not subs or len(subs) > _MOST_CANDIDATES:
        return None
    found: list[Subscription] | None = None
    for mask in range(1, 1 << len(subs)):
        chosen = [s for n, s in enumerate(subs) if mask >> n & 1]
        if sum(s.quantity for s in chosen) == seats:
            if found is not None:
                return None
            found = chosen
    return found


def _seats(
    purchase: RecordedPurchase,
    by_id: Mapping[int, Subscription],
    links: Sequence[Link],
    unreadable: bool,
) -> AddressSeats:
    ids = [*purchase.subscriptions, *(link.subscription for link in links)]
    owned = tuple(by_id[sid] for sid in ids if sid in by_id)
    missing = [sid for sid in ids if sid not in by_id]
    seen = {link.order for link in links if link.order is not None}
    unseen = tuple(c for c in _unseen(purchase) if c.external_order_id not in seen)
    doubtful = None
    if missing:
        shown = ", ".join(str(sid) for sid in missing)
        doubtful = f"Cloud-iQ does not list its subscription {shown}"
    elif not ids and not unseen and purchase.quantity > 0:
        doubtful = (
            "Cloud-iQ lists no subscription of its identity that it could own "
            f"({purchase.quantity} seats recorded)"
        )
    elif unreadable:
        doubtful = "some subscriptions of its customer tenant could not be read"
    # A subscription this address cancelled stays listed, suspended: its seats are gone.
    cancelled = {
        u.change.subscription for u in purchase.updates if u.change.field is UpdateField.CANCEL
    }
    owned = tuple(
        replace(s, status="cancelled") if s.id in cancelled and s.status not in HOLDING else s
        for s in owned
    )
    strange = [s for s in owned if s.status not in HOLDING and s.status not in GONE]
    held = None
    if strange:
        held = "; ".join(f"subscription {s.id} is {s.status}" for s in strange)
    return AddressSeats(
        address=purchase.address,
        identity=purchase.identity,
        recorded=purchase.quantity,
        owned=tuple(sorted(owned, key=_age)),
        links=tuple(links),
        unseen=unseen,
        doubtful=doubtful,
        held=held,
    )


def _unseen(purchase: RecordedPurchase) -> list[CheckoutRecord]:
    waiting = set(purchase.unseen)
    return [c for c in purchase.checkouts if c.external_order_id in waiting]


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _aware(moment: datetime) -> datetime:
    """A time from the API; one without a zone is UTC."""
    from datetime import UTC

    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
