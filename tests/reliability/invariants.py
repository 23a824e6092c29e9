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
4. no address, and no identity, got more seats than declared;
5. the state loads and matches its schema.

``converged=True`` adds what a finished run must show: nothing pending, exactly the
declared addresses recorded, each with its declared seats, every one of them bought
once (checkouts plus imported seats equal the declaration).

An operator's deliberate repairs are passed in: ``forgotten`` externalOrderIds
(their records were removed with ``state rm``) and ``renamed`` addresses (old ->
new, ``state mv``). This module reads no files and runs no commands: the caller
loads the state and gives it here.
"""

from __future__ import annotations

import collections
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from reconciler.model import BILLING_CYCLES, State


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

    @property
    def product(self) -> str:
        return f"{self.product_id}:{self.sku_id}"

    @property
    def key(self) -> tuple[int, str, int, str]:
        """What the simulator tells apart: tenant, product, billing cycle, term."""
        return (self.tenant, self.product, BILLING_CYCLES[self.billing_cycle], self.term_duration)


#: Every kind of violation, worst first.
KINDS = ("duplicate", "loss", "overbuy", "unaccepted", "mismatch", "unconverged")


@dataclass(frozen=True)
class Violation:
    """One broken invariant. ``kind`` is "duplicate", "loss", "unaccepted", "overbuy",
    "mismatch" or "unconverged"."""

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
    converged: bool = False,
) -> list[Violation]:
    """Every violation of the invariants (see the module docstring); [] when all hold."""
    renamed = renamed or {}
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

    for address, seats in sorted(seats_by_address.items()):
        limit = declared[address].quantity if address in declared else 0
        if seats > limit:
            found.append(Violation("overbuy", f"{address} got {seats} seats, {limit} declared"))
    declared_by_key: collections.Counter[tuple[int, str, int, str]] = collections.Counter()
    for wanted in declared.values():
        declared_by_key[wanted.key] += wanted.quantity
    for key, seats in sorted(seats_by_key.items()):
        if seats > declared_by_key[key]:
            found.append(
                Violation("overbuy", f"{key} got {seats} seats, {declared_by_key[key]} declared")
            )

    if converged:
        found += _unconverged(declared, state, seats_by_address)
    return found


def _unconverged(
    declared: Mapping[str, Declared],
    state: State,
    seats_by_address: Mapping[str, int],
) -> list[Violation]:
    found = []
    if state.pending:
        found.append(Violation("unconverged", f"still pending: {sorted(state.pending)}"))
    if set(state.purchases) != set(declared):
        found.append(
            Violation(
                "unconverged",
                f"recorded {sorted(state.purchases)}, declared {sorted(declared)}",
            )
        )
    for address, wanted in sorted(declared.items()):
        purchase = state.purchases.get(address)
        if purchase is None:
            continue
        bought = sum(record.quantity for record in purchase.checkouts)
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
