"""`reconciler validate` on 10,000 purchases in 100 files vs a bare libyaml parse.

Run: python benchmarks/bench_validate.py
Goal: validate at most 1.5x the bare ``yaml.load(..., CSafeLoader)``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import paired_best, write_declarations

from reconciler import config

BARE = """
import sys, yaml
from pathlib import Path
for p in sorted(Path(sys.argv[1]).glob('*.yaml')):
    yaml.load(p.read_text(encoding='utf-8'), Loader=yaml.CSafeLoader)
"""


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        files = write_declarations(Path(tmp), purchases=10_000, files=100)
        texts = [p.read_text(encoding="utf-8") for p in files]

        def bare() -> None:
            for p in files:
                yaml.load(p.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)

        assert sum(len(t) for t in texts) > 0
        config.load(tmp)  # warm caches (schema compile) as a CLI run would once
        t_bare, t_load = paired_best(7, bare, lambda: config.load(tmp))
        exe = [sys.executable, "-m", "reconciler", "validate", tmp]
        bare_cmd = [sys.executable, "-c", BARE, tmp]
        t_bare_cli, t_cli = paired_best(
            5,
            lambda: subprocess.run(bare_cmd, check=True, capture_output=True),
            lambda: subprocess.run(exe, check=True, capture_output=True),
        )
    print("10,000 purchases in 100 files (best of alternating runs)")
    print(f"  bare yaml.load CSafeLoader, in process : {t_bare * 1000:8.1f} ms")
    print(f"  config.load, in process                : {t_load * 1000:8.1f} ms")
    print(f"  ratio (in process)                     : {t_load / t_bare:8.2f}x")
    print(f"  python -c 'bare yaml.load' (process)   : {t_bare_cli * 1000:8.1f} ms")
    print(f"  reconciler validate (process)          : {t_cli * 1000:8.1f} ms")
    print(f"  ratio (whole commands)                 : {t_cli / t_bare_cli:8.2f}x")


if __name__ == "__main__":
    main()
