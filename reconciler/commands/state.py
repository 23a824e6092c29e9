"""The ``state`` use cases: inspect and repair the recorded state by hand.

Each repair holds the state lock for its write and asks ``confirm`` (which may
raise to cancel) before changing anything. Never calls the API, never prints:
each returns what happened for the CLI to say.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reconciler import render
from reconciler.errors import ReconcilerError
from reconciler.model import CheckoutRecord, Declarations, PendingOperation, State
from reconciler.state import StateStore
from reconciler.state.base import KeepsHistory

Confirm = Callable[[str], None]


def addresses(state: State) -> list[tuple[str, bool]]:
    """Every recorded address, sorted, with whether it has a pending checkout."""
    return [(a, a in state.pending) for a in sorted(set(state.purchases) | set(state.pending))]


def entry(state: State, address: str, location: str) -> dict[str, Any]:
    """Everything recorded for ``address``, in the state file's JSON form."""
    data = render.state_dict(state)
    found = {key: data[key][address] for key in ("purchases", "pending") if address in data[key]}
    if not found:
        raise ReconcilerError(f"{address} is not in the state {location}")
    return {"address": address, **found}


def move(store: StateStore, source: str, target: str, *, confirm: Confirm) -> int:
    """Move the purchase at ``source``, with every checkout, to ``target``; returns its seats."""
    with store.lock("reconciler state mv") as writer:
        recorded = writer.state.purchases.get(source)
        if recorded is None:
            raise ReconcilerError(f"{source} is not recorded in {store.location}")
        if source in writer.state.pending:
            raise ReconcilerError(
                f"{source} has a pending checkout; resolve it first with "
                f"`reconciler state resolve {source} --purchased|--not-purchased`"
            )
        if target in writer.state.purchases or target in writer.state.pending:
            raise ReconcilerError(f"{target} is already in the state {store.location}")
        confirm(f"Move {source} ({render.seats(recorded.quantity)}) to {target}?")
        writer.move_purchase(source, target)
    return recorded.quantity


def remove(store: StateStore, address: str, *, confirm: Confirm) -> int:
    """Forget the purchase at ``address``; returns the seats it had."""
    with store.lock("reconciler state rm") as writer:
        if address in writer.state.pending:
            raise ReconcilerError(
                f"{address} has a pending checkout; resolve it first with "
                f"`reconciler state resolve {address} --purchased|--not-purchased`"
            )
        recorded = writer.state.purchases.get(address)
        if recorded is None:
            raise ReconcilerError(f"{address} is not recorded in {store.location}")
        confirm(f"Forget {address} ({render.seats(recorded.quantity)})?")
        writer.remove_purchase(address)
    return recorded.quantity


def import_seats(
    store: StateStore,
    declarations: Declarations,
    address: str,
    quantity: int,
    *,
    config_path: str,
    now: Callable[[], str],
    confirm: Confirm,
) -> None:
    """Record ``quantity`` seats bought outside the reconciler at a declared address."""
    declared = declarations.by_address().get(address)
    if declared is None:
        raise ReconcilerError(f"{address} is not declared in {config_path}; declare it first")
    with store.lock("reconciler state import") as writer:
        if address in writer.state.purchases or address in writer.state.pending:
            raise ReconcilerError(f"{address} is already in the state {store.location}")
        confirm(f"Record {render.seats(quantity)} at {address} as already bought?")
        writer.import_purchase(address, declared.identity, quantity, now())


@dataclass(frozen=True)
class Resolution:
    """A settled pending checkout, and the seats recorded at its address afterwards."""

    pending: PendingOperation
    purchased: bool
    total: int


def resolve(store: StateStore, address: str, *, purchased: bool) -> Resolution:
    """Settle the pending checkout at ``address`` as the user found it in Cloud-iQ."""
    with store.lock("reconciler state resolve") as writer:
        pending = writer.state.pending.get(address)
        if pending is None:
            raise ReconcilerError(f"{address} has no pending checkout in {store.location}")
        if purchased:
            writer.record_checkout(
                address,
                pending.identity,
                CheckoutRecord(pending.external_order_id, pending.quantity, pending.time),
            )
        else:
            writer.remove_pending(address)
        recorded = writer.state.purchases.get(address)
    return Resolution(pending, purchased, recorded.quantity if recorded else 0)


def create(store: StateStore) -> tuple[bool, State]:
    """``reconciler init``: an empty state with a new lineage, unless one exists."""
    created = store.create()
    return created, store.load()


def migrate(source: StateStore, target: StateStore) -> State:
    """Copy ``source`` whole into ``target`` (missing or empty), holding the source's lock."""
    with source.lock("reconciler state migrate") as writer:
        current = writer.state
        target.create(current)
        if isinstance(source, KeepsHistory) and isinstance(target, KeepsHistory):
            target.import_history(source.history())
    return current


def history(store: StateStore) -> list[dict[str, Any]]:
    """Every write recorded by a store that keeps history (the PostgreSQL store)."""
    if not isinstance(store, KeepsHistory):
        raise ReconcilerError(
            f"{store.location} is a state file, which keeps no history of writes "
            "(commit it to git for that); a postgresql:// state does"
        )
    return store.history()
