"""The exactly-once invariants every reliability test checks, after every kill and round.

Judged from three independent sources: what the simulator accepted (its
``checkouts``: externalOrderId, tenant, product, quantity), what was declared (read
from the test's own records, not through the reconciler's loader), and the state
as the real store loads it (for a file, also the raw file against
``schemas/state.schema.json``; for any store, ``state pull`` against it):

1. no externalOrderId was accepted twice, nor recorded twice;
2. every recorded checkout was accepted by the simulator, for the same tenant,
   product, billing cycle, term and quantity;
3. every checkout the simulator accepted is recorded, or covered by a pending
   entry with its externalOrderId (a "loss" otherwise);
4. no address, and no identity, got more seats than declared (or than ``limits``
   allows an address whose declaration went down since it bought);
5. the state loads and matches its schema.

``converged=True`` adds what a finished run must show: nothing pending, exactly the
declared addresses recorded (and those a ``removed:`` entry cancelled, with no
seats), each with its declared seats, every one of them bought once (checkouts
plus imported seats and the updates' seat changes equal the declaration).

``check_cloud`` holds Cloud-iQ (the simulator's subscriptions) against the state
and the declarations, the truth for seats:

6. each subscription is owned by at most one address, and only by an address of
   its own tenant and product (the state's subscriptions, and for a checkout not
   yet seen the subscription the simulator made for it);
7. the active seats of each address's subscriptions stay within its ``bounds``
   (between what it had and what it is declared to have) at every step, and at
   convergence are exactly the declared seats (0 for a cancelled address), with
   the declared renewal, and no active subscription of a declared identity is
   left that no address owns (a "wrong quantity");
8. a subscription no declaration asked to change (``frozen``) keeps its seats,
   status and renewal (an "unasked change").

``check_updates`` holds the updates the state records against those the simulator
applied (``Simulator.updates``):

9. every update the state records was applied, once (an "unaccepted" update
   otherwise), and every update the simulator applied that changed anything is
   recorded or pending (a "loss" otherwise).

An operator's deliberate repairs are passed in: ``forgotten`` externalOrderIds
(their records were removed with ``state rm``, or a ``removed:`` entry without
cancel) and ``renamed`` addresses (old -> new, ``state mv``). This module reads no
files and runs no commands: the caller loads the state and gives it here.
"""

from __future__ import annotations

import collections
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from reconciler.model import BILLING_CYCLES, State, SubscriptionChange, UpdateField


class Accepted(Protocol):
    """One checkout line the simulator accepted (``RecordedCheckout``)."""

    @property
    def external_order_id(self) -> str | None: ...
    @property
    def tenant(self) -> int: ...
    @property
    def product(self) -> str: ...
    @property
    def quantity(self) -> int: ...
    @property
    def billing_cycle(self) -> int: ...
    @property
    def term_duration(self) -> str: ...


@dataclass(frozen=True)
class Declared:
    """One declared purchase, as the test wrote it."""

    address: str
    tenant: int
    product_id: str
    sku_id: str
    quantity: int
    billing_cycle: str = "monthly"
    term_duration: str = "P1M"
    #: ``autoRenew`` (None: not declared) and ``seatChanges`` (None: the default, order).
    auto_renew: bool | None = None
    seat_changes: str | None = None

    @property
    def product(self) -> str:
        return f"{self.product_id}:{self.sku_id}"

    @property
    def key(self) -> tuple[int, str, int, str]:
        """What the simulator tells apart: tenant, product, billing cycle, term."""
        return (self.tenant, self.product, BILLING_CYCLES[self.billing_cycle], self.term_duration)


#: Every kind of violation, worst first.
KINDS = (
    "duplicate",
    "loss",
    "overbuy",
    "wrong quantity",
    "unasked change",
    "shared subscription",
    "unaccepted",
    "mismatch",
    "unconverged",
)


@dataclass(frozen=True)
class Violation:
    """One broken invariant; ``kind`` is one of ``KINDS``."""

    kind: str
    text: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.text}"


def check(
    accepted: Iterable[Accepted],
    declared: Mapping[str, Declared],
    state: State,
    *,
    forgotten: Collection[str] = (),
    renamed: Mapping[str, str] | None = None,
    limits: Mapping[str, int] | None = None,
    cancelled: Collection[str] = (),
    converged: bool = False,
) -> list[Violation]:
    """Every violation of invariants 1 to 5 (see the module docstring); [] when all hold.

    ``limits``: the most seats checkouts may have bought per address, where that is
    not its declared quantity (a declaration lowered or removed after buying);
    ``cancelled``: addresses a ``removed:`` entry cancels (recorded, no seats left).
    """
    renamed = renamed or {}
    limits = limits or {}
    found: list[Violation] = []
    by_id: dict[str, Accepted] = {}
    for checkout in accepted:
        eoid = checkout.external_order_id
        if eoid is None:
            found.append(Violation("mismatch", f"a checkout without externalOrderId: {checkout}"))
        elif eoid in by_id:
            found.append(Violation("duplicate", f"externalOrderId {eoid} accepted twice"))
        else:
            by_id[eoid] = checkout

    # Where the state puts each externalOrderId: recorded at an address, or pending.
    recorded: dict[str, str] = {}
    for address, purchase in state.purchases.items():
        identity = purchase.identity
        for record in purchase.checkouts:
            eoid = record.external_order_id
            if eoid in recorded:
                found.append(
                    Violation(
                        "duplicate",
                        f"externalOrderId {eoid} recorded at {recorded[eoid]} and {address}",
                    )
                )
            recorded[eoid] = address
            taken = by_id.get(eoid)
            if taken is None:
                # Settled by refresh or by hand without the API's word cannot happen in
                # these tests: every record must be one the simulator accepted.
                found.append(
                    Violation(
                        "unaccepted",
                        f"{address} records checkout {eoid} ({record.quantity} seats), which "
                        "the simulator never accepted",
                    )
                )
                continue
            expected = (
                identity.customer_tenant_id,
                identity.product,
                BILLING_CYCLES[identity.billing_cycle],
                identity.term_duration,
                record.quantity,
            )
            got = (
                taken.tenant,
                taken.product,
                taken.billing_cycle,
                taken.term_duration,
                taken.quantity,
            )
            if expected != got:
                found.append(
                    Violation(
                        "mismatch", f"{address} records {eoid} as {expected}, accepted as {got}"
                    )
                )
    pending = {op.external_order_id: address for address, op in state.pending.items()}
    for eoid, address in pending.items():
        if eoid in recorded:
            found.append(Violation("duplicate", f"{eoid} is pending at {address} and recorded too"))

    seats_by_address: collections.Counter[str] = collections.Counter()
    seats_by_key: collections.Counter[tuple[int, str, int, str]] = collections.Counter()
    for eoid, taken in by_id.items():
        if eoid in forgotten:
            continue
        holder = recorded.get(eoid) or pending.get(eoid)
        if holder is None:
            found.append(
                Violation(
                    "loss",
                    f"the simulator accepted {eoid} ({taken.quantity} x {taken.product} for "
                    f"tenant {taken.tenant}) but the state neither records it nor has it pending",
                )
            )
            continue
        op = state.pending.get(holder)
        if eoid not in recorded and op is not None:
            took = (taken.tenant, taken.product, taken.quantity)
            waits = (op.identity.customer_tenant_id, op.identity.product, op.quantity)
            if took != waits:
                found.append(
                    Violation("mismatch", f"pending {eoid} at {holder} is {waits}, took {took}")
                )
        seats_by_address[renamed.get(holder, holder)] += taken.quantity
        seats_by_key[taken.tenant, taken.product, taken.billing_cycle, taken.term_duration] += (
            taken.quantity
        )

    def limit(address: str) -> int:
        if address in limits:
            return limits[address]
        return declared[address].quantity if address in declared else 0

    for address, seats in sorted(seats_by_address.items()):
        if seats > limit(address):
            found.append(
                Violation("overbuy", f"{address} got {seats} seats, {limit(address)} declared")
            )
    declared_by_key: collections.Counter[tuple[int, str, int, str]] = collections.Counter()
    for wanted in declared.values():
        declared_by_key[wanted.key] += limit(wanted.address)
    keys = {address: d.key for address, d in declared.items()}
    for address, purchase in state.purchases.items():
        identity = purchase.identity
        keys.setdefault(
            address,
            (
                identity.customer_tenant_id,
                identity.product,
                BILLING_CYCLES[identity.billing_cycle],
                identity.term_duration,
            ),
        )
    for address in limits:
        if address not in declared and address in keys:
            declared_by_key[keys[address]] += limits[address]
    for key, seats in sorted(seats_by_key.items()):
        if seats > declared_by_key[key]:
            found.append(
                Violation("overbuy", f"{key} got {seats} seats, {declared_by_key[key]} declared")
            )

    if converged:
        found += _unconverged(declared, state, seats_by_address, cancelled)
    return found


def _unconverged(
    declared: Mapping[str, Declared],
    state: State,
    seats_by_address: Mapping[str, int],
    cancelled: Collection[str],
) -> list[Violation]:
    found = []
    if state.pending:
        found.append(Violation("unconverged", f"still pending: {sorted(state.pending)}"))
    if set(state.purchases) != set(declared) | set(cancelled):
        found.append(
            Violation(
                "unconverged",
                f"recorded {sorted(state.purchases)}, declared {sorted(declared)}"
                + (f" and cancelled {sorted(cancelled)}" if cancelled else ""),
            )
        )
    for address in sorted(cancelled):
        gone = state.purchases.get(address)
        if gone is not None and gone.quantity != 0:
            found.append(
                Violation("unconverged", f"{address} was cancelled but records {gone.quantity}")
            )
    for address, wanted in sorted(declared.items()):
        purchase = state.purchases.get(address)
        if purchase is None:
            continue
        bought = sum(record.quantity for record in purchase.checkouts)
        # Imported seats, and seats the updates took away or added.
        imported = purchase.quantity - bought
        if purchase.quantity != wanted.quantity:
            found.append(
                Violation(
                    "unconverged",
                    f"{address} records {purchase.quantity} seats, {wanted.quantity} declared",
                )
            )
        if seats_by_address.get(address, 0) + imported != wanted.quantity:
            found.append(
                Violation(
                    "unconverged",
                    f"{address}: the simulator accepted {seats_by_address.get(address, 0)} "
                    f"seats (+{imported} imported), {wanted.quantity} declared",
                )
            )
    return found


# -- Cloud-iQ --------------------------------------------------------------------------


class Held(Protocol):
    """One subscription as the simulator holds it (``SubscriptionRecord``)."""

    @property
    def id(self) -> int: ...
    @property
    def tenant(self) -> int: ...
    @property
    def product(self) -> str: ...
    @property
    def quantity(self) -> int: ...
    @property
    def status(self) -> int: ...
    @property
    def auto_renew(self) -> bool: ...
    @property
    def active(self) -> bool: ...


class Made(Accepted, Protocol):
    """A checkout line the simulator accepted, with the subscription it made."""

    @property
    def subscription_id(self) -> int | None: ...


def snapshot(subscriptions: Iterable[Held]) -> dict[int, tuple[int, int, bool]]:
    """Each subscription's seats, status and renewal, for ``check_cloud``'s ``frozen``."""
    return {s.id: (s.quantity, s.status, s.auto_renew) for s in subscriptions}


def owned_subscriptions(state: State, accepted: Iterable[Made]) -> dict[str, list[int]]:
    """The subscriptions each address holds seats in: those the state records, those
    its checkouts not yet seen made, and those its pending checkout made (taken by the
    simulator, not yet settled)."""
    made = {c.external_order_id: c.subscription_id for c in accepted}
    owned: dict[str, list[int]] = {}
    for address, purchase in state.purchases.items():
        ids = list(purchase.subscriptions)
        for order in purchase.unseen:
            sid = made.get(order)
            if sid is not None:
                ids.append(sid)
        owned[address] = ids
    for address, op in state.pending.items():
        sid = None if op.is_update else made.get(op.external_order_id)
        if sid is not None:
            owned.setdefault(address, []).append(sid)
    return owned


def check_cloud(
    subscriptions: Iterable[Held],
    accepted: Iterable[Made],
    declared: Mapping[str, Declared],
    state: State,
    *,
    bounds: Mapping[str, tuple[int, int]] | None = None,
    frozen: Mapping[int, tuple[int, int, bool]] | None = None,
    cancelled: Collection[str] = (),
    blind: Collection[str] = (),
    converged: bool = False,
    linked: bool = False,
) -> list[Violation]:
    """Every violation of invariants 6 to 8 (see the module docstring); with ``linked``
    (converged, and refreshed since the last checkout) the subscriptions the state
    records must hold the seats themselves, no checkout waiting to be seen.

    ``bounds``: per address, the fewest and most active seats it may have while the
    runs converge (default: 0 to its declared seats); ``frozen``: the subscriptions no
    declaration asked to change, with their seats, status and renewal (``snapshot``);
    ``blind``: addresses whose seats were recorded by hand (``state import``) without
    any subscription in Cloud-iQ, whose seats it cannot show.
    """
    held = {s.id: s for s in subscriptions}
    owned = owned_subscriptions(state, accepted)
    found: list[Violation] = []
    owner: dict[int, str] = {}
    for address, ids in sorted(owned.items()):
        entry = state.purchases.get(address) or state.pending[address]
        identity = entry.identity
        for sid in ids:
            if sid in owner and owner[sid] != address:
                found.append(
                    Violation(
                        "shared subscription",
                        f"subscription {sid} is owned by {owner[sid]} and {address}",
                    )
                )
            owner[sid] = address
            sub = held.get(sid)
            if sub is None:
                found.append(Violation("mismatch", f"{address} owns {sid}, which does not exist"))
            elif (sub.tenant, sub.product) != (identity.customer_tenant_id, identity.product):
                found.append(
                    Violation(
                        "mismatch",
                        f"{address} ({identity.product} of {identity.customer_tenant_id}) owns "
                        f"subscription {sid} of {sub.product} of {sub.tenant}",
                    )
                )
    for sid, was in sorted((frozen or {}).items()):
        sub = held.get(sid)
        now = None if sub is None else (sub.quantity, sub.status, sub.auto_renew)
        if now != was:
            found.append(
                Violation(
                    "unasked change",
                    f"subscription {sid} (owned by {owner.get(sid, 'no address')}) went from "
                    f"{was} to {now} (seats, status, renewal); no declaration asked for it",
                )
            )

    def active_seats(address: str) -> int:
        return sum(
            held[sid].quantity
            for sid in set(owned.get(address, ()))
            if sid in held and held[sid].active
        )

    addresses = sorted((set(declared) | set(cancelled) | set(bounds or {})) - set(blind))
    for address in addresses:
        seats = active_seats(address)
        if converged:
            recorded = state.purchases.get(address)
            if linked and recorded is not None and recorded.unseen:
                found.append(
                    Violation(
                        "unconverged",
                        f"{address} records no subscription for checkouts "
                        f"{', '.join(recorded.unseen)} (Cloud-iQ lists them)",
                    )
                )
            wanted = 0 if address in cancelled else declared[address].quantity
            if seats != wanted:
                found.append(
                    Violation(
                        "wrong quantity",
                        f"{address} holds {seats} active seats in Cloud-iQ, {wanted} declared",
                    )
                )
            renew = declared[address].auto_renew if address in declared else None
            for sid in sorted(set(owned.get(address, ()))):
                sub = held.get(sid)
                if renew is not None and sub is not None and sub.active and sub.auto_renew != renew:
                    found.append(
                        Violation(
                            "unconverged",
                            f"{address}'s subscription {sid} renews {sub.auto_renew}, "
                            f"{renew} declared",
                        )
                    )
            continue
        default = (0, declared[address].quantity) if address in declared else (0, seats)
        low, high = (bounds or {}).get(address, default)
        if not low <= seats <= high:
            found.append(
                Violation(
                    "wrong quantity",
                    f"{address} holds {seats} active seats in Cloud-iQ, outside {low}..{high}",
                )
            )
    if converged:
        keys = {(d.tenant, d.product) for d in declared.values()}
        for sid, sub in sorted(held.items()):
            if (
                sub.active
                and (sub.tenant, sub.product) in keys
                and sid not in owner
                and sid not in (frozen or {})
            ):
                found.append(
                    Violation(
                        "wrong quantity",
                        f"subscription {sid} ({sub.quantity} x {sub.product} for {sub.tenant}) "
                        "is active and no address owns it",
                    )
                )
    return found


# -- updates ---------------------------------------------------------------------------


class Applied(Protocol):
    """A PUT the simulator applied (``AppliedUpdate``): (seats, status, renewal) before
    and after."""

    @property
    def subscription_id(self) -> int: ...
    @property
    def before(self) -> tuple[int, int, bool]: ...
    @property
    def after(self) -> tuple[int, int, bool]: ...


def _made_by(change: SubscriptionChange, applied: Applied) -> bool:
    """Whether ``applied`` is the PUT that made ``change``."""
    if applied.subscription_id != change.subscription:
        return False
    (seats, status, renew), (seats_after, status_after, renew_after) = applied.before, applied.after
    if change.field is UpdateField.QUANTITY:
        return (seats, seats_after) == (change.before, change.after) and status == status_after
    if change.field is UpdateField.AUTO_RENEW:
        return (renew, renew_after) == (bool(change.before), bool(change.after))
    return status == 1 and status_after != 1 and seats == change.before


def check_updates(applied: Iterable[Applied], state: State) -> list[Violation]:
    """Every violation of invariant 9 (see the module docstring)."""
    left = list(applied)
    found: list[Violation] = []
    for address, purchase in sorted(state.purchases.items()):
        for record in purchase.updates:
            match = next((a for a in left if _made_by(record.change, a)), None)
            if match is None:
                found.append(
                    Violation(
                        "unaccepted",
                        f"{address} records update {record.change.operation}, which the "
                        "simulator never applied (or applied once for two records)",
                    )
                )
            else:
                left.remove(match)
    for _, op in sorted(state.pending.items()):
        if op.update is not None:
            match = next((a for a in left if _made_by(op.update, a)), None)
            if match is not None:
                left.remove(match)
    for extra in left:
        if extra.before == extra.after:
            # A PUT that changed nothing: a first attempt that arrived after the one sent
            # again once reading back showed it not made (absolute values: no harm).
            continue
        found.append(
            Violation(
                "loss",
                f"the simulator applied a PUT of subscription {extra.subscription_id} "
                f"({extra.before} -> {extra.after}) that the state neither records nor has "
                "pending",
            )
        )
    return found
