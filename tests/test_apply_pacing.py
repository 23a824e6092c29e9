"""How apply paces its calls: at parallelism 1 the write recording a 204
overlaps the next change's verify, yet no checkout is sent before its own pending
entry, nor before the previous checkout's record, is durable; above 1 the number of
changes in flight adapts to the API's 429 answers (AIMD, ``AdaptiveLimit``), every
call waits out a Retry-After, and ``apply --json`` reports each change of the limit.

The end-to-end tests drive the real CLI against the simulator on a loopback socket;
the simulator's ``rate_limit`` answers 429 with Retry-After above N requests a second.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
from click.testing import CliRunner

from reconciler.api.client import CrayonClient
from reconciler.api.settings import ApiSettings, RetryPolicy
from reconciler.cli import cli
from reconciler.executor.run import AdaptiveLimit
from reconciler.simulator import Simulator, server
from reconciler.state import JsonFileStateStore
from tests.support.declarations import LICENCE_TENANT, declare_licences
from tests.support.paths import schema


def apply(decl: Path, state: Path, sim: Simulator, *args: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(
        cli,
        ["apply", str(decl), "--state", str(state), "--auto-approve", "--json", *args],
        env=sim.env(),
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    validator = jsonschema.Draft202012Validator(schema("apply-events"))
    events = [json.loads(line) for line in result.stdout.splitlines()]
    for event in events:
        validator.validate(event)
    return events


# --------------------------------------------------------------------------- the overlap


def test_at_parallelism_1_no_checkout_precedes_its_pending_write_or_the_previous_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, simulator_factory: Callable[..., Simulator]
) -> None:
    """The fsync of the line recording each 204 (but the last) is held until the next
    change's verify has arrived, which it does only if the two overlap (else each
    fsync waits out its timeout and the count below fails); and still no checkout
    arrives before (a) its own pending line and (b) the line recording the previous
    checkout were fsynced."""
    count = 10
    sim = simulator_factory(latency=0.005, tenants={LICENCE_TENANT})
    decl = declare_licences(tmp_path / "decl", count)
    state = tmp_path / "state.json"
    assert JsonFileStateStore(state).create()
    journal = Path(str(state) + ".journal")
    lock = threading.Lock()
    durable_pending: set[str] = set()
    durable_records: set[str] = set()
    checkouts: list[str] = []
    violations: list[str] = []
    verified = threading.Semaphore(0)
    overlapped: list[str] = []
    real_fsync = os.fsync

    def lines_of(data: bytes) -> tuple[set[str], set[str]]:
        pending, records = set(), set()
        for line in data.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("op") == "add_pending":
                pending.add(entry["pending"]["externalOrderId"])
            elif entry.get("op") == "record_checkout":
                records.add(entry["purchase"]["checkouts"][-1]["externalOrderId"])
        return pending, records

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}") != str(journal):
            real_fsync(fd)
            return
        pending, records = lines_of(journal.read_bytes())
        fresh = records - durable_records
        if fresh and len(records) < count and verified.acquire(timeout=5):
            overlapped.extend(fresh)  # the next verify came while this record was made
        real_fsync(fd)
        with lock:
            durable_pending.update(pending)
            durable_records.update(records)

    read_body = server._read_body

    def observed(handler: BaseHTTPRequestHandler) -> bytes:
        body = read_body(handler)
        if handler.path.endswith("/verify"):
            with lock:
                if checkouts:  # a verify after the first checkout
                    verified.release()
        elif handler.path.endswith("/checkout"):
            order = json.loads(body)["externalOrderId"]
            with lock:
                if order not in durable_pending:
                    violations.append(f"{order}: its pending entry is not durable")
                for earlier in checkouts:
                    if earlier not in durable_records:
                        violations.append(f"{order}: the record of {earlier} is not durable")
                checkouts.append(order)
        return body

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(server, "_read_body", observed)

    events = apply(decl, state, sim, "--parallelism", "1")

    assert len(checkouts) == count
    assert violations == []
    assert len(overlapped) == count - 1
    assert len(JsonFileStateStore(state).load().purchases) == count
    completes = [e["address"] for e in events if e["type"] == "change_complete"]
    assert completes == sorted(completes)
    assert not [e for e in events if e["type"] == "concurrency"]


def test_at_parallelism_1_on_postgresql_each_checkout_follows_its_pending_row_and_the_last_record(
    pg_database: str,
    monkeypatch: pytest.MonkeyPatch,
    simulator_factory: Callable[..., Simulator],
    tmp_path: Path,
) -> None:
    """As above, the database seen from a second session (a row is there only once
    its transaction committed): each checkout's own pending row, and the checkout
    rows of every earlier one, are committed before it arrives."""
    import psycopg

    sim = simulator_factory(latency=0.005, tenants={LICENCE_TENANT})
    decl = declare_licences(tmp_path / "decl", 8)
    init = CliRunner().invoke(cli, ["init", "--state", pg_database], catch_exceptions=False)
    assert init.exit_code == 0, init.output
    observer = psycopg.connect(pg_database, autocommit=True)
    seen = threading.Lock()
    checkouts: list[str] = []
    violations: list[str] = []

    def committed(sql: str, order_id: str) -> bool:
        with seen:
            row = observer.execute(sql, (order_id,)).fetchone()
        return row is not None and row[0] == 1

    read_body = server._read_body

    def observed(handler: BaseHTTPRequestHandler) -> bytes:
        body = read_body(handler)
        if handler.path.endswith("/checkout"):
            order = json.loads(body)["externalOrderId"]
            pending = "SELECT count(*) FROM reconciler.pending WHERE external_order_id = %s"
            if not committed(pending, order):
                violations.append(f"{order}: its pending row is not committed")
            recorded = "SELECT count(*) FROM reconciler.checkouts WHERE external_order_id = %s"
            violations.extend(
                f"{order}: the checkout row of {earlier} is not committed"
                for earlier in checkouts
                if not committed(recorded, earlier)
            )
            checkouts.append(order)
        return body

    monkeypatch.setattr(server, "_read_body", observed)
    try:
        result = CliRunner().invoke(
            cli,
            ["apply", str(decl), "--state", pg_database, "--auto-approve", "--parallelism", "1"],
            env=sim.env(),
            catch_exceptions=False,
        )
    finally:
        observer.close()
    assert result.exit_code == 0, result.output
    assert len(checkouts) == 8
    assert violations == []


def test_a_failed_record_at_parallelism_1_stops_the_next_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, simulator_factory: Callable[..., Simulator]
) -> None:
    """The next change is verified while the previous 204 is recorded; when that write
    fails, the next checkout is never sent."""
    sim = simulator_factory(tenants={LICENCE_TENANT})
    decl = declare_licences(tmp_path / "decl", 3)
    state = tmp_path / "state.json"
    assert JsonFileStateStore(state).create()
    journal = Path(str(state) + ".journal")
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}") == str(journal) and b"record_checkout" in (
            journal.read_bytes()
        ):
            raise OSError(5, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    result = CliRunner().invoke(
        cli,
        ["apply", str(decl), "--state", str(state), "--auto-approve", "--parallelism", "1"],
        env=sim.env(),
    )
    assert result.exit_code == 1
    assert len(sim.checkouts) == 1
    assert sim.count("verify") <= 2


# --------------------------------------------------------------------------- adaptive limit


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_adaptive_limit_halves_once_per_burst_and_grows_back_by_one_per_calm_hold() -> None:
    clock = FakeClock()
    limit = AdaptiveLimit(8, hold=0.5, clock=clock)
    assert limit.limit == 8
    assert limit.throttled(1.0) == 4
    # The other answers of the same burst (within the Retry-After) count once.
    clock.now = 0.9
    assert limit.throttled(1.0) is None
    assert limit.limit == 4
    clock.now = 1.2
    assert limit.throttled(None) == 2
    for _ in range(2):
        limit.acquire()
    # Until the Retry-After (or hold) and one more hold have passed, completions raise
    # nothing; then one per hold.
    clock.now = 1.8
    assert limit.release(completed=True) is None
    limit.acquire()
    clock.now = 2.2
    assert limit.release(completed=True) == 3
    limit.acquire()
    clock.now = 2.6
    assert limit.release(completed=True) is None
    limit.acquire()
    clock.now = 2.8
    assert limit.release(completed=False) is None  # a failed change raises nothing
    for _ in range(10):
        limit.acquire()
        clock.now += 0.5
        limit.release(completed=True)
    assert limit.limit == 8  # never past --parallelism
    for _ in range(5):
        clock.now += 10
        limit.throttled(None)
    assert limit.limit == 1  # never below one


def test_a_retry_after_holds_back_every_call_of_the_client(simulator: Simulator) -> None:
    """A 429 with Retry-After on one call makes the next call of the same client, on
    any thread, wait it out first; the listener hears of it."""
    sleeps: list[float] = []
    heard: list[float | None] = []
    clock = FakeClock()

    def sleep(seconds: float) -> None:
        sleeps.append(round(seconds, 3))

    client = CrayonClient(
        ApiSettings.from_env(simulator.env()), sleep=sleep, clock=clock, retry=RetryPolicy()
    )
    client.watch_throttling(heard.append)
    simulator.fail_next("orders", 429, 1, retry_after="3")
    with client:
        client.list_orders(111111)  # 429, waits 3 s (its own retry), then succeeds
        assert sleeps == [3.0]
        assert heard == [3.0]
        # Another thread's call right after (the clock has not moved) waits too.
        other = threading.Thread(target=client.list_orders, args=(111111,))
        other.start()
        other.join()
        assert sleeps == [3.0, 3.0]
        clock.now = 5.0
        client.list_orders(111111)  # the Retry-After has passed: no wait
        assert sleeps == [3.0, 3.0]
        client.watch_throttling(None)
        simulator.fail_next("orders", 429, 1, retry_after="1")
        client.list_orders(111111)
        assert heard == [3.0]


def test_the_simulator_rate_limit_answers_429_with_retry_after_above_it(
    simulator_factory: Callable[..., Simulator],
) -> None:
    sim = simulator_factory(rate_limit=5)
    with requests.Session() as http:
        answers = [http.get(f"{sim.url}/api/v1/me") for _ in range(8)]
        statuses = [a.status_code for a in answers]
        assert statuses[:5] == [401] * 5  # within the rate: answered (no token here)
        assert statuses[5:] == [429] * 3
        assert answers[-1].headers["Retry-After"] == "1"
        assert http.get(f"{sim.url}/api/v1/ping").status_code == 200  # never limited
        time.sleep(0.25)  # one more token
        assert http.get(f"{sim.url}/api/v1/me").status_code == 401
        sim.rate_limit = None
        assert {http.get(f"{sim.url}/api/v1/me").status_code for _ in range(10)} == {401}
    with pytest.raises(ValueError, match="rate_limit"):
        Simulator(rate_limit=0)


@pytest.mark.slow  # about four seconds of rate-limited traffic
def test_apply_under_a_rate_limit_adapts_and_buys_everything_once(
    tmp_path: Path, simulator_factory: Callable[..., Simulator]
) -> None:
    sim = simulator_factory(latency=0.01, tenants={LICENCE_TENANT}, rate_limit=25)
    decl = declare_licences(tmp_path / "decl", 40)
    state = tmp_path / "state.json"
    assert JsonFileStateStore(state).create()

    events = apply(decl, state, sim, "--parallelism", "8")

    end = events[-1]
    assert (end["outcome"], end["purchased"], end["failed"], end["pending"]) == (
        "applied",
        40,
        0,
        0,
    )
    assert len(sim.checkouts) == 40
    assert len({c.external_order_id for c in sim.checkouts}) == 40
    limits = [e for e in events if e["type"] == "concurrency"]
    throttled = [e for e in limits if e["reason"] == "throttled"]
    assert throttled, "the rate limit was never hit"
    assert throttled[0]["limit"] == 4
    assert throttled[0]["retry_after"] == 1.0
    assert all(1 <= e["limit"] <= 8 for e in limits)
    # Far fewer 429s than calls: the limit came down instead of hammering.
    assert sim.count("verify", 429) + sim.count("checkout", 429) < 20
