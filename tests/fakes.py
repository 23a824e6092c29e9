"""Fakes of the reconciler's roles, for tests that need no files or network.

``InMemoryStateStore`` is a ``StateStore`` that keeps the state in memory and
obeys the same ledger as every real store, so it passes the state contract
suite (``tests/test_state_contract.py``); the executor's tests use it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from reconciler.errors import StateLockedError
from reconciler.model import State
from reconciler.state import StateWriter
from reconciler.state.ledger import Ledger, LedgerWriter, PersistError, Tables
from reconciler.state.writes import Write


class InMemoryStateStore:
    """A state in memory; ``fail_writes`` makes every later persist fail like a full disk."""

    def __init__(self, location: str = "memory://state") -> None:
        self._location = location
        self._tables = Tables(State(lineage=""))
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
            return self._tables.freeze()

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

    def _persist(self, write: Write) -> None:
        if self.fail_writes:
            raise PersistError(
                f"cannot write {self._location}: No space left on device", "No space left on device"
            )
        with self._data:
            self._tables.apply(write)
            self.writes.append(write)
