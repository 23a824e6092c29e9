"""The planner: declarations + state (+ what Cloud-iQ shows) -> plan.

Pure: ``plan`` is a function of its arguments only. It performs no I/O and
reads no clock, environment or randomness (the time of the Cloud-iQ read comes
with the observations), so the same inputs always give the same plan and tests
need no files or network.

With observations, an address's seats are what Cloud-iQ shows for the
subscriptions it owns, and the state is planned as refresh leaves it (pending
entries the API proves settled, links and adjustments recorded). Without them
(offline) they are the seats recorded, and nothing that needs Cloud-iQ
(decreases, cancellations, renewal settings, adoptions) is planned.

    seats      the seat changes of one address: purchase, increase, decrease,
               renewal settings, cancellation, adoption; the cancellation window
    refactor   ``moved:`` entries and rename detection
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from reconciler.model import Declarations, Plan, State, targeted
from reconciler.planner.refactor import moved_change, moves_of, refuse_renames
from reconciler.planner.seats import Address, change_of

if TYPE_CHECKING:  # an offline plan loads nothing of observe
    from reconciler.observe.cloud import Observations


def plan(
    declarations: Declarations,
    state: State,
    targets: Sequence[str] = (),
    cloud: Observations | None = None,
) -> Plan:
    """One change per address declared or recorded, sorted by address.

    With ``targets`` (``--target``), only the changes of the addresses they
    select (a move by its new or old address); everything is still planned
    first, so rename detection sees the whole state. With ``cloud``, the state is
    planned as refresh leaves it and seats are compared with Cloud-iQ's.
    """
    if cloud is not None:
        from reconciler.observe.cloud import project

        state = project(state, cloud)
    declared = declarations.by_address()
    removals = {r.address: r for r in declarations.removals}
    adoptions = {a.target: a for a in declarations.adoptions}
    moves = moves_of(declarations, state)
    # A source with a pending operation stays where it is (and blocks its move).
    moved_away = {source for source in moves.values() if source not in state.pending}
    addresses = sorted((set(declared) | set(state.purchases) | set(state.pending)) - moved_away)
    changes = []
    for address in addresses:
        facts = Address(
            address,
            declared.get(address),
            state.purchases.get(address),
            state.pending.get(address),
            cloud,
            removal=removals.get(address),
            adoption=adoptions.get(address),
        )
        if address in moves:
            changes.append(moved_change(facts, moves[address], state))
        else:
            changes.append(change_of(facts))
    planned = refuse_renames(tuple(changes), declared, state, moved_away)
    whole = len(planned)
    if targets:
        planned = tuple(
            c
            for c in planned
            if targeted(c.address, targets)
            or (c.moved_from is not None and targeted(c.moved_from, targets))
        )
    return Plan(
        changes=planned,
        lineage=state.lineage,
        serial=state.serial,
        digest_source=declarations,
        targets=tuple(targets),
        addresses=whole if targets else 0,
        read_tenants=cloud.tenants if cloud is not None else None,
    )
