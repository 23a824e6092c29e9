"""The suite's own instruments, checked: the invariant checker catches each kind of
violation, the secrets scan finds every encoded form, and the crash hook counts the
state store's durable steps only and kills exactly where it is told.

A checker that never fails would make every other test here pass for nothing.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
import urllib.parse
from dataclasses import dataclass, replace
from pathlib import Path

import harness
import invariants
import pytest
from invariants import Declared

from reconciler.model import (
    CheckoutRecord,
    Identity,
    PendingOperation,
    RecordedPurchase,
    State,
    SubscriptionChange,
    UpdateField,
    UpdateRecord,
)

T0 = "2026-11-26T19:00:00Z"
A = Declared("acme/a", 111111, "CFQ7TTC0LF8R", "0010", 5)
B = Declared("acme/b", 111111, "CFQ7TTC0LDPB", "0001", 3)
IDENTITY_A = Identity(111111, "CFQ7TTC0LF8R", "0010", "monthly", "P1M")
IDENTITY_B = Identity(111111, "CFQ7TTC0LDPB", "0001", "monthly", "P1M")


@dataclass(frozen=True)
class Taken:
    external_order_id: str | None
    tenant: int
    product: str
    quantity: int
    billing_cycle: int = 1
    term_duration: str = "P1M"


def _bought(address: str, identity: Identity, *orders: tuple[str, int]) -> RecordedPurchase:
    records = tuple(CheckoutRecord(eoid, seats, T0) for eoid, seats in orders)
    return RecordedPurchase(address, identity, sum(s for _, s in orders), records)


def _kinds(found: list[invariants.Violation]) -> list[str]:
    return sorted(v.kind for v in found)


DECLARED = {"acme/a": A, "acme/b": B}
GOOD = State(
    "lineage",
    3,
    {"acme/a": _bought("acme/a", IDENTITY_A, ("o1", 5))},
    {"acme/b": PendingOperation("acme/b", IDENTITY_B, "o2", 3, T0)},
)
TAKEN = [Taken("o1", 111111, "CFQ7TTC0LF8R:0010", 5), Taken("o2", 111111, "CFQ7TTC0LDPB:0001", 3)]


def test_a_consistent_world_has_no_violation() -> None:
    assert invariants.check(TAKEN, DECLARED, GOOD) == []
    assert invariants.check(TAKEN[:1], DECLARED, GOOD) == []  # o2 not taken: still pending
    converged = State(
        "lineage", 4, {**GOOD.purchases, "acme/b": _bought("acme/b", IDENTITY_B, ("o2", 3))}, {}
    )
    assert invariants.check(TAKEN, DECLARED, converged, converged=True) == []


def test_each_kind_of_violation_is_caught() -> None:
    twice = [*TAKEN, Taken("o1", 111111, "CFQ7TTC0LF8R:0010", 5)]
    assert "duplicate" in _kinds(invariants.check(twice, DECLARED, GOOD))
    lost = [*TAKEN, Taken("o3", 111111, "CFQ7TTC0LF8R:0010", 1)]
    assert "loss" in _kinds(invariants.check(lost, DECLARED, GOOD))
    assert _kinds(invariants.check(TAKEN[1:], DECLARED, GOOD)) == ["unaccepted"]
    other = [Taken("o1", 111111, "CFQ7TTC0LF8R:0010", 4), TAKEN[1]]
    assert _kinds(invariants.check(other, DECLARED, GOOD)) == ["mismatch"]
    more = State(
        "lineage", 4, {"acme/a": _bought("acme/a", IDENTITY_A, ("o1", 5), ("o3", 2))}, GOOD.pending
    )
    extra = [*TAKEN, Taken("o3", 111111, "CFQ7TTC0LF8R:0010", 2)]
    assert _kinds(invariants.check(extra, DECLARED, more)) == ["overbuy", "overbuy"]
    assert "unconverged" in _kinds(invariants.check(TAKEN, DECLARED, GOOD, converged=True))
    recorded_twice = State(
        "lineage", 4, {**GOOD.purchases, "acme/b": _bought("acme/b", IDENTITY_B, ("o1", 5))}, {}
    )
    assert "duplicate" in _kinds(invariants.check(TAKEN, DECLARED, recorded_twice))


def test_forgotten_and_renamed_purchases_are_the_operator_s() -> None:
    removed = State("lineage", 4, {}, GOOD.pending)
    assert _kinds(invariants.check(TAKEN, DECLARED, removed)) == ["loss"]
    assert invariants.check(TAKEN, {"acme/b": B}, removed, forgotten={"o1"}) == []
    moved = State("lineage", 4, {"acme/z": _bought("acme/z", IDENTITY_A, ("o1", 5))}, GOOD.pending)
    z = Declared("acme/z", 111111, "CFQ7TTC0LF8R", "0010", 5)
    assert _kinds(invariants.check(TAKEN, {"acme/a": A, "acme/b": B}, moved)) == ["overbuy"]
    assert invariants.check(TAKEN, {"acme/z": z, "acme/b": B}, moved) == []


@dataclass(frozen=True)
class Sub:
    id: int
    tenant: int
    product: str
    quantity: int
    status: int = 1
    auto_renew: bool = True

    @property
    def active(self) -> bool:
        return self.status == 1


@dataclass(frozen=True)
class Made:
    external_order_id: str | None
    tenant: int
    product: str
    quantity: int
    subscription_id: int | None
    billing_cycle: int = 1
    term_duration: str = "P1M"


MADE = [
    Made("o1", 111111, "CFQ7TTC0LF8R:0010", 5, 501),
    Made("o2", 111111, "CFQ7TTC0LDPB:0001", 3, 502),
]
SUBS = [Sub(501, 111111, "CFQ7TTC0LF8R:0010", 5), Sub(502, 111111, "CFQ7TTC0LDPB:0001", 3)]


def _owning(subscriptions: dict[str, tuple[int, ...]], unseen: dict[str, tuple[str, ...]]) -> State:
    purchases = {}
    for address, identity, order, seats in (
        ("acme/a", IDENTITY_A, "o1", 5),
        ("acme/b", IDENTITY_B, "o2", 3),
    ):
        bought = _bought(address, identity, (order, seats))
        purchases[address] = replace(
            bought, subscriptions=subscriptions.get(address, ()), unseen=unseen.get(address, ())
        )
    return State("lineage", 5, purchases, {})


def test_cloud_invariants_hold_for_a_consistent_world() -> None:
    owning = _owning({"acme/a": (501,), "acme/b": (502,)}, {})
    assert invariants.check_cloud(SUBS, MADE, DECLARED, owning, converged=True) == []
    # A checkout not seen yet counts with the subscription the simulator made for it.
    waiting = _owning({"acme/a": (501,)}, {"acme/b": ("o2",)})
    assert invariants.check_cloud(SUBS, MADE, DECLARED, waiting, converged=True) == []
    # ...unless the runs are over and refreshed: then its subscription must be recorded.
    unlinked = invariants.check_cloud(SUBS, MADE, DECLARED, waiting, converged=True, linked=True)
    assert _kinds(unlinked) == ["unconverged"]
    frozen = invariants.snapshot(SUBS)
    assert invariants.check_cloud(SUBS, MADE, DECLARED, owning, frozen=frozen) == []


def test_each_kind_of_cloud_violation_is_caught() -> None:
    owning = _owning({"acme/a": (501,), "acme/b": (502,)}, {})

    def kinds(subs: list[Sub], state: State = owning, **given: object) -> list[str]:
        return _kinds(invariants.check_cloud(subs, MADE, DECLARED, state, **given))  # type: ignore[arg-type]

    fewer = [replace(SUBS[0], quantity=4), SUBS[1]]
    assert kinds(fewer, converged=True) == ["wrong quantity"]
    assert kinds(fewer, bounds={"acme/a": (5, 7)}) == ["wrong quantity"]
    assert kinds(fewer, bounds={"acme/a": (4, 5)}) == []
    assert kinds([*SUBS, Sub(503, 111111, "CFQ7TTC0LF8R:0010", 5)], converged=True) == [
        "wrong quantity"  # a second subscription nobody owns: bought twice
    ]
    assert kinds(fewer, frozen=invariants.snapshot(SUBS)) == ["unasked change"]
    renewed = [replace(SUBS[0], auto_renew=False), SUBS[1]]
    assert kinds(renewed, frozen=invariants.snapshot(SUBS)) == ["unasked change"]
    shared = _owning({"acme/a": (501,), "acme/b": (502, 501)}, {})
    assert "shared subscription" in kinds(SUBS, shared)
    assert "mismatch" in kinds(SUBS, shared)  # 501 is not acme/b's product either
    wanting = {"acme/a": replace(A, auto_renew=False), "acme/b": B}
    found = invariants.check_cloud(SUBS, MADE, wanting, owning, converged=True)
    assert _kinds(found) == ["unconverged"]
    cancelled = [replace(SUBS[0], status=2), SUBS[1]]
    assert kinds(cancelled, converged=True) == ["wrong quantity"]
    gone = invariants.check_cloud(
        cancelled, MADE, {"acme/b": B}, owning, cancelled={"acme/a"}, converged=True
    )
    assert gone == []


@dataclass(frozen=True)
class Put:
    subscription_id: int
    before: tuple[int, int, bool]
    after: tuple[int, int, bool]


def test_recorded_updates_are_held_against_those_the_simulator_applied() -> None:
    lower = SubscriptionChange(501, UpdateField.QUANTITY, 5, 3)
    renew = SubscriptionChange(501, UpdateField.AUTO_RENEW, 1, 0)
    cancel = SubscriptionChange(502, UpdateField.CANCEL, 3, 0)
    puts = [
        Put(501, (5, 1, True), (3, 1, True)),
        Put(501, (3, 1, True), (3, 1, False)),
        Put(502, (3, 1, True), (3, 2, True)),
    ]
    a = replace(
        GOOD.purchases["acme/a"],
        updates=(UpdateRecord(lower, T0), UpdateRecord(renew, T0)),
    )
    b = _bought("acme/b", IDENTITY_B, ("o2", 3))
    recorded = State(
        "lineage", 6, {"acme/a": a, "acme/b": replace(b, updates=(UpdateRecord(cancel, T0),))}, {}
    )
    assert invariants.check_updates(puts, recorded) == []
    waiting = State(
        "lineage",
        6,
        {"acme/a": a},
        {"acme/b": PendingOperation("acme/b", IDENTITY_B, cancel.operation, -3, T0, update=cancel)},
    )
    assert invariants.check_updates(puts, waiting) == []
    assert _kinds(invariants.check_updates(puts[:1] + puts[2:], recorded)) == ["unaccepted"]
    twice = replace(
        a, updates=(UpdateRecord(lower, T0), UpdateRecord(lower, T0), UpdateRecord(renew, T0))
    )
    assert "unaccepted" in _kinds(
        invariants.check_updates(
            puts, replace(recorded, purchases={**recorded.purchases, "acme/a": twice})
        )
    )
    forgotten = State("lineage", 6, {"acme/a": a}, {})
    assert _kinds(invariants.check_updates(puts, forgotten)) == ["loss"]
    late = Put(501, (3, 1, False), (3, 1, False))  # a first attempt, arrived late: no change
    assert invariants.check_updates([*puts, late], recorded) == []


def test_limits_and_cancelled_addresses_in_the_checkout_invariants() -> None:
    lowered = {"acme/a": replace(A, quantity=3), "acme/b": B}
    assert _kinds(invariants.check(TAKEN, lowered, GOOD)) == ["overbuy", "overbuy"]
    assert invariants.check(TAKEN, lowered, GOOD, limits={"acme/a": 5}) == []
    everything = State(
        "lineage", 4, {**GOOD.purchases, "acme/b": _bought("acme/b", IDENTITY_B, ("o2", 3))}, {}
    )
    gone = replace(everything.purchases["acme/a"], quantity=0)
    after_cancel = replace(everything, purchases={**everything.purchases, "acme/a": gone})
    kept = {"acme/b": B}
    assert "overbuy" in _kinds(invariants.check(TAKEN, kept, after_cancel))
    assert "unconverged" in _kinds(
        invariants.check(TAKEN, kept, after_cancel, limits={"acme/a": 5}, converged=True)
    )
    assert (
        invariants.check(
            TAKEN, kept, after_cancel, limits={"acme/a": 5}, cancelled={"acme/a"}, converged=True
        )
        == []
    )


def test_the_secrets_scan_finds_every_encoded_form() -> None:
    outputs = harness.Outputs()
    secret, client_id = "s3 cr+t/=%é", "client"
    outputs.use_secret("secret", secret, client_id=client_id)
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    for shown in (
        secret,
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
        urllib.parse.quote(secret, safe="").lower(),
        json.dumps(secret)[1:-1],
        basic,
        basic.rstrip("="),
        "Bearer sim-" + "ab" * 16,
    ):
        scan = harness.Outputs()
        scan._forms = outputs._forms
        scan.record("text", f"error: ... {shown} ...")
        assert scan.leaks(), shown
    clean = harness.Outputs()
    clean._forms = outputs._forms
    clean.record("text", "error: the API refused the credentials (client ***)")
    assert clean.leaks() == []


_CHILD = """
import os, sys
from pathlib import Path
from reconciler.state import files
root = Path(sys.argv[1])
Path(root / "outside.txt").write_text("not a state step")  # not the store's: not counted
os.unlink(root / "outside.txt")
files.replace_atomically(root / "a.json", "{}")  # create, write, fsync, replace, fsync
print("survived")
"""


STEPS = ["create", "write", "fsync", "replace", "fsync"]


@pytest.mark.parametrize(
    ("crash_at", "mode", "temp_left", "replaced"),
    [
        (None, "", False, True),
        (1, "before", False, False),
        (2, "after", True, False),
        (4, "before", True, False),
        (4, "after", False, True),
        (5, "before", False, True),
    ],
)
def test_the_crash_hook_counts_store_steps_and_kills_where_told(
    tmp_path: Path, crash_at: int | None, mode: str, temp_left: bool, replaced: bool
) -> None:
    log = tmp_path / "steps.jsonl"
    env = {**os.environ, "PYTHONPATH": str(harness.HOOK_DIR), "RECONCILER_TEST_CRASH_LOG": str(log)}
    if crash_at is not None:
        env |= {"RECONCILER_TEST_CRASH_AT": str(crash_at), "RECONCILER_TEST_CRASH_MODE": mode}
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_CHILD), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    steps = [json.loads(line) for line in log.read_text().splitlines()]
    counted = [step for step in steps if "n" in step]
    assert [step["call"] for step in counted] == STEPS[: crash_at or len(STEPS)]
    assert all(step["where"].startswith("files:") for step in counted)
    if crash_at is None:
        assert (child.returncode, child.stdout.strip()) == (0, "survived"), child.stderr
    else:
        assert child.returncode == harness.HOOK_KILLED, child.stderr
        assert steps[-1] == {"killed": crash_at, "mode": mode}
    assert (tmp_path / "a.json").exists() == replaced
    assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir()) == temp_left


def test_the_storm_hits_requests_at_its_rate_with_every_fault_and_reproducibly() -> None:
    import threading

    from reconciler.simulator.faults import Faults

    def run(seed: int) -> list[str]:
        faults = Faults(threading.RLock())
        faults.storm(0.1, seed, slow=0.25)
        seen = []
        for number in range(3000):
            endpoint = ("token", "verify", "checkout")[number % 3]
            delay, failure = faults.take(endpoint)
            drop = faults.take_drop() if endpoint == "checkout" else None
            seen.append(f"{endpoint} {delay} {failure and failure.status} {drop}")
        assert 200 <= sum(faults.injected.values()) <= 400, faults.injected
        kinds = {kind.split()[1] for kind in faults.injected}
        assert kinds == {"429", "503", "slow", "500-after-record", "drop-after-record",
                         "500-unrecorded"}  # fmt: skip
        checkout_only = ("500-after-record", "drop-after-record", "500-unrecorded")
        assert all(k.startswith("checkout") for k in faults.injected if k.endswith(checkout_only))
        return seen

    assert run(7) == run(7)
    assert run(7) != run(8)
