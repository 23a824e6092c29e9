"""Fakes of the reconciler's roles, for tests that need no files or network.

``InMemoryStateStore`` is a ``StateStore`` that keeps the state in memory and
obeys the same ledger as every real store (its writer comes from
``locked_writer``, its lock waits through ``wait_for_lock``), so it passes the
state contract suite (``tests/test_state_contract.py``); the executor's tests use it.
``FakeIssue`` is an error verify reports, ``FakeCatalogueEntry`` a product's name
and price as the renderers take them.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from reconciler.errors import StateError
from reconciler.model import State
from reconciler.state import StateWriter
from reconciler.state.ledger import Persistence, PersistError, locked_writer
from reconciler.state.locking import (
    Acquired,
    Held,
    LockHolder,
    OnWait,
    run_description,
    wait_for_lock,
)
from reconciler.state.rules import Tables
from reconciler.state.writes import Write


@dataclass
class _Memory:
    """What every handle on one in-memory state shares."""

    tables: Tables | None = None
    data: threading.Lock = field(default_factory=threading.Lock)
    lock: threading.Lock = field(default_factory=threading.Lock)
    holder: LockHolder | None = None
    writes: list[Write] = field(default_factory=list)
    fail_writes: bool = False


class InMemoryStateStore:
    """A state in memory; ``fail_writes`` makes every later persist fail like a full disk."""

    def __init__(
        self,
        location: str = "memory://state",
        *,
        lock_timeout: float = 0.0,
        on_wait: OnWait | None = None,
    ) -> None:
        self._location = location
        self._memory = _Memory()
        self._lock_timeout = lock_timeout
        self._on_wait = on_wait

    def handle(
        self, *, lock_timeout: float = 0.0, on_wait: OnWait | None = None
    ) -> InMemoryStateStore:
        """Another handle on the same state, as another run would open it."""
        other = InMemoryStateStore(self._location, lock_timeout=lock_timeout, on_wait=on_wait)
        other._memory = self._memory
        return other

    @property
    def location(self) -> str:
        return self._location

    @property
    def writes(self) -> list[Write]:
        """Every write persisted, by any handle, in order."""
        return self._memory.writes

    @property
    def fail_writes(self) -> bool:
        return self._memory.fail_writes

    @fail_writes.setter
    def fail_writes(self, value: bool) -> None:
        self._memory.fail_writes = value

    def load(self) -> State:
        with self._memory.data:
            return self._created().freeze()

    def exists(self) -> bool:
        return self._memory.tables is not None

    def create(self, state: State | None = None) -> bool:
        with self._memory.data:
            if self._memory.tables is not None:
                current = self._memory.tables
                if state is None:
                    return False
                if current.serial or current.purchases or current.pending:
                    raise StateError(f"{self._location} already holds a state")
            self._memory.tables = Tables(state or State(lineage=str(uuid.uuid4())))
            return True

    def _created(self) -> Tables:
        if self._memory.tables is None:
            raise StateError(
                f"no state at {self._location}; run 'reconciler init' to start an empty one"
            )
        return self._memory.tables

    @contextlib.contextmanager
    def lock(self, command: str) -> Iterator[StateWriter]:
        memory = self._memory

        def try_once() -> Acquired[None] | Held:
            if memory.lock.acquire(blocking=False):
                return Acquired(None)
            return Held(memory.holder)

        wait_for_lock(try_once, timeout=self._lock_timeout, on_wait=self._on_wait)
        memory.holder = LockHolder.from_description(run_description(command))
        try:
            with locked_writer(Tables(self.load()), self._location, _Kept(self)) as writer:
                yield writer
        finally:
            memory.holder = None
            memory.lock.release()

    def locked_by(self) -> str | None:
        holder = self._memory.holder
        return holder.describe() if holder is not None else None


class _Kept(Persistence):
    """Writes kept in memory, or refused like a full disk."""

    def __init__(self, store: InMemoryStateStore) -> None:
        self._store = store

    def persist(self, batch: Sequence[Write]) -> None:
        store = self._store
        if store.fail_writes:
            raise PersistError(
                f"cannot write {store.location}: No space left on device",
                "No space left on device",
            )
        with store._memory.data:
            for write in batch:
                store._created().apply(write)
                store.writes.append(write)


@dataclass(frozen=True)
class FakeIssue:
    """An error of a verified order (``render.Issue``)."""

    code: str
    description: str


@dataclass(frozen=True)
class FakeCatalogueEntry:
    """A catalogue entry as the renderers take one (``render.CatalogueEntry``)."""

    name: str | None
    unit_price: Decimal | None
    currency: str | None
