"""Kill anywhere, no person: SIGKILL a real ``python -m reconciler apply`` at random
instants, at parallelism 1 and 4, and let the next step be only another plain
``reconciler apply --auto-approve`` (it reads Cloud-iQ first), never ``state
resolve``. On the file store (30 kills per parallelism in CI) and on PostgreSQL (10).

Each world declares 12 purchases and is applied again and again, each run killed at
a random moment: while it starts, reads Cloud-iQ, plans or takes the lock (a random
time after its start), or around its checkouts (after a random number of them, plus
a random delay up to 30 ms). After each kill the test waits until the simulator
handled every request that reached it and checks the invariants (``invariants``:
the checkouts and the state, and Cloud-iQ's subscriptions: each owned by one
address, no address holding more seats than declared); the next run starts as it
is. A world ends with plain applies that finish, after which every declared seat is
bought exactly once, held in Cloud-iQ by the address's own subscriptions.

"Human steps" are counted: a pending entry that a whole apply (one that was not
killed) found and left. For a checkout the API took there must be none (the test
fails on one: the apply reads the API and must settle it); a checkout that never
reached the API (killed between writing its pending entry and sending it) is
settled as an operator would, ``state resolve --not-purchased``, and counted apart.
One world in three lists new subscriptions a second or two late (the simulator's
``lag_listing``), as Cloud-iQ does after a checkout's 204.

Everything random comes from the master seed (printed on failure and in the
summary), so a failing run is replayed with ``--reliability-seed``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import harness
import pytest
from harness import TALLY, Outputs, World

from tests.pgserver import PgServer

#: Kills per parallelism in CI (times the scale of --reliability-full).
KILLS = 30
PG_KILLS = 10
PURCHASES = 12
TENANTS = [100001, 100002]
#: Kills in one world at most, before its runs are let finish.
KILLS_PER_WORLD = 8


def _kill_without_a_person(
    make_world: Callable[[int, float], World],
    parallelism: int,
    target: int,
    chance: random.Random,
    backend: str,
) -> None:
    """Worlds one after the other, each killed run after run, until ``target`` kills;
    after every kill the next step is a plain apply."""
    kills = worlds = 0
    label = f"{backend}, parallelism {parallelism}"
    while kills < target:
        worlds += 1
        lag = chance.choice([0.0, 0.0, chance.uniform(0.5, 2.0)])
        world = make_world(worlds, lag)
        try:
            world.cli("init", *world.state_args)
            world.declare(harness.purchases(PURCHASES, tenants=TENANTS))
            in_world = chance.randint(2, KILLS_PER_WORLD)
            for attempt in range(1, 4 * KILLS_PER_WORLD):
                where = f"{label}, world {worlds}, run {attempt}"
                before = world.pending_now()
                killed, code = harness.kill_at_random(
                    world,
                    chance,
                    world.apply_args(parallelism),
                    where,
                    work=lambda sim=world.sim: len(sim.checkouts),
                    steps=PURCHASES,
                )
                if not killed:
                    # The plain apply after a kill finished: what it left is a human step.
                    world.verify(f"{where}: finished (exit {code})")
                    world.judge(before, where)
                    if code == 0 and not world.store_load().pending:
                        break
                    continue
                kills += 1
                TALLY.add(f"kills without a person ({label})")
                world.verify(f"{where}: right after the kill")
                if kills >= target or attempt >= in_world:
                    break
            world.converge(f"{label}, world {worlds}: the last plain applies", lag=lag)
            world.verify(f"{label}, world {worlds}: finished", converged=True, linked=True)
            TALLY.add(f"kill worlds ({label})")
            if lag:
                TALLY.add("kill worlds whose subscriptions list lagged")
        finally:
            world.stop()


@pytest.mark.parametrize("parallelism", [1, 4])
def test_random_kills_then_plain_applies_buy_each_seat_once_with_no_person(
    parallelism: int, tmp_path: Path, scale: int, master_seed: int, outputs: Outputs
) -> None:
    base_env = dict(os.environ)

    def make(n: int, lag: float) -> World:
        world = harness.file_world(tmp_path / f"world-{n}", outputs, base_env, latency=0.003)
        world.sim.lag_listing("subscriptions", lag)
        return world

    _kill_without_a_person(
        make,
        parallelism,
        KILLS * scale,
        random.Random(f"{master_seed}:kill-anywhere:file:{parallelism}"),
        "file",
    )


@pytest.mark.parametrize("parallelism", [1, 4])
def test_random_kills_on_postgresql_then_plain_applies_buy_each_seat_once(
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

    def make(n: int, lag: float) -> World:
        world = harness.pg_world(
            tmp_path / f"world-{n}", outputs, base_env, pg_database, f"kills-{n}", latency=0.003
        )
        world.sim.lag_listing("subscriptions", lag)
        return world

    _kill_without_a_person(
        make,
        parallelism,
        PG_KILLS * scale,
        random.Random(f"{master_seed}:kill-anywhere:pg:{parallelism}"),
        "postgresql",
    )
