"""The PostgreSQL state backend end to end: the real CLI, a real server, the simulator.

Each scenario is what CI runners do to one shared state:
``init`` racing, two applies from two separate working directories at once, an
apply killed or cut off from the database mid-checkout, workspaces side by side,
``state migrate`` both ways, and passwords kept out of every message. Anything
killed or run concurrently is a ``python -m reconciler`` subprocess in its own
temporary directory (its own copy of the declarations; nothing shared but the
database); the commands around it run in-process through ``CliRunner``. Every
test judges the outcome by exit codes, output, the state as ``state pull``
prints it and the checkouts the simulator recorded: each declared seat bought
exactly once.
"""

from __future__ import annotations

import collections
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from reconciler.cli import cli
from reconciler.errors import StateLockedError
from reconciler.simulator import Simulator
from reconciler.state.postgres import PostgresStateStore
from tests.pgserver import PgServer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "customers"
ALL_FILES = ("contoso.yaml", "fabrikam.yaml", "northwind.yaml")
TIMEOUT = 60
APP = "crayon-reconciler"

pytestmark = pytest.mark.slow


# -- running the CLI --


def reconciler(*args: str, env: Mapping[str, str] | None = None) -> Result:
    """A command in-process; a crash (anything but an exit) fails the test."""
    result = CliRunner().invoke(cli, list(args), env=dict(env or {}))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"reconciler {' '.join(args)} crashed") from result.exception
    return result


def spawn(cwd: Path, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """``python -m reconciler ARGS`` as its own process, in its own working directory."""
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env=os.environ | dict(env or {}),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=TIMEOUT)
    return proc.returncode, out, err


def run_process(
    cwd: Path, *args: str, env: Mapping[str, str] | None = None
) -> tuple[int, str, str]:
    return finish(spawn(cwd, *args, env=env))


def wait_until(condition: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"process exited {proc.returncode} before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.002)


def first_to_exit(*procs: subprocess.Popen[str]) -> subprocess.Popen[str]:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                return proc
        time.sleep(0.005)
    for proc in procs:
        proc.kill()
    pytest.fail("no process exited in time")


def workdir(tmp_path: Path, name: str, files: Iterable[str] = ALL_FILES) -> Path:
    """A runner's checkout: its own directory with its own copy of the declarations."""
    root = tmp_path / name
    (root / "declarations").mkdir(parents=True)
    for file in files:
        (root / "declarations" / file).write_bytes((EXAMPLES / file).read_bytes())
    return root


# -- reading the outcome --


def pulled(url: str, workspace: str = "default") -> dict[str, Any]:
    result = reconciler("state", "pull", "--state", url, "--workspace", workspace)
    assert result.exit_code == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def declared(decl: Path) -> dict[str, tuple[int, str, int]]:
    """address -> (tenant, "productId:skuId", quantity), read without the reconciler."""
    found = {}
    for file in sorted(decl.rglob("*.yaml")):
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
        for raw in data["purchases"]:
            entry = data.get("defaults", {}) | raw
            product = f"{entry['productId']}:{entry['skuId']}"
            found[entry["name"]] = (entry["customerTenantId"], product, entry["quantity"])
    return found


def assert_bought_exactly_once(sim: Simulator, *states: tuple[Path, dict[str, Any]]) -> None:
    """Every declared seat of each (declarations, pulled state) bought once, nothing else."""
    taken = {c.external_order_id: c for c in sim.checkouts}
    assert len(taken) == len(sim.checkouts), "one externalOrderId checked out twice"
    recorded: set[str] = set()
    seats: collections.Counter[tuple[int, str]] = collections.Counter()
    for decl, data in states:
        assert data["pending"] == {}
        for address, (tenant, product, quantity) in declared(decl).items():
            purchase = data["purchases"][address]
            assert purchase["quantity"] == quantity, address
            for record in purchase["checkouts"]:
                checkout = taken[record["externalOrderId"]]
                assert (checkout.tenant, checkout.product) == (tenant, product)
                assert checkout.quantity == record["quantity"]
                assert record["externalOrderId"] not in recorded, "recorded twice"
                recorded.add(record["externalOrderId"])
            assert sum(r["quantity"] for r in purchase["checkouts"]) == quantity
            seats[tenant, product] += quantity
    assert recorded == set(taken)
    for (tenant, product), total in seats.items():
        assert sim.seats(tenant, product) == total, (tenant, product)


def dbname(url: str) -> str:
    return url.rsplit("/", 1)[1]


def reconciler_sessions(server: PgServer, url: str) -> int:
    rows = server.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
        (dbname(url), APP),
    )
    count: int = rows[0][0]
    return count


def wait_for_no_sessions(server: PgServer, url: str) -> None:
    """Until the server has noticed that a killed run's connections are gone."""
    deadline = time.monotonic() + 10
    while reconciler_sessions(server, url):
        assert time.monotonic() < deadline, "a dead run's database sessions stayed open"
        time.sleep(0.01)


def settle_pending(sim: Simulator, url: str, cwd: Path) -> list[str]:
    """What an operator does after a lost run: look each pending externalOrderId up
    in Cloud-iQ (here: did the simulator take it?) and resolve it accordingly."""
    assert sim.wait_idle(), "the simulator is still handling a request"
    taken = {c.external_order_id for c in sim.checkouts}
    settled = []
    for address, op in pulled(url)["pending"].items():
        outcome = "--purchased" if op["externalOrderId"] in taken else "--not-purchased"
        code, out, err = run_process(cwd, "state", "resolve", address, outcome, "--state", url)
        assert code == 0, err
        assert f"Resolved {address}: {op['externalOrderId']}" in out
        settled.append(f"{address} {outcome}")
    return settled


def lock_message(url: str, pid: int) -> str:
    return f"state {url} is locked by pid {pid} on host {socket.gethostname()} "


@pytest.fixture
def sim(simulator_factory: Callable[..., Simulator], monkeypatch: pytest.MonkeyPatch) -> Simulator:
    """The simulator, its credentials in the environment of every command and process."""
    started = simulator_factory(latency=0.004)
    for name, value in started.env().items():
        monkeypatch.setenv(name, value)
    return started


# -- a. init --


def test_init_creates_the_schema_and_the_default_workspace_once(
    pg_server: PgServer, pg_database: str
) -> None:
    created = reconciler("init", "--state", pg_database)
    assert created.exit_code == 0, created.stderr
    assert created.stdout.startswith(f"Initialized an empty state at {pg_database} (lineage ")
    db = dbname(pg_database)
    assert pg_server.execute("SELECT version FROM reconciler.schema_migrations", dbname=db) == [
        (1,),
        (2,),
        (3,),
    ]
    tables = pg_server.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'reconciler' "
        "ORDER BY table_name",
        dbname=db,
    )
    assert [t for (t,) in tables] == [
        "adjustments", "checkouts", "history", "pending", "purchases", "schema_migrations",
        "updates", "workspaces",
    ]  # fmt: skip
    rows = pg_server.execute("SELECT name, serial FROM reconciler.workspaces", dbname=db)
    assert rows == [("default", 0)]
    first = pulled(pg_database)
    assert (first["serial"], first["purchases"], first["pending"]) == (0, {}, {})

    again = reconciler("init", "--state", pg_database)
    assert again.exit_code == 0, again.stderr
    assert again.stdout == (
        f"A state already exists at {pg_database} (serial 0, 0 purchases); nothing changed.\n"
    )
    assert pulled(pg_database) == first
    assert pg_server.execute("SELECT version FROM reconciler.schema_migrations", dbname=db) == [
        (1,),
        (2,),
        (3,),
    ]


def test_inits_racing_from_separate_processes_all_succeed_and_migrate_once(
    pg_server: PgServer, make_pg_database: Callable[[], str], tmp_path: Path
) -> None:
    for round_ in range(2):
        url = make_pg_database()
        runners = [workdir(tmp_path, f"round{round_}-runner{n}", ()) for n in range(4)]
        procs = [spawn(cwd, "init", "--state", url) for cwd in runners]
        results = [finish(proc) for proc in procs]

        assert [code for code, _, _ in results] == [0] * 4, results
        said = sorted(out.split(" ")[0] for _, out, _ in results)
        assert said == ["A", "A", "A", "Initialized"], results
        assert all(err == "" for _, _, err in results), results
        db = dbname(url)
        versions = pg_server.execute("SELECT version FROM reconciler.schema_migrations", dbname=db)
        assert versions == [(1,), (2,), (3,)]
        rows = pg_server.execute("SELECT name, serial FROM reconciler.workspaces", dbname=db)
        assert rows == [("default", 0)]


# -- b. two runners, one workspace --


def test_two_applies_from_two_checkouts_at_once_one_fails_on_the_lock(
    sim: Simulator, pg_database: str, tmp_path: Path
) -> None:
    assert reconciler("init", "--state", pg_database).exit_code == 0
    a, b = workdir(tmp_path, "runner-a"), workdir(tmp_path, "runner-b")
    sim.hold_checkouts(0.5)
    apply = ("apply", "declarations", "--state", pg_database, "--auto-approve")

    procs = [spawn(cwd, *apply, "--parallelism", "2") for cwd in (a, b)]
    loser = first_to_exit(*procs)
    (winner,) = (p for p in procs if p is not loser)
    assert winner.poll() is None, "the lock holder finished before the other gave up"
    lost_code, lost_out, lost_err = finish(loser)
    sim.hold_checkouts(0)
    code, out, err = finish(winner)

    assert lost_code == 1, lost_err
    assert lock_message(pg_database, winner.pid) in lost_err
    assert "(command 'reconciler apply', since " in lost_err
    assert lost_err.count("\n") == 1, lost_err
    assert "Traceback" not in lost_err
    assert lost_out == ""
    assert code == 0, err
    assert "Apply complete: 10 purchased (+333 seats), 0 failed, 0 pending." in out
    assert sim.tokens_issued == 1, "the run that lost the lock talked to the API"
    assert len(sim.checkouts) == 10
    assert_bought_exactly_once(sim, (a / "declarations", pulled(pg_database)))


def test_with_a_lock_timeout_the_second_apply_waits_then_buys_nothing_more(
    sim: Simulator, pg_database: str, tmp_path: Path
) -> None:
    assert reconciler("init", "--state", pg_database).exit_code == 0
    a, b = workdir(tmp_path, "runner-a"), workdir(tmp_path, "runner-b")
    sim.hold_checkouts(0.5)
    apply = ("apply", "declarations", "--state", pg_database, "--auto-approve")

    procs = [spawn(cwd, *apply, "--parallelism", "2", "--lock-timeout", "30s") for cwd in (a, b)]
    first = first_to_exit(*procs)
    first_result = finish(first)
    (second,) = (p for p in procs if p is not first)
    second_result = finish(second)
    sim.hold_checkouts(0)

    for code, _, err in (first_result, second_result):
        assert code == 0, err
        assert "locked" not in err
    # The waiter planned against the state the holder left: nothing to buy.
    assert "Apply complete: 10 purchased (+333 seats), 0 failed, 0 pending." in first_result[1]
    assert "Apply complete" not in second_result[1]
    assert "No changes" in second_result[1], second_result[1]
    assert len(sim.checkouts) == 10
    for cwd in (a, b):
        plan = reconciler(
            "plan", str(cwd / "declarations"), "--state", pg_database, "--detailed-exitcode"
        )
        assert plan.exit_code == 0, plan.stdout + plan.stderr
    assert_bought_exactly_once(sim, (b / "declarations", pulled(pg_database)))


def test_a_run_refused_by_the_lock_names_the_run_that_holds_it(pg_database: str) -> None:
    """Two runs reaching for the lock at the same instant, many times: the refused one
    names the other, never nobody (the winner not named yet) or an earlier holder."""
    assert PostgresStateStore(pg_database).create()
    refusals: list[tuple[int, str]] = []

    def contend(barrier: threading.Barrier, n: int) -> None:
        store = PostgresStateStore(pg_database)
        barrier.wait()
        try:
            with store.lock(f"reconciler apply {n}"):
                time.sleep(0.1)
        except StateLockedError as exc:
            refusals.append((n, str(exc)))

    for _ in range(15):
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=contend, args=(barrier, n)) for n in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT)
    assert len(refusals) >= 5, refusals
    for n, message in refusals:
        assert f"(command 'reconciler apply {1 - n}', since " in message, message


# -- c. a runner killed mid-checkout --


def test_a_killed_apply_is_settled_by_the_next_runners_apply_without_a_person(
    pg_server: PgServer, sim: Simulator, pg_database: str, tmp_path: Path
) -> None:
    assert reconciler("init", "--state", pg_database).exit_code == 0
    a, b = workdir(tmp_path, "runner-a"), workdir(tmp_path, "runner-b")
    # Two checkouts go through; the third verify is slow, which leaves time to make
    # the simulator hold the third checkout once it is taken.
    sim.delay_next("verify", 0, 2)
    sim.delay_next("verify", 0.5)

    proc = spawn(a, "apply", "declarations", "--state", pg_database, "--auto-approve")
    wait_until(lambda: len(sim.checkouts) >= 2, proc, "two checkouts")
    sim.hold_checkouts(2)
    wait_until(lambda: len(sim.checkouts) >= 3, proc, "the third checkout")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == -signal.SIGKILL
    sim.hold_checkouts(0)
    held = sim.checkouts[2]
    # The dead run's lock goes with its connections, whatever the API is still doing.
    wait_for_no_sessions(pg_server, pg_database)
    assert held.external_order_id in json.dumps(pulled(pg_database)["pending"])

    # Another runner's plan reads Cloud-iQ: the checkout is proven made, so it is not
    # bought again, and the plan is ready (nothing is written by plan).
    decl_b = str(b / "declarations")
    plan = reconciler("plan", decl_b, "--state", pg_database, "--json")
    assert plan.exit_code == 0, plan.stderr
    document = json.loads(plan.stdout)
    actions = {c["address"]: c["action"] for c in document["changes"]}
    assert actions["contoso/power-bi-pro"] == "noop"
    assert actions["contoso/m365-business-basic"] == "noop"
    assert document["cloud"]["read"] is True

    # Its apply records what the API proves, then buys the rest: no person, no second buy.
    code, out, err = run_process(
        b, "apply", "declarations", "--state", pg_database, "--auto-approve"
    )
    assert code == 0, err
    assert f"Settled contoso/power-bi-pro: {held.external_order_id} recorded as purchased" in out
    assert "Apply complete: 7 purchased (+201 seats), 0 failed, 0 pending." in out
    assert len(sim.checkouts) == 10
    assert pulled(pg_database)["pending"] == {}
    assert_bought_exactly_once(sim, (b / "declarations", pulled(pg_database)))


# -- d. a runner cut off from the database --


def test_an_apply_whose_connections_are_terminated_exits_1_and_buys_nothing_twice(
    pg_server: PgServer, sim: Simulator, pg_database: str, tmp_path: Path
) -> None:
    assert reconciler("init", "--state", pg_database).exit_code == 0
    a, b = workdir(tmp_path, "runner-a"), workdir(tmp_path, "runner-b")
    sim.hold_checkouts(1.5)

    proc = spawn(a, "apply", "declarations", "--state", pg_database, "--auto-approve")
    wait_until(lambda: len(sim.checkouts) >= 1, proc, "the first checkout")
    assert pg_server.terminate_backends(application_name=APP) >= 2
    sim.hold_checkouts(0)
    code, out, err = finish(proc)

    assert code == 1, out + err
    assert "cannot write the state" in err
    assert "Traceback" not in err
    assert len(sim.checkouts) == 1, "the cut-off run went on buying"
    held = sim.checkouts[0]
    # Its pending entry was committed before the checkout was sent.
    pending = pulled(pg_database)["pending"]
    assert [op["externalOrderId"] for op in pending.values()] == [held.external_order_id]

    assert settle_pending(sim, pg_database, b) == ["contoso/m365-business-basic --purchased"]
    code, out, err = run_process(
        b, "apply", "declarations", "--state", pg_database, "--auto-approve"
    )
    assert code == 0, err
    assert "Apply complete: 9 purchased (+298 seats), 0 failed, 0 pending." in out
    assert_bought_exactly_once(sim, (b / "declarations", pulled(pg_database)))


def test_a_run_that_lost_only_its_lock_connection_is_fenced_off(
    pg_server: PgServer, sim: Simulator, pg_database: str, tmp_path: Path
) -> None:
    """The write connection survives, but the lock is gone and another run took it:
    the first run's next write fails its fencing check instead of committing."""
    assert reconciler("init", "--state", pg_database).exit_code == 0
    a, b = workdir(tmp_path, "runner-a"), workdir(tmp_path, "runner-b")
    sim.hold_checkouts(2)

    proc = spawn(a, "apply", "declarations", "--state", pg_database, "--auto-approve")
    wait_until(lambda: len(sim.checkouts) >= 1, proc, "the first checkout")
    terminated = pg_server.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
        "AND granted AND database = (SELECT oid FROM pg_database WHERE datname = %s)",
        (dbname(pg_database),),
        dbname=dbname(pg_database),
    )
    assert terminated == [(True,)]
    # Another runner gets the lock at once: Cloud-iQ shows the checkout in flight was
    # taken, so it records it (no person needed) and buys the rest.
    code, taken, err = run_process(
        b, "apply", "declarations", "--state", pg_database, "--auto-approve"
    )
    assert code == 0, taken + err
    assert "Settled contoso/m365-business-basic" in taken
    sim.hold_checkouts(0)
    code, out, err = finish(proc)

    assert code == 1, out + err
    assert "no longer holds the state lock" in err
    state = pulled(pg_database)
    assert state["pending"] == {}
    assert_bought_exactly_once(sim, (b / "declarations", state))


# -- e. workspaces --


def test_two_workspaces_in_one_database_are_independent(
    sim: Simulator, pg_database: str, tmp_path: Path
) -> None:
    acme, globex = (
        workdir(tmp_path, "acme", ["contoso.yaml"]),
        workdir(tmp_path, "globex", ["northwind.yaml"]),
    )
    for name in ("acme", "globex"):
        created = reconciler("init", "--state", pg_database, "--workspace", name)
        assert created.exit_code == 0, created.stderr
        assert f"{pg_database} (workspace {name})" in created.stdout
    # The default workspace was never created.
    missing = reconciler("state", "list", "--state", pg_database)
    assert missing.exit_code == 1
    assert "no state at" in missing.stderr
    # Each workspace has its own lock: both applies run at the same time.
    sim.hold_checkouts(0.3)
    procs = [
        spawn(cwd, "apply", "declarations", "--state", pg_database, "--auto-approve",
              env={"RECONCILER_WORKSPACE": cwd.name})
        for cwd in (acme, globex)
    ]  # fmt: skip
    results = [finish(proc) for proc in procs]
    sim.hold_checkouts(0)
    assert [code for code, _, _ in results] == [0, 0], results
    assert "Apply complete: 4 purchased (+136 seats)" in results[0][1]
    assert "Apply complete: 3 purchased (+29 seats)" in results[1][1]

    listed = {}
    for cwd in (acme, globex):
        shown = reconciler("state", "list", "--state", pg_database, "--workspace", cwd.name)
        assert shown.exit_code == 0, shown.stderr
        listed[cwd.name] = shown.stdout.split()
    assert listed["acme"] == sorted(declared(acme / "declarations"))
    assert listed["globex"] == sorted(declared(globex / "declarations"))
    states = {cwd.name: pulled(pg_database, cwd.name) for cwd in (acme, globex)}
    assert states["acme"]["lineage"] != states["globex"]["lineage"]
    assert (states["acme"]["serial"], states["globex"]["serial"]) == (8, 6)
    # Each workspace's declarations are up to date against its own state only.
    for cwd in (acme, globex):
        plan = reconciler(
            "plan", str(cwd / "declarations"), "--state", pg_database,
            "--workspace", cwd.name, "--detailed-exitcode",
        )  # fmt: skip
        assert plan.exit_code == 0, plan.stdout
    # Against another workspace's state, acme's purchases are seats Cloud-iQ already
    # holds that no address of that state owns: conflicts, never a second purchase.
    crossed = reconciler(
        "plan", str(acme / "declarations"), "--state", pg_database, "--workspace", "globex",
        "--detailed-exitcode",
    )  # fmt: skip
    assert crossed.exit_code == 1
    assert "Cloud-iQ already holds" in crossed.stdout
    assert_bought_exactly_once(
        sim,
        (acme / "declarations", states["acme"]),
        (globex / "declarations", states["globex"]),
    )


# -- f. migrate --


def test_migrate_file_to_database_to_file_round_trips_byte_identical(
    sim: Simulator, pg_database: str, tmp_path: Path
) -> None:
    work = workdir(tmp_path, "runner", ["northwind.yaml"])
    decl, source = str(work / "declarations"), str(work / "reconciler.state.json")
    assert reconciler("init", "--state", source).exit_code == 0
    assert reconciler("apply", decl, "--state", source, "--auto-approve").exit_code == 0
    # A pending entry too: the answer to this checkout never arrives.
    (work / "declarations" / "contoso.yaml").write_bytes((EXAMPLES / "contoso.yaml").read_bytes())
    sim.drop_after_checkout(1)
    dropped = reconciler("apply", decl, "--state", source, "--auto-approve")
    assert dropped.exit_code == 1
    original = Path(source).read_bytes()
    data = json.loads(original)
    # 6 writes of the first apply, 3 subscriptions recorded by the second one's refresh,
    # and the pending entry of its checkout.
    assert (data["serial"], len(data["purchases"]), len(data["pending"])) == (10, 3, 1)

    to_db = reconciler("state", "migrate", "--state", source, "--to", pg_database)
    assert to_db.exit_code == 0, to_db.stderr
    assert to_db.stdout == (
        f"Copied the state (serial 10, 3 purchases, 1 pending) to {pg_database}.\n"
    )
    pull = reconciler("state", "pull", "--state", pg_database)
    assert pull.exit_code == 0
    assert pull.stdout.encode() == original
    # The source is left as it was.
    assert Path(source).read_bytes() == original

    # The database state behaves as the file did: offline, the pending entry blocks.
    plan = reconciler("plan", decl, "--state", pg_database, "--json", "--no-refresh")
    assert plan.exit_code == 1
    assert {c["action"] for c in json.loads(plan.stdout)["changes"]} >= {"pending", "noop"}

    back = str(tmp_path / "back" / "reconciler.state.json")
    Path(back).parent.mkdir()
    to_file = reconciler("state", "migrate", "--state", pg_database, "--to", back)
    assert to_file.exit_code == 0, to_file.stderr
    assert Path(back).read_bytes() == original

    # A target that holds a state is refused, both ways, and left alone.
    again = reconciler("state", "migrate", "--state", source, "--to", pg_database)
    assert again.exit_code == 1
    assert again.stderr == (
        f"error: {pg_database} already holds a state (serial 10); migrate only into an empty one\n"
    )
    onto_file = reconciler("state", "migrate", "--state", pg_database, "--to", back)
    assert onto_file.exit_code == 1
    assert "already holds a state (serial 10); migrate only into an empty one" in onto_file.stderr
    assert Path(back).read_bytes() == original
    assert reconciler("state", "pull", "--state", pg_database).stdout.encode() == original

    # An empty workspace made by init is a fine target; so is a database to database copy.
    assert reconciler("init", "--state", pg_database, "--workspace", "copy").exit_code == 0
    copy = reconciler(
        "state", "migrate", "--state", pg_database, "--to", pg_database, "--to-workspace", "copy"
    )
    assert copy.exit_code == 0, copy.stderr
    assert pulled(pg_database, "copy") == data


# -- g. passwords and connection errors --


def test_a_password_in_the_url_works_and_is_never_shown(
    pg_server: PgServer,
    sim: Simulator,
    pg_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PGPASSWORD")  # the URL's password is the only one
    secret = pg_server.password
    url = pg_database.replace("reconciler@", f"reconciler:{secret}@")
    shown = pg_database.replace("reconciler@", "reconciler:***@")
    work = workdir(tmp_path, "runner", ["northwind.yaml"])
    outputs: list[str] = []

    def run(*args: str, expect: int = 0) -> tuple[str, str]:
        code, out, err = run_process(work, *args)
        outputs.extend((out, err))
        assert code == expect, (args, out, err)
        return out, err

    assert shown in run("init", "--state", url)[0]
    assert shown in run("init", "--state", url)[0]
    run("plan", "declarations", "--state", url, expect=0)
    run("apply", "declarations", "--state", url, "--auto-approve")
    run("show", "--state", url)
    run("state", "list", "--state", url)
    run("state", "show", "northwind/teams-essentials", "--state", url)
    run("state", "pull", "--state", url)
    run("state", "history", "--state", url)
    run("state", "migrate", "--state", url, "--to", "copy.json")
    assert shown in run("state", "migrate", "--state", "copy.json", "--to", url, expect=1)[1]
    missing = run("plan", "declarations", "--state", url, "--workspace", "nope", expect=1)[1]
    assert missing == (
        f"error: no state at {shown} (workspace nope); run 'reconciler init' to start an "
        "empty one\n"
    )
    for args in (("show",), ("state", "list"), ("state", "pull"), ("state", "history")):
        assert run(*args, "--state", url, "--workspace", "nope", expect=1)[1] == missing

    # A held lock and a pending entry: the messages naming the state hide the password.
    # (The held checkout is recorded when it arrives; the kill comes long before its 204.)
    sim.hold_checkouts(30)
    (work / "declarations" / "contoso.yaml").write_bytes((EXAMPLES / "contoso.yaml").read_bytes())
    holder = spawn(work, "apply", "declarations", "--state", url, "--auto-approve")
    wait_until(lambda: len(sim.checkouts) >= 4, holder, "a checkout")
    assert shown in run("apply", "declarations", "--state", url, "--auto-approve", expect=1)[1]
    assert shown in run("state", "rm", "northwind/teams-essentials", "--state", url, "-y",
                        expect=1)[1]  # fmt: skip
    holder.send_signal(signal.SIGKILL)
    outputs.extend(holder.communicate(timeout=TIMEOUT))
    sim.hold_checkouts(0)
    wait_for_no_sessions(pg_server, pg_database)
    # Offline (--refresh=false) only a person can settle it: the commands suggested for
    # that name the state without its password.
    refused = run(
        "apply", "declarations", "--state", url, "--auto-approve", "--refresh=false", expect=1
    )[1]
    assert f"--purchased --state {shlex.quote(shown)}" in refused
    assert f"reconciler refresh --state {shlex.quote(shown)}" in refused
    assert "--state" in run("plan", "declarations", "--state", url, "--no-refresh", expect=1)[1]

    # The same through the environment, and with the password in the query string.
    queried = f"{pg_database}?password={secret}&connect_timeout=5"
    for env in ({"RECONCILER_STATE": url}, {"RECONCILER_STATE": queried}):
        code, out, err = run_process(work, "show", env=env)
        outputs.extend((out, err))
        assert code == 0, err
        code, out, err = run_process(work, "plan", "declarations", "--no-refresh", env=env)
        outputs.extend((out, err))
        assert code == 1
        assert "--state 'postgresql://reconciler" in err
    assert "?password=***&connect_timeout=5" in err

    resolved = run("state", "resolve", "contoso/m365-business-basic", "--purchased",
                   "--state", url)[0]  # fmt: skip
    assert "recorded as purchased (+35, 35 seats in total)" in resolved
    assert (
        "Apply complete: 3 purchased"
        in run("apply", "declarations", "--state", url, "--auto-approve")[0]
    )
    assert len(outputs) > 40
    for text in outputs:
        assert secret not in text
    assert secret not in (work / "copy.json").read_text()
    assert not any(secret in json.dumps(row) for row in pg_server.execute(
        "SELECT run FROM reconciler.history", dbname=dbname(pg_database)
    ))  # fmt: skip
    assert_bought_exactly_once(sim, (work / "declarations", pulled(url)))


@pytest.mark.parametrize("failure", ["wrong password in the url", "wrong PGPASSWORD", "no server"])
def test_a_connection_failure_is_one_line_without_traceback_or_password(
    pg_server: PgServer,
    pg_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
) -> None:
    wrong = "not-the-pw-5f2e"
    secret = pg_server.password
    if failure == "wrong password in the url":
        url = pg_database.replace("reconciler@", f"reconciler:{wrong}@")
        shown = pg_database.replace("reconciler@", "reconciler:***@")
    elif failure == "wrong PGPASSWORD":
        monkeypatch.setenv("PGPASSWORD", wrong)
        url = shown = pg_database
    else:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        url = shown = f"postgresql://reconciler@127.0.0.1:{port}/nowhere"
    work = workdir(tmp_path, "runner", ["northwind.yaml"])
    for args in (
        ("init",),
        ("plan", "declarations"),
        ("apply", "declarations", "--auto-approve"),
        ("show",),
        ("state", "list"),
        ("state", "pull"),
        ("state", "history"),
        ("state", "resolve", "northwind/teams-essentials", "--purchased"),
        ("state", "migrate", "--to", "copy.json"),
    ):
        code, out, err = run_process(work, *args, "--state", url)
        assert code == 1, (args, out, err)
        assert out == ""
        assert err.startswith(f"error: cannot connect to {shown}: "), (args, err)
        assert err.count("\n") == 1, (args, err)
        assert "Traceback" not in err
        assert wrong not in err
        assert secret not in err
        if failure == "no server":
            assert "Connection refused" in err
        else:
            assert "password authentication failed" in err


# -- h. history --


def test_state_history_lists_every_write_of_an_apply(
    sim: Simulator, pg_database: str, tmp_path: Path
) -> None:
    work = workdir(tmp_path, "runner", ["northwind.yaml"])
    assert reconciler("init", "--state", pg_database).exit_code == 0
    ci = {
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "acme/licences",
        "GITHUB_RUN_ID": "4242",
    }
    code, _, err = run_process(
        work, "apply", "declarations", "--state", pg_database, "--auto-approve", env=ci
    )
    assert code == 0, err
    applied = reconciler("state", "history", "--state", pg_database, "--json")
    assert applied.exit_code == 0, applied.stderr
    entries = json.loads(applied.stdout)
    addresses = sorted(declared(work / "declarations"))
    assert [(e["serial"], e["op"], e["address"]) for e in entries] == [
        (2 * n + step + 1, op, address)
        for n, address in enumerate(addresses)
        for step, op in enumerate(("add_pending", "record_checkout"))
    ]
    pids = {e["run"]["pid"] for e in entries}
    assert len(pids) == 1
    for entry in entries:
        assert entry["run"]["command"] == "reconciler apply"
        assert entry["run"]["host"] == socket.gethostname()
        assert entry["run"]["ci_url"] == "https://github.com/acme/licences/actions/runs/4242"

    resolved_by = reconciler(
        "state", "rm", "northwind/teams-essentials", "--state", pg_database, "-y"
    )
    assert resolved_by.exit_code == 0, resolved_by.stderr
    text = reconciler("state", "history", "--state", pg_database)
    assert text.exit_code == 0, text.stderr
    lines = text.stdout.splitlines()
    assert len(lines) == 7
    (pid,) = pids
    for line, (serial, op, address) in zip(
        lines,
        [(e["serial"], e["op"], e["address"]) for e in entries]
        + [(7, "remove_purchase", "northwind/teams-essentials")],
        strict=True,
    ):
        assert line.split()[0] == str(serial)
        assert f" {op} " in line
        assert f" {address}  by " in line
    assert lines[0].endswith(
        f"by reconciler apply pid {pid} on {socket.gethostname()} "
        "(https://github.com/acme/licences/actions/runs/4242)"
    )
    assert lines[-1].endswith(f"by reconciler state rm pid {os.getpid()} on {socket.gethostname()}")

    on_file = reconciler("state", "history", "--state", str(tmp_path / "x.json"))
    assert on_file.exit_code == 1


def test_migrate_between_databases_keeps_the_history(
    sim: Simulator, make_pg_database: Callable[[], str], tmp_path: Path
) -> None:
    source, target = make_pg_database(), make_pg_database()
    work = workdir(tmp_path, "runner", ["northwind.yaml"])
    assert reconciler("init", "--state", source).exit_code == 0
    code, _, err = run_process(work, "apply", "declarations", "--state", source, "--auto-approve")
    assert code == 0, err
    moved = reconciler(
        "state", "migrate", "--state", source, "--to", target, "--to-workspace", "copy"
    )
    assert moved.exit_code == 0, moved.stderr

    def history(url: str, *extra: str) -> list[dict[str, Any]]:
        shown = reconciler("state", "history", "--state", url, "--json", *extra)
        assert shown.exit_code == 0, shown.stderr
        entries: list[dict[str, Any]] = json.loads(shown.stdout)
        return entries

    assert history(target, "--workspace", "copy") == history(source)
    assert pulled(target, "copy") == pulled(source)


def test_a_database_migrated_by_a_newer_reconciler_is_refused(
    pg_server: PgServer, pg_database: str, tmp_path: Path
) -> None:
    assert reconciler("init", "--state", pg_database).exit_code == 0
    pg_server.execute(
        "INSERT INTO reconciler.schema_migrations (version) VALUES (999)",
        dbname=dbname(pg_database),
    )
    decl = workdir(tmp_path, "runner", ["northwind.yaml"]) / "declarations"
    for args in (
        ("plan", str(decl), "--state", pg_database),
        ("state", "list", "--state", pg_database),
    ):
        refused = reconciler(*args)
        assert refused.exit_code == 1
        assert "was set up by a newer reconciler (schema version 999); upgrade to use it" in (
            refused.stderr
        )


def test_a_bad_target_workspace_name_is_a_usage_error(pg_database: str, tmp_path: Path) -> None:
    state = tmp_path / "reconciler.state.json"
    assert reconciler("init", "--state", str(state)).exit_code == 0
    refused = reconciler(
        "state", "migrate", "--state", str(state), "--to", pg_database, "--to-workspace", "Bad Name"
    )
    assert refused.exit_code == 1
    assert "is not a workspace name" in refused.stderr


# -- i. passwords in every form a URL can carry them --


def test_a_password_in_any_url_form_works_and_is_never_shown(
    pg_server: PgServer,
    make_pg_database: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """libpq reads ``?%70assword=`` as ``password``; ``sslpassword`` and a userinfo
    password beside a multi-host list are passwords too. Each works, and ``init``,
    ``state migrate`` and the rest show it as ``***``."""
    secret = pg_server.password
    url = make_pg_database()
    monkeypatch.delenv("PGPASSWORD")  # the URL's password is the only one
    address, db = url.split("@", 1)[1].split("/", 1)
    refused = f"127.0.0.1:{_free_port()}"
    forms = [
        (f"{url}?%70assword={secret}", f"{url}?%70assword=***"),
        (
            f"postgresql://reconciler:{secret}@{address}/{db}?sslpassword={secret}&sslmode=disable",
            f"postgresql://reconciler:***@{address}/{db}?sslpassword=***&sslmode=disable",
        ),
        (
            f"postgresql://reconciler:{secret}@{refused},{address}/{db}",
            f"postgresql://reconciler:***@{refused},{address}/{db}",
        ),
    ]
    outputs: list[str] = []
    for number, (form, shown) in enumerate(forms):
        workspace = f"form-{number}"
        created = reconciler("init", "--state", form, "--workspace", workspace)
        outputs += [created.stdout, created.stderr]
        assert created.exit_code == 0, created.stderr
        assert created.stdout.startswith(
            f"Initialized an empty state at {shown} (workspace {workspace}) (lineage "
        )
        for args in (("show",), ("state", "list"), ("state", "pull"), ("state", "history")):
            ran = reconciler(*args, "--state", form, "--workspace", workspace)
            outputs += [ran.stdout, ran.stderr]
            assert ran.exit_code == 0, (args, ran.stderr)
        copied = reconciler(
            "state", "migrate", "--state", form, "--workspace", workspace,
            "--to", form, "--to-workspace", f"copy-{number}",
        )  # fmt: skip
        outputs += [copied.stdout, copied.stderr]
        assert copied.exit_code == 0, copied.stderr
        assert copied.stdout == (
            f"Copied the state (serial 0, 0 purchases, 0 pending) to {shown} "
            f"(workspace copy-{number}).\n"
        )
    for text in outputs:
        assert secret not in text


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(
            "postgresql://reconciler:{wrong}@{address}/{db}?%70assword={wrong}", id="%70assword"
        ),
        pytest.param("postgresql://reconciler@{address}/{db}?PassWord={wrong}", id="PassWord"),
        pytest.param("postgresql://reconciler@{address}/{db}?%2570assword={wrong}", id="%2570"),
        pytest.param("postgresql://reconciler:{wrong}@{address},{address}/{db}", id="multi-host"),
        pytest.param("postgresql://reconciler:{wrong}@127.0.0.1:99999/{db}", id="port-99999"),
        pytest.param("postgresql://reconciler:{wrong}@127.0.0.1:-1/{db}", id="port-negative"),
        pytest.param("postgresql://reconciler:{wrong}@[::1/{db}", id="bad-ipv6"),
        pytest.param(
            "postgresql://reconciler:{wrong}@{address}/{db}?sslpassword={wrong}&x=%zz",
            id="bad-escape",
        ),
    ],
)
def test_a_hostile_url_is_one_line_of_error_without_traceback_or_password(
    pg_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    monkeypatch.delenv("PGPASSWORD")
    wrong = "n0t-the-pw-8e1c"
    address, db = pg_database.split("@", 1)[1].split("/", 1)
    url = form.format(wrong=wrong, address=address, db=db)
    work = workdir(tmp_path, "runner", ["northwind.yaml"])
    decl = str(work / "declarations")
    for args in (
        ("init",),
        ("plan", decl),
        ("apply", decl, "--auto-approve"),
        ("show",),
        ("state", "pull"),
        ("state", "migrate", "--to", str(work / "copy.json")),
    ):
        ran = reconciler(*args, "--state", url)
        assert ran.exit_code == 1, (args, ran.output)
        assert ran.stdout == ""
        err = ran.stderr
        assert err.startswith("error: cannot connect to postgresql://reconciler"), (args, err)
        assert err.count("\n") == 1, (args, err)
        assert wrong not in err, err
    assert not (work / "copy.json").exists()
    # Migrating into such a URL fails the same way, and names it masked.
    state = str(work / "reconciler.state.json")
    assert reconciler("init", "--state", state).exit_code == 0
    moved = reconciler("state", "migrate", "--state", state, "--to", url)
    assert moved.exit_code == 1
    assert moved.stderr.startswith("error: cannot connect to postgresql://reconciler"), moved.stderr
    assert wrong not in moved.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# -- j. rows edited by hand --

_HAND_EDITS = [
    pytest.param(
        "UPDATE reconciler.purchases SET billing_cycle = 'weekly'",
        'reconciler.purchases (workspace "acme-eu", address "acme/a"): billingCycle: expected '
        'one of monthly, annual, none, one-time, triennial, got a string "weekly"',
        id="billing-cycle",
    ),
    pytest.param(
        "UPDATE reconciler.purchases SET customer_tenant_id = -111111",
        'reconciler.purchases (workspace "acme-eu", address "acme/a"): customerTenantId: '
        "expected an integer >= 1, got -111111",
        id="negative-tenant",
    ),
    pytest.param(
        "UPDATE reconciler.checkouts SET time = 'last tuesday' WHERE position = 1",
        'reconciler.checkouts (workspace "acme-eu", address "acme/a", position 1): time: '
        'expected a UTC time like 2026-11-26T19:00:00Z, got a string "last tuesday"',
        id="junk-checkout-time",
    ),
    pytest.param(
        "UPDATE reconciler.workspaces SET lineage = ''",
        'reconciler.workspaces (name "acme-eu"): lineage: expected a non-empty string, got a '
        'string ""',
        id="empty-lineage",
    ),
    pytest.param(
        "UPDATE reconciler.pending SET quantity = 2147483647, time = '2026-13-99'",
        'reconciler.pending (workspace "acme-eu", address "acme/p"): time: expected a UTC '
        'time like 2026-11-26T19:00:00Z, got a string "2026-13-99"',
        id="pending-time",
    ),
    pytest.param(
        "UPDATE reconciler.adjustments SET source = ''",
        'reconciler.adjustments (workspace "acme-eu", address "acme/a", position 0): source: '
        'expected a non-empty string, got a string ""',
        id="adjustment-source",
    ),
]


@pytest.mark.parametrize(("edit", "where"), _HAND_EDITS)
def test_a_row_edited_by_hand_is_refused_naming_the_workspace_and_the_row(
    pg_server: PgServer, pg_database: str, tmp_path: Path, edit: str, where: str
) -> None:
    from reconciler.model import CheckoutRecord, Identity, PendingOperation

    identity = Identity(111111, "CFQ7TTC0LF8R", "0010", "monthly", "P1M")
    t0 = "2026-11-26T19:00:00Z"
    assert reconciler("init", "--state", pg_database, "--workspace", "acme-eu").exit_code == 0
    with PostgresStateStore(pg_database, "acme-eu").lock("test") as writer:
        writer.record_checkout("acme/a", identity, CheckoutRecord("ord-1", 5, t0))
        writer.record_checkout("acme/a", identity, CheckoutRecord("ord-2", 2, t0))
        writer.adjust_quantity("acme/a", 1, t0, "Cloud-iQ showed 8 active seats")
        writer.add_pending(PendingOperation("acme/p", identity, "ord-3", 1, t0))
    pg_server.execute(edit, dbname=dbname(pg_database))  # type: ignore[arg-type]

    decl = workdir(tmp_path, "runner", ["northwind.yaml"]) / "declarations"
    expected = (
        f"error: the state at {pg_database} (workspace acme-eu) has a row this reconciler "
        f"refuses, in table {where}. Was it edited by hand? Put the value right, or restore "
        "the row from the state history\n"
    )
    for args in (
        ("plan", str(decl)),
        ("apply", str(decl), "--auto-approve"),
        ("show",),
        ("state", "list"),
        ("state", "pull"),
        ("state", "rm", "acme/a", "-y"),
        ("state", "migrate", "--to", str(tmp_path / "copy.json")),
    ):
        refused = reconciler(*args, "--state", pg_database, "--workspace", "acme-eu")
        assert (refused.exit_code, refused.stdout) == (1, ""), args
        assert refused.stderr == expected, args
    assert not (tmp_path / "copy.json").exists()


# -- k. lock keys --


def test_two_workspaces_whose_crc32_collide_lock_independently(pg_database: str) -> None:
    """A 32-bit key (the CRC-32 of the name) made these two wait for each other, and the
    second was refused naming nobody. Each workspace now has a 64-bit key of its own."""
    import zlib

    first, second = "customer-29685295", "customer-32060020"
    assert zlib.crc32(first.encode()) == zlib.crc32(second.encode())
    for name in (first, second):
        assert reconciler("init", "--state", pg_database, "--workspace", name).exit_code == 0
    one, other = PostgresStateStore(pg_database, first), PostgresStateStore(pg_database, second)
    with one.lock("reconciler apply"):
        with other.lock("reconciler apply") as writer:
            assert writer.state.serial == 0
            assert one.locked_by() is not None
            assert other.locked_by() is not None
        assert other.locked_by() is None
        # A second run on the held workspace is refused naming the holder.
        with (
            pytest.raises(StateLockedError) as caught,
            PostgresStateStore(pg_database, first).lock("reconciler state rm"),
        ):
            pytest.fail("locked twice")
        assert lock_message(f"{pg_database} (workspace {first})", os.getpid()) in str(caught.value)
    assert one.locked_by() is None


@pytest.mark.parametrize("value", ["ten", "1.5", "-3", "9" * 30])
def test_a_connect_timeout_that_is_not_whole_seconds_is_an_error(
    pg_database: str, value: str
) -> None:
    result = reconciler("init", "--state", pg_database, env={"PGCONNECT_TIMEOUT": value})
    assert result.exit_code == 1
    assert "PGCONNECT_TIMEOUT must be a whole number of seconds" in result.output
