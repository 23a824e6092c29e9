"""Fakes of the reconciler's roles, for tests that need no files or network.

``InMemoryStateStore`` is a ``StateStore`` that keeps the state in memory and
obeys the same ledger as every real store, so it passes the state contract
suite (``tests/test_state_contract.py``); the executor's tests use it.
``FakeIssue`` is an error verify reports, ``FakeCatalogueEntry`` a product's name
and price as the renderers take them.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal

from reconciler.errors import StateError, StateLockedError
from reconciler.model import State
from reconciler.state import StateWriter
from reconciler.state.ledger import Ledger, LedgerWriter, PersistError, Tables
from reconciler.state.writes import Write


class InMemoryStateStore:
    """A state in memory; ``fail_writes`` makes every later persist fail like a full disk."""

    def __init__(self, location: str = "memory://state") -> None:
        self._location = location
        self._tables: Tables | None = None
        self._data = threading.Lock()
        self._lock = threading.Lock()
        self._holder = ""
        self.writes: list[Write] = []
        self.fail_writes = False

    @property
    def location(self) -> str:
        return self._location

    def load(self) -> State:
        with self._data:
            return self._created().freeze()

    def exists(self) -> bool:
        return self._tables is not None

    def create(self, state: State | None = None) -> bool:
        with self._data:
            if self._tables is not None:
                current = self._tables
                if state is None:
                    return False
                if current.serial or current.purchases or current.pending:
                    raise StateError(f"{self._location} already holds a state")
            self._tables = Tables(state or State(lineage=str(uuid.uuid4())))
            return True

    def _created(self) -> Tables:
        if self._tables is None:
            raise StateError(
                f"no state at {self._location}; run 'reconciler init' to start an empty one"
            )
        return self._tables

    @contextlib.contextmanager
    def lock(self, command: str) -> Iterator[StateWriter]:
        if not self._lock.acquire(blocking=False):
            raise StateLockedError(
                f"state is locked by {self._holder!r} in this process: "
                "another run is in progress; wait for it to finish"
            )
        self._holder = command
        try:
            writer = LedgerWriter(
                Ledger(Tables(self.load()), self._location), self._persist, self._location
            )
            try:
                yield writer
            finally:
                writer.close()
        finally:
            self._holder = ""
            self._lock.release()

    def locked_by(self) -> str | None:
        return repr(self._holder) if self._lock.locked() else None

    def _persist(self, batch: Sequence[Write]) -> None:
        if self.fail_writes:
            raise PersistError(
                f"cannot write {self._location}: No space left on device", "No space left on device"
            )
        with self._data:
            for write in batch:
                self._created().apply(write)
                self.writes.append(write)


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
