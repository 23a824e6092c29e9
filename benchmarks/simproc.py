"""The simulator in a process of its own, so that its CPU is not the benchmark's nor
the reconciler's: the API is another machine in production.

Run by ``SimulatorProcess`` (below): ``python benchmarks/simproc.py --latency S
--tenants A,B,... [--rate-limit N]`` prints one JSON line with the CRAYON_*
variables, then serves until its standard input closes, when it prints one JSON
line of what it saw (checkouts, calls, calls answered 429) and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Any, Self

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from reconciler.simulator import Simulator

    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--tenants", default="")
    parser.add_argument("--rate-limit", type=float, default=None)
    args = parser.parse_args()
    tenants = {int(t) for t in args.tenants.split(",") if t}
    extra: dict[str, Any] = {}
    if args.rate_limit is not None:
        extra["rate_limit"] = args.rate_limit
    sim = Simulator(latency=args.latency, tenants=tenants or None, **extra)
    sim.start()
    print(json.dumps(sim.env()), flush=True)
    sys.stdin.read()  # until the driver closes it
    calls = sim.calls
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "checkouts": len(sim.checkouts),
                "calls": len(calls),
                "throttled": sum(1 for c in calls if c.status == 429),
                "cpu": usage.ru_utime + usage.ru_stime,
            }
        ),
        flush=True,
    )
    sim.stop()


class SimulatorProcess:
    """Start ``simproc.py`` in a child process; ``env`` points a client at it and
    ``close()`` returns what it saw."""

    def __init__(
        self, *, latency: float, tenants: set[int], rate_limit: float | None = None
    ) -> None:
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--latency",
            str(latency),
            "--tenants",
            ",".join(str(t) for t in sorted(tenants)),
        ]
        if rate_limit is not None:
            cmd += ["--rate-limit", str(rate_limit)]
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            self._proc.kill()
            raise SystemExit("the simulator process did not start")
        self.env: dict[str, str] = json.loads(line)
        self.seen: dict[str, Any] = {}

    def close(self) -> dict[str, Any]:
        if not self.seen:
            assert self._proc.stdin is not None
            assert self._proc.stdout is not None
            self._proc.stdin.close()
            self.seen = json.loads(self._proc.stdout.readline() or "{}")
            self._proc.wait(timeout=30)
        return self.seen

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc.poll() is None:
            try:
                self.close()
            except Exception:
                self._proc.kill()
                raise


def child_env(sim_env: dict[str, str]) -> dict[str, str]:
    return os.environ | sim_env


if __name__ == "__main__":
    main()
