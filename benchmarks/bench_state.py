"""How long one durable state write takes as the state grows.

    python benchmarks/bench_state.py [--writes N] [--dir DIR]

For 100, 5,000 and 50,000 recorded purchases it builds a state file directly,
takes the lock (which loads it), then times ``record_checkout`` -- the write
made after every 204 -- and prints the mean and median per write. The cost must
stay flat: a write appends one fsynced journal line, whatever the state's size.

The three states are written to in turn, one write each round, so a burst of
disk activity from elsewhere on the machine slows all sizes alike instead of
whichever one happened to be running. "cpu ms" (process time per write) is our
own work without the wait for the disk. The one-off costs of taking the lock
(load), the first write of a run (which opens the journal and marks the state
file as having one: a full rewrite, once per run) and releasing the lock
(compaction) are shown beside. Run it on the file
system the state will live on: fsync on tmpfs costs nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

# Runs from a source checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.model import CheckoutRecord, Identity
from reconciler.state import JsonFileStateStore, StateWriter, utc_now

SIZES = (100, 5_000, 50_000)
IDENTITY = Identity(
    customer_tenant_id=111111,
    product_id="CFQ7TTC0LF8R",
    sku_id="0010",
    billing_cycle="monthly",
    term_duration="P1M",
)


@dataclass
class Run:
    size: int
    store: JsonFileStateStore
    addresses: list[str]
    lock_seconds: float = 0.0
    first_write_seconds: float = 0.0
    release_seconds: float = 0.0
    times: list[float] = field(default_factory=list)
    cpu_times: list[float] = field(default_factory=list)


def build_state(path: Path, purchases: int) -> None:
    """A compacted state file with ``purchases`` addresses of one checkout each."""
    now = utc_now()
    document = {
        "version": 1,
        "lineage": str(uuid.uuid4()),
        "serial": purchases,
        "purchases": {
            f"customer-{n // 100:04d}/product-{n % 100:02d}": {
                **IDENTITY.as_dict(),
                "quantity": 10,
                "checkouts": [{"externalOrderId": f"seed-{n}", "quantity": 10, "time": now}],
            }
            for n in range(purchases)
        },
        "pending": {},
    }
    path.write_text(json.dumps(document, sort_keys=True, indent=2) + "\n", encoding="utf-8")


def write_once(run: Run, writer: StateWriter, n: int, writes: int) -> None:
    step = max(1, len(run.addresses) // writes)
    address = run.addresses[(n * step) % len(run.addresses)]
    record = CheckoutRecord(f"bench-{n}", 1, utc_now())
    started, cpu_started = time.perf_counter(), time.process_time()
    writer.record_checkout(address, IDENTITY, record)
    run.times.append(time.perf_counter() - started)
    run.cpu_times.append(time.process_time() - cpu_started)


def measure(directory: Path, writes: int) -> list[Run]:
    runs = []
    for size in SIZES:
        path = directory / f"state-{size}.json"
        build_state(path, size)
        store = JsonFileStateStore(path)
        runs.append(Run(size, store, list(store.load().purchases)))
    # Flush the freshly built files now, or the first fsyncs of the journals pay for
    # them (ext4 data=ordered writes out other dirty data of the same transaction).
    os.sync()

    locked: list[tuple[Run, AbstractContextManager[StateWriter], StateWriter]] = []
    try:
        for run in runs:
            lock = run.store.lock("bench")
            started = time.perf_counter()
            locked.append((run, lock, lock.__enter__()))
            run.lock_seconds = time.perf_counter() - started
        for run, _, writer in locked:
            started = time.perf_counter()
            writer.record_checkout(
                run.addresses[0], IDENTITY, CheckoutRecord("first", 1, utc_now())
            )
            run.first_write_seconds = time.perf_counter() - started
        for n in range(writes):
            for run, _, writer in locked:
                write_once(run, writer, n, writes)
    finally:
        for run, lock, _ in locked:
            started = time.perf_counter()
            lock.__exit__(None, None, None)
            run.release_seconds = time.perf_counter() - started
    for run in runs:
        assert run.store.load().serial == run.size + writes + 1
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=300, help="writes timed per size")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the state files")
    args = parser.parse_args()

    directory = Path(tempfile.mkdtemp(prefix="bench-state-", dir=args.dir))
    try:
        runs = measure(directory, args.writes)
    finally:
        shutil.rmtree(directory)

    print(f"record_checkout durable write, {args.writes} writes per size ({directory.parent})")
    print(
        f"{'purchases':>10} {'mean ms':>9} {'median ms':>10} {'p95 ms':>8} {'cpu ms':>7}"
        f" {'lock s':>8} {'1st write s':>11} {'release s':>10}"
    )
    for run in runs:
        print(
            f"{run.size:>10,} {statistics.fmean(run.times) * 1e3:>9.3f}"
            f" {statistics.median(run.times) * 1e3:>10.3f}"
            f" {statistics.quantiles(run.times, n=20)[-1] * 1e3:>8.3f}"
            f" {statistics.fmean(run.cpu_times) * 1e3:>7.3f} {run.lock_seconds:>8.3f}"
            f" {run.first_write_seconds:>11.3f}"
            f" {run.release_seconds:>10.3f}"
        )
    first, last = runs[0], runs[-1]
    mean_ratio = statistics.fmean(last.times) / statistics.fmean(first.times)
    median_ratio = statistics.median(last.times) / statistics.median(first.times)
    print(
        f"ratio {last.size:,} / {first.size:,} purchases: mean {mean_ratio:.2f}, "
        f"median {median_ratio:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
