"""Every benchmark in one table: start-up, validate and plan next to a
bare libyaml parse, apply next to its API-latency bound.

Run: python benchmarks/run.py [--quick] [--json PATH] [--runs N] [--only GROUP,...]

Each figure is a ratio taken from alternating runs (the command, then its
baseline, again and again), so that the drift of a shared machine falls on both
alike; the table shows medians. Every command runs in a fresh process, as a user
runs it, and is measured by ``os.wait4``: wall time, CPU time (user + system,
which other tenants of the machine disturb less) and peak RSS of that child
alone. ``--quick`` takes fewer runs, a smaller apply and leaves out the 50,000
purchase rows. Children run with their bytecode cached, as an installed package
does (in a scratch directory). The table is printed and written as JSON (``--json``, default
``benchmarks/results.json``).

Issue 23 added, with the API in a process of its own (``bench_separate.py``): the
reconciler's CPU per purchase and apply at parallelism 1 and 8 against the bound,
throughput under the simulator's rate limit, many workspaces applied at once on one
PostgreSQL with each write's latency (``timed_apply.py``), two workspaces whose
CRC-32 collide, and ``plan --json``.

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
#: to the API: a stricter baseline, shown beside the plain one.
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
        f"plan --json, {purchases:,} recorded": reconciler(
            "plan", str(decl), "--state", str(recorded), "--json"
        ),
    }
    goals = {
        "validate": "<= 1.5x",
        "plan, empty state": "<= 1.10x",
        f"plan --json, {purchases:,} recorded": "<= 1.15x",
    }
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


def separate_rows(purchases: int, p1_purchases: int, latency: float, runs: int) -> list[Row]:
    """Apply with the API in its own process: CPU per purchase and wall / bound at
    parallelism 8 and 1."""
    import bench_separate

    rows = []
    for parallelism, count, goal in ((8, purchases, "<= 1.3x"), (1, p1_purchases, "<= 1.05x")):
        done = bench_separate.separate(count, latency, parallelism, runs)
        bound = count * 2 * latency / parallelism
        wall = statistics.median(a.wall for a in done)
        cpu = statistics.median(a.cpu for a in done)
        detail = (
            f"{runs} runs, best {min(a.wall for a in done) / bound:.2f}x; "
            f"CPU {cpu:.2f} s = {cpu * 1000 / count:.2f} ms a purchase"
        )
        rows.append(
            Row(
                f"apply, {count} purchases, {latency * 1000:.0f} ms per call, API in its own "
                f"process, parallelism {parallelism} (baseline: the bound)",
                wall,
                "s",
                bound,
                wall / bound,
                goal,
                detail,
            )
        )
        if parallelism == 8:
            rows.append(
                Row(
                    f"reconciler CPU per purchase (user + system), {count} @ p8, API in its "
                    "own process, start-up included",
                    cpu * 1000 / count,
                    "ms",
                    None,
                    None,
                    "<= 2.0 ms",
                    f"median of {runs}; {min(a.cpu for a in done) * 1000 / count:.2f} ms best",
                )
            )
    return rows


def rate_limit_row(purchases: int, latency: float, rate: float) -> list[Row]:
    """Apply at parallelism 8 against a simulator that takes ``rate`` requests a second."""
    import bench_separate

    done = bench_separate.rate_limited(purchases, latency, 8, rate)
    accepted = done.calls - done.throttled
    achieved = accepted / done.wall
    return [
        Row(
            f"apply, {purchases} purchases @ p8, API limited to {rate:.0f} requests/s "
            "(baseline: the limit)",
            achieved,
            "/s",
            rate,
            achieved / rate,
            ">= 0.90x, < 2% 429",
            f"{accepted} calls taken in {done.wall:.2f} s (start-up included; the limiter "
            f"starts with a full one-second bucket), {done.throttled} answered 429 = "
            f"{100 * done.throttled / done.calls:.1f}% of {done.calls}; all "
            f"{done.checkouts} bought",
        )
    ]


def workspace_rows(server: object, quick: bool) -> list[Row]:
    """Many workspaces applied at once on one PostgreSQL, and two whose CRC-32 collide."""
    import bench_separate

    def database() -> str:
        return server.url(server.create_database())  # type: ignore[attr-defined]

    rows = []
    count = 5 if quick else 20
    names = [f"customer-{i:02d}" for i in range(count)]
    together = bench_separate.workspaces_at_once(database, names, 30, 0.020, 4)
    worst = max(together.walls)
    rows.append(
        Row(
            f"{count} workspaces x 30 purchases applied at once on one PostgreSQL, p4 each, "
            "20 ms (baseline: one alone)",
            worst,
            "s",
            together.alone,
            worst / together.alone,
            "each <= 2x; write p99 <= 10 ms",
            f"median {statistics.median(together.walls):.2f} s; per-write latency "
            f"p50 {statistics.median(together.writes) * 1000:.1f} ms, "
            f"p99 {bench_separate.p99(together.writes) * 1000:.1f} ms "
            f"over {len(together.writes)} writes",
        )
    )
    # "plumless" and "buckeroo" have the same CRC-32: with a 32-bit key they serialise.
    pair = bench_separate.workspaces_at_once(database, ["plumless", "buckeroo"], 30, 0.020, 4)
    rows.append(
        Row(
            "two workspaces whose CRC-32 collide, applied at once (baseline: one alone)",
            max(pair.walls),
            "s",
            pair.alone,
            max(pair.walls) / pair.alone,
            "independent (~1x, not 2x)",
            f"walls {', '.join(f'{w:.2f}' for w in pair.walls)} s",
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
        rows += workspace_rows(server, quick)
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


#: The groups of rows ``--only`` chooses from, in the order the table has them.
GROUPS = ("startup", "parse", "apply", "separate", "ratelimit", "state")


def table(rows: list[Row]) -> str:
    lines = [f"{'figure':<104} {'value':>10} {'baseline':>10} {'ratio':>6}  goal"]
    for r in rows:
        base = f"{r.baseline:.1f} {r.unit}" if r.baseline is not None else ""
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else ""
        lines.append(f"{r.figure:<104} {r.value:>7.2f} {r.unit:<2} {base:>10} {ratio:>6}  {r.goal}")
        if r.detail:
            lines.append(f"{'':<4}{r.detail}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, smaller apply")
    parser.add_argument("--runs", type=int, default=None, help="alternating runs per figure")
    parser.add_argument("--json", type=Path, default=Path(__file__).with_name("results.json"))
    parser.add_argument(
        "--only",
        default=",".join(GROUPS),
        help=f"comma-separated groups of rows, of {', '.join(GROUPS)} (default: all)",
    )
    args = parser.parse_args()
    runs = args.runs or (3 if args.quick else 7)
    only = set(args.only.split(","))
    if only - set(GROUPS):
        parser.error(f"unknown groups: {', '.join(sorted(only - set(GROUPS)))}")
    with tempfile.TemporaryDirectory() as tmp:
        # As an installed package runs: with its bytecode cached. A development
        # shell may turn the cache off (PYTHONDONTWRITEBYTECODE), which would add
        # compiling every module to every figure; the cache goes to the scratch
        # directory, so the tree stays clean.
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        run_child(reconciler("--help"))
        quick = args.quick
        rows: list[Row] = []
        if "startup" in only:
            rows += startup(runs * 2)
        if "parse" in only:
            rows += parse_rows(Path(tmp), 10_000, 100, runs)
            if not quick:
                rows += parse_rows(Path(tmp), 50_000, 500, max(3, runs // 2))
        if "apply" in only:
            rows += apply_rows(100, 0.020, 1, quick=True) if quick else apply_rows(400, 0.020, 3)
        if "separate" in only:
            rows += separate_rows(400, 100 if quick else 400, 0.020, 1 if quick else 3)
        if "ratelimit" in only:
            rows += rate_limit_row(400 if quick else 1000, 0.020, 100)
        if "state" in only:
            rows += state_rows(quick)
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
