"""The roles the rest of the reconciler codes against: ``StateStore`` and ``StateWriter``.

A store only persists and locks; the write rules live in ``ledger``, which every
store uses (terraform's ``statemgr``: Full = Storage + Locker). This module
defines the protocols and the state's clock format; it performs no I/O.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

from reconciler.model import CheckoutRecord, Identity, PendingOperation, State, UpdateRecord


def utc_now() -> str:
    """The current time as the state records it: UTC ISO-8601, e.g. ``2026-11-26T19:00:00Z``."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class StateWriter(Protocol):
    """Writes to a locked state; every method is one durable write. Thread-safe."""

    @property
    def state(self) -> State:
        """The current state, including every write made so far."""
        ...

    def add_pending(self, op: PendingOperation) -> None:
        """Record a checkout or update whose outcome is not known yet (one per address)."""
        ...

    def record_checkout(self, address: str, identity: Identity, record: CheckoutRecord) -> None:
        """Add a successful checkout's seats to ``address`` and drop its pending entry."""
        ...

    def record_update(self, address: str, record: UpdateRecord) -> None:
        """Record a PUT that took effect at ``address`` (its seats change by the
        update's) and drop its pending entry."""
        ...

    def link_subscriptions(self, address: str, links: Sequence[tuple[int, str | None]]) -> None:
        """Record that ``address`` owns these subscriptions; each ``(subscription,
        order)`` names the unseen checkout (externalOrderId) that made it, or None."""
        ...

    def remove_pending(self, address: str) -> None:
        """Forget the pending entry of ``address``."""
        ...

    def remove_purchase(self, address: str) -> None:
        """Forget the recorded purchase at ``address``."""
        ...

    def import_purchase(
        self,
        address: str,
        identity: Identity,
        quantity: int,
        time: str,
        *,
        subscriptions: Sequence[int] = (),
    ) -> None:
        """Record seats bought outside the reconciler (no checkout record), held in
        ``subscriptions`` when they are known."""
        ...

    def move_purchase(self, source: str, target: str) -> None:
        """Move the recorded purchase at ``source``, with every checkout, to ``target``."""
        ...

    def adjust_quantity(self, address: str, delta: int, time: str, evidence: str) -> None:
        """Record ``delta`` seats changed outside the reconciler at ``address`` (an
        adjustment with its evidence, never a checkout); the total stays >= 0."""
        ...


class StateStore(Protocol):
    """Where the state lives."""

    @property
    def location(self) -> str:
        """The state's location as shown to users (never with a password)."""
        ...

    def load(self) -> State:
        """The current state. Never takes or waits for the lock.

        A state that was never created is an error naming ``reconciler init``:
        a missing state must never read as "nothing bought yet".
        """
        ...

    def exists(self) -> bool:
        """Whether the state was created."""
        ...

    def create(self, state: State | None = None) -> bool:
        """Create an empty state with a new lineage (False, changing nothing, if one
        exists), or with ``state`` a copy of it into a target that is missing or empty."""
        ...

    def lock(self, command: str) -> AbstractContextManager[StateWriter]:
        """Hold the state's exclusive lock for a run of ``command``; fails at once if held."""
        ...

    def locked_by(self) -> str | None:
        """Who holds the lock right now (pid, host, command, since), or None.

        Never takes or waits for the lock: ``plan`` asks it to tell pending entries of
        a running apply (its checkouts in flight) from ones a run left behind.
        """
        ...


@runtime_checkable
class KeepsHistory(Protocol):
    """A store that keeps an append-only history of its writes (the PostgreSQL store)."""

    def history(self) -> list[dict[str, Any]]:
        """Every write, oldest first: serial, op, address, written_at, run, entry."""
        ...

    def import_history(self, entries: list[dict[str, Any]]) -> None:
        """Append history copied from another store (``state migrate``)."""
        ...
