"""Apply with the API in a process of its own: the reconciler's CPU per
purchase, wall time against the latency bound at parallelism 1 and 8, throughput
under a rate limit, and many workspaces applied at once on one PostgreSQL.

The simulator runs in its own process (``simproc.py``), so its CPU is neither the
benchmark's nor the reconciler's, as a real API's is not. Each apply is
``python -m reconciler apply`` on a state just made by ``reconciler init`` (not
timed), measured by ``os.wait4``: wall, user + system CPU and peak RSS of that child.

Run alone: python benchmarks/bench_separate.py [--purchases N] [--runs N]
(``run.py`` puts its rows in the one table).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_declarations
from simproc import SimulatorProcess

ROOT = Path(__file__).resolve().parent.parent
TIMED = str(Path(__file__).resolve().with_name("timed_apply.py"))


@dataclass(frozen=True)
class Applied:
    """One finished apply: wall and CPU seconds, and the simulator's count of calls."""

    wall: float
    cpu: float
    calls: int
    throttled: int
    checkouts: int


def _run(cmd: Sequence[str], env: dict[str, str]) -> None:
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: {done.stdout[-1500:]}{done.stderr[-1500:]}")


def _start(cmd: Sequence[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], float]:
    proc = subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    return proc, time.perf_counter()


def _finish(proc: subprocess.Popen[bytes], started: float) -> tuple[float, float]:
    """Wall and CPU seconds of a started child, once it exited 0."""
    assert proc.stderr is not None
    err = proc.stderr.read()
    proc.stderr.close()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{proc.args!r} exited {proc.returncode}: {err.decode()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def apply_once(
    purchases: int,
    latency: float,
    parallelism: int,
    *,
    rate_limit: float | None = None,
) -> Applied:
    """One apply of ``purchases`` on a fresh state file against a simulator process."""
    files = max(1, purchases // 50)
    tenants = {100001 + f for f in range(files)}
    with (
        tempfile.TemporaryDirectory() as tmp,
        SimulatorProcess(latency=latency, tenants=tenants, rate_limit=rate_limit) as sim,
    ):
        decl = Path(tmp) / "decl"
        write_declarations(decl, purchases=purchases, files=files)
        env = os.environ | sim.env
        state = str(Path(tmp) / "state.json")
        _run([sys.executable, "-m", "reconciler", "init", "--state", state], env)
        if rate_limit is not None:
            time.sleep(1.1)  # the bucket is full again after init's calls
        cmd = [
            sys.executable, "-m", "reconciler", "apply", str(decl), "--state", state,
            "--auto-approve", "--parallelism", str(parallelism),
        ]  # fmt: skip
        wall, cpu = _finish(*_start(cmd, env))
        seen = sim.close()
    if seen["checkouts"] != purchases:
        raise SystemExit(f"{seen['checkouts']} checkouts for {purchases} purchases")
    return Applied(wall, cpu, seen["calls"], seen["throttled"], seen["checkouts"])


def separate(purchases: int, latency: float, parallelism: int, runs: int) -> list[Applied]:
    return [apply_once(purchases, latency, parallelism) for _ in range(runs)]


def rate_limited(purchases: int, latency: float, parallelism: int, rate: float) -> Applied:
    return apply_once(purchases, latency, parallelism, rate_limit=rate)


@dataclass(frozen=True)
class Together:
    """Applies of many workspaces at once: each one's wall, one alone, write latencies."""

    alone: float
    walls: list[float]
    writes: list[float]


def workspaces_at_once(
    server_url: Callable[[], str],
    names: Sequence[str],
    purchases: int,
    latency: float,
    parallelism: int,
) -> Together:
    """Each of ``names`` a workspace of one database; the first applied alone, then
    all at once (each its own process), against one simulator process."""
    everyone = ["alone", *names]  # the one applied alone first has a tenant of its own
    tenants = {100001 + i for i in range(len(everyone))}
    with (
        tempfile.TemporaryDirectory() as tmp,
        SimulatorProcess(latency=latency, tenants=tenants) as sim,
    ):
        url = server_url()
        env = os.environ | sim.env
        decls = []
        for i, name in enumerate(everyone):
            decl = Path(tmp) / name
            write_declarations(decl, purchases=purchases, files=1)
            # One tenant per workspace, as one workspace per customer.
            text = (decl / "customer-000.yaml").read_text(encoding="utf-8")
            text = text.replace("customerTenantId: 100001", f"customerTenantId: {100001 + i}")
            (decl / "customer-000.yaml").write_text(text, encoding="utf-8")
            decls.append(decl)
        for name in everyone:
            _run([sys.executable, "-m", "reconciler", "init", "--state", url,
                  "--workspace", name], env)  # fmt: skip

        def command(name: str, decl: Path, out: Path) -> list[str]:
            return [
                sys.executable, TIMED, str(out), "apply", str(decl), "--state", url,
                "--workspace", name, "--auto-approve", "--parallelism", str(parallelism),
            ]  # fmt: skip

        alone, _ = _finish(*_start(command("alone", decls[0], Path(tmp) / "alone.json"), env))
        outs = [Path(tmp) / f"{name}.json" for name in names]
        started = [
            _start(command(name, decl, out), env)
            for name, decl, out in zip(names, decls[1:], outs, strict=True)
        ]
        walls = [_finish(proc, at)[0] for proc, at in started]
        writes = [t for out in outs for t in json.loads(out.read_text(encoding="utf-8"))]
        seen = sim.close()
    expected = purchases * len(everyone)
    if seen["checkouts"] != expected:
        raise SystemExit(f"{seen['checkouts']} checkouts for {expected} purchases")
    return Together(alone, walls, writes)


def p99(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--purchases", type=int, default=400)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    latency = args.latency_ms / 1000
    for parallelism in (8, 1):
        done = separate(args.purchases, latency, parallelism, args.runs)
        bound = args.purchases * 2 * latency / parallelism
        wall = statistics.median(a.wall for a in done)
        cpu = statistics.median(a.cpu for a in done)
        print(
            f"parallelism {parallelism}: wall {wall:.2f} s = {wall / bound:.2f}x the bound, "
            f"CPU {cpu * 1000 / args.purchases:.2f} ms a purchase"
        )


if __name__ == "__main__":
    main()
