"""Wall time of applying 400 purchases against the simulator with 20 ms latency per
call, at parallelism 1 and 8, next to the bound purchases x 2 calls x latency /
parallelism (issue 5).

Run: python benchmarks/bench_apply.py [--purchases N] [--latency-ms MS]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_declarations

from reconciler.simulator import Simulator


def run(purchases: int, latency: float, parallelism: int) -> tuple[float, int]:
    files = max(1, purchases // 50)  # one customer tenant per file
    tenants = {100001 + f for f in range(files)}
    with tempfile.TemporaryDirectory() as tmp, Simulator(latency=latency, tenants=tenants) as sim:
        decl = Path(tmp) / "decl"
        write_declarations(decl, purchases=purchases, files=files)
        cmd = [
            sys.executable, "-m", "reconciler", "apply", str(decl),
            "--state", str(Path(tmp) / "state.json"),
            "--auto-approve", "--parallelism", str(parallelism),
        ]  # fmt: skip
        env = os.environ | sim.env()
        start = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(done.stdout[-2000:] + done.stderr[-2000:])
        return elapsed, len(sim.checkouts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--purchases", type=int, default=400)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args()
    latency = args.latency_ms / 1000
    print(f"apply: {args.purchases} purchases, {args.latency_ms:.0f} ms latency per call")
    print(f"{'parallelism':>11}  {'wall':>8}  {'bound':>8}  {'wall/bound':>10}  checkouts")
    for parallelism in (1, 8):
        wall, checkouts = run(args.purchases, latency, parallelism)
        bound = args.purchases * 2 * latency / parallelism
        print(
            f"{parallelism:>11}  {wall:>7.2f}s  {bound:>7.2f}s  {wall / bound:>10.2f}  {checkouts}"
        )


if __name__ == "__main__":
    main()
