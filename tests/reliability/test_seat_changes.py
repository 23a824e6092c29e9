"""Seats both ways under kills and update faults: decreases, cancellations, renewal
changes and increases by update, each PUT exactly once, with no person.

Each world buys 10 purchases (some of them twice, so that their address owns two
subscriptions), then declares, at random per address: fewer seats (a decrease,
newest subscription first: a cancellation and a lower quantity), fewer seats and
no renewal, no renewal, more seats by ``seatChanges: update`` (a PUT of the newest
subscription), more seats by order (a checkout), ``removed:`` with ``cancel: true``
or ``cancel: false``, or nothing new. Then:

- kill worlds: real ``python -m reconciler apply`` processes are SIGKILLed at random
  instants (anywhere, or after a random number of PUTs plus up to 30 ms), each
  followed by nothing but another plain apply, at parallelism 1 and 4, on the file
  store and on PostgreSQL;
- fault worlds: in-process applies through update faults queued at random before
  each run: a PUT applied then its answer dropped or answered 500, a PUT answered
  500 without being applied, a PUT that lands after the client gave up waiting and
  read the subscription back, 429s, a failing read of the subscription before the
  PUT, and storms over every endpoint (slow answers past the read timeout too).

After every run the invariants hold (``invariants``): no checkout twice, none lost,
each subscription owned by one address, every address's active seats in Cloud-iQ
between what it had and what it is declared to have, and no subscription that no
declaration asked to change changed in any way. A whole apply (not killed) must
settle every pending update it finds: a human step for an update fails the test. At
the end each address holds exactly its declared seats in its own subscriptions, with
the declared renewal; a cancelled one holds none; a forgotten one keeps its seats.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import harness
import invariants
import pytest
from harness import TALLY, Outputs, World
from invariants import Declared

from tests.pgserver import PgServer

TENANTS = [100001, 100002]
PURCHASES = 10
#: Kills in CI (times the scale of --reliability-full): file at 1 and 4, PostgreSQL at 4.
KILLS = {("file", 1): 12, ("file", 4): 12, ("postgresql", 4): 6}
#: Fault worlds in CI; each has an apply with each kind of fault in ``FAULTS``.
FAULT_WORLDS = 3
KILLS_PER_WORLD = 6
OPERATIONS = (
    "decrease",
    "decrease, renewal switched",
    "renewal",
    "increase by update",
    "increase by order",
    "cancel",
    "forget",
    "same",
)
#: The changes of the fault worlds' rounds: every round changes every address.
ROUND_OPERATIONS = (
    "decrease",
    "decrease, renewal switched",
    "renewal",
    "increase by update",
    "increase by order",
    "cancel",
)


def _bought(world: World, chance: random.Random) -> None:
    """Ten purchases bought, a third of them in two checkouts (two subscriptions)."""
    world.cli("init", *world.state_args)
    first = harness.purchases(PURCHASES, tenants=TENANTS, quantity=lambda _: chance.randint(2, 6))
    world.declare(first)
    world.converge("buying")
    twice = [
        replace(d, quantity=d.quantity + chance.randint(1, 3)) if chance.random() < 0.35 else d
        for d in first
    ]
    world.declare(twice)
    world.converge("buying more by order")
    world.verify("bought", converged=True)


def _change_seats(
    world: World, chance: random.Random, kinds: tuple[str, ...], *, every_kind: bool = False
) -> dict[str, str]:
    """Declare a change of ``kinds`` per declared address (with ``every_kind``, each
    kind at least once); set the world's checkout limits, its bounds and its frozen
    subscriptions for the runs that make these changes."""
    current = list(world.declared.values())
    chosen = [chance.choice(kinds) for _ in current]
    if every_kind:
        chosen[: len(kinds)] = chance.sample(kinds, len(kinds))
    state = world.store_load()
    before = invariants.snapshot(world.sim.subscriptions)
    world.bounds, world.frozen = {}, {}
    declared: list[Declared] = []
    removed = dict(world.removed)
    for wanted, kind in zip(current, chosen, strict=True):
        address, seats = wanted.address, wanted.quantity
        recorded = state.purchases[address]
        owned = recorded.subscriptions
        bought = sum(c.quantity for c in recorded.checkouts)
        world.limits[address] = bought
        if kind.startswith("decrease") and seats < 2:
            kind = "increase by update"
        if kind == "cancel" and len(current) - len(removed) < 4:
            kind = "renewal"
        world.bounds[address] = (seats, seats)
        if kind.startswith("decrease"):
            after = chance.randint(1, seats - 1)
            # Switched: off when on or not declared (subscriptions renew by default).
            renew = (wanted.auto_renew is False) if "renewal" in kind else wanted.auto_renew
            declared.append(replace(wanted, quantity=after, auto_renew=renew))
            world.bounds[address] = (after, seats)
        elif kind == "renewal":
            declared.append(replace(wanted, auto_renew=wanted.auto_renew is False))
        elif kind == "increase by update":
            after = seats + chance.randint(1, 4)
            declared.append(replace(wanted, quantity=after, seat_changes="update"))
            world.bounds[address] = (seats, after)
        elif kind == "increase by order":
            after = seats + chance.randint(1, 3)
            declared.append(replace(wanted, quantity=after, seat_changes=None))
            world.bounds[address] = (seats, after)
            world.limits[address] = bought + after - seats
            world.frozen |= {sid: before[sid] for sid in owned}
        elif kind == "cancel":
            removed[address] = True
            world.cancelled.add(address)
            world.bounds[address] = (0, seats)
        elif kind == "forget":
            removed[address] = False
            del world.bounds[address]
            world.forgotten |= {c.external_order_id for c in recorded.checkouts}
            world.frozen |= {sid: before[sid] for sid in owned}
        else:
            declared.append(wanted)
            world.frozen |= {sid: before[sid] for sid in owned}
        TALLY.add(f"seat changes declared: {kind}")
    world.declare(declared, removed=removed)
    return dict(zip((d.address for d in current), chosen, strict=True))


def _updates(world: World) -> int:
    return world.sim.count("update")


def _kill_worlds(
    make_world: Callable[[int], World],
    parallelism: int,
    target: int,
    chance: random.Random,
    backend: str,
) -> None:
    kills = worlds = 0
    label = f"{backend}, parallelism {parallelism}"
    while kills < target:
        worlds += 1
        world = make_world(worlds)
        try:
            _bought(world, chance)
            _change_seats(world, chance, OPERATIONS, every_kind=True)
            puts = _updates(world)
            in_world = chance.randint(2, KILLS_PER_WORLD)
            for attempt in range(1, 4 * KILLS_PER_WORLD):
                where = f"seat changes, {label}, world {worlds}, run {attempt}"
                before = world.pending_now()
                sent = _updates(world)
                killed, code = harness.kill_at_random(
                    world,
                    chance,
                    world.apply_args(parallelism),
                    where,
                    work=lambda w=world: _updates(w) + len(w.sim.checkouts),
                    steps=12,
                )
                if not killed:
                    world.verify(f"{where}: finished (exit {code})")
                    world.judge(before, where)
                    if code == 0 and not world.store_load().pending:
                        break
                    continue
                kills += 1
                TALLY.add(f"PUT kills ({label})")
                if _updates(world) > sent:
                    TALLY.add("PUT kills after the run's first PUT")
                world.verify(f"{where}: right after the kill")
                if kills >= target or attempt >= in_world:
                    break
            world.converge(f"seat changes, {label}, world {worlds}: the last plain applies")
            world.verify(
                f"seat changes, {label}, world {worlds}: finished", converged=True, linked=True
            )
            TALLY.add(f"PUTs sent ({label})", _updates(world) - puts)
        finally:
            world.stop()


@pytest.mark.parametrize("parallelism", [1, 4])
def test_seat_changes_killed_anywhere_are_made_once_with_no_person(
    parallelism: int, tmp_path: Path, scale: int, master_seed: int, outputs: Outputs
) -> None:
    base_env = dict(os.environ)
    _kill_worlds(
        lambda n: harness.file_world(tmp_path / f"world-{n}", outputs, base_env, latency=0.003),
        parallelism,
        KILLS["file", parallelism] * scale,
        random.Random(f"{master_seed}:seat-changes:file:{parallelism}"),
        "file",
    )


def test_seat_changes_killed_anywhere_on_postgresql(
    tmp_path: Path,
    scale: int,
    master_seed: int,
    outputs: Outputs,
    pg_server: PgServer,
    pg_database: str,
) -> None:
    outputs.use_secret("database password", pg_server.password)
    base_env = dict(os.environ)
    _kill_worlds(
        lambda n: harness.pg_world(
            tmp_path / f"world-{n}", outputs, base_env, pg_database, f"seats-{n}", latency=0.003
        ),
        4,
        KILLS["postgresql", 4] * scale,
        random.Random(f"{master_seed}:seat-changes:pg"),
        "postgresql",
    )


#: Read timeout of a storm's applies, and how late a storm's slow answers come.
READ_TIMEOUT = 0.25
SLOW = 0.4
FAULTS = ("drop", "500", "unapplied", "late", "429", "read", "storm")


def _program(world: World, chance: random.Random, fault: str) -> dict[str, str]:
    """Queue ``fault`` (one of ``FAULTS``) for the next apply; returns the apply's
    environment."""
    sim = world.sim
    count = chance.randint(1, 3)
    if fault in ("drop", "500", "unapplied"):
        sim.fail_updates(fault, count)  # type: ignore[arg-type]
    elif fault == "late":
        # No answer in time: the PUT lands after the client has read the subscription back.
        sim.delay_next("update", SLOW, count)
        return {"RECONCILER_READ_TIMEOUT": str(READ_TIMEOUT)}
    elif fault == "429":
        sim.fail_next("update", 429, count=count, retry_after="0")
    elif fault == "read":
        sim.fail_next("subscription", chance.choice([404, 500, 503]), retry_after="0")
    else:
        sim.storm(0.3, seed=chance.randrange(2**31), slow=SLOW)
        return {"RECONCILER_READ_TIMEOUT": str(READ_TIMEOUT)}
    return {}


def test_seat_changes_through_update_faults_are_made_once_with_no_person(
    tmp_path: Path, scale: int, master_seed: int, outputs: Outputs
) -> None:
    chance = random.Random(f"{master_seed}:seat-faults")
    base_env = dict(os.environ)
    for number in range(1, FAULT_WORLDS * scale + 1):
        world = harness.file_world(tmp_path / f"world-{number}", outputs, base_env)
        try:
            _bought(world, chance)
            # Every kind of fault in each world, in a random order; every round changes
            # the seats of every address, so that each fault meets PUTs.
            faults = chance.sample(FAULTS, len(FAULTS))
            for round_, fault in enumerate(faults, start=1):
                where = f"seat faults, world {number}, round {round_}"
                # A late PUT can only undo a later step of its own change: fewer seats
                # then the renewal switched, on one subscription.
                kinds = ("decrease, renewal switched",) if fault == "late" else ROUND_OPERATIONS
                _change_seats(world, chance, kinds)
                env = _program(world, chance, fault)
                before = world.pending_now()
                parallelism = chance.choice(["1", "4"])
                done = world.apply("--parallelism", parallelism, expect=None, env=env)
                assert done.exit_code in (0, 1), f"{where} ({fault}):\n{done.stdout}\n{done.stderr}"
                world.sim.storm(0, seed=0)
                TALLY.add(f"PUT fault runs: {fault}")
                world.verify(f"{where} ({fault})")
                world.judge(before, f"{where} ({fault})")
                world.converge(f"{where} ({fault}): the plain applies after it")
                world.verify(f"{where} ({fault}): converged", converged=True, linked=True)
            # Faults still queued hit the calm runs too: they must converge all the same.
            world.converge(f"seat faults, world {number}: calm")
            world.verify(f"seat faults, world {number}: finished", converged=True, linked=True)
            failed = [
                c
                for c in world.sim.calls
                if c.endpoint in ("update", "subscription") and c.status != 200
            ]
            TALLY.add("PUT faults (update and subscription answers failed)", len(failed))
            injected = world.sim.faults_injected
            TALLY.add(
                "PUT faults (slow update and subscription answers)",
                injected.get("update slow", 0) + injected.get("subscription slow", 0),
            )
        finally:
            world.stop()
