"""Group commit: parallel workers share fsyncs and transactions, and no checkout is ever
sent before its own pending entry is durable (the pending write comes before the checkout).

Each test applies with ``--parallelism`` through the real CLI against the simulator on
a loopback socket, and watches both sides of the ordering at once:

- what is durable: for the state file, the journal's lines as they were when an fsync
  of it began, counted only once that fsync returned; for PostgreSQL, the pending row
  as a second connection sees it, which is only after its transaction committed;
- what was sent: the simulator, the moment a checkout's body has arrived.

A checkout whose externalOrderId is not yet among the durable pending entries is a
violation. The tests also check that writes really were shared (fewer fsyncs or
commits than writes), so they exercise the batching they guard.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.errors import StateError
from reconciler.model import CheckoutRecord, Identity, PendingOperation, State
from reconciler.simulator import Simulator, server
from reconciler.state import JsonFileStateStore
from reconciler.state.ledger import LedgerWriter, PersistError
from reconciler.state.rules import Ledger, Tables
from reconciler.state.writes import Write
from tests.support.declarations import LICENCE_TENANT, declare_licences


class Watch:
    """The externalOrderIds whose pending entry is durable, and the checkouts that
    arrived before theirs was."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.durable: set[str] = set()
        self.sent: list[str] = []
        self.violations: list[str] = []

    def made_durable(self, order_ids: set[str]) -> None:
        with self.lock:
            self.durable |= order_ids

    def checkout_arrived(self, order_id: str) -> None:
        with self.lock:
            self.sent.append(order_id)
            if order_id not in self.durable:
                self.violations.append(order_id)


def watch_checkouts(monkeypatch: pytest.MonkeyPatch, arrived: Callable[[str], None]) -> None:
    """Call ``arrived(externalOrderId)`` the moment a checkout's body has reached the
    simulator, before its latency and before it is recorded."""
    read_body = server._read_body

    def observed(handler: BaseHTTPRequestHandler) -> bytes:
        body = read_body(handler)
        if handler.path.endswith("/checkout"):
            arrived(str(json.loads(body)["externalOrderId"]))
        return body

    monkeypatch.setattr(server, "_read_body", observed)


def count_batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the size of every batch a state writer persists."""
    sizes: list[int] = []
    persist_batch = LedgerWriter._persist_batch

    def counted(self: LedgerWriter, batch: list[Any]) -> None:
        sizes.append(len(batch))
        persist_batch(self, batch)

    monkeypatch.setattr(LedgerWriter, "_persist_batch", counted)
    return sizes


def apply(decl: Path, state: str, sim: Simulator, parallelism: int) -> None:
    result = CliRunner().invoke(
        cli,
        ["apply", str(decl), "--state", state, "--auto-approve", "--parallelism", str(parallelism)],
        env=sim.env(),
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output


def pending_ids_in(journal: bytes) -> set[str]:
    """The externalOrderIds of the add_pending lines of a journal."""
    found = set()
    for line in journal.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut short by a concurrent append is not complete yet
        if entry.get("op") == "add_pending":
            found.add(entry["pending"]["externalOrderId"])
    return found


def test_file_state_no_checkout_is_sent_before_its_pending_line_is_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, simulator_factory: Callable[..., Simulator]
) -> None:
    sim = simulator_factory(latency=0.01, tenants={LICENCE_TENANT})
    decl = declare_licences(tmp_path, 48)
    state = tmp_path / "state.json"
    assert JsonFileStateStore(state).create()
    journal = Path(str(state) + ".journal")
    watch = Watch()
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        # The lines present when the fsync begins are durable once it returns.
        is_journal = os.readlink(f"/proc/self/fd/{fd}") == str(journal)
        lines = journal.read_bytes() if is_journal else b""
        real_fsync(fd)
        if is_journal:
            watch.made_durable(pending_ids_in(lines))

    monkeypatch.setattr(os, "fsync", fsync)
    watch_checkouts(monkeypatch, watch.checkout_arrived)
    batches = count_batches(monkeypatch)

    apply(decl, str(state), sim, parallelism=8)

    assert len(watch.sent) == 48
    assert watch.violations == []
    # 48 pending writes and 48 recorded checkouts, in fewer fsyncs than writes.
    assert sum(batches) == 96
    assert max(batches) > 1
    assert len(batches) < 96
    assert len(JsonFileStateStore(state).load().purchases) == 48


def test_postgres_state_no_checkout_is_sent_before_its_pending_row_is_committed(
    pg_database: str,
    monkeypatch: pytest.MonkeyPatch,
    simulator_factory: Callable[..., Simulator],
    tmp_path: Path,
) -> None:
    import psycopg

    sim = simulator_factory(latency=0.01, tenants={LICENCE_TENANT})
    decl = declare_licences(tmp_path, 48)
    init = CliRunner().invoke(cli, ["init", "--state", pg_database], catch_exceptions=False)
    assert init.exit_code == 0, init.output
    watch = Watch()
    observer = psycopg.connect(pg_database, autocommit=True)
    seen = threading.Lock()

    def committed(order_id: str) -> None:
        # Another session sees the pending row only once its transaction committed.
        with seen:
            row = observer.execute(
                "SELECT count(*) FROM reconciler.pending WHERE external_order_id = %s",
                (order_id,),
            ).fetchone()
        if row is not None and row[0] == 1:
            watch.made_durable({order_id})
        watch.checkout_arrived(order_id)

    watch_checkouts(monkeypatch, committed)
    batches = count_batches(monkeypatch)
    try:
        apply(decl, pg_database, sim, parallelism=8)
    finally:
        observer.close()

    assert len(watch.sent) == 48
    assert watch.violations == []
    assert sum(batches) == 96
    assert max(batches) > 1
    assert len(batches) < 96


# --------------------------------------------------------------------------- the writer alone

IDENTITY = Identity(LICENCE_TENANT, "CFQ7TTC0LF8R", "0010", "monthly", "P1M")


def held_writer(first: Callable[[Sequence[Write]], None]) -> tuple[LedgerWriter, list[list[str]]]:
    """A writer whose first batch runs ``first`` (which may block or fail) and whose
    later batches succeed; returns it and the addresses of each batch persisted."""
    persisted: list[list[str]] = []

    def persist(batch: Sequence[Write]) -> None:
        if not persisted:
            persisted.append([w.address for w in batch])
            first(batch)
        else:
            persisted.append([w.address for w in batch])

    ledger = Ledger(Tables(State(lineage="4b0c3c6e-6c3e-4f5e-9a53-2c1f0d6a7b11")), "memory")
    return LedgerWriter(ledger, persist, "memory"), persisted


def pending(address: str) -> PendingOperation:
    return PendingOperation(address, IDENTITY, f"order-{address}", 1, "2026-11-27T00:00:00Z")


def write_from_threads(writer: LedgerWriter, addresses: list[str]) -> dict[str, BaseException]:
    errors: dict[str, BaseException] = {}

    def one(address: str) -> None:
        try:
            writer.add_pending(pending(address))
        except BaseException as exc:  # collected for the test to judge
            errors[address] = exc

    threads = [threading.Thread(target=one, args=(a,)) for a in addresses]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return errors


def wait_for_queue(writer: LedgerWriter, size: int) -> None:
    for _ in range(1000):
        if writer.state.serial == size:
            return
        threading.Event().wait(0.005)
    raise AssertionError(f"{size} writes never queued")


def test_writers_arriving_during_a_sync_share_the_next_one() -> None:
    release = threading.Event()
    writer, persisted = held_writer(lambda batch: release.wait(10) or None)
    leader = threading.Thread(target=writer.add_pending, args=(pending("acme/a"),))
    leader.start()
    wait_for_queue(writer, 1)
    followers = threading.Thread(
        target=write_from_threads, args=(writer, ["acme/b", "acme/c", "acme/d"])
    )
    followers.start()
    wait_for_queue(writer, 4)  # three more queued while the first sync is held
    release.set()
    leader.join(10)
    followers.join(10)
    assert persisted[0] == ["acme/a"]
    assert sorted(persisted[1]) == ["acme/b", "acme/c", "acme/d"]
    assert writer.batches == 2
    assert sorted(writer.state.pending) == ["acme/a", "acme/b", "acme/c", "acme/d"]


def test_a_failed_batch_fails_every_write_queued_behind_it_and_is_taken_back() -> None:
    release = threading.Event()

    def fail(batch: Sequence[Write]) -> None:
        release.wait(10)
        raise PersistError("cannot write memory: No space left on device", "No space left")

    writer, persisted = held_writer(fail)
    errors: dict[str, BaseException] = {}
    leader = threading.Thread(target=lambda: errors.update(write_from_threads(writer, ["acme/a"])))
    leader.start()
    wait_for_queue(writer, 1)
    followers = threading.Thread(
        target=lambda: errors.update(write_from_threads(writer, ["acme/b", "acme/c"]))
    )
    followers.start()
    wait_for_queue(writer, 3)
    release.set()
    leader.join(10)
    followers.join(10)
    # Not one of them returned as if durable: no checkout may follow any of them.
    assert sorted(errors) == ["acme/a", "acme/b", "acme/c"]
    assert all(isinstance(e, PersistError) for e in errors.values())
    assert persisted == [["acme/a"]]
    assert writer.uncertain
    assert writer.state.serial == 0
    assert writer.state.pending == {}
    with pytest.raises(StateError, match=r"an earlier write to memory failed \(No space left\)"):
        writer.add_pending(pending("acme/d"))


def test_closing_waits_for_the_batch_in_flight_and_takes_back_what_is_queued() -> None:
    # The lock is being released (a worker failed, Ctrl-C) while another worker's
    # batch is being persisted and a third write is queued behind it.
    release = threading.Event()
    writer, persisted = held_writer(lambda batch: release.wait(10) or None)
    errors: dict[str, BaseException] = {}
    leader = threading.Thread(target=lambda: errors.update(write_from_threads(writer, ["acme/a"])))
    leader.start()
    wait_for_queue(writer, 1)
    follower = threading.Thread(
        target=lambda: errors.update(write_from_threads(writer, ["acme/b"]))
    )
    follower.start()
    wait_for_queue(writer, 2)
    closed = threading.Event()
    closer = threading.Thread(target=lambda: writer.close() and closed.set())
    closer.start()
    assert not closed.wait(0.2)  # not while acme/a is being made durable
    release.set()
    for thread in (leader, follower, closer):
        thread.join(10)
    assert closed.is_set()
    assert persisted == [["acme/a"]]  # acme/b never reached storage
    assert sorted(errors) == ["acme/b"]
    assert isinstance(errors["acme/b"], PersistError)
    assert "lock was released" in str(errors["acme/b"])
    # The ledger is what is durable, so a store may fold it into storage.
    assert sorted(writer.state.pending) == ["acme/a"]
    assert not writer.uncertain


def test_a_state_file_released_during_a_batch_keeps_every_acknowledged_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state.json"
    store = JsonFileStateStore(state)
    assert store.create()
    journal = str(state) + ".journal"
    real_fsync = os.fsync
    in_fsync, release = threading.Event(), threading.Event()

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}") == journal and not in_fsync.is_set():
            lines = Path(journal).read_bytes().count(b"\n")
            if lines == 3:  # acme/b's line, after acme/a's two acknowledged writes
                in_fsync.set()
                release.wait(10)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    errors: dict[str, BaseException] = {}
    with store.lock("reconciler apply") as writer:
        assert isinstance(writer, LedgerWriter)
        writer.add_pending(pending("acme/a"))
        writer.record_checkout(
            "acme/a", IDENTITY, CheckoutRecord("order-acme/a", 1, "2026-11-27T00:00:01Z")
        )
        leader = threading.Thread(
            target=lambda: errors.update(write_from_threads(writer, ["acme/b"]))
        )
        leader.start()
        assert in_fsync.wait(10)
        follower = threading.Thread(
            target=lambda: errors.update(write_from_threads(writer, ["acme/c"]))
        )
        follower.start()
        wait_for_queue(writer, 4)
        threading.Timer(0.2, release.set).start()
        # Leaving the block releases the lock while acme/b is being fsynced.
    leader.join(10)
    follower.join(10)
    assert sorted(errors) == ["acme/c"]
    loaded = JsonFileStateStore(state).load()  # compacted, loads, nothing lost
    assert "acme/a" in loaded.purchases
    assert sorted(loaded.pending) == ["acme/b"]
    assert not Path(journal).exists()
