"""Wall time of applying 400 purchases against the simulator with 20 ms latency per
call, at parallelism 1 and 8, next to the bound purchases x 2 calls x latency /
parallelism; with ``--backend postgres``, the same apply at parallelism 8
with the state in PostgreSQL next to the state file, and their ratio.

Run: python benchmarks/bench_apply.py [--purchases N] [--latency-ms MS]
         [--backend file|postgres] [--rounds N]

Each apply is ``python -m reconciler apply`` on a state just made by ``reconciler
init`` (not timed). For the database, a throwaway cluster from ``tests/pgserver.py``
runs with fsync and synchronous commits on (the test suite turns them off), each
apply gets a fresh database, and file and database runs alternate so that the
machine's drift falls on both alike; the best of ``--rounds`` of each is compared.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_declarations

from reconciler.simulator import Simulator

ROOT = Path(__file__).resolve().parent.parent

DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}


def reconciler(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", *args], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(done.stdout[-2000:] + done.stderr[-2000:])
    return done


def run(
    purchases: int, latency: float, parallelism: int, new_state: Callable[[Path], str]
) -> tuple[float, int]:
    """One timed apply on a fresh state (``new_state`` names one in a scratch directory)."""
    files = max(1, purchases // 50)  # one customer tenant per file
    tenants = {100001 + f for f in range(files)}
    with tempfile.TemporaryDirectory() as tmp, Simulator(latency=latency, tenants=tenants) as sim:
        decl = Path(tmp) / "decl"
        write_declarations(decl, purchases=purchases, files=files)
        env = os.environ | sim.env()
        state = new_state(Path(tmp))
        reconciler("init", "--state", state, env=env)
        cmd = [
            "apply", str(decl), "--state", state,
            "--auto-approve", "--parallelism", str(parallelism),
        ]  # fmt: skip
        start = time.perf_counter()
        reconciler(*cmd, env=env)
        elapsed = time.perf_counter() - start
        if len(sim.checkouts) != purchases:
            raise SystemExit(f"{len(sim.checkouts)} checkouts for {purchases} purchases")
        return elapsed, len(sim.checkouts)


def state_file(tmp: Path) -> str:
    return str(tmp / "state.json")


def parallelism_table(purchases: int, latency: float) -> None:
    print(f"{'parallelism':>11}  {'wall':>8}  {'bound':>8}  {'wall/bound':>10}  checkouts")
    for parallelism in (1, 8):
        wall, checkouts = run(purchases, latency, parallelism, state_file)
        bound = purchases * 2 * latency / parallelism
        print(
            f"{parallelism:>11}  {wall:>7.2f}s  {bound:>7.2f}s  {wall / bound:>10.2f}  {checkouts}"
        )


def backend_comparison(purchases: int, latency: float, rounds: int) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    import pgserver

    # The test helper trades durability for speed; next to a file store that
    # fsyncs every write, the database must commit to disk too.
    pgserver._SERVER_SETTINGS = DURABLE
    server = pgserver.PgServer.start()
    os.environ["PGPASSWORD"] = server.password  # as CI passes it; never in the URL
    try:

        def database(_tmp: Path) -> str:
            return server.url(server.create_database())

        parallelism = 8
        bound = purchases * 2 * latency / parallelism
        walls: dict[str, list[float]] = {"file": [], "postgres": []}
        for _ in range(rounds):
            for backend, new_state in (("file", state_file), ("postgres", database)):
                wall, _checkouts = run(purchases, latency, parallelism, new_state)
                walls[backend].append(wall)
    finally:
        server.stop()
    print(f"parallelism {parallelism}, bound {bound:.2f}s, best of {rounds} alternating runs")
    print(f"{'backend':>9}  {'best':>8}  {'median':>8}  {'best/bound':>10}")
    for backend, times in walls.items():
        times.sort()
        print(
            f"{backend:>9}  {times[0]:>7.2f}s  {times[len(times) // 2]:>7.2f}s"
            f"  {times[0] / bound:>10.2f}"
        )
    print(f"postgres / file (best): {min(walls['postgres']) / min(walls['file']):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--purchases", type=int, default=400)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument(
        "--backend",
        choices=["file", "postgres"],
        default="file",
        help="file: parallelism 1 and 8 on a state file; postgres: database vs file at 8",
    )
    parser.add_argument("--rounds", type=int, default=3, help="runs of each backend (postgres)")
    args = parser.parse_args()
    latency = args.latency_ms / 1000
    print(f"apply: {args.purchases} purchases, {args.latency_ms:.0f} ms latency per call")
    if args.backend == "file":
        parallelism_table(args.purchases, latency)
    else:
        backend_comparison(args.purchases, latency, args.rounds)


if __name__ == "__main__":
    main()
