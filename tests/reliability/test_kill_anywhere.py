"""Kill anywhere: SIGKILL a real ``python -m reconciler apply`` at random instants, at
parallelism 1 and 4, then do what an operator does, and check the invariants. On the
file store (52 kills in CI) and on PostgreSQL (20).

Each world declares 12 purchases and is applied again and again, each run killed at
a random moment: while it starts, plans or takes the lock (a random time after its
start), or around its checkouts (after a random number of them, plus a random
delay up to 30 ms). After each kill the test waits until the simulator handled
every request that reached it, checks the invariants, settles each pending
checkout honestly (did the API take its externalOrderId?), checks them again and
starts the next run. A world ends with an apply that finishes, after which every
declared seat must be bought exactly once. Worlds follow one another until the
number of kills is reached.

Everything random comes from the master seed (printed on failure and in the
summary), so a failing run is replayed with ``--reliability-seed``.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import harness
import pytest
from harness import TALLY, Outputs, World

from tests.pgserver import PgServer

#: Kills per parallelism in CI (times the scale of --reliability-full).
KILLS = 26
PG_KILLS = 10
PURCHASES = 12
TENANTS = [100001, 100002]
POLL = 0.002


def _kill_one_run(world: World, chance: random.Random, parallelism: int, where: str) -> bool:
    """Start an apply and SIGKILL it at a random instant; False if it finished first."""
    proc = world.spawn(
        "apply", str(world.decl), *world.state_args, "--auto-approve",
        "--parallelism", str(parallelism), "--lock-timeout", "30s",
    )  # fmt: skip
    started = time.monotonic()
    before = len(world.sim.checkouts)
    if chance.random() < 0.35:
        # Anywhere in the run's life, start-up and planning included.
        deadline = started + chance.uniform(0.0, 0.7)
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(POLL)
    else:
        # Around the checkouts: after some of them, within a purchase's steps.
        wanted = before + chance.randrange(PURCHASES)
        timeout = started + harness.TIMEOUT
        while len(world.sim.checkouts) < wanted and proc.poll() is None:
            assert time.monotonic() < timeout, f"{where}: the apply made no progress"
            time.sleep(POLL)
        time.sleep(chance.uniform(0.0, 0.03))
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)  # it may still finish first: then it exits 0
    code, out, err = world.finish(proc, where)
    assert code in (0, -signal.SIGKILL), f"{where}: exited {code}:\n{out}\n{err}"
    return code == -signal.SIGKILL


def _kill_again_and_again(
    make_world: Callable[[int], World],
    parallelism: int,
    target: int,
    chance: random.Random,
    backend: str,
) -> None:
    """Worlds one after the other, each killed run after run, until ``target`` kills."""
    kills = worlds = 0
    while kills < target:
        worlds += 1
        world = make_world(worlds)
        try:
            world.cli("init", *world.state_args)
            world.declare(harness.purchases(PURCHASES, tenants=TENANTS))
            for attempt in range(1, 30):
                where = f"{backend}, parallelism {parallelism}, world {worlds}, run {attempt}"
                if not _kill_one_run(world, chance, parallelism, where):
                    break
                kills += 1
                TALLY.add(f"random kills ({backend}, parallelism {parallelism})")
                world.verify(f"{where}: right after the kill")
                world.honest_resolve()
                world.verify(f"{where}: after honest resolution")
                if kills >= target:
                    break
            world.honest_resolve()
            world.apply()
            world.verify(f"{backend} world {worlds}: finished", converged=True)
        finally:
            world.stop()


@pytest.mark.parametrize("parallelism", [1, 4])
def test_random_kills_during_applies_never_buy_twice_or_lose_a_seat(
    parallelism: int, tmp_path: Path, scale: int, master_seed: int, outputs: Outputs
) -> None:
    base_env = dict(os.environ)
    _kill_again_and_again(
        lambda n: harness.file_world(tmp_path / f"world-{n}", outputs, base_env, latency=0.003),
        parallelism,
        KILLS * scale,
        random.Random(f"{master_seed}:kill-anywhere:file:{parallelism}"),
        "file",
    )


@pytest.mark.parametrize("parallelism", [1, 4])
def test_random_kills_on_postgresql_never_buy_twice_or_lose_a_seat(
    parallelism: int,
    tmp_path: Path,
    scale: int,
    master_seed: int,
    outputs: Outputs,
    pg_server: PgServer,
    pg_database: str,
) -> None:
    outputs.use_secret("database password", pg_server.password)
    base_env = dict(os.environ)  # with the PGPASSWORD pg_database set
    _kill_again_and_again(
        lambda n: harness.pg_world(
            tmp_path / f"world-{n}", outputs, base_env, pg_database, f"kills-{n}", latency=0.003
        ),
        parallelism,
        PG_KILLS * scale,
        random.Random(f"{master_seed}:kill-anywhere:pg:{parallelism}"),
        "postgresql",
    )
