"""``reconciler`` with every state write timed: the benchmark's child for the per-write
latency of many workspaces at once.

Run: python benchmarks/timed_apply.py OUT.json apply ... (the reconciler's arguments)

Times each ``LedgerWriter._commit`` (a worker's write, from the call until it is
durable: its share of a group commit included) and writes the seconds, as a JSON
list, to OUT.json when the command ends. Everything else is the real CLI.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    from reconciler.cli import main as cli_main
    from reconciler.state.ledger import LedgerWriter

    out = Path(sys.argv[1])
    sys.argv = ["reconciler", *sys.argv[2:]]
    times: list[float] = []
    commit = LedgerWriter._commit

    def timed(self: LedgerWriter, make: Any) -> None:
        start = time.perf_counter()
        try:
            commit(self, make)
        finally:
            times.append(time.perf_counter() - start)

    LedgerWriter._commit = timed  # type: ignore[method-assign]
    try:
        cli_main()
    finally:
        out.write_text(json.dumps(times), encoding="utf-8")


if __name__ == "__main__":
    main()
