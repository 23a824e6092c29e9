"""Fault storm: hundreds of purchases through an API that fails 10% of all requests, at
random, every way it can, applied again and again until everything is bought.

The simulator's ``storm`` hits each request (token, verify, checkout) with
probability 0.10 and gives it one of: 429 or 503 without acting on it (half of them
with ``Retry-After: 0``), an answer slower than the client's read timeout
(``RECONCILER_READ_TIMEOUT``), and for a valid checkout also: taken then answered
500, taken then the connection dropped, or answered 500 without being taken.

Each round is an apply (in-process, to spare a start-up per round; the kill tests
run real processes), at parallelism 1 or, three times in four, 4; then the
invariants are checked, every pending checkout is settled honestly (the operator
asks whether the API took its externalOrderId) and the invariants are checked
again. Rounds repeat until an apply succeeds; then, with the storm over, one more
apply must find nothing to buy and every declared seat is bought exactly once. The
counts (faults by kind, rounds, pending entries resolved) go to the summary.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import harness
from harness import TALLY, Outputs

from tests.pgserver import PgServer

#: Purchases: every product of the default catalogue that takes 100 seats, for each
#: of these tenants (the simulator is given them as its customers).
FILE_TENANTS = list(range(200001, 200033))
PG_TENANTS = list(range(300001, 300011))
RATE = 0.10
READ_TIMEOUT = 0.25
SLOW = 0.4
MAX_ROUNDS = 400


def _storm(
    tmp_path: Path,
    outputs: Outputs,
    tenants: list[int],
    seed: str,
    pg_url: str | None = None,
) -> None:
    chance = random.Random(seed)
    env = dict(os.environ)
    if pg_url is None:
        world = harness.file_world(tmp_path / "storm", outputs, env, tenants=tenants)
    else:
        world = harness.pg_world(tmp_path / "storm", outputs, env, pg_url, "storm", tenants=tenants)
    backend = "file" if pg_url is None else "postgresql"
    try:
        world.cli("init", *world.state_args)
        declared = harness.purchases(len(tenants) * len(harness.PRODUCTS), tenants=tenants)
        world.declare(declared)
        world.sim.storm(RATE, seed=chance.randrange(2**31), slow=SLOW)
        rounds = resolved = 0
        while True:
            rounds += 1
            assert rounds <= MAX_ROUNDS, f"not converged after {MAX_ROUNDS} rounds"
            # Mostly 4: its retries and timeouts overlap, so a round takes less time.
            parallelism = chance.choice([1, 4, 4, 4])
            applied = world.apply(
                "--parallelism", str(parallelism),
                expect=None, env={"RECONCILER_READ_TIMEOUT": str(READ_TIMEOUT)},
            )  # fmt: skip
            code = applied.exit_code
            assert code in (0, 1), f"round {rounds}:\n{applied.stdout}\n{applied.stderr}"
            where = f"{backend} storm round {rounds} (parallelism {parallelism})"
            world.verify(f"{where}: after the apply")
            resolved += world.honest_resolve()
            world.verify(f"{where}: after honest resolution")
            if code == 0:
                break
        world.sim.storm(0, seed=0)
        calm = world.apply()
        assert "No changes" in calm.stdout or "0 to purchase" in calm.stdout, calm.stdout
        world.verify(f"{backend} storm: converged after {rounds} rounds", converged=True)
        faults = world.sim.faults_injected
        TALLY.add(f"storm purchases ({backend})", len(declared))
        TALLY.add(f"storm rounds ({backend})", rounds)
        TALLY.add(f"storm pending resolved ({backend})", resolved)
        TALLY.add(f"storm requests ({backend})", len(world.sim.calls))
        for kind, count in faults.items():
            TALLY.add(f"storm faults ({backend}): {kind}", count)
        TALLY.add(f"storm faults ({backend}): total", sum(faults.values()))
        if len(declared) >= 300:
            # Each kind of fault hit, or the storm tested less than it says.
            kinds = {kind.split()[1] for kind in faults}
            assert kinds >= {"429", "503", "slow", "500-after-record", "drop-after-record",
                             "500-unrecorded"}, faults  # fmt: skip
    finally:
        world.stop()


def test_a_fault_storm_over_320_purchases_converges_buying_each_seat_once(
    tmp_path: Path, outputs: Outputs, master_seed: int, scale: int
) -> None:
    for storm in range(scale):
        _storm(tmp_path / str(storm), outputs, FILE_TENANTS, f"{master_seed}:storm:file:{storm}")


def test_a_fault_storm_on_postgresql_converges_buying_each_seat_once(
    tmp_path: Path, outputs: Outputs, master_seed: int, pg_server: PgServer, pg_database: str
) -> None:
    outputs.use_secret("database password", pg_server.password)
    _storm(tmp_path, outputs, PG_TENANTS, f"{master_seed}:storm:pg", pg_database)
