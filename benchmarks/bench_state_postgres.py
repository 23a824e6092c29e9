"""The write after a 204 on PostgreSQL as the state grows, next to the file store's.

    python benchmarks/bench_state_postgres.py [--writes N] [--dir DIR] [--no-fsync]

For 100, 5,000 and 50,000 recorded purchases it builds one state, loads it into
a JSON file store and into a PostgreSQL workspace (its own database per size, so
a small state really sits in small tables), takes each store's lock, then times
``record_checkout`` -- the write made after every 204 -- and prints median, p99
and mean per write for both backends. The cost must stay flat on both: one
fsynced journal line for the file, one transaction touching one address's rows
for the database.

The six stores are written to in turn, one write each per round, so the
machine's drift (other tenants, a burst of disk activity) falls on all of them
alike. The server is a throwaway cluster from ``tests/pgserver.py`` on loopback,
in the same temporary file system as the state files, started with the
durability the test suite switches off (fsync, synchronous_commit,
full_page_writes) so that a commit waits for the disk as the file store's fsync
does; ``--no-fsync`` keeps the test settings. The one-off costs (populating the
workspace with ``create``, taking the lock, which loads the state) are shown
beside. This script is a measurement, not a test: it asserts only that every
write landed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from pathlib import Path

# Runs from a source checkout without installing the package; the server comes
# from the test suite's helper.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import pgserver
from bench_state import IDENTITY, SIZES, build_state
from pgserver import PgServer

from reconciler.model import CheckoutRecord
from reconciler.state import JsonFileStateStore, StateStore, StateWriter, utc_now
from reconciler.state.postgres import PostgresStateStore

DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}


@dataclass
class Run:
    backend: str
    size: int
    store: StateStore
    addresses: list[str]
    create_seconds: float = 0.0
    lock_seconds: float = 0.0
    times: list[float] = field(default_factory=list)


def prepare(directory: Path, server: PgServer) -> list[Run]:
    runs = []
    for size in SIZES:
        path = directory / f"state-{size}.json"
        build_state(path, size)
        file_store = JsonFileStateStore(path)
        state = file_store.load()
        addresses = list(state.purchases)
        runs.append(Run("file", size, file_store, addresses))
        database = server.create_database()
        pg_store = PostgresStateStore(server.url(database))
        started = time.perf_counter()
        assert pg_store.create(state)
        created = time.perf_counter() - started
        runs.append(Run("postgres", size, pg_store, addresses, create_seconds=created))
        # The planner's statistics, as autovacuum would have them on a live database.
        server.execute("VACUUM ANALYZE", dbname=database)
    # Flush the freshly built files now, or the first fsyncs of the journals pay for them.
    os.sync()
    return runs


def measure(runs: list[Run], writes: int) -> None:
    with ExitStack() as stack:
        locked: list[tuple[Run, StateWriter]] = []
        for run in runs:
            lock: AbstractContextManager[StateWriter] = run.store.lock("bench")
            started = time.perf_counter()
            writer = stack.enter_context(lock)
            run.lock_seconds = time.perf_counter() - started
            # The file store's first write of a run rewrites the state once: not timed.
            writer.record_checkout(
                run.addresses[0], IDENTITY, CheckoutRecord("first", 1, utc_now())
            )
            locked.append((run, writer))
        for n in range(writes):
            for run, writer in locked:
                step = max(1, len(run.addresses) // writes)
                address = run.addresses[(n * step) % len(run.addresses)]
                record = CheckoutRecord(f"bench-{n}", 1, utc_now())
                started = time.perf_counter()
                writer.record_checkout(address, IDENTITY, record)
                run.times.append(time.perf_counter() - started)
    for run in runs:
        assert run.store.load().serial == run.size + writes + 1, run.backend


def report(runs: list[Run], writes: int, durable: bool) -> None:
    mode = "fsync on" if durable else "fsync off (test settings)"
    print(f"record_checkout write after a 204, {writes} writes per store; PostgreSQL {mode}")
    print(
        f"{'backend':>9} {'purchases':>10} {'median ms':>10} {'p99 ms':>8} {'mean ms':>8}"
        f" {'create s':>9} {'lock s':>7}"
    )
    for run in runs:
        created = f"{run.create_seconds:>9.2f}" if run.backend == "postgres" else f"{'-':>9}"
        print(
            f"{run.backend:>9} {run.size:>10,} {statistics.median(run.times) * 1e3:>10.3f}"
            f" {statistics.quantiles(run.times, n=100)[-1] * 1e3:>8.3f}"
            f" {statistics.fmean(run.times) * 1e3:>8.3f} {created} {run.lock_seconds:>7.2f}"
        )
    for backend in ("file", "postgres"):
        mine = [run for run in runs if run.backend == backend]
        first, last = mine[0], mine[-1]
        median = statistics.median(last.times) / statistics.median(first.times)
        p99 = (
            statistics.quantiles(last.times, n=100)[-1]
            / statistics.quantiles(first.times, n=100)[-1]
        )
        print(
            f"{backend}: {last.size:,} / {first.size:,} purchases: median {median:.2f}x, "
            f"p99 {p99:.2f}x"
        )
    medians = {(run.backend, run.size): statistics.median(run.times) for run in runs}
    ratios = ", ".join(
        f"{size:,}: {medians['postgres', size] / medians['file', size]:.2f}x" for size in SIZES
    )
    print(f"postgres / file median: {ratios}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=300, help="writes timed per store")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the state files")
    parser.add_argument(
        "--no-fsync", action="store_true", help="run PostgreSQL with the test suite's settings"
    )
    args = parser.parse_args()

    if not args.no_fsync:
        # The test helper's settings trade durability for speed; a benchmark next to a
        # store that fsyncs every write must not.
        pgserver._SERVER_SETTINGS = DURABLE
    server = PgServer.start()
    os.environ["PGPASSWORD"] = server.password  # as CI passes it; never in the URL
    assert server.execute("SHOW fsync") == [("off" if args.no_fsync else "on",)]
    directory = Path(tempfile.mkdtemp(prefix="bench-state-pg-", dir=args.dir))
    try:
        runs = prepare(directory, server)
        measure(runs, args.writes)
    finally:
        shutil.rmtree(directory)
        server.stop()
    report(runs, args.writes, durable=not args.no_fsync)
    return 0


if __name__ == "__main__":
    sys.exit(main())
