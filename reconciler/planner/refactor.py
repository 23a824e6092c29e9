"""Refactoring without buying twice: ``moved:`` entries and rename detection.

A ``moved:`` entry carries the purchase recorded at its ``from`` to its ``to``
(a state write); a purchase whose identity an undeclared recorded address has is
a conflict naming both ways out, because a rename must never buy.

Pure; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from reconciler.model import Action, Change, Declarations, Identity, Purchase, State
from reconciler.planner.seats import Address, change_of, conflict, seats


def moves_of(declarations: Declarations, state: State) -> dict[str, str]:
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


def moved_change(facts: Address, source: str, state: State) -> Change:
    """The change of ``facts.address`` when the purchase recorded at ``source`` moves to it."""
    desired = facts.desired
    assert desired is not None  # a move's target is always declared
    pending = state.pending.get(source)
    recorded = state.purchases.get(source)
    if pending is not None:
        return conflict(
            desired,
            recorded.quantity if recorded else 0,
            f"moved from {source}, which has a pending operation ({pending.external_order_id}); "
            "settle it first: `reconciler refresh` records what Cloud-iQ shows of it",
        )
    assert recorded is not None  # moves_of keeps only recorded or pending sources
    at_target = replace(recorded, address=facts.address)
    seen = facts.cloud.seats.get(source) if facts.cloud is not None else None
    change = change_of(facts._replace(recorded=at_target, pending=None), seen=seen)
    if change.action is Action.CONFLICT:
        return replace(change, reason=f"moved from {source}: {change.reason}")
    if change.action not in (Action.NOOP, Action.INCREASE):
        # A move and a decrease, cancellation or update at once: move first, then plan again.
        return replace(
            change,
            action=Action.CONFLICT,
            delta=0,
            steps=(),
            reason=f"moved from {source}: apply the move first (it changes nothing in "
            f"Cloud-iQ), then plan the {change.action.value} on its own",
        )
    note = None
    if change.delta > 0:
        note = f"moved from {source} (a state write), then {seats(change.delta)} bought"
    return replace(change, action=Action.MOVE, moved_from=source, note=note)


def refuse_renames(
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
    forgotten = {c.address for c in changes if c.action in (Action.FORGET, Action.CANCEL)}
    for source in (state.purchases, state.pending):
        for address, entry in source.items():
            if address not in declared and address not in moved_away | forgotten:
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
            conflict(
                desired,
                0,
                f"same identity as {old}{others}, recorded but no longer declared; "
                f"if this is a rename, add `moved: [{{from: {old}, to: {new}}}]` to the "
                f"declarations or run `reconciler state mv {old} {new}`; if {old} is really "
                f"gone, add `removed: [{{address: {old}, cancel: false}}]` or run "
                f"`reconciler state rm {old}` first",
            )
        )
    return tuple(result)
