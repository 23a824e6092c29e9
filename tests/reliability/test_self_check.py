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
from dataclasses import dataclass
from pathlib import Path

import harness
import invariants
import pytest
from invariants import Declared

from reconciler.model import CheckoutRecord, Identity, PendingOperation, RecordedPurchase, State

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
