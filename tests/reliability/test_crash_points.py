"""Crash-point enumeration: kill a real ``python -m reconciler`` right before and right
after every durable step of the state store, for a 5-purchase apply and each state
command, on the file store and on PostgreSQL.

The kill comes from the crash hook (``crashhook/sitecustomize.py``), which numbers
the store's durable steps (each file created, write, fsync, rename, link, unlink;
each PostgreSQL commit) in the child and ``os._exit(137)``s at step N. A first run
of each scenario counts its steps; then, for every N and both sides of it, a fresh
world (its own simulator and state) is prepared, the command killed there, and:

- the invariants hold (``invariants``) and the state loads and matches its schema;
- the next runs converge: the interrupted command's job is finished when it did not
  get done (``redo``), each pending checkout is settled honestly (the operator asks
  the API whether it took the externalOrderId), and an apply buys exactly what is
  missing; then everything declared is bought exactly once and, for a file, nothing
  but the state and its lock file is left beside it.

Two children run at a time; the checks and the in-process commands run in the test's
own thread, one world at a time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path

import harness
import pytest
from harness import TALLY, Outputs, World
from invariants import Declared

from reconciler.state import open_store
from tests.pgserver import PgServer

TENANTS = [100001, 100002, 100003]
#: Children running at once (the machine has two cores).
WORKERS = 2


def _bought(world: World, count: int) -> list[Declared]:
    """An initialised state in which ``count`` purchases were applied."""
    world.cli("init", *world.state_args)
    bought = harness.purchases(count, tenants=TENANTS)
    world.declare(bought)
    world.apply()
    return bought


def _pending_at_third(world: World, fault: Callable[[World], None]) -> str:
    """Two purchases bought, a third left pending by ``fault``; returns its address."""
    first = _bought(world, 2)
    third = harness.purchases(3, tenants=TENANTS)[2]
    world.declare([*first, third])
    fault(world)
    world.apply(expect=1)
    assert list(world.store_load().pending) == [third.address]
    return third.address


@dataclass(frozen=True)
class Scenario:
    """A command under test: how its world is prepared, its arguments, and what an
    operator does after it was killed so that its job gets done (``redo``)."""

    name: str
    prepare: Callable[[World], list[str]]  # returns the command's arguments
    redo: Callable[[World, list[str]], None]
    #: The state may not exist after a kill (init).
    may_be_absent: bool = False
    #: Threads make the steps vary from run to run: a run may end before step N.
    #: Such a scenario runs only with --reliability-full.
    varies: bool = False


def _prepare_apply(world: World) -> list[str]:
    world.cli("init", *world.state_args)
    world.declare(harness.purchases(5, tenants=TENANTS))
    return ["apply", str(world.decl), *world.state_args, "--auto-approve", "--parallelism", "1"]


def _prepare_parallel_apply(world: World) -> list[str]:
    return [*_prepare_apply(world)[:-1], "4"]


def _prepare_init(world: World) -> list[str]:
    world.declare(harness.purchases(3, tenants=TENANTS))
    return ["init", *world.state_args]


def _prepare_rm(world: World) -> list[str]:
    *kept, victim = _bought(world, 3)
    recorded = world.store_load().purchases[victim.address]
    world.forgotten |= {record.external_order_id for record in recorded.checkouts}
    world.declare(kept)  # no longer managed: forgotten, not bought again
    return ["state", "rm", victim.address, "--config", str(world.decl), *world.state_args, "-y"]


def _prepare_mv(world: World) -> list[str]:
    *kept, moved = _bought(world, 3)
    target = f"{moved.address}-renamed"
    world.renamed[moved.address] = target
    world.declare([*kept, replace(moved, address=target)])
    return ["state", "mv", moved.address, target, *world.state_args, "-y"]


def _prepare_import(world: World) -> list[str]:
    bought = _bought(world, 2)
    outside = Declared("bought-outside/basic", TENANTS[1], "CFQ7TTC0LF8R", "0010", 4)
    world.declare([*bought, outside])
    world.blind.add(outside.address)  # recorded by hand: Cloud-iQ has no such subscription
    return [
        "state", "import", outside.address, "--quantity", "4", "--config", str(world.decl),
        *world.state_args, "-y",
    ]  # fmt: skip


def _prepare_resolve_purchased(world: World) -> list[str]:
    address = _pending_at_third(world, lambda w: w.sim.drop_after_checkout(1))
    return ["state", "resolve", address, "--purchased", *world.state_args]


def _prepare_resolve_not_purchased(world: World) -> list[str]:
    address = _pending_at_third(world, lambda w: w.sim.fail_checkout_unrecorded(1))
    return ["state", "resolve", address, "--not-purchased", *world.state_args]


def _nothing(world: World, command: list[str]) -> None:
    """Honest resolution and the next apply finish this command's job."""


def _redo_init(world: World, command: list[str]) -> None:
    world.cli(*command)  # exits 0 whether or not the killed one created the state


def _redo_if(
    still_needed: Callable[[World, list[str]], bool],
) -> Callable[[World, list[str]], None]:
    def redo(world: World, command: list[str]) -> None:
        if still_needed(world, command):
            world.cli(*command, "--lock-timeout", "30s")

    return redo


SCENARIOS = [
    Scenario("apply", _prepare_apply, _nothing),
    Scenario("init", _prepare_init, _redo_init, may_be_absent=True),
    Scenario("rm", _prepare_rm, _redo_if(lambda w, c: c[2] in w.store_load().purchases)),
    Scenario("mv", _prepare_mv, _redo_if(lambda w, c: c[2] in w.store_load().purchases)),
    Scenario(
        "import",
        _prepare_import,
        _redo_if(lambda w, c: c[2] not in w.store_load().purchases),
    ),
    Scenario("resolve-purchased", _prepare_resolve_purchased, _nothing),
    Scenario("resolve-not-purchased", _prepare_resolve_not_purchased, _nothing),
    Scenario("apply-parallel-4", _prepare_parallel_apply, _nothing, varies=True),
]


@dataclass
class Backend:
    """Makes the worlds of one backend: each crash point gets a new one."""

    name: str
    tmp_path: Path
    outputs: Outputs
    base_env: dict[str, str]
    pg_url: str | None = None

    def world(self, label: str) -> World:
        root = self.tmp_path / label
        if self.pg_url is None:
            return harness.file_world(root, self.outputs, self.base_env)
        return harness.pg_world(root, self.outputs, self.base_env, self.pg_url, label)

    def hook(self, log: Path, crash_at: int | None = None, mode: str = "before") -> dict[str, str]:
        variables = {"RECONCILER_TEST_CRASH_LOG": str(log)}
        if crash_at is not None:
            variables |= {
                "RECONCILER_TEST_CRASH_AT": str(crash_at),
                "RECONCILER_TEST_CRASH_MODE": mode,
            }
        if self.pg_url is not None:
            variables["RECONCILER_TEST_CRASH_PSYCOPG"] = "1"
        return variables


def _steps(log: Path) -> list[dict[str, object]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def _count_steps(backend: Backend, scenario: Scenario) -> list[dict[str, object]]:
    """Run the scenario's command once, unharmed, and return its durable steps."""
    world = backend.world(f"{scenario.name}-count")
    try:
        command = scenario.prepare(world)
        log = world.root / "steps.jsonl"
        proc = world.spawn(*command, hook=backend.hook(log))
        code, out, err = world.finish(proc, f"{scenario.name} (counting)")
        assert code == 0, f"{out}\n{err}"
        world.honest_resolve()
        world.apply()
        world.verify(f"{scenario.name} without a kill", converged=True)
        return _steps(log)
    finally:
        world.stop()


def _check_after_kill(
    backend: Backend, scenario: Scenario, world: World, command: list[str], where: str
) -> None:
    state_exists = open_exists(world)
    if state_exists or not scenario.may_be_absent:
        world.verify(f"{where}, right after the kill")
    scenario.redo(world, command)
    world.honest_resolve()
    world.apply()
    world.verify(f"{where}, after recovery", converged=True)
    if world.is_file:
        state = Path(world.state)
        left = sorted(os.listdir(state.parent))
        assert left == [state.name, state.name + ".lock"], f"{where}: left behind {left}"


def open_exists(world: World) -> bool:
    return open_store(world.state, workspace=world.workspace or "default").exists()


def _enumerate(backend: Backend, scenario: Scenario, minimum_steps: int) -> None:
    steps = _count_steps(backend, scenario)
    assert len(steps) >= minimum_steps, f"only {len(steps)} durable steps counted: {steps}"
    jobs: Iterator[tuple[int, str]] = (
        (number, mode) for number in range(1, len(steps) + 1) for mode in ("before", "after")
    )
    running: dict[Future[tuple[int, str, str]], tuple[World, list[str], str, Path]] = {}

    def start_next(pool: ThreadPoolExecutor) -> bool:
        job = next(jobs, None)
        if job is None:
            return False
        number, mode = job
        world = backend.world(f"{scenario.name}-{number}-{mode}")
        command = scenario.prepare(world)
        log = world.root / "steps.jsonl"
        step = steps[number - 1]
        where = (
            f"{backend.name} {scenario.name}: killed {mode} step {number}/{len(steps)} "
            f"({step['call']} in {step['where']})"
        )
        proc = world.spawn(*command, hook=backend.hook(log, number, mode))
        running[pool.submit(world.finish, proc, where)] = (world, command, where, log)
        return True

    with ThreadPoolExecutor(WORKERS) as pool:
        for _ in range(WORKERS):
            start_next(pool)
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                world, command, where, log = running.pop(future)
                try:
                    code, out, err = future.result()
                    if scenario.varies and code == 0:
                        world.verify(f"{where}: ended before that step", converged=True)
                    else:
                        assert code == harness.HOOK_KILLED, (
                            f"{where}: exited {code} instead (the steps differ from the "
                            f"counting run):\n{out}\n{err}"
                        )
                        killed = [s for s in _steps(log) if "killed" in s]
                        assert killed, f"{where}: killed, but not by the hook"
                        _check_after_kill(backend, scenario, world, command, where)
                        TALLY.add(f"crash points ({backend.name})")
                finally:
                    world.stop()
                start_next(pool)


#: At least this many durable steps, or the hook is not counting what it should.
FILE_MINIMUM = {"apply": 30, "init": 4}
PG_MINIMUM = {"apply": 12, "init": 1}


@pytest.fixture
def base_env() -> dict[str, str]:
    # Taken in the test's thread before any in-process command changes os.environ.
    return dict(os.environ)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Scenarios whose steps vary from run to run join only with --reliability-full:
    they are left out of a CI run, never collected and skipped."""
    if "scenario" in metafunc.fixturenames:
        given = metafunc.config.getoption("--reliability-full", default=None)
        full = bool(given and int(given) > 1) or int(os.environ.get("RELIABILITY_FULL") or 1) > 1
        chosen = [s for s in SCENARIOS if full or not s.varies]
        metafunc.parametrize("scenario", chosen, ids=lambda s: s.name)


def test_every_crash_point_on_the_file_store(
    scenario: Scenario, tmp_path: Path, outputs: Outputs, base_env: dict[str, str]
) -> None:
    backend = Backend("file", tmp_path, outputs, base_env)
    _enumerate(backend, scenario, FILE_MINIMUM.get(scenario.name, 10))


def test_every_crash_point_on_postgresql(
    scenario: Scenario,
    tmp_path: Path,
    outputs: Outputs,
    pg_server: PgServer,
    pg_database: str,
) -> None:
    outputs.use_secret("database password", pg_server.password)
    env = dict(os.environ)  # after pg_database set PGPASSWORD
    backend = Backend("postgresql", tmp_path, outputs, env, pg_database)
    # The schema exists before any world's init: each init then does the same steps.
    schema = backend.world("schema")
    schema.cli("init", *schema.state_args)
    schema.stop()
    _enumerate(backend, scenario, PG_MINIMUM.get(scenario.name, 3))
