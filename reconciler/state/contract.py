"""The state contract: the test suite every ``StateStore`` passes, importable.

A store only persists and locks; these tests hold it to the rules of the ledger,
to durability (an acknowledged write is visible to a new handle at once) and to
locking (a held lock is refused naming its holder; ``--lock-timeout`` waits for
it through ``wait_for_lock``). A backend runs the suite with one fixture::

    from reconciler.state.contract import DurableStoreContract, Harness

    class TestMyStore(DurableStoreContract):
        @pytest.fixture
        def harness(self, tmp_path: Path) -> Harness:
            return Harness("mine", reopen=..., break_writes=..., location=...)

``StateStoreContract`` is the suite for any store; ``DurableStoreContract`` adds
what a store that outlives its process owes (a killed writer loses no
acknowledged write and never blocks the next run), run in a child process that
opens the location with ``open_store``.

This module imports pytest: only tests import it, never a command.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

import reconciler
from reconciler.errors import StateError, StateLockedError
from reconciler.model import (
    Adjustment,
    CheckoutRecord,
    Identity,
    PendingOperation,
    RecordedPurchase,
    SubscriptionChange,
    UpdateField,
    UpdateRecord,
)
from reconciler.state import locking
from reconciler.state.base import StateStore
from reconciler.state.filestore import JsonFileStateStore
from reconciler.state.locking import LockHolder, OnWait

T0 = "2026-11-26T19:00:00Z"
IDENTITY = Identity(111111, "CFQ7TTC0LF8R", "0010", "monthly", "P1M")
OTHER = Identity(222222, "CFQ7TTC0LH18", "0001", "annual", "P1Y", "software")


def pending(address: str, order: str, quantity: int) -> PendingOperation:
    return PendingOperation(address, IDENTITY, order, quantity, T0)


class Reopen(Protocol):
    """Another handle on the same state, as a new process would build it."""

    def __call__(
        self, *, lock_timeout: float = 0.0, on_wait: OnWait | None = None
    ) -> StateStore: ...


@dataclass
class Harness:
    """How the suite reaches one kind of store."""

    kind: str
    #: Another handle on the same state (a new process would build the same), waiting
    #: up to ``lock_timeout`` for its lock and telling ``on_wait`` while it waits.
    reopen: Reopen
    #: Make every later durable write of the store fail.
    break_writes: Callable[[], None]
    #: The --state value a child process opens, or None for stores that live in memory.
    location: str | None
    #: What the error of a write says once writes are broken (a regular expression).
    failure: str = "No space left on device"


def seed(store: StateStore) -> None:
    with store.lock("test") as writer:
        writer.record_checkout("acme/a", IDENTITY, CheckoutRecord("ord-1", 5, T0))
        writer.add_pending(pending("acme/p", "ord-2", 1))


T1 = "2026-11-27T08:30:00Z"
SAID = "processed order 1001 succeeded (the only unclaimed processed order of ...)"


class StateStoreContract:
    """The suite every store passes; a subclass provides the ``harness`` fixture."""

    @pytest.fixture
    def store(self, harness: Harness) -> StateStore:
        store = harness.reopen()
        assert store.create() is True
        return store

    def test_a_state_that_was_never_created_is_refused_naming_init(self, harness: Harness) -> None:
        store = harness.reopen()
        assert store.exists() is False
        message = f"no state at {store.location}; run 'reconciler init' to start an empty one"
        with pytest.raises(StateError) as loading:
            store.load()
        assert str(loading.value) == message
        with pytest.raises(StateError) as locking, store.lock("reconciler apply"):
            pytest.fail("locked a state that does not exist")
        assert str(locking.value) == message

    def test_create_starts_an_empty_state_once(self, harness: Harness) -> None:
        store = harness.reopen()
        assert store.create() is True
        first = harness.reopen().load()
        assert (first.serial, first.purchases, first.pending) == (0, {}, {})
        assert first.lineage
        assert harness.reopen().create() is False
        assert harness.reopen().load() == first

    def test_create_from_a_state_copies_it_and_refuses_a_target_in_use(
        self, harness: Harness, tmp_path: Path
    ) -> None:
        source = JsonFileStateStore(tmp_path / "source.json")
        source.create()
        seed(source)
        copied = source.load()
        target = harness.reopen()
        assert target.create(copied) is True
        assert harness.reopen().load() == copied
        with pytest.raises(StateError, match="already holds a state"):
            harness.reopen().create(copied)

    # --- writes and what they leave ----------------------------------------------------

    def test_every_write_kind_is_visible_to_a_new_handle(
        self, harness: Harness, store: StateStore
    ) -> None:
        with store.lock("reconciler apply") as writer:
            writer.import_purchase("acme/imported", OTHER, 3, T0)
            writer.add_pending(pending("acme/a", "ord-1", 5))
            writer.record_checkout("acme/a", IDENTITY, CheckoutRecord("ord-1", 5, T0))
            writer.add_pending(pending("acme/gone", "ord-2", 2))
            writer.remove_pending("acme/gone")
            writer.add_pending(pending("acme/b", "ord-3", 4))
            writer.import_purchase("acme/dropped", IDENTITY, 1, T0)
            writer.remove_purchase("acme/dropped")
            during = harness.reopen().load()
            assert during == writer.state
        after = harness.reopen().load()
        assert after == during
        assert after.serial == 8
        assert after.purchases == {
            "acme/a": RecordedPurchase(
                "acme/a", IDENTITY, 5, (CheckoutRecord("ord-1", 5, T0),), unseen=("ord-1",)
            ),
            "acme/imported": RecordedPurchase("acme/imported", OTHER, 3),
        }
        assert after.pending == {"acme/b": pending("acme/b", "ord-3", 4)}

    def test_checkouts_add_up_and_clear_the_pending_entry(
        self, harness: Harness, store: StateStore
    ) -> None:
        with store.lock("reconciler apply") as writer:
            writer.record_checkout("acme/a", IDENTITY, CheckoutRecord("ord-1", 5, T0))
            writer.add_pending(pending("acme/a", "ord-2", 3))
            writer.record_checkout("acme/a", IDENTITY, CheckoutRecord("ord-2", 3, T0))
        recorded = harness.reopen().load()
        assert recorded.pending == {}
        assert recorded.purchases["acme/a"].quantity == 8
        assert [c.external_order_id for c in recorded.purchases["acme/a"].checkouts] == [
            "ord-1",
            "ord-2",
        ]

    def test_serial_counts_writes_and_lineage_is_set_once(
        self, harness: Harness, store: StateStore
    ) -> None:
        seed(store)
        first = harness.reopen().load()
        assert first.serial == 2
        assert first.lineage
        with store.lock("test") as writer:
            writer.remove_pending("acme/p")
        second = harness.reopen().load()
        assert (second.serial, second.lineage) == (3, first.lineage)

    @pytest.mark.parametrize(
        ("call", "message"),
        [
            (lambda w: w.remove_pending("acme/x"), "acme/x has no pending operation in {location}"),
            (lambda w: w.remove_purchase("acme/x"), "acme/x is not recorded in {location}"),
            (
                lambda w: w.import_purchase("acme/a", IDENTITY, 1, T0),
                "acme/a is already recorded in {location} (5 seats); remove it first to import "
                "it again",
            ),
            (
                lambda w: w.add_pending(pending("acme/p", "ord-9", 1)),
                "acme/p already has a pending operation (externalOrderId ord-2); "
                "resolve it before starting another",
            ),
            (
                lambda w: w.record_checkout("acme/a", OTHER, CheckoutRecord("ord-7", 1, T0)),
                "cannot record checkout ord-7 for acme/a: the recorded purchase has a different "
                "customerTenantId, productId, skuId, billingCycle, termDuration, type",
            ),
            (
                lambda w: w.record_checkout("acme/a", IDENTITY, CheckoutRecord("ord-1", 5, T0)),
                "checkout ord-1 is already recorded for acme/a",
            ),
            (
                lambda w: w.import_purchase("acme/n", IDENTITY, 0, T0),
                "cannot record import_purchase of 'acme/n': purchase.quantity: "
                "expected an integer >= 1, got 0",
            ),
            (
                lambda w: w.add_pending(PendingOperation("acme/q", IDENTITY, "", 1, T0)),
                "cannot record add_pending of 'acme/q': pending.externalOrderId: "
                'expected a non-empty string, got a string ""',
            ),
            (
                lambda w: w.import_purchase("acme/n", IDENTITY, 1, "yesterday"),
                "cannot record import_purchase of 'acme/n': time: "
                'expected a UTC time like 2026-11-26T19:00:00Z, got a string "yesterday"',
            ),
        ],
    )
    def test_every_write_rule_refuses_and_writes_nothing(
        self, harness: Harness, store: StateStore, call: Callable[[Any], None], message: str
    ) -> None:
        seed(store)
        with store.lock("reconciler apply") as writer:
            before = writer.state
            with pytest.raises(StateError) as caught:
                call(writer)
            assert str(caught.value) == message.format(location=store.location)
            assert writer.state == before
            writer.import_purchase("acme/still-writes", IDENTITY, 1, T0)
        after = harness.reopen().load()
        assert after.serial == before.serial + 1
        assert set(after.purchases) == {"acme/a", "acme/still-writes"}

    def test_a_move_keeps_every_checkout_in_one_write_that_survives_reopen(
        self, harness: Harness, store: StateStore
    ) -> None:
        with store.lock("reconciler apply") as writer:
            writer.record_checkout("acme/old", IDENTITY, CheckoutRecord("ord-1", 5, T0))
            writer.record_checkout("acme/old", IDENTITY, CheckoutRecord("ord-2", 3, T0))
            before = writer.state.serial
            writer.move_purchase("acme/old", "acme/new")
            assert writer.state.serial == before + 1
            assert harness.reopen().load() == writer.state
        after = harness.reopen().load()
        assert "acme/old" not in after.purchases
        assert after.purchases["acme/new"] == RecordedPurchase(
            "acme/new",
            IDENTITY,
            8,
            (CheckoutRecord("ord-1", 5, T0), CheckoutRecord("ord-2", 3, T0)),
            unseen=("ord-1", "ord-2"),
        )
        # The moved purchase takes later checkouts, and the old address is free again.
        with store.lock("reconciler apply") as writer:
            writer.record_checkout("acme/new", IDENTITY, CheckoutRecord("ord-3", 1, T0))
            writer.import_purchase("acme/old", OTHER, 2, T0)
        final = harness.reopen().load()
        assert final.purchases["acme/new"].quantity == 9
        assert len(final.purchases["acme/new"].checkouts) == 3
        assert final.purchases["acme/old"] == RecordedPurchase("acme/old", OTHER, 2)

    @pytest.mark.parametrize(
        ("source", "target", "message"),
        [
            (
                "acme/x",
                "acme/new",
                "cannot move acme/x to acme/new: acme/x is not recorded in {location}",
            ),
            (
                "acme/a",
                "acme/b",
                "cannot move acme/a to acme/b: acme/b is already recorded in {location}",
            ),
            (
                "acme/p",
                "acme/new",
                "cannot move acme/p to acme/new: acme/p has a pending operation "
                "(externalOrderId ord-2); resolve it first",
            ),
        ],
    )
    def test_a_move_is_refused_and_writes_nothing(
        self, harness: Harness, store: StateStore, source: str, target: str, message: str
    ) -> None:
        seed(store)
        with store.lock("reconciler state mv") as writer:
            writer.import_purchase("acme/b", OTHER, 1, T0)
            writer.import_purchase("acme/p", IDENTITY, 1, T0)
            before = writer.state
            with pytest.raises(StateError) as caught:
                writer.move_purchase(source, target)
            assert str(caught.value) == message.format(location=store.location)
            assert writer.state == before
        assert harness.reopen().load() == before

    # --- refresh: adjustments and settled checkouts with evidence ----------------------

    def test_adjustments_and_evidence_survive_reopen_moves_and_more_checkouts(
        self, harness: Harness, store: StateStore
    ) -> None:
        with store.lock("reconciler refresh") as writer:
            writer.add_pending(pending("acme/a", "ord-1", 5))
            writer.record_checkout("acme/a", IDENTITY, CheckoutRecord("ord-1", 5, T0, SAID))
            writer.adjust_quantity("acme/a", 3, T1, "Cloud-iQ showed 8 active seats")
            writer.adjust_quantity("acme/a", -8, T1, "Cloud-iQ showed 0 active seats")
            writer.import_purchase("acme/imported", OTHER, 2, T0)
            writer.adjust_quantity("acme/imported", 4, T1, "Cloud-iQ showed 6 active seats")
            during = harness.reopen().load()
            assert during == writer.state
        after = harness.reopen().load()
        assert after == during
        assert after.serial == 6
        assert after.purchases["acme/a"] == RecordedPurchase(
            "acme/a",
            IDENTITY,
            0,
            (CheckoutRecord("ord-1", 5, T0, SAID),),
            (
                Adjustment(3, T1, "refresh", "Cloud-iQ showed 8 active seats"),
                Adjustment(-8, T1, "refresh", "Cloud-iQ showed 0 active seats"),
            ),
            unseen=("ord-1",),
        )
        assert after.purchases["acme/imported"].quantity == 6
        # A later checkout and a move keep the history whole, in order.
        with store.lock("reconciler apply") as writer:
            writer.record_checkout("acme/a", IDENTITY, CheckoutRecord("ord-2", 2, T1))
            writer.adjust_quantity("acme/a", 1, T1, "Cloud-iQ showed 3 active seats")
            writer.move_purchase("acme/a", "acme/renamed")
        moved = harness.reopen().load().purchases["acme/renamed"]
        assert moved.quantity == 3
        assert [c.evidence for c in moved.checkouts] == [SAID, None]
        assert [a.quantity for a in moved.adjustments] == [3, -8, 1]

    # --- subscriptions each address owns, and updates of them --------------------------

    def test_subscriptions_links_and_updates_survive_reopen_and_moves(
        self, harness: Harness, store: StateStore
    ) -> None:
        change = SubscriptionChange(500001, UpdateField.QUANTITY, 5, 3)
        with store.lock("reconciler apply") as writer:
            writer.record_checkout("acme/a", IDENTITY, CheckoutRecord("ord-1", 5, T0))
            writer.record_checkout("acme/a", IDENTITY, CheckoutRecord("ord-2", 2, T0, None, 500002))
            writer.link_subscriptions("acme/a", [(500001, "ord-1")])
            writer.import_purchase("acme/imported", OTHER, 4, T0, subscriptions=[600001, 600002])
            update = PendingOperation("acme/a", IDENTITY, change.operation, -2, T1, update=change)
            writer.add_pending(update)
            during = harness.reopen().load()
            assert during == writer.state
            assert during.pending["acme/a"].update == change
            writer.record_update("acme/a", UpdateRecord(change, T1, "read back"))
            writer.move_purchase("acme/a", "acme/renamed")
        after = harness.reopen().load()
        moved = after.purchases["acme/renamed"]
        assert moved.subscriptions == (500002, 500001)
        assert moved.unseen == ()
        assert [c.subscription for c in moved.checkouts] == [500001, 500002]
        assert moved.updates == (UpdateRecord(change, T1, "read back"),)
        assert moved.quantity == 5
        assert after.pending == {}
        assert after.purchases["acme/imported"].subscriptions == (600001, 600002)

    def test_a_subscription_belongs_to_one_address_and_updates_only_its_owner(
        self, harness: Harness, store: StateStore
    ) -> None:
        with store.lock("reconciler apply") as writer:
            writer.import_purchase("acme/a", IDENTITY, 4, T0, subscriptions=[500001])
            writer.import_purchase("acme/b", OTHER, 2, T0)
            before = writer.state
            with pytest.raises(StateError, match="subscription 500001 is owned by acme/a"):
                writer.link_subscriptions("acme/b", [(500001, None)])
            change = SubscriptionChange(500001, UpdateField.CANCEL, 4, 0)
            op = PendingOperation("acme/b", OTHER, change.operation, -4, T1, update=change)
            with pytest.raises(StateError, match="the address does not own it"):
                writer.add_pending(op)
            with pytest.raises(StateError, match="owns them already"):
                writer.link_subscriptions("acme/a", [(500001, None)])
            assert writer.state == before
        assert harness.reopen().load() == before

    @pytest.mark.parametrize(
        ("call", "message"),
        [
            (
                lambda w: w.adjust_quantity("acme/x", 1, T1, "seen"),
                "cannot adjust acme/x: it is not recorded in {location}",
            ),
            (
                lambda w: w.adjust_quantity("acme/p", 1, T1, "seen"),
                "cannot adjust acme/p: it has a pending operation (externalOrderId ord-2); "
                "settle it first",
            ),
            (
                lambda w: w.adjust_quantity("acme/a", 0, T1, "seen"),
                "cannot adjust acme/a: an adjustment of 0 seats changes nothing",
            ),
            (
                lambda w: w.adjust_quantity("acme/a", -6, T1, "seen"),
                "cannot adjust acme/a by -6: only 5 seats are recorded",
            ),
            (
                lambda w: w.adjust_quantity("acme/a", 1, T1, ""),
                "cannot record adjust_quantity of 'acme/a': purchase.adjustments[0].evidence: "
                'expected a non-empty string, got a string ""',
            ),
            (
                lambda w: w.record_checkout("acme/a", IDENTITY, CheckoutRecord("ord-5", 1, T0, "")),
                "cannot record record_checkout of 'acme/a': purchase.checkouts[1].evidence: "
                'expected a non-empty string, got a string ""',
            ),
        ],
    )
    def test_every_adjustment_rule_refuses_and_writes_nothing(
        self, harness: Harness, store: StateStore, call: Callable[[Any], None], message: str
    ) -> None:
        seed(store)
        with store.lock("reconciler refresh") as writer:
            writer.import_purchase("acme/p", IDENTITY, 1, T0)
            before = writer.state
            with pytest.raises(StateError) as caught:
                call(writer)
            assert str(caught.value) == message.format(location=store.location)
            assert writer.state == before
        assert harness.reopen().load() == before

    def test_writer_refuses_writes_after_the_lock_is_released(self, store: StateStore) -> None:
        with store.lock("reconciler apply") as writer:
            pass
        with pytest.raises(StateError, match="was released; this writer cannot write"):
            writer.import_purchase("acme/a", IDENTITY, 1, T0)

    def test_a_failed_write_stops_the_writer_and_keeps_what_was_acknowledged(
        self, harness: Harness, store: StateStore
    ) -> None:
        def run() -> None:
            with store.lock("reconciler apply") as writer:
                writer.import_purchase("acme/a", IDENTITY, 2, T0)
                harness.break_writes()
                with pytest.raises(StateError, match=harness.failure):
                    writer.import_purchase("acme/b", IDENTITY, 2, T0)
                with pytest.raises(StateError, match=r"an earlier write to .* failed \("):
                    writer.import_purchase("acme/c", IDENTITY, 2, T0)
                assert writer.state.serial == 1
                raise RuntimeError("the run stops")

        with pytest.raises(RuntimeError, match="the run stops"):
            run()
        # What was acknowledged is there for the next handle; the write that failed
        # may or may not have reached the disk (like a commit whose answer was lost),
        # and nothing after it was attempted.
        purchases = harness.reopen().load().purchases
        assert "acme/a" in purchases
        assert "acme/c" not in purchases

    # --- locking -------------------------------------------------------------------------

    def test_a_second_lock_fails_at_once_and_the_first_is_released_after(
        self, harness: Harness, store: StateStore
    ) -> None:
        with (
            store.lock("reconciler apply"),
            pytest.raises(StateLockedError, match="another run is in progress"),
            harness.reopen().lock("reconciler state rm"),
        ):
            pytest.fail("locked twice")
        with harness.reopen().lock("reconciler state rm") as writer:
            writer.import_purchase("acme/a", IDENTITY, 1, T0)
        assert harness.reopen().load().serial == 1

    def test_an_error_inside_the_lock_releases_it_and_keeps_the_writes(
        self, harness: Harness, store: StateStore
    ) -> None:
        def run() -> None:
            with store.lock("reconciler apply") as writer:
                writer.import_purchase("acme/a", IDENTITY, 2, T0)
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            run()
        with harness.reopen().lock("next") as writer:
            assert writer.state.purchases["acme/a"].quantity == 2

    def test_concurrent_writes_from_eight_threads_all_count(
        self, harness: Harness, store: StateStore
    ) -> None:
        threads_count, writes = 8, 20
        barrier = threading.Barrier(threads_count)
        errors: list[BaseException] = []
        with store.lock("reconciler apply") as writer:

            def work(thread: int) -> None:
                try:
                    barrier.wait()
                    for n in range(writes):
                        record = CheckoutRecord(f"t{thread}-{n}", thread + 1, T0)
                        writer.record_checkout(f"acme/{n % 3}", IDENTITY, record)
                except BaseException as exc:  # collected and asserted below
                    errors.append(exc)

            threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_count)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert errors == []
        state = harness.reopen().load()
        assert state.serial == threads_count * writes
        assert sum(p.quantity for p in state.purchases.values()) == writes * sum(
            range(1, threads_count + 1)
        )

    # --- waiting for the lock ---------------------------------------------------------

    def test_a_held_lock_is_refused_naming_its_holder_and_how_to_wait(
        self, harness: Harness, store: StateStore
    ) -> None:
        with store.lock("reconciler apply"):
            started = time.monotonic()
            with pytest.raises(StateLockedError) as caught, harness.reopen().lock("rm"):
                pytest.fail("locked twice")
            assert time.monotonic() - started < 2
        message = str(caught.value)
        assert f"is locked by pid {os.getpid()} " in message, message
        assert "(command 'reconciler apply', since " in message, message
        assert message.endswith(
            ": another run is in progress; wait for it to finish, or give --lock-timeout "
            "DURATION (e.g. 10m) to wait for it"
        ), message

    def test_a_lock_timeout_waits_for_the_holder_and_reports_the_wait(
        self, harness: Harness, store: StateStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(locking, "REPORT_EVERY", 0.1)
        waits: list[tuple[float, LockHolder | None]] = []
        holding = threading.Event()
        release = threading.Event()

        def hold() -> None:
            with store.lock("reconciler apply") as writer:
                writer.import_purchase("acme/held", IDENTITY, 1, T0)
                holding.set()
                release.wait(30)

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert holding.wait(30)
            threading.Timer(0.6, release.set).start()
            started = time.monotonic()
            waiting = harness.reopen(lock_timeout=20, on_wait=lambda s, h: waits.append((s, h)))
            with waiting.lock("reconciler state rm") as writer:
                waited = time.monotonic() - started
                # The waiter reads the state the holder left.
                assert "acme/held" in writer.state.purchases
        finally:
            release.set()
            holder.join(30)
        assert 0.5 <= waited < 15
        assert waits, "on_wait was never told of the wait"
        assert [round(s, 3) for s, _ in waits] == sorted(round(s, 3) for s, _ in waits)
        assert all(0.1 <= s < 15 for s, _ in waits)
        named = {h.describe() for _, h in waits if h is not None}
        assert any(f"pid {os.getpid()} " in n and "reconciler apply" in n for n in named), waits

    def test_a_lock_timeout_gives_up_naming_the_holder(
        self, harness: Harness, store: StateStore
    ) -> None:
        with store.lock("reconciler apply"):
            started = time.monotonic()
            waiting = harness.reopen(lock_timeout=0.3)
            with pytest.raises(StateLockedError) as caught, waiting.lock("reconciler state rm"):
                pytest.fail("locked twice")
            elapsed = time.monotonic() - started
        assert 0.3 <= elapsed < 10
        message = str(caught.value)
        assert f"is locked by pid {os.getpid()} " in message, message
        assert message.endswith(
            ": another run is in progress and still held the lock after 300ms of waiting; "
            "wait for it to finish, or give a longer --lock-timeout DURATION to wait for it"
        ), message


_CRASHING_WRITER = textwrap.dedent(
    """
    import os, sys
    from reconciler.model import CheckoutRecord, Identity, PendingOperation
    from reconciler.state import open_store

    identity = Identity(111111, "CFQ7TTC0LF8R", "0010", "monthly", "P1M")
    t0 = "2026-11-26T19:00:00Z"
    with open_store(sys.argv[1]).lock("reconciler apply") as writer:
        writer.add_pending(PendingOperation("acme/a", identity, "ord-1", 5, t0))
        writer.record_checkout("acme/a", identity, CheckoutRecord("ord-1", 5, t0))
        writer.add_pending(PendingOperation("acme/b", identity, "ord-2", 2, t0))
        print("ready", flush=True)
        sys.stdin.readline()
    """
)


class DurableStoreContract(StateStoreContract):
    """The suite for a store that outlives its process (its ``harness.location`` is set)."""

    def test_a_killed_writer_loses_no_acknowledged_write_and_never_blocks_the_next(
        self, harness: Harness
    ) -> None:
        assert harness.location is not None
        harness.reopen().create()
        package_root = Path(reconciler.__file__).resolve().parents[1]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(package_root), *sys.path[1:]])}
        proc = subprocess.Popen(
            [sys.executable, "-c", _CRASHING_WRITER, harness.location],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "ready\n", proc.stderr.read() if proc.stderr else ""
            with pytest.raises(StateLockedError), harness.reopen().lock("second"):
                pytest.fail("the lock of a live process was taken")
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        with harness.reopen().lock("after the crash") as writer:
            state = writer.state
        assert state.serial == 3
        assert state.purchases["acme/a"].quantity == 5
        assert state.pending == {"acme/b": pending("acme/b", "ord-2", 2)}
