"""Builders of the model's records, and the identities the tests share.

Identities, declared and recorded purchases, pending checkouts, states, changes and
plans, built in memory: no file, no HTTP.
"""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.model import (
    Action,
    Change,
    CheckoutRecord,
    Declarations,
    Identity,
    Move,
    PendingOperation,
    Plan,
    Purchase,
    RecordedPurchase,
    State,
)
from tests.support.times import T0

#: The customer tenant most purchases are for (a tenant of the simulator's catalogue).
TENANT = 111111
#: Microsoft 365 Business Basic, monthly: the purchase most tests make.
BASIC = Identity(TENANT, "CFQ7TTC0LF8R", "0010", "monthly", "P1M")
#: Microsoft 365 Business Premium on a yearly term, for the same tenant.
PREMIUM = Identity(TENANT, "CFQ7TTC0LH18", "0001", "annual", "P1Y")
#: Microsoft 365 E3, monthly, for the same tenant.
E3 = Identity(TENANT, "CFQ7TTC0LFLZ", "0002", "monthly", "P1M")
#: Software of another tenant: differs from ``BASIC`` in every field of the identity.
ANNUAL = Identity(222222, "CFQ7TTC0LH18", "0001", "annual", "P1Y", "software")
#: The declarations digest of the plans ``make_plan`` builds.
DIGEST = "sha256:" + "ab" * 32


def declared(address: str, quantity: int, identity: Identity = BASIC) -> Purchase:
    """A declared purchase, as the config package builds one."""
    return Purchase(address=address, identity=identity, quantity=quantity)


def declarations(*purchases: Purchase, moves: Iterable[tuple[str, str]] = ()) -> Declarations:
    """Declarations of ``purchases``, with ``moved:`` entries given as (from, to)."""
    return Declarations(tuple(purchases), moves=tuple(Move(f, t) for f, t in moves))


def recorded(address: str, quantity: int, identity: Identity = BASIC) -> RecordedPurchase:
    """A recorded purchase bought in one checkout of all its seats."""
    return RecordedPurchase(
        address, identity, quantity, (CheckoutRecord("reconciler-x", quantity, T0),)
    )


def pending(
    address: str = "acme/basic", order: str = "ord-1", quantity: int = 5, identity: Identity = BASIC
) -> PendingOperation:
    """A checkout of unknown outcome, sent at ``T0``."""
    return PendingOperation(address, identity, order, quantity, T0)


def state_of(
    *purchases: RecordedPurchase,
    pending: Iterable[PendingOperation] = (),
    lineage: str = "lineage",
    serial: int = 3,
) -> State:
    """A state holding ``purchases`` and ``pending``, each under its own address."""
    return State(
        lineage=lineage,
        serial=serial,
        purchases={p.address: p for p in purchases},
        pending={p.address: p for p in pending},
    )


def change(
    address: str,
    action: Action,
    before: int,
    after: int | None,
    delta: int = 0,
    identity: Identity = BASIC,
    reason: str | None = None,
) -> Change:
    """One change of a plan."""
    return Change(address, action, before, after, delta, identity, reason=reason)


def make_plan(*changes: Change, lineage: str = "lineage-1", serial: int = 7) -> Plan:
    """A plan of ``changes`` in address order, made against the given state."""
    return Plan(
        changes=tuple(sorted(changes, key=lambda c: c.address)),
        lineage=lineage,
        serial=serial,
        digest_source=DIGEST,
    )


#: One change of each kind a plan shows: purchase, increase, conflict, pending, orphan, noop.
EVERY_ACTION = make_plan(
    change("a/new", Action.PURCHASE, 0, 20, 20),
    change("b/grow", Action.INCREASE, 10, 16, 6, ANNUAL),
    change("c/shrink", Action.CONFLICT, 10, 4, reason="decrease from 10 to 4 seats"),
    change("e/pending", Action.PENDING, 0, 5, reason="checkout order-e has an unknown outcome"),
    change("f/gone", Action.ORPHAN, 3, None, reason="recorded but no longer declared"),
    change("g/same", Action.NOOP, 7, 7),
)
