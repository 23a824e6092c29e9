"""``observe``: per identity, the seats Cloud-iQ shows against the seats recorded.

Gives the ``Drift`` of every declared or recorded identity of a tenant that was
read (with where refresh records it, or why it does not), the ``Unmanaged``
subscriptions no address has, and, through ``evidence``, what the API proves
about each pending checkout.

Pure: no I/O, no clock, no environment. It must not decide what a pending
checkout's orders prove (``evidence`` does) nor change a plan (``guard`` does).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reconciler.api.records import Subscription
from reconciler.model import BILLING_CYCLES, TERM_DURATIONS, Declarations, Identity, State
from reconciler.observe.evidence import Evidence, Proof, evidence_for
from reconciler.observe.readings import Readings, SeatKey, seat_key, subscription_key


def tenants_of(declarations: Declarations, state: State) -> list[int]:
    """Every customer tenant the declarations or the state name, sorted."""
    found = {p.identity.customer_tenant_id for p in declarations.purchases}
    found |= {p.identity.customer_tenant_id for p in state.purchases.values()}
    found |= {p.identity.customer_tenant_id for p in state.pending.values()}
    return sorted(found)


@dataclass(frozen=True)
class Drift:
    """Seats of one identity in Cloud-iQ that differ from the seats recorded.

    ``recorded`` counts the pending checkouts the API proves were made, as
    refresh would record them. ``target`` is the address refresh records the
    adjustment at; when it is None, ``held`` says why the drift is only reported.
    """

    identity: Identity
    addresses: tuple[str, ...]
    recorded: int
    actual: int
    subscriptions: tuple[int, ...]
    target: str | None
    held: str | None = None

    @property
    def delta(self) -> int:
        return self.actual - self.recorded

    def evidence(self) -> str:
        """The text an adjustment keeps: what Cloud-iQ showed against what was recorded."""
        return (
            f"Cloud-iQ showed {self.actual} active seats "
            f"({describe_subscriptions(self.subscriptions)}); {self.recorded} were recorded"
        )


@dataclass(frozen=True)
class Unmanaged:
    """Active subscriptions of an identity no declared or recorded address has."""

    identity: Identity
    subscriptions: tuple[Subscription, ...]

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
    """The active seats of one identity in Cloud-iQ and the subscriptions holding them."""

    seats: int = 0
    subscriptions: tuple[int, ...] = ()


@dataclass(frozen=True)
class Observations:
    """Everything ``observe`` found, sorted by identity (evidence by address)."""

    tenants: tuple[int, ...]
    drift: tuple[Drift, ...]
    unmanaged: tuple[Unmanaged, ...]
    evidence: Mapping[str, Evidence]
    cloud: Mapping[SeatKey, CloudSeats]
    #: Seats recorded per identity, with the pending checkouts proven made.
    recorded: Mapping[SeatKey, int]

    def unaccounted(self, identity: Identity) -> CloudSeats:
        """Seats of ``identity`` Cloud-iQ shows beyond those recorded (0 when none or
        fewer), with the subscriptions of the identity; empty for a tenant not read."""
        key = seat_key(identity)
        found = self.cloud.get(key)
        if found is None:
            return CloudSeats()
        return CloudSeats(max(0, found.seats - self.recorded.get(key, 0)), found.subscriptions)

    @property
    def settled(self) -> tuple[Evidence, ...]:
        """The pending entries the API proves were made or failed, by address."""
        return tuple(e for _, e in sorted(self.evidence.items()) if e.proven)

    @property
    def unsettled(self) -> tuple[Evidence, ...]:
        return tuple(e for _, e in sorted(self.evidence.items()) if not e.proven)

    @property
    def writable_drift(self) -> tuple[Drift, ...]:
        return tuple(d for d in self.drift if d.target is not None)


def observe(declarations: Declarations, state: State, readings: Readings) -> Observations:
    """Drift, unmanaged subscriptions and pending evidence; see the module docstring.

    Only the tenants in ``readings.subscriptions`` are compared: an identity of
    a tenant that was not read shows neither drift nor unmanaged seats.
    """
    tenants = tuple(sorted(readings.subscriptions))
    cloud = _cloud_seats(readings, tenants)
    evidence = {
        address: evidence_for(pending, state, readings)
        for address, pending in state.pending.items()
    }
    addresses: dict[SeatKey, dict[str, Identity]] = {}
    acknowledged = {p.address for p in declarations.purchases if p.allow_additional_subscription}
    for purchase in declarations.purchases:
        addresses.setdefault(seat_key(purchase.identity), {})[purchase.address] = purchase.identity
    for table in (state.purchases, state.pending):
        for address, entry in table.items():
            addresses.setdefault(seat_key(entry.identity), {}).setdefault(address, entry.identity)
    recorded: dict[SeatKey, int] = {}
    for kept in state.purchases.values():
        key = seat_key(kept.identity)
        recorded[key] = recorded.get(key, 0) + kept.quantity
    for found in evidence.values():
        if found.proof is Proof.PURCHASED:
            key = seat_key(found.pending.identity)
            recorded[key] = recorded.get(key, 0) + found.pending.quantity

    drift = []
    for key, holders in addresses.items():
        if key[0] not in tenants:
            continue
        seen = cloud.get(key, CloudSeats())
        if seen.seats == recorded.get(key, 0):
            continue
        names = tuple(sorted(holders))
        target, held = _drift_target(names, key, state, evidence, acknowledged)
        if target is not None and seen.seats == 0:
            # No active subscription at all: a purchase Cloud-iQ does not list yet, or one
            # pending or suspended, looks the same as seats cancelled. Writing it would let
            # the next plan buy them again, so it is only reported.
            target, held = (
                None,
                (
                    "Cloud-iQ lists no active subscription of this identity (a new purchase may "
                    "not be listed yet, or its subscription is pending or suspended), so nothing "
                    f"is recorded; if the seats are really gone, remove the declaration and run "
                    f"`reconciler state rm {target}`"
                ),
            )
        drift.append(
            Drift(
                identity=holders[names[0]],
                addresses=names,
                recorded=recorded.get(key, 0),
                actual=seen.seats,
                subscriptions=seen.subscriptions,
                target=target,
                held=held,
            )
        )
    unmanaged = _unmanaged(readings, tenants, set(addresses))
    return Observations(
        tenants=tenants,
        drift=tuple(sorted(drift, key=lambda d: (d.identity, d.addresses))),
        unmanaged=unmanaged,
        evidence=dict(sorted(evidence.items())),
        cloud=cloud,
        recorded=recorded,
    )


def _cloud_seats(readings: Readings, tenants: Sequence[int]) -> dict[SeatKey, CloudSeats]:
    found: dict[SeatKey, CloudSeats] = {}
    for tenant in tenants:
        for subscription in readings.subscriptions[tenant]:
            # The reader asked for active ones; a list that ignored the filter must not count.
            if not subscription.active or subscription.customer_tenant_id != tenant:
                continue
            key = subscription_key(subscription)
            before = found.get(key, CloudSeats())
            found[key] = CloudSeats(
                before.seats + subscription.quantity,
                tuple(sorted((*before.subscriptions, subscription.id))),
            )
    return found


def _drift_target(
    names: tuple[str, ...],
    key: SeatKey,
    state: State,
    evidence: Mapping[str, Evidence],
    acknowledged: set[str],
) -> tuple[str | None, str | None]:
    """Where refresh records a drift, or why it does not."""
    waiting = sorted(
        e.address
        for e in evidence.values()
        if e.proof is Proof.UNKNOWN and seat_key(e.pending.identity) == key
    )
    if waiting:
        return None, (
            f"the pending checkout of {', '.join(waiting)} is not settled and its seats may "
            "be among these; settle it first"
        )
    beside = sorted(acknowledged.intersection(names))
    if beside:
        return None, (
            f"{', '.join(beside)} sets allowAdditionalSubscription: other subscriptions of "
            "this identity are not its seats, so the difference is not recorded"
        )
    if len(names) > 1:
        return None, (
            f"{len(names)} addresses have this identity ({', '.join(names)}); which one "
            "changed cannot be told, so it is not recorded"
        )
    address = names[0]
    proven = evidence.get(address)
    if address not in state.purchases and not (
        proven is not None and proven.proof is Proof.PURCHASED
    ):
        return None, (
            f"{address} is declared but nothing is recorded for it; "
            f"`reconciler import --tenant {key[0]}` adopts the seats"
        )
    return address, None


def _unmanaged(
    readings: Readings, tenants: Sequence[int], managed: set[SeatKey]
) -> tuple[Unmanaged, ...]:
    grouped: dict[SeatKey, list[Subscription]] = {}
    for tenant in tenants:
        for subscription in readings.subscriptions[tenant]:
            if not subscription.active or subscription.customer_tenant_id != tenant:
                continue
            key = subscription_key(subscription)
            if key not in managed:
                grouped.setdefault(key, []).append(subscription)
    found = [
        Unmanaged(
            Identity(key[0], key[1], key[2], key[3], key[4]),
            tuple(sorted(subscriptions, key=lambda s: s.id)),
        )
        for key, subscriptions in grouped.items()
    ]
    return tuple(sorted(found, key=lambda u: u.identity))


def describe_subscriptions(ids: Sequence[int]) -> str:
    if not ids:
        return "no active subscription"
    label = "subscription" if len(ids) == 1 else "subscriptions"
    return f"{label} {', '.join(str(i) for i in ids)}"
