"""The ``state`` use cases: inspect and repair the recorded state by hand.

Each repair holds the state lock for its write and asks ``confirm`` (which may
raise to cancel) with a ``Repair`` record before changing anything. Never calls
the API, never words anything: a refusal is a ``RepairRefused`` with its reason,
and each function returns what happened for the CLI to say.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reconciler.errors import NoHistoryError, RepairRefused
from reconciler.model import CheckoutRecord, Declarations, State, UpdateRecord
from reconciler.outcomes import Repair, RepairKind, Resolution
from reconciler.state import StateStore
from reconciler.state.base import KeepsHistory
from reconciler.state.jsonrecords import pending_json, purchase_json

Confirm = Callable[[Repair], None]


def addresses(state: State) -> list[tuple[str, bool]]:
    """Every recorded address, sorted, with whether it has a pending checkout."""
    return [(a, a in state.pending) for a in sorted(set(state.purchases) | set(state.pending))]


def entry(state: State, address: str, location: str) -> dict[str, Any]:
    """Everything recorded for ``address``, in the state file's JSON form."""
    found: dict[str, Any] = {}
    if address in state.purchases:
        found["purchases"] = purchase_json(state.purchases[address])
    if address in state.pending:
        found["pending"] = pending_json(state.pending[address])
    if not found:
        raise RepairRefused("not-recorded", address, location)
    return {"address": address, **found}


def move(store: StateStore, source: str, target: str, *, confirm: Confirm) -> int:
    """Move the purchase at ``source``, with every checkout, to ``target``; returns its seats."""
    with store.lock("reconciler state mv") as writer:
        recorded = writer.state.purchases.get(source)
        if source in writer.state.pending:
            raise RepairRefused("pending", source, store.location)
        if recorded is None:
            raise RepairRefused("not-recorded", source, store.location)
        if target in writer.state.purchases or target in writer.state.pending:
            raise RepairRefused("already-recorded", target, store.location)
        confirm(Repair(RepairKind.MOVE, source, recorded.quantity, target))
        writer.move_purchase(source, target)
    return recorded.quantity


def remove(store: StateStore, address: str, *, confirm: Confirm) -> int:
    """Forget the purchase at ``address``; returns the seats it had."""
    with store.lock("reconciler state rm") as writer:
        if address in writer.state.pending:
            raise RepairRefused("pending", address, store.location)
        recorded = writer.state.purchases.get(address)
        if recorded is None:
            raise RepairRefused("not-recorded", address, store.location)
        confirm(Repair(RepairKind.REMOVE, address, recorded.quantity))
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
        raise RepairRefused("not-declared", address, config_path)
    with store.lock("reconciler state import") as writer:
        if address in writer.state.purchases or address in writer.state.pending:
            raise RepairRefused("already-recorded", address, store.location)
        confirm(Repair(RepairKind.IMPORT, address, quantity))
        writer.import_purchase(address, declared.identity, quantity, now())


def resolve(store: StateStore, address: str, *, purchased: bool) -> Resolution:
    """Settle the pending operation at ``address`` as the user found it in Cloud-iQ: a
    checkout made is recorded as one, an update made as that update; not made, the
    entry is cleared."""
    with store.lock("reconciler state resolve") as writer:
        pending = writer.state.pending.get(address)
        if pending is None:
            raise RepairRefused("no-pending", address, store.location)
        if purchased and pending.update is not None:
            # The subscription was changed as the update asked: record that update.
            evidence = "resolved by hand: the update was found made in Cloud-iQ"
            writer.record_update(address, UpdateRecord(pending.update, pending.time, evidence))
        elif purchased:
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
        raise NoHistoryError(store.location)
    return store.history()
