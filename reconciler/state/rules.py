"""The write rules of the state, once, for every store.

``Ledger`` holds a locked run's view of the state and turns each requested
change into a checked ``Write`` (one pending entry per address, a checkout only
for the identity recorded at its address, no externalOrderId recorded twice,
no import over a recorded purchase, a move only of a settled purchase to a free
address, an adjustment only of a settled purchase and never below 0 seats,
lineage set once and serial +1 per write). ``Tables`` is the mutable state a run
writes (and replay builds): it takes a write, or takes it back, in O(1).

This module never touches storage and never waits: ``ledger`` persists the writes
the rules give, and serialises the callers.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from reconciler.errors import StateError
from reconciler.model import (
    REFRESH_SOURCE,
    Adjustment,
    CheckoutRecord,
    Identity,
    PendingOperation,
    RecordedPurchase,
    State,
    UpdateRecord,
)
from reconciler.state.jsonrecords import entry_line
from reconciler.state.jsonvalues import Invalid
from reconciler.state.writes import KEEP, Keep, Write

_V = TypeVar("_V")


@dataclass(frozen=True)
class Undo:
    """What one address (and a move's source) held before ``write``."""

    write: Write
    lineage: str
    serial: int
    purchase: RecordedPurchase | None
    pending: PendingOperation | None
    moved: RecordedPurchase | None


def _put(table: dict[str, _V], key: str, value: _V | None) -> None:
    if value is None:
        table.pop(key, None)
    else:
        table[key] = value


class Tables:
    """A mutable state: what replay builds and a writer updates in O(1) per write."""

    def __init__(self, state: State) -> None:
        self.lineage = state.lineage
        self.serial = state.serial
        self.purchases: dict[str, RecordedPurchase] = dict(state.purchases)
        self.pending: dict[str, PendingOperation] = dict(state.pending)

    def apply(self, write: Write) -> Undo:
        """Take ``write``; returns what ``undo`` needs to take it back."""
        undo = Undo(
            write,
            self.lineage,
            self.serial,
            self.purchases.get(write.address),
            self.pending.get(write.address),
            None if write.moved_from is None else self.purchases.get(write.moved_from),
        )
        if write.moved_from is not None:
            self.purchases.pop(write.moved_from, None)
        if write.purchase is None:
            self.purchases.pop(write.address, None)
        elif not isinstance(write.purchase, Keep):
            self.purchases[write.address] = write.purchase
        if write.pending is None:
            self.pending.pop(write.address, None)
        elif not isinstance(write.pending, Keep):
            self.pending[write.address] = write.pending
        self.lineage = write.lineage
        self.serial = write.serial
        return undo

    def undo(self, undo: Undo) -> None:
        """Take back the last write applied (undo in the reverse order of ``apply``)."""
        write = undo.write
        _put(self.purchases, write.address, undo.purchase)
        _put(self.pending, write.address, undo.pending)
        if write.moved_from is not None:
            _put(self.purchases, write.moved_from, undo.moved)
        self.lineage = undo.lineage
        self.serial = undo.serial

    def freeze(self) -> State:
        return State(
            lineage=self.lineage,
            serial=self.serial,
            purchases=dict(sorted(self.purchases.items())),
            pending=dict(sorted(self.pending.items())),
        )


class Ledger:
    """The rules every write obeys, applied to one locked run's tables.

    Each method checks a change against the current tables and returns the
    ``Write`` to persist; it changes nothing until ``apply`` is called with it.
    """

    def __init__(self, tables: Tables, location: str) -> None:
        self._tables = tables
        self._location = location
        # A state that was never written gets its lineage with its first write.
        self.lineage = tables.lineage or str(uuid.uuid4())

    @property
    def serial(self) -> int:
        return self._tables.serial

    def freeze(self) -> State:
        return self._tables.freeze()

    @property
    def tables(self) -> Tables:
        return self._tables

    def apply(self, write: Write) -> Undo:
        return self._tables.apply(write)

    def undo(self, undo: Undo) -> None:
        self._tables.undo(undo)

    def add_pending(self, op: PendingOperation) -> Write:
        existing = self._tables.pending.get(op.address)
        if existing is not None:
            raise StateError(
                f"{op.address} already has a pending operation (externalOrderId "
                f"{existing.external_order_id}); resolve it before starting another"
            )
        if op.update is not None:
            owner = self._tables.purchases.get(op.address)
            if owner is None or op.update.subscription not in owner.subscriptions:
                raise StateError(
                    f"cannot update subscription {op.update.subscription} for {op.address}: "
                    "the address does not own it"
                )
        return self._write("add_pending", op.address, pending=op)

    def record_checkout(self, address: str, identity: Identity, record: CheckoutRecord) -> Write:
        existing = self._tables.purchases.get(address)
        if record.subscription is not None:
            self._refuse_owned(address, (record.subscription,))
        if existing is None:
            purchase = RecordedPurchase.bought(address, identity, record)
        else:
            if existing.identity != identity:
                fields = ", ".join(existing.identity.differences(identity))
                raise StateError(
                    f"cannot record checkout {record.external_order_id} for {address}: "
                    f"the recorded purchase has a different {fields}"
                )
            if any(c.external_order_id == record.external_order_id for c in existing.checkouts):
                raise StateError(
                    f"checkout {record.external_order_id} is already recorded for {address}"
                )
            purchase = existing.with_checkout(record)
        pending = None if address in self._tables.pending else KEEP
        return self._write("record_checkout", address, purchase=purchase, pending=pending)

    def record_update(self, address: str, record: UpdateRecord) -> Write:
        """Record a PUT of one of the address's subscriptions that took effect, and drop
        the address's pending entry (the update's own)."""
        where = (
            f"cannot record the update of subscription {record.change.subscription} at {address}"
        )
        existing = self._tables.purchases.get(address)
        if existing is None:
            raise StateError(f"{where}: it is not recorded in {self._location}")
        if record.change.subscription not in existing.subscriptions:
            raise StateError(f"{where}: the address does not own that subscription")
        if existing.quantity + record.change.seats < 0:
            raise StateError(f"{where}: only {existing.quantity} seats are recorded")
        waiting = self._tables.pending.get(address)
        if waiting is not None and waiting.update != record.change:
            raise StateError(
                f"{where}: it has another pending operation ({waiting.external_order_id})"
            )
        pending = None if waiting is not None else KEEP
        purchase = existing.with_update(record)
        return self._write(
            "record_update", address, purchase=purchase, pending=pending, time=record.time
        )

    def link_subscriptions(self, address: str, links: Sequence[tuple[int, str | None]]) -> Write:
        """Record that ``address`` owns these subscriptions (each made by an unseen
        checkout of the address, or taken over); none may be another address's."""
        where = f"cannot record subscriptions at {address}"
        existing = self._tables.purchases.get(address)
        if existing is None:
            raise StateError(f"{where}: it is not recorded in {self._location}")
        if not links:
            raise StateError(f"{where}: no subscription given")
        self._refuse_owned(address, [sid for sid, _ in links])
        for _, order in links:
            if order is not None and order not in existing.unseen:
                raise StateError(
                    f"{where}: checkout {order} is not one of its checkouts waiting to be seen"
                )
        purchase = existing.with_links(links)
        if purchase == existing:
            raise StateError(f"{where}: it owns them already")
        return self._write("link_subscriptions", address, purchase=purchase)

    def _refuse_owned(self, address: str, ids: Sequence[int]) -> None:
        """A subscription belongs to one address at most."""
        wanted = set(ids)
        for other, purchase in self._tables.purchases.items():
            if other != address and wanted.intersection(purchase.subscriptions):
                taken = sorted(wanted.intersection(purchase.subscriptions))
                raise StateError(
                    f"subscription {taken[0]} is owned by {other} in {self._location}; "
                    f"it cannot be {address}'s too"
                )

    def remove_pending(self, address: str) -> Write:
        if address not in self._tables.pending:
            raise StateError(f"{address} has no pending operation in {self._location}")
        return self._write("remove_pending", address, pending=None)

    def remove_purchase(self, address: str) -> Write:
        if address not in self._tables.purchases:
            raise StateError(f"{address} is not recorded in {self._location}")
        return self._write("remove_purchase", address, purchase=None)

    def import_purchase(
        self,
        address: str,
        identity: Identity,
        quantity: int,
        time: str,
        subscriptions: Sequence[int] = (),
    ) -> Write:
        existing = self._tables.purchases.get(address)
        if existing is not None:
            raise StateError(
                f"{address} is already recorded in {self._location} "
                f"({existing.quantity} seats); remove it first to import it again"
            )
        self._refuse_owned(address, subscriptions)
        purchase = RecordedPurchase(
            address=address,
            identity=identity,
            quantity=quantity,
            subscriptions=tuple(dict.fromkeys(subscriptions)),
        )
        return self._write("import_purchase", address, purchase=purchase, time=time)

    def adjust_quantity(self, address: str, delta: int, time: str, evidence: str) -> Write:
        """Record seats changed outside the reconciler (``refresh``): an adjustment in
        the purchase's history, never a checkout."""
        where = f"cannot adjust {address}"
        existing = self._tables.purchases.get(address)
        if existing is None:
            raise StateError(f"{where}: it is not recorded in {self._location}")
        waiting = self._tables.pending.get(address)
        if waiting is not None:
            # The pending checkout's seats may be the very change seen: settle it first,
            # or they would be counted twice.
            raise StateError(
                f"{where}: it has a pending operation (externalOrderId "
                f"{waiting.external_order_id}); settle it first"
            )
        if delta == 0:
            raise StateError(f"{where}: an adjustment of 0 seats changes nothing")
        if existing.quantity + delta < 0:
            raise StateError(f"{where} by {delta:+d}: only {existing.quantity} seats are recorded")
        purchase = existing.with_adjustment(Adjustment(delta, time, REFRESH_SOURCE, evidence))
        return self._write("adjust_quantity", address, purchase=purchase, time=time)

    def move_purchase(self, source: str, target: str) -> Write:
        where = f"cannot move {source} to {target}"
        existing = self._tables.purchases.get(source)
        if existing is None:
            raise StateError(f"{where}: {source} is not recorded in {self._location}")
        if target in self._tables.purchases:
            raise StateError(f"{where}: {target} is already recorded in {self._location}")
        waiting = self._tables.pending.get(source)
        if waiting is not None:
            # The pending checkout would be recorded at the old address; moving now
            # would split one purchase over two addresses.
            raise StateError(
                f"{where}: {source} has a pending operation (externalOrderId "
                f"{waiting.external_order_id}); resolve it first"
            )
        purchase = replace(existing, address=target)
        return self._write("move_purchase", target, purchase=purchase, moved_from=source)

    def _write(
        self,
        op: str,
        address: str,
        *,
        purchase: RecordedPurchase | Keep | None = KEEP,
        pending: PendingOperation | Keep | None = KEEP,
        time: str | None = None,
        moved_from: str | None = None,
    ) -> Write:
        write = Write(
            lineage=self.lineage,
            serial=self._tables.serial + 1,
            op=op,
            address=address,
            purchase=purchase,
            pending=pending,
            time=time,
            moved_from=moved_from,
        )
        try:
            # Every store keeps only what the state format can hold: check it with
            # the format's own reader, so no backend accepts a record another refuses.
            entry = entry_line(write)
        except (Invalid, TypeError, ValueError) as exc:
            raise StateError(f"cannot record {op} of {address!r}: {exc}") from None
        return replace(write, entry=entry)
