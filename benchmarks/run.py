"""Every benchmark in one table: start-up, validate and plan next to a
bare libyaml parse, apply next to its API-latency bound.

Run: python benchmarks/run.py [--quick] [--json PATH] [--runs N]

Each figure is a ratio taken from alternating runs (the command, then its
baseline, again and again), so that the drift of a shared machine falls on both
alike; the table shows medians. Every command runs in a fresh process, as a user
runs it, and is measured by ``os.wait4``: wall time, CPU time (user + system,
which other tenants of the machine disturb less) and peak RSS of that child
alone. ``--quick`` takes fewer runs, a smaller apply and leaves out the 50,000
purchase rows. Children run with their bytecode cached, as an installed package
does (in a scratch directory). The table is printed and written as JSON (``--json``, default
``benchmarks/results.json``).

Measures only; asserts no goal (the goals are in the README's Performance table).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_declarations

ROOT = Path(__file__).resolve().parent.parent

BARE_PARSE = """
import sys, yaml
from pathlib import Path
for p in sorted(Path(sys.argv[1]).glob('*.yaml')):
    yaml.load(p.read_text(encoding='utf-8'), Loader=yaml.CSafeLoader)
"""
#: The same parse with the cycle collector off, as the reconciler runs until it talks
#: to the API: a stricter baseline, shown beside the issue's.
BARE_PARSE_NO_GC = "import gc; gc.disable()\n" + BARE_PARSE


@dataclass(frozen=True)
class Child:
    """One finished child process: wall and CPU seconds, peak RSS in MB."""

    wall: float
    cpu: float
    rss_mb: float


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    figure: str
    value: float
    unit: str
    baseline: float | None
    ratio: float | None
    goal: str
    detail: str = ""


def run_child(cmd: Sequence[str], env: dict[str, str] | None = None) -> Child:
    """Run ``cmd`` to completion; its own rusage (not that of earlier children)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert proc.stderr is not None
    err = proc.stderr.read()
    proc.stderr.close()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {err.decode()[-2000:]}")
    return Child(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def alternate(
    runs: int, first: Callable[[], Child], second: Callable[[], Child]
) -> tuple[list[Child], list[Child]]:
    done: tuple[list[Child], list[Child]] = ([], [])
    for _ in range(runs):
        done[0].append(first())
        done[1].append(second())
    return done


def median(children: list[Child], attr: str) -> float:
    return float(statistics.median(getattr(c, attr) for c in children))


def _runner(cmd: Sequence[str]) -> Callable[[], Child]:
    return lambda: run_child(cmd)


def reconciler(*args: str) -> list[str]:
    return [sys.executable, "-m", "reconciler", *args]


def startup(runs: int) -> list[Row]:
    python, help_ = alternate(
        runs,
        lambda: run_child([sys.executable, "-c", "pass"]),
        lambda: run_child(reconciler("--help")),
    )
    value, base = median(help_, "wall"), median(python, "wall")
    return [
        Row(
            "reconciler --help, wall (baseline: python -c pass)",
            value * 1000,
            "ms",
            base * 1000,
            value / base,
            "<= 100 ms",
            f"cpu {median(help_, 'cpu') * 1000:.0f} ms",
        )
    ]


def parse_rows(tmp: Path, purchases: int, files: int, runs: int) -> list[Row]:
    """validate, plan against an empty state and plan against as many recorded."""
    from reconciler import config
    from reconciler.state import JsonFileStateStore, utc_now

    decl = tmp / f"decl-{purchases}"
    write_declarations(decl, purchases=purchases, files=files)
    empty = tmp / f"empty-{purchases}.json"
    recorded = tmp / f"recorded-{purchases}.json"
    JsonFileStateStore(empty).create()
    JsonFileStateStore(recorded).create()
    with JsonFileStateStore(recorded).lock("bench") as writer:
        now = utc_now()
        for purchase in config.load(decl).purchases:
            writer.import_purchase(purchase.address, purchase.identity, purchase.quantity, now)
    bare_cmd = [sys.executable, "-c", BARE_PARSE, str(decl)]
    strict_cmd = [sys.executable, "-c", BARE_PARSE_NO_GC, str(decl)]
    commands = {
        "validate": reconciler("validate", str(decl)),
        "plan, empty state": reconciler("plan", str(decl), "--state", str(empty)),
        f"plan, {purchases:,} recorded": reconciler("plan", str(decl), "--state", str(recorded)),
    }
    goals = {"validate": "<= 1.5x", "plan, empty state": "<= 1.10x"}
    rows = []
    for name, cmd in commands.items():
        bare, mine = alternate(runs, lambda: run_child(bare_cmd), _runner(cmd))
        strict = [run_child(strict_cmd) for _ in range(runs)]
        value, base = median(mine, "wall"), median(bare, "wall")
        rss = max(c.rss_mb for c in mine)
        rows.append(
            Row(
                f"{name}, {purchases:,} purchases in {files} files (baseline: bare parse)",
                value * 1000,
                "ms",
                base * 1000,
                value / base,
                goals.get(name, "<= 1.30x") + (", RSS < 300 MB" if purchases > 10_000 else ""),
                f"cpu ratio {median(mine, 'cpu') / median(bare, 'cpu'):.2f}x, "
                f"{value / median(strict, 'wall'):.2f}x a bare parse with the GC off, "
                f"peak RSS {rss:.0f} MB (bare {max(c.rss_mb for c in bare):.0f} MB)",
            )
        )
    return rows


def apply_rows(purchases: int, latency: float, runs: int, *, quick: bool = False) -> list[Row]:
    """Apply at parallelism 1 and 8 (and, unless quick, 16 with five times the purchases)."""
    import bench_apply

    rows = []
    for parallelism, goal in ((1, "<= 1.10x"), (8, "<= 1.25x"), (16, "none (scale)")):
        count = purchases if parallelism < 16 else purchases * 5
        if parallelism == 16 and quick:
            continue
        walls = [
            bench_apply.run(count, latency, parallelism, bench_apply.state_file)[0]
            for _ in range(runs)
        ]
        bound = count * 2 * latency / parallelism
        value = statistics.median(walls)
        rows.append(
            Row(
                f"apply, {count} purchases, {latency * 1000:.0f} ms per call, "
                f"parallelism {parallelism} (baseline: purchases x 2 x latency / parallelism)",
                value,
                "s",
                bound,
                value / bound,
                goal,
                f"{runs} runs, best {min(walls) / bound:.2f}x",
            )
        )
    return rows


def state_rows(quick: bool) -> list[Row]:
    """The write after each 204 at 50,000 recorded purchases against 100, on both
    backends; unless quick, apply at parallelism 8 with the state in PostgreSQL."""
    import bench_apply
    import bench_state_postgres

    sys.path.insert(0, str(ROOT / "tests"))
    import pgserver

    # The test helper trades durability for speed; next to a file store that
    # fsyncs every write, the database must commit to disk too.
    pgserver._SERVER_SETTINGS = bench_state_postgres.DURABLE
    server = pgserver.PgServer.start()
    os.environ["PGPASSWORD"] = server.password  # as CI passes it; never in the URL
    rows = []
    writes = 100 if quick else 300
    try:
        with tempfile.TemporaryDirectory() as tmp:
            runs = bench_state_postgres.prepare(Path(tmp), server)
            bench_state_postgres.measure(runs, writes)
        for backend in ("file", "postgres"):
            mine = {r.size: statistics.median(r.times) for r in runs if r.backend == backend}
            small, large = min(mine), max(mine)
            rows.append(
                Row(
                    f"write after a 204, {backend}, {large:,} recorded "
                    f"(baseline: {small:,} recorded)",
                    mine[large] * 1000,
                    "ms",
                    mine[small] * 1000,
                    mine[large] / mine[small],
                    "flat",
                    f"median of {writes} writes each",
                )
            )
        if not quick:
            purchases, latency = 400, 0.020

            def database(_tmp: Path) -> str:
                return server.url(server.create_database())

            walls = [bench_apply.run(purchases, latency, 8, database)[0] for _ in range(3)]
            bound = purchases * 2 * latency / 8
            rows.append(
                Row(
                    f"apply, {purchases} purchases, {latency * 1000:.0f} ms per call, "
                    "parallelism 8, state in PostgreSQL (baseline: the bound)",
                    statistics.median(walls),
                    "s",
                    bound,
                    statistics.median(walls) / bound,
                    "<= 1.25x",
                    f"3 runs, best {min(walls) / bound:.2f}x",
                )
            )
    finally:
        server.stop()
    return rows


def table(rows: list[Row]) -> str:
    lines = [f"{'figure':<96} {'value':>10} {'baseline':>10} {'ratio':>6}  goal"]
    for r in rows:
        base = f"{r.baseline:.1f} {r.unit}" if r.baseline is not None else ""
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else ""
        lines.append(f"{r.figure:<96} {r.value:>7.1f} {r.unit:<2} {base:>10} {ratio:>6}  {r.goal}")
        if r.detail:
            lines.append(f"{'':<4}{r.detail}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, smaller apply")
    parser.add_argument("--runs", type=int, default=None, help="alternating runs per figure")
    parser.add_argument("--json", type=Path, default=Path(__file__).with_name("results.json"))
    args = parser.parse_args()
    runs = args.runs or (3 if args.quick else 7)
    with tempfile.TemporaryDirectory() as tmp:
        # As an installed package runs: with its bytecode cached. A development
        # shell may turn the cache off (PYTHONDONTWRITEBYTECODE), which would add
        # compiling every module to every figure; the cache goes to the scratch
        # directory, so the tree stays clean.
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        run_child(reconciler("--help"))
        rows = startup(runs * 2)
        rows += parse_rows(Path(tmp), 10_000, 100, runs)
        if not args.quick:
            rows += parse_rows(Path(tmp), 50_000, 500, max(3, runs // 2))
        if args.quick:
            rows += apply_rows(100, 0.020, 1, quick=True)
        else:
            rows += apply_rows(400, 0.020, 3)
        rows += state_rows(args.quick)
    print(table(rows))
    report = {
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load": os.getloadavg(),
        },
        "quick": args.quick,
        "runs": runs,
        "rows": [asdict(r) for r in rows],
    }
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"written: {args.json}")


if __name__ == "__main__":
    main()
