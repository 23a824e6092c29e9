"""Observations: what Cloud-iQ shows, held against what the state records.

Given the declarations, the state and what was read from the API
(``Readings``: active subscriptions per customer tenant, processed orders,
asset orders by externalOrderId), ``observe`` computes per identity (tenant,
product, sku, billing cycle, term; see ``seat_key``) the seats Cloud-iQ shows
against the seats recorded, as ``Drift``; the identities no declared or
recorded address has, as ``Unmanaged``; and for every pending entry the
``Evidence`` the API holds about its checkout, by the matching rules below.
``guard_purchases`` turns a purchase into a conflict when Cloud-iQ already
shows seats of its identity that no address accounts for (read before buying).

Matching rules for a pending checkout (README, "Reading Cloud-iQ back"):

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
   failed, it was not. Two or more, none, one still processing, or another
   pending checkout of the same product and quantity (the orders cannot tell
   them apart) settle nothing.

Subscriptions carry no purchase type, so seats are compared by ``seat_key``,
which leaves the type out; the identity shown is that of the addresses.

Pure: no I/O, no clock, no environment; the caller reads the API and passes
what it read in.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal

from reconciler.api.reads import AssetOrder, CatalogEntry, ProcessedOrder, Subscription
from reconciler.model import (
    BILLING_CYCLES,
    BUYING_ACTIONS,
    TERM_DURATIONS,
    Action,
    Change,
    Declarations,
    Identity,
    PendingOperation,
    Plan,
    State,
)

#: How far the API's clock may be behind ours: an order created up to this long
#: before a pending entry was written may still be its checkout's.
CLOCK_SKEW = timedelta(minutes=10)

#: (tenant, product id, sku id, billing cycle, term): an identity without its type.
SeatKey = tuple[int, str, str, str, str]

#: How evidence cites a processed order; claims are read back with ``_CITED``.
_CITE = "processed order {}"
_CITED = re.compile(r"processed order ([^\s,;:()]+)")


def seat_key(identity: Identity) -> SeatKey:
    return (
        identity.customer_tenant_id,
        identity.product_id,
        identity.sku_id,
        identity.billing_cycle,
        identity.term_duration,
    )


def _subscription_key(subscription: Subscription) -> SeatKey:
    return (
        subscription.customer_tenant_id,
        subscription.product_id,
        subscription.sku_id,
        subscription.billing_cycle,
        subscription.term_duration or "",
    )


def tenants_of(declarations: Declarations, state: State) -> list[int]:
    """Every customer tenant the declarations or the state name, sorted."""
    found = {p.identity.customer_tenant_id for p in declarations.purchases}
    found |= {p.identity.customer_tenant_id for p in state.purchases.values()}
    found |= {p.identity.customer_tenant_id for p in state.pending.values()}
    return sorted(found)


@dataclass(frozen=True)
class Readings:
    """What was read from the API.

    ``subscriptions`` holds the active subscriptions of every tenant read (a
    tenant read with none maps to an empty list); ``processed_orders`` the order
    lines of the tenants with pending entries; ``asset_orders`` the asset orders
    found for each pending entry's externalOrderId.
    """

    subscriptions: Mapping[int, Sequence[Subscription]]
    processed_orders: Mapping[int, Sequence[ProcessedOrder]] = field(default_factory=dict)
    asset_orders: Mapping[str, Sequence[AssetOrder]] = field(default_factory=dict)


class Verdict(enum.StrEnum):
    """What the API shows about a pending checkout."""

    PURCHASED = "purchased"
    NOT_PURCHASED = "not-purchased"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Evidence:
    """What was found for one pending entry, and whether it proves the outcome."""

    pending: PendingOperation
    verdict: Verdict
    #: How it matched (or why nothing did), for people and for the state.
    text: str

    @property
    def address(self) -> str:
        return self.pending.address

    @property
    def proven(self) -> bool:
        return self.verdict is not Verdict.UNKNOWN


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
            f"({_subscriptions(self.subscriptions)}); {self.recorded} were recorded"
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
        address: _evidence(pending, state, readings) for address, pending in state.pending.items()
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
        if found.verdict is Verdict.PURCHASED:
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
            key = _subscription_key(subscription)
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
        if e.verdict is Verdict.UNKNOWN and seat_key(e.pending.identity) == key
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
        proven is not None and proven.verdict is Verdict.PURCHASED
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
            key = _subscription_key(subscription)
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


# --------------------------------------------------------------------------- evidence


def _evidence(pending: PendingOperation, state: State, readings: Readings) -> Evidence:
    """What the API shows about ``pending``'s checkout, by the matching rules."""
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
        return Evidence(pending, Verdict.UNKNOWN, f"{lead}; processed orders were not read")
    return _order_evidence(pending, state, orders, lead)


def _asset_evidence(pending: PendingOperation, assets: Sequence[AssetOrder]) -> Evidence:
    order_id = pending.external_order_id
    failed = [a for a in assets if a.errors]
    taken = [a for a in assets if not a.errors]
    if failed and not taken:
        errors = "; ".join(e for a in failed for e in a.errors)
        return Evidence(
            pending,
            Verdict.NOT_PURCHASED,
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
        return Evidence(
            pending,
            Verdict.PURCHASED,
            f"asset order {order_id} was taken: {identity.product} x{pending.quantity}",
        )
    if failed:
        reason = f"{len(taken)} asset orders {order_id} were taken and {len(failed)} failed"
    else:
        reason = f"asset order {order_id} does not show {identity.product} x{pending.quantity}"
    return Evidence(pending, Verdict.UNKNOWN, f"{reason}; nothing is proven")


def _order_evidence(
    pending: PendingOperation, state: State, orders: Sequence[ProcessedOrder], lead: str
) -> Evidence:
    identity = pending.identity
    since = _parse_time(pending.time) - CLOCK_SKEW
    what = f"{identity.product} x{pending.quantity}"
    rivals = sorted(
        other.address
        for other in state.pending.values()
        if other.address != pending.address and _same_group(other, pending)
    )
    if rivals:
        return Evidence(
            pending,
            Verdict.UNKNOWN,
            f"{lead}; the pending checkout of {', '.join(rivals)} is also {what} for tenant "
            f"{identity.customer_tenant_id}, and processed orders cannot tell them apart",
        )
    claimed = _claimed_references(state)
    candidates = [
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
    succeeded = [o for o in candidates if o.succeeded]
    others = [o for o in candidates if not o.succeeded]
    # Each recorded checkout of the same product and quantity that may have made one of
    # these orders owns one of the succeeded ones; which one cannot be told.
    owners = _possible_owners(state, pending, since - CLOCK_SKEW)
    free = max(0, len(succeeded) - owners)
    window = f"{what} for tenant {identity.customer_tenant_id} since {_show_time(since)}"
    if free + len(others) == 0:
        taken = f" ({len(succeeded)} claimed by recorded checkouts)" if succeeded else ""
        return Evidence(pending, Verdict.UNKNOWN, f"{lead}; no processed order of {window}{taken}")
    if free + len(others) > 1 or (others and succeeded):
        # A failed order proves nothing beside succeeded ones that may be this checkout's.
        shown = ", ".join(o.order_reference_id for o in candidates)
        return Evidence(
            pending,
            Verdict.UNKNOWN,
            f"{lead}; {len(candidates)} processed orders of {window} (orders {shown}), "
            f"{free + len(others)} of them unclaimed; only exactly one proves anything",
        )
    if others:
        order = others[0]
        if order.failed:
            error = f": {_short(order.error)}" if order.error else ""
            return Evidence(
                pending,
                Verdict.NOT_PURCHASED,
                f"{_CITE.format(order.order_reference_id)} failed{error} "
                f"(the only processed order of {window})",
            )
        return Evidence(
            pending,
            Verdict.UNKNOWN,
            f"{lead}; {_CITE.format(order.order_reference_id)} of {window} is "
            f"{order.order_state}, not settled yet",
        )
    cited = " or ".join(_CITE.format(o.order_reference_id) for o in succeeded)
    return Evidence(
        pending,
        Verdict.PURCHASED,
        f"{cited} succeeded (the only unclaimed processed order of {window})",
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


def _possible_owners(state: State, pending: PendingOperation, since: datetime) -> int:
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
            if _parse_time(checkout.time) >= since:
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


def _subscriptions(ids: Sequence[int]) -> str:
    if not ids:
        return "no active subscription"
    label = "subscription" if len(ids) == 1 else "subscriptions"
    return f"{label} {', '.join(str(i) for i in ids)}"


# --------------------------------------------------------------------------- read before buying


def guard_purchases(plan: Plan, observations: Observations) -> Plan:
    """``plan`` with every buying change whose identity Cloud-iQ already holds
    unaccounted seats of turned into a conflict (unless the purchase acknowledges it).

    A lost, truncated or misplaced state then cannot buy the same licences again.
    """
    changes = tuple(_guard(change, observations) for change in plan.changes)
    return replace(plan, changes=changes) if changes != plan.changes else plan


def _guard(change: Change, observations: Observations) -> Change:
    buying = change.action in BUYING_ACTIONS or (change.action is Action.MOVE and change.delta > 0)
    desired = change.purchase
    if not buying or desired is None or desired.allow_additional_subscription:
        return change
    extra = observations.unaccounted(change.identity)
    if extra.seats <= 0:
        return change
    tenant = change.identity.customer_tenant_id
    held = f"{extra.seats} active seats ({_subscriptions(extra.subscriptions)})"
    if change.action is Action.PURCHASE:
        reason = (
            f"Cloud-iQ already holds {held} of this identity that no recorded address "
            f"accounts for; buying would add a second subscription. Adopt them with "
            f"`reconciler import --tenant {tenant}`, or set `allowAdditionalSubscription: "
            "true` on this purchase if a second subscription is wanted"
        )
    else:
        reason = (
            f"Cloud-iQ holds {held} of this identity, {extra.seats} more than recorded; "
            "run `reconciler refresh` to record them and plan again, or set "
            "`allowAdditionalSubscription: true` on this purchase to buy anyway"
        )
    if change.moved_from is not None:
        reason = f"moved from {change.moved_from}: {reason}"
    return replace(
        change,
        action=Action.CONFLICT,
        delta=0,
        reason=reason,
        moved_from=None,
    )


# --------------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class ProductInfo:
    """A product's name and unit price for one identity, as plan output shows them."""

    name: str | None
    unit_price: Decimal | None
    currency: str | None


def catalogue_for(
    identities: Iterable[Identity], entries: Mapping[int, Sequence[CatalogEntry]]
) -> dict[Identity, ProductInfo]:
    """Names and unit prices of ``identities`` from each tenant's agreement products.

    An identity whose tenant was not read, or whose product:sku is not listed, has
    no entry; a listed one without a price has ``unit_price`` None: unknown, never 0.
    """
    by_product: dict[tuple[int, str], CatalogEntry] = {}
    for tenant, listed in entries.items():
        for item in listed:
            by_product.setdefault((tenant, item.product), item)
    found = {}
    for identity in identities:
        entry = by_product.get((identity.customer_tenant_id, identity.product))
        if entry is None:
            continue
        price = entry.sales_price
        found[identity] = ProductInfo(
            name=entry.name or entry.product_name or None,
            unit_price=price.value if price is not None else None,
            currency=price.currency if price is not None else None,
        )
    return found
