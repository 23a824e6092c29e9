"""The planner: declarations + state -> plan.

Pure: ``plan`` is a function of its arguments only. It performs no I/O and
reads no clock, environment or randomness, so the same inputs always give the
same plan and tests need no files or network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from reconciler.model import (
    Action,
    Change,
    Declarations,
    Identity,
    PendingOperation,
    Plan,
    Purchase,
    RecordedPurchase,
    State,
    targeted,
)


def plan(declarations: Declarations, state: State, targets: Sequence[str] = ()) -> Plan:
    """One change per address declared or recorded, sorted by address.

    With ``targets`` (``--target``), only the changes of the addresses they
    select (a move by its new or old address); everything is still planned
    first, so rename detection sees the whole state.
    """
    declared = declarations.by_address()
    moves = _moves(declarations, state)
    # A source with a pending checkout stays where it is (and blocks its move).
    moved_away = {source for source in moves.values() if source not in state.pending}
    addresses = sorted((set(declared) | set(state.purchases) | set(state.pending)) - moved_away)
    changes = tuple(
        _moved(address, moves[address], declared[address], state)
        if address in moves
        else _change(
            address,
            declared.get(address),
            state.purchases.get(address),
            state.pending.get(address),
        )
        for address in addresses
    )
    changes = _refuse_renames(changes, declared, state, moved_away)
    whole = len(changes)
    if targets:
        changes = tuple(
            c
            for c in changes
            if targeted(c.address, targets)
            or (c.moved_from is not None and targeted(c.moved_from, targets))
        )
    return Plan(
        changes=changes,
        lineage=state.lineage,
        serial=state.serial,
        digest_source=declarations,
        targets=tuple(targets),
        addresses=whole if targets else 0,
    )


def _moves(declarations: Declarations, state: State) -> dict[str, str]:
    """The ``moved:`` entries apply carries out, as target -> source.

    An entry whose source is no longer recorded was applied before (or never
    recorded): it is a noop, as in Terraform, so it may stay in the files. An
    entry whose target is already recorded is not a move either; both
    addresses are then planned as they stand.
    """
    declared = declarations.by_address()
    found = {}
    for move in declarations.moves:
        if move.target not in declared or move.source in declared:
            continue  # the declarations refuse these; a plan never acts on them
        if move.target in state.purchases or move.target in state.pending:
            continue
        if move.source in state.purchases or move.source in state.pending:
            found[move.target] = move.source
    return found


def _moved(address: str, source: str, desired: Purchase, state: State) -> Change:
    """The change of ``address`` when the purchase recorded at ``source`` moves to it."""
    pending = state.pending.get(source)
    recorded = state.purchases.get(source)
    if pending is not None:
        return _conflict(
            desired,
            recorded.quantity if recorded else 0,
            f"moved from {source}, which has a pending checkout ({pending.external_order_id}); "
            f"resolve it first with `reconciler state resolve {source} "
            "--purchased|--not-purchased`",
        )
    assert recorded is not None  # _moves keeps only recorded or pending sources
    change = _change(address, desired, replace(recorded, address=address), None)
    if change.action is Action.CONFLICT:
        return replace(change, reason=f"moved from {source}: {change.reason}")
    return replace(change, action=Action.MOVE, moved_from=source)


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
                f"checkout {pending.external_order_id} of {_seats(pending.quantity)} "
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
            f"decrease from {before} to {_seats(desired.quantity)}; a purchase cannot be "
            "undone through checkout. Reduce the seats in Cloud-iQ within Microsoft's "
            "cancellation window, run `reconciler refresh` to record it, then lowering "
            "`quantity` to match is a noop",
        )
    cancelled = -sum(a.quantity for a in recorded.adjustments if a.quantity < 0)
    if desired.quantity > before and cancelled:
        # Seats that were bought and then found gone in Cloud-iQ are not bought back
        # without a decision: the drift may be a listing that lags, not a cancellation.
        return _conflict(
            desired,
            before,
            f"increase from {before} to {_seats(desired.quantity)} after Cloud-iQ showed "
            f"{_seats(cancelled)} fewer than were bought (recorded by `reconciler refresh`); "
            f"lower `quantity` to {before} to accept that, or declare any new seats under "
            "a new address",
        )
    action = Action.NOOP if desired.quantity == before else Action.INCREASE
    return Change(
        address, action, before, after, desired.quantity - before, desired.identity, desired
    )


def _seats(n: int) -> str:
    return f"{n} seat" if n == 1 else f"{n} seats"


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


def _refuse_renames(
    changes: tuple[Change, ...],
    declared: Mapping[str, Purchase],
    state: State,
    moved_away: set[str],
) -> tuple[Change, ...]:
    """Turn a purchase into a conflict when an undeclared recorded address has its identity.

    A renamed declaration looks like a new purchase beside an orphan; buying it
    would pay twice for licences already held, so the plan names both ways out.
    """
    left: dict[Identity, list[str]] = {}
    for source in (state.purchases, state.pending):
        for address, entry in source.items():
            if address not in declared and address not in moved_away:
                left.setdefault(entry.identity, []).append(address)
    if not left:
        return changes
    result = []
    for change in changes:
        desired = change.purchase
        olds = sorted(set(left.get(change.identity, ())))
        if change.action is not Action.PURCHASE or desired is None or not olds:
            result.append(change)
            continue
        old, new = olds[0], change.address
        others = f" (and {', '.join(olds[1:])})" if olds[1:] else ""
        result.append(
            _conflict(
                desired,
                0,
                f"same identity as {old}{others}, recorded but no longer declared; "
                f"if this is a rename, add `moved: [{{from: {old}, to: {new}}}]` to the "
                f"declarations or run `reconciler state mv {old} {new}`; if {old} is really "
                f"gone, run `reconciler state rm {old}` first",
            )
        )
    return tuple(result)
