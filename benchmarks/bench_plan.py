"""`reconciler plan` on 10,000 declared purchases against 10,000 recorded ones,
next to a bare libyaml parse of the same files.

Run: python benchmarks/bench_plan.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import best_of, paired_best, write_declarations

from reconciler import config
from reconciler.state import JsonFileStateStore, utc_now

BARE = """
import sys, yaml
from pathlib import Path
for p in sorted(Path(sys.argv[1]).glob('*.yaml')):
    yaml.load(p.read_text(encoding='utf-8'), Loader=yaml.CSafeLoader)
"""


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        decl_dir = Path(tmp) / "decl"
        files = write_declarations(decl_dir, purchases=10_000, files=100)
        state_path = Path(tmp) / "reconciler.state.json"
        declarations = config.load(decl_dir)
        JsonFileStateStore(state_path).create()
        with JsonFileStateStore(state_path).lock("bench") as writer:
            now = utc_now()
            for purchase in declarations.purchases:
                writer.import_purchase(purchase.address, purchase.identity, purchase.quantity, now)

        def bare() -> None:
            for p in files:
                yaml.load(p.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)

        cmd = [
            sys.executable,
            "-m",
            "reconciler",
            "plan",
            str(decl_dir),
            "--state",
            str(state_path),
        ]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        assert "10000 unchanged." in out, out[-300:]
        bare_cmd = [sys.executable, "-c", BARE, str(decl_dir)]
        t_bare_cli, t_plan = paired_best(
            5,
            lambda: subprocess.run(bare_cmd, check=True, capture_output=True),
            lambda: subprocess.run(cmd, check=True, capture_output=True),
        )
        t_bare = best_of(5, bare)
        size = state_path.stat().st_size
    print("plan: 10,000 declared vs 10,000 recorded purchases (best of alternating runs)")
    print(f"  state file                            : {size / 1e6:8.1f} MB")
    print(f"  bare yaml.load CSafeLoader, in process: {t_bare * 1000:8.1f} ms")
    print(f"  python -c 'bare yaml.load' (process)  : {t_bare_cli * 1000:8.1f} ms")
    print(f"  reconciler plan (process)             : {t_plan * 1000:8.1f} ms")
    print(f"  ratio plan / bare parse (processes)   : {t_plan / t_bare_cli:8.2f}x")


if __name__ == "__main__":
    main()
