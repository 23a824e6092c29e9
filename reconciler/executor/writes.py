"""The state writes a plan makes before it calls the API: moves, adoptions and
forgotten addresses. Nothing here is sent to the API.
"""

from __future__ import annotations

from collections.abc import Callable

from reconciler.model import Action, Change, Event, Plan
from reconciler.state import StateWriter

#: The actions that write the state before anything is sent, in the order they are made.
_WRITES = (Action.FORGET, Action.MOVE, Action.ADOPT)


def writing(plan: Plan) -> tuple[Change, ...]:
    """The changes of ``plan`` that write the state without calling the API."""
    return tuple(c for c in plan.changes if c.action in _WRITES)


def write_state(
    plan: Plan,
    *,
    writer: StateWriter,
    now: Callable[[], str],
    on_event: Callable[[Event], None] = lambda event: None,
) -> tuple[Change, ...]:
    """Make every state write of ``plan``; returns the changes written.

    The caller holds the state lock and has refused plans with conflicts; call it
    before ``apply``, so the seats a move or adoption adds are recorded at its
    address. Forgotten addresses go first, so a rename may take their identity.
    Each write is reported as a ``written`` event.
    """
    made = []
    for action in _WRITES:
        for change in plan.changes:
            if change.action is not action:
                continue
            if action is Action.FORGET:
                writer.remove_purchase(change.address)
            elif action is Action.MOVE:
                assert change.moved_from is not None, "a move always names its source"
                writer.move_purchase(change.moved_from, change.address)
            else:
                _adopt(writer, change, now())
            on_event(Event("written", change))
            made.append(change)
    return tuple(made)


def _adopt(writer: StateWriter, change: Change, time: str) -> None:
    recorded = writer.state.purchases.get(change.address)
    adopted = change.before - (recorded.quantity if recorded else 0)
    fresh = [s for s in change.subscriptions if not recorded or s not in recorded.subscriptions]
    if recorded is None:
        writer.import_purchase(
            change.address, change.identity, change.before, time, subscriptions=fresh
        )
        return
    writer.link_subscriptions(change.address, [(s, None) for s in fresh])
    if adopted:
        writer.adjust_quantity(
            change.address,
            adopted,
            time,
            f"adopted subscriptions {', '.join(str(s) for s in fresh)} (`import:`)",
        )
