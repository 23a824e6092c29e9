"""The ``StateWriter`` every store hands out, over the write rules of ``rules``.

``LedgerWriter`` asks the ledger (``rules.Ledger``: every write rule once) for a
write and returns once the store has persisted it durably, sharing one fsync or
transaction among the writes of parallel workers (group commit). After a failed
persist it writes nothing more in that run, because the store can no longer say
what is durable.

``locked_writer`` is the one way a store builds its writer for a locked run: the
store gives the state it read under the lock and a ``Persistence`` (how a batch
becomes durable, and what to do before the first write and after the last).

This module never touches storage: stores pass their ``Persistence`` in.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence

from reconciler.errors import StateError
from reconciler.model import CheckoutRecord, Identity, PendingOperation, State, UpdateRecord
from reconciler.state.rules import Ledger, Tables, Undo
from reconciler.state.writes import Write

__all__ = [
    "LedgerWriter",
    "PersistError",
    "Persistence",
    "locked_writer",
]


class PersistError(StateError):
    """A store could not make a write durable; ``reason`` is the short cause."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class LedgerWriter:
    """The ``StateWriter`` of a locked store: ledger rules, then ``persist``, then return.

    Group commit: a write is checked by the ledger and queued under the mutex, then
    its caller waits until it is durable. One caller at a time persists (the
    leader): it takes every write queued so far and hands them to ``persist`` as one
    batch (one fsync, one transaction), outside the mutex, so writers that arrive
    meanwhile queue for the next batch instead of each paying for a sync of its own.
    No call returns before its own write is durable: an ``add_pending`` returns (and
    its checkout may be sent) only after the batch holding it was persisted.

    The ledger takes each write when it is queued, so the next one is checked
    against it and gets the next serial. When a batch fails, it and every write
    queued after it raise ``PersistError`` and are taken back from the ledger
    (which then holds what was acknowledged), nothing more is written in the run,
    and the writer is ``uncertain``: storage may hold more than the ledger.
    """

    def __init__(
        self,
        ledger: Ledger,
        persist: Callable[[Sequence[Write]], None],
        location: str,
        *,
        before_first_write: Callable[[State], None] | None = None,
        after_close: Callable[[Tables, bool], None] | None = None,
    ) -> None:
        self._ledger = ledger
        self._persist = persist
        self._before_first = before_first_write
        self._after_close = after_close
        self._location = location
        self._start_serial = ledger.serial
        self._mutex = threading.Lock()
        self._synced = threading.Condition(self._mutex)
        self._queue: list[Write] = []
        #: Every write the ledger took that is not durable yet, to take back if it fails.
        self._staged: list[Undo] = []
        self._durable = ledger.serial
        #: Whether a batch is being persisted, and by which thread.
        self._syncing = False
        self._leader: int | None = None
        self._snapshot: State | None = None
        self._closed = False
        self._failure: PersistError | None = None
        #: A write failed or was interrupted after it may have reached storage: what is
        #: durable may be ahead of (or behind) the ledger, so a store must not rewrite
        #: from the ledger.
        self.uncertain = False
        #: How many batches were persisted (each one fsync or transaction).
        self.batches = 0

    @property
    def state(self) -> State:
        with self._mutex:
            if self._snapshot is None:
                self._snapshot = self._ledger.freeze()
            return self._snapshot

    @property
    def written(self) -> bool:
        """Whether this writer made any write."""
        return self._ledger.serial != self._start_serial

    def add_pending(self, op: PendingOperation) -> None:
        self._commit(lambda: self._ledger.add_pending(op))

    def record_checkout(self, address: str, identity: Identity, record: CheckoutRecord) -> None:
        self._commit(lambda: self._ledger.record_checkout(address, identity, record))

    def remove_pending(self, address: str) -> None:
        self._commit(lambda: self._ledger.remove_pending(address))

    def remove_purchase(self, address: str) -> None:
        self._commit(lambda: self._ledger.remove_purchase(address))

    def import_purchase(
        self,
        address: str,
        identity: Identity,
        quantity: int,
        time: str,
        *,
        subscriptions: Sequence[int] = (),
    ) -> None:
        self._commit(
            lambda: self._ledger.import_purchase(address, identity, quantity, time, subscriptions)
        )

    def record_update(self, address: str, record: UpdateRecord) -> None:
        self._commit(lambda: self._ledger.record_update(address, record))

    def link_subscriptions(self, address: str, links: Sequence[tuple[int, str | None]]) -> None:
        self._commit(lambda: self._ledger.link_subscriptions(address, links))

    def move_purchase(self, source: str, target: str) -> None:
        self._commit(lambda: self._ledger.move_purchase(source, target))

    def adjust_quantity(self, address: str, delta: int, time: str, evidence: str) -> None:
        self._commit(lambda: self._ledger.adjust_quantity(address, delta, time, evidence))

    def close(self) -> bool:
        """Refuse every later write; True the first time (the caller then finishes up).

        A batch another thread is persisting is waited for, and writes queued behind
        it are taken back (their writers raise ``PersistError``; nothing of theirs
        reached storage), so that when this returns the ledger holds what is durable
        and nothing writes any more: the store may fold the ledger into storage.
        """
        with self._mutex:
            if self._closed:
                return False
            self._closed = True
            while self._syncing and self._leader != threading.get_ident():
                self._synced.wait()
            if self._syncing:
                # This thread was the leader and was interrupted around its persist
                # (Ctrl-C): what reached storage is unknown.
                self._syncing = False
                self._fail(_interrupted(self._location), uncertain=True)
            elif self._staged:
                reason = "the lock was released before it was made durable"
                message = f"a write to {self._location} was not made: {reason}"
                self._fail(PersistError(message, reason), uncertain=False)
            return True

    def finish(self) -> None:
        """Close the writer, then, the first time, let the store finish up (fold its
        journal, say what was not made durable) with the tables as acknowledged."""
        if self.close() and self._after_close is not None:
            self._after_close(self._ledger.tables, self.uncertain)

    def _fail(self, failure: PersistError, *, uncertain: bool) -> None:
        """Under the mutex: take back every write not yet durable, refuse later ones,
        and wake the writers waiting for theirs (they raise ``failure``)."""
        for undo in reversed(self._staged):
            self._ledger.undo(undo)
        self._staged.clear()
        self._queue.clear()
        self._snapshot = None
        self._failure = failure
        self.uncertain = self.uncertain or uncertain
        self._synced.notify_all()

    def _before_first_write(self) -> None:
        """Called once, under the mutex, before the ledger takes the run's first write."""
        if self._before_first is not None:
            self._before_first(self._ledger.freeze())

    def _commit(self, make: Callable[[], Write]) -> None:
        with self._mutex:
            if self._closed:
                raise StateError(
                    f"the lock on {self._location} was released; this writer cannot write"
                )
            self._refuse_after_failure()
            write = make()
            if self._ledger.serial == self._start_serial:
                self._before_first_write()
            self._staged.append(self._ledger.apply(write))
            self._queue.append(write)
            self._snapshot = None
        self._wait_durable(write.serial)

    def _refuse_after_failure(self) -> None:
        if self._failure is not None:
            raise StateError(
                f"an earlier write to {self._location} failed ({self._failure.reason}); "
                "no further writes are made in this run"
            )

    def _wait_durable(self, serial: int) -> None:
        """Return once the write numbered ``serial`` is durable; persist batches meanwhile."""
        while True:
            with self._mutex:
                # While closing, no new batch starts: close() takes this write back.
                while (
                    (self._syncing or self._closed)
                    and self._durable < serial
                    and self._failure is None
                ):
                    self._synced.wait()
                if self._durable >= serial:
                    return
                if self._failure is not None:
                    # This write was in the failed batch or queued after it.
                    raise PersistError(str(self._failure), self._failure.reason)
                batch, self._queue = self._queue, []
                assert batch, "a write not yet durable is queued until a batch takes it"
                self._syncing = True
                self._leader = threading.get_ident()
            self._persist_batch(batch)

    def _persist_batch(self, batch: list[Write]) -> None:
        """Persist ``batch`` as the leader; wake every writer waiting for it."""
        failure: PersistError | None = None
        try:
            self._persist(batch)
        except PersistError as exc:
            failure = exc
            raise
        except BaseException:
            # Interrupted around a persist (Ctrl-C, a bug): the batch may be durable or
            # not, so nothing more may be written and storage must not be rewritten
            # from the ledger.
            failure = _interrupted(self._location)
            raise
        finally:
            with self._mutex:
                self._syncing = False
                if failure is None:
                    self._durable = batch[-1].serial
                    del self._staged[: len(batch)]
                    self.batches += 1
                    self._synced.notify_all()
                else:
                    # The ledger goes back to what was acknowledged; storage may hold more.
                    self._fail(failure, uncertain=True)


class Persistence:
    """A store's part of a locked run: how its writes become durable.

    ``persist`` makes a batch of writes durable in one fsync or transaction, or
    raises ``PersistError``; ``before_first_write`` is told the state as it was
    before the run's first write; ``finish`` runs once after the writer is closed
    (nothing writes any more), with the tables as acknowledged and whether storage
    may hold more than they do (``uncertain``). It may raise ``StateError``.
    """

    def persist(self, batch: Sequence[Write]) -> None:
        raise NotImplementedError

    def before_first_write(self, state: State) -> None:
        """Nothing by default."""

    def finish(self, tables: Tables, *, uncertain: bool) -> None:
        """Nothing by default."""


@contextlib.contextmanager
def locked_writer(
    tables: Tables, location: str, persistence: Persistence
) -> Iterator[LedgerWriter]:
    """The ``StateWriter`` of a locked run over ``tables`` (the state the store read
    under its lock), writing through ``persistence``; closed, and finished, on the way
    out. A ``StateError`` from finishing after an error is added to that error as a
    note, so the run's own failure stays the one reported."""
    writer = LedgerWriter(
        Ledger(tables, location),
        persistence.persist,
        location,
        before_first_write=persistence.before_first_write,
        after_close=lambda done, uncertain: persistence.finish(done, uncertain=uncertain),
    )
    try:
        yield writer
    except BaseException as exc:
        try:
            writer.finish()
        except StateError as finishing:
            exc.add_note(str(finishing))
        raise
    writer.finish()


def _interrupted(location: str) -> PersistError:
    return PersistError(f"a write to {location} was interrupted", "interrupted during a write")
