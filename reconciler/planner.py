"""The planner: declarations + state -> plan.

Pure: ``plan`` is a function of its arguments only. It performs no I/O and
reads no clock, environment or randomness, so the same inputs always give the
same plan and tests need no files or network.
"""

from __future__ import annotations

from reconciler.model import (
    Action,
    Change,
    Declarations,
    PendingOperation,
    Plan,
    Purchase,
    RecordedPurchase,
    State,
)


def plan(declarations: Declarations, state: State) -> Plan:
    """One change per address declared or recorded, sorted by address."""
    declared = declarations.by_address()
    addresses = sorted(set(declared) | set(state.purchases) | set(state.pending))
    changes = tuple(
        _change(
            address,
            declared.get(address),
            state.purchases.get(address),
            state.pending.get(address),
        )
        for address in addresses
    )
    return Plan(
        changes=changes,
        lineage=state.lineage,
        serial=state.serial,
        declarations_digest=declarations.digest(),
    )


def _change(
    address: str,
    desired: Purchase | None,
    recorded: RecordedPurchase | None,
    pending: PendingOperation | None,
) -> Change:
    before = recorded.quantity if recorded else 0
    after = desired.quantity if desired else None

    if pending is not None:
        return Change(
            address,
            Action.PENDING,
            before,
            after,
            0,
            desired.identity if desired else pending.identity,
            desired,
            reason=(
                f"checkout {pending.external_order_id} of {pending.quantity} seats "
                f"({pending.time}) has an unknown outcome"
            ),
        )
    if desired is None:
        assert recorded is not None  # every address comes from one of the three maps
        return Change(
            address,
            Action.ORPHAN,
            before,
            None,
            0,
            recorded.identity,
            reason="recorded but no longer declared; the reconciler never cancels licences",
        )
    if recorded is None:
        return Change(
            address, Action.PURCHASE, 0, after, desired.quantity, desired.identity, desired
        )

    changed = desired.identity.differences(recorded.identity)
    if changed:
        old, new = recorded.identity.as_dict(), desired.identity.as_dict()
        details = ", ".join(f"{name} {old[name]!r} -> {new[name]!r}" for name in changed)
        return _conflict(
            desired, before, f"identity changed ({details}); declare it under a new name instead"
        )
    if desired.quantity < before:
        return _conflict(
            desired,
            before,
            f"decrease from {before} to {desired.quantity} seats; a purchase cannot be "
            "undone through checkout",
        )
    action = Action.NOOP if desired.quantity == before else Action.INCREASE
    return Change(
        address, action, before, after, desired.quantity - before, desired.identity, desired
    )


def _conflict(desired: Purchase, before: int, reason: str) -> Change:
    return Change(
        desired.address,
        Action.CONFLICT,
        before,
        desired.quantity,
        0,
        desired.identity,
        desired,
        reason=reason,
    )
