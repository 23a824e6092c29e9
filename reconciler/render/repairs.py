"""What ``init`` and the ``state`` commands say when they have done their work.

Returns strings; never prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.model import State
from reconciler.outcomes import Resolution
from reconciler.render.words import count, seats


def initialized(created: bool, location: str, state: State) -> str:
    if created:
        return f"Initialized an empty state at {location} (lineage {state.lineage})."
    return (
        f"A state already exists at {location} (serial {state.serial}, "
        f"{count(len(state.purchases), 'purchase')}); nothing changed."
    )


def removed(address: str, seat_count: int, location: str) -> str:
    return (
        f"Removed {address} ({seats(seat_count)}) from {location}. "
        "The licences themselves were not cancelled."
    )


def still_declared(address: str, config_path: str) -> str:
    return (
        f"warning: {address} is still declared in {config_path}; the next apply will buy "
        "it again. Remove its declaration, or use `reconciler state mv` for a rename."
    )


def moved(source: str, target: str, seat_count: int, location: str) -> str:
    return f"Moved {source} ({seats(seat_count)}) to {target} in {location}."


def imported(address: str, quantity: int) -> str:
    return f"Imported {address}: {seats(quantity)} recorded, nothing bought."


def resolved(address: str, done: Resolution) -> str:
    order = done.pending.external_order_id
    if done.pending.update is not None:
        if done.purchased:
            return f"Resolved {address}: {order} recorded as made ({seats(done.total)} in total)."
        return f"Resolved {address}: {order} recorded as not made; the next apply plans it again."
    if done.purchased:
        return (
            f"Resolved {address}: {order} recorded as purchased "
            f"(+{done.pending.quantity}, {seats(done.total)} in total)."
        )
    return f"Resolved {address}: {order} recorded as not purchased; the next apply buys it again."


def migrated(state: State, location: str) -> str:
    return (
        f"Copied the state (serial {state.serial}, "
        f"{count(len(state.purchases), 'purchase')}, "
        f"{len(state.pending)} pending) to {location}."
    )


def history_line(entry: Mapping[str, Any]) -> str:
    """One write of a database state's history."""
    run = entry["run"]
    who = f"{run.get('command', '?')} pid {run.get('pid', '?')} on {run.get('host', '?')}"
    if run.get("ci_url"):
        who += f" ({run['ci_url']})"
    return (
        f"{entry['serial']:>6}  {entry['written_at']}  {entry['op']:<16} "
        f"{entry['address']}  by {who}"
    )
