"""``observe``: what Cloud-iQ shows, held against the declarations and the state.

Gives, for every pending entry, the ``Evidence`` the API holds (``evidence``);
for every recorded address of a tenant that was read, the subscriptions it owns
and the seats they hold (``ownership``), and its ``Drift`` when those differ from
the seats recorded; the ``Unmanaged`` subscriptions no address owns; and the
writes refresh makes from all that (``writes``): pending entries settled, links
recorded, adjustments recorded. ``project`` gives the state those writes leave.

Pure: no I/O, no clock, no environment. It must not change a plan (``planner``
does, from what this finds).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from reconciler.api.records import Subscription
from reconciler.model import (
    BILLING_CYCLES,
    REFRESH_SOURCE,
    TERM_DURATIONS,
    Adjustment,
    Declarations,
    Identity,
    RecordedPurchase,
    State,
    describe_subscriptions,
    targeted,
)
from reconciler.observe.evidence import (
    CLOCK_SKEW,
    Evidence,
    Proof,
    evidence_for,
    update_evidence,
)
from reconciler.observe.ownership import HOLDING, AddressSeats, Link, own
from reconciler.observe.readings import Readings, SeatKey, seat_key, subscription_key


def tenants_of(declarations: Declarations, state: State, targets: Sequence[str] = ()) -> list[int]:
    """Every customer tenant the declarations or the state name (only for the
    ``targets`` addresses when given), sorted."""

    def wanted(address: str) -> bool:
        return not targets or targeted(address, targets)

    found = {p.identity.customer_tenant_id for p in declarations.purchases if wanted(p.address)}
    for table in (state.purchases, state.pending):
        found |= {e.identity.customer_tenant_id for a, e in table.items() if wanted(a)}
    return sorted(found)


@dataclass(frozen=True)
class Drift:
    """A recorded address whose seats in Cloud-iQ differ from the seats recorded."""

    address: str
    identity: Identity
    recorded: int
    actual: int
    subscriptions: tuple[int, ...]

    @property
    def delta(self) -> int:
        return self.actual - self.recorded

    def evidence(self) -> str:
        """The text an adjustment keeps: what Cloud-iQ showed against what was recorded."""
        return (
            f"Cloud-iQ showed {self.actual} seats "
            f"({describe_subscriptions(self.subscriptions)}); {self.recorded} were recorded"
        )


@dataclass(frozen=True)
class Unmanaged:
    """Subscriptions holding seats of an identity that no address owns.

    ``of`` are the addresses (declared or recorded) that have the identity: seats
    bought outside this repository beside theirs.
    """

    identity: Identity
    subscriptions: tuple[Subscription, ...]
    of: tuple[str, ...] = ()

    @property
    def seats(self) -> int:
        return sum(s.quantity for s in self.subscriptions)

    @property
    def subscription_ids(self) -> tuple[int, ...]:
        return tuple(s.id for s in self.subscriptions)

    @property
    def product_name(self) -> str:
        named = [s.product_name or s.name for s in self.subscriptions if s.product_name or s.name]
        return named[0] if named else self.identity.product

    @property
    def undeclarable(self) -> str | None:
        """Why no declaration can have this identity, or None when one can."""
        identity = self.identity
        if not identity.sku_id:
            return f"{identity.product_id} has no sku id (not a new-commerce product)"
        if identity.billing_cycle not in BILLING_CYCLES:
            return f"billing cycle {identity.billing_cycle!r} cannot be declared"
        if identity.term_duration not in TERM_DURATIONS:
            shown = identity.term_duration or "none"
            return f"term {shown!r} cannot be declared"
        return None


@dataclass(frozen=True)
class CloudSeats:
    """Seats of one identity in subscriptions no address owns, and those subscriptions."""

    seats: int = 0
    subscriptions: tuple[int, ...] = ()


@dataclass(frozen=True)
class Observations:
    """Everything ``observe`` found."""

    tenants: tuple[int, ...]
    #: Per recorded address of a tenant read (after proven pending entries settle).
    seats: Mapping[str, AddressSeats]
    drift: tuple[Drift, ...]
    unmanaged: tuple[Unmanaged, ...]
    evidence: Mapping[str, Evidence]
    #: Per tenant, the subscription items that could not be read.
    unreadable: Mapping[int, tuple[str, ...]]
    #: The time of the read on the API's clock, when known.
    now: datetime | None = None
    clock_skew: timedelta | None = None
    #: Tenants the API refused to list, with its reason.
    refused: Mapping[int, str] = field(default_factory=dict)

    def read(self, tenant: int) -> bool:
        return tenant in self.tenants

    def unowned(self, identity: Identity) -> CloudSeats:
        """Seats of ``identity`` in subscriptions no address owns (after the links)."""
        key = seat_key(identity)
        found = [u for u in self.unmanaged if seat_key(u.identity) == key]
        ids = tuple(sorted(i for u in found for i in u.subscription_ids))
        return CloudSeats(sum(u.seats for u in found), ids)

    @property
    def settled(self) -> tuple[Evidence, ...]:
        """The pending entries the API proves were made or failed, by address."""
        return tuple(e for _, e in sorted(self.evidence.items()) if e.proven)

    @property
    def unsettled(self) -> tuple[Evidence, ...]:
        return tuple(e for _, e in sorted(self.evidence.items()) if not e.proven)

    @property
    def links(self) -> tuple[Link, ...]:
        return tuple(link for _, found in sorted(self.seats.items()) for link in found.links)

    @property
    def writable_drift(self) -> tuple[Drift, ...]:
        return self.drift

    @property
    def has_writes(self) -> bool:
        """Whether refresh would write anything."""
        return bool(self.settled or self.links or self.drift)


def observe(declarations: Declarations, state: State, readings: Readings) -> Observations:
    """Evidence, ownership, drift and unmanaged subscriptions; see the module docstring.

    Only the tenants in ``readings.subscriptions`` are compared: an address of a
    tenant that was not read has no seats here and shows no drift.
    """
    tenants = tuple(sorted(readings.subscriptions))
    owned = {sid for p in state.purchases.values() for sid in p.subscriptions}
    evidence = {}
    for address, pending in state.pending.items():
        tenant = pending.identity.customer_tenant_id
        if pending.is_update:
            if tenant in readings.subscriptions:
                evidence[address] = update_evidence(pending, readings.subscriptions[tenant])
            continue
        unowned = _unowned_seats(readings, pending.identity, owned)
        evidence[address] = evidence_for(pending, state, readings, unowned=unowned)
    settled = settle(state, evidence.values())
    holders = _holders(declarations, settled)
    acknowledged = frozenset(
        p.address for p in declarations.purchases if p.allow_additional_subscription
    )
    named = _named(readings)
    skew = CLOCK_SKEW + abs(readings.clock_skew or timedelta(0))
    seats: dict[str, AddressSeats] = {}
    for tenant in tenants:
        purchases = [
            p for p in settled.purchases.values() if p.identity.customer_tenant_id == tenant
        ]
        seats |= own(
            purchases,
            readings.subscriptions[tenant],
            holders=holders,
            acknowledged=acknowledged,
            named=named,
            skew=skew,
            unreadable=bool(readings.unreadable.get(tenant)),
        )
    # An address whose operation is still pending has seats in doubt: its drift waits
    # until the operation settles (an adjustment beside it could count seats twice).
    drift = [
        Drift(found.address, found.identity, found.recorded, found.seats, found.subscription_ids)
        for address, found in sorted(seats.items())
        if found.doubtful is None
        and found.held is None
        and found.seats != found.recorded
        and address not in settled.pending
    ]
    taken = {sid for found in seats.values() for sid in found.subscription_ids}
    return Observations(
        tenants=tenants,
        seats=dict(sorted(seats.items())),
        drift=tuple(drift),
        unmanaged=_unmanaged(readings, tenants, taken | owned, holders),
        evidence=dict(sorted(evidence.items())),
        unreadable={t: tuple(items) for t, items in readings.unreadable.items() if items},
        now=readings.now,
        clock_skew=readings.clock_skew,
        refused=dict(readings.refused),
    )


def settle(state: State, found: Iterable[Evidence]) -> State:
    """``state`` with the pending entries ``found`` proves settled as refresh records them."""
    purchases = dict(state.purchases)
    pending = dict(state.pending)
    for evidence in found:
        if not evidence.proven:
            continue
        op = evidence.pending
        pending.pop(op.address, None)
        if evidence.proof is Proof.PURCHASED and op.is_update:
            current = purchases.get(op.address)
            if current is not None:
                purchases[op.address] = current.with_update(evidence.update_record())
        elif evidence.proof is Proof.PURCHASED:
            record = evidence.record()
            current = purchases.get(op.address)
            purchases[op.address] = (
                RecordedPurchase.bought(op.address, op.identity, record)
                if current is None
                else current.with_checkout(record)
            )
    return replace(state, purchases=purchases, pending=pending)


def project(state: State, observations: Observations) -> State:
    """The state refresh leaves: pending entries settled, links and adjustments recorded."""
    settled = settle(state, observations.evidence.values())
    purchases = dict(settled.purchases)
    drifted = {d.address: d for d in observations.drift}
    for address, found in observations.seats.items():
        current = purchases.get(address)
        if current is None:
            continue
        if found.links:
            current = current.with_links([(link.subscription, link.order) for link in found.links])
        drift = drifted.get(address)
        if drift is not None:
            current = current.with_adjustment(
                Adjustment(drift.delta, "", REFRESH_SOURCE, drift.evidence())
            )
        purchases[address] = current
    return replace(settled, purchases=purchases)


def _holders(declarations: Declarations, state: State) -> dict[SeatKey, frozenset[str]]:
    found: dict[SeatKey, set[str]] = {}
    for purchase in declarations.purchases:
        found.setdefault(seat_key(purchase.identity), set()).add(purchase.address)
    for table in (state.purchases, state.pending):
        for address, entry in table.items():
            found.setdefault(seat_key(entry.identity), set()).add(address)
    return {key: frozenset(addresses) for key, addresses in found.items()}


def _named(readings: Readings) -> dict[str, int]:
    """The subscription each asset order's line names, by externalOrderId (one line)."""
    found = {}
    for order_id, orders in readings.asset_orders.items():
        ids = {line.subscription_id for o in orders for line in o.lines if not o.errors}
        ids.discard(None)
        if len(ids) == 1:
            (sid,) = ids
            assert sid is not None
            found[order_id] = sid
    return found


def _unowned_seats(readings: Readings, identity: Identity, owned: set[int]) -> int:
    key = seat_key(identity)
    listed = readings.subscriptions.get(identity.customer_tenant_id, ())
    return sum(
        s.quantity
        for s in listed
        if s.status in HOLDING and s.id not in owned and subscription_key(s) == key
    )


def _unmanaged(
    readings: Readings,
    tenants: Sequence[int],
    taken: set[int],
    holders: Mapping[SeatKey, frozenset[str]],
) -> tuple[Unmanaged, ...]:
    grouped: dict[SeatKey, list[Subscription]] = {}
    for tenant in tenants:
        for subscription in readings.subscriptions[tenant]:
            # A list that ignored the tenant filter must not count.
            if subscription.status not in HOLDING or subscription.customer_tenant_id != tenant:
                continue
            if subscription.id not in taken:
                grouped.setdefault(subscription_key(subscription), []).append(subscription)
    found = [
        Unmanaged(
            Identity(key[0], key[1], key[2], key[3], key[4]),
            tuple(sorted(subscriptions, key=lambda s: s.id)),
            tuple(sorted(holders.get(key, frozenset()))),
        )
        for key, subscriptions in grouped.items()
    ]
    return tuple(sorted(found, key=lambda u: u.identity))
