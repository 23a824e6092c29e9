"""The files that ship with the package (``reconciler.resources``): the built wheel holds
them, and installed into a fresh virtual environment and run outside the checkout, it
validates the examples with the schema it ships.

Offline: the wheel is built by the repository's own build backend, which needs only
the standard library, and installed with ``--no-index --no-deps`` into a venv that sees the
current environment's site-packages for PyYAML, jsonschema, requests and click.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.paths import ROOT

# Each test builds the wheel (once per module) and installs it into a new environment.
pytestmark = pytest.mark.slow
SCHEMA = "reconciler/_data/schemas/purchases.schema.json"
EXAMPLES = sorted(
    p.relative_to(ROOT).as_posix() for p in (ROOT / "examples").rglob("*") if p.is_file()
)


def run(args: list[str | Path], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("dist")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", outdir, ROOT],
        cwd=outdir,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [built] = outdir.glob("crayon_reconciler-*.whl")
    return built


def test_wheel_holds_the_schemas_and_examples(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())

    assert SCHEMA in names
    for name in ("plan", "state", "apply-events"):
        assert f"reconciler/_data/schemas/{name}.schema.json" in names
    for example in EXAMPLES:
        assert f"reconciler/_data/{example}" in names
    assert not [n for n in names if n.startswith(("tests/", "schemas/", "examples/"))]


def test_installed_wheel_validates_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.pop("RECONCILER_STATE", None)

    # --without-pip keeps it fast and offline; the current environment's pip (seen
    # through --system-site-packages) installs into the venv it runs in.
    done = run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv],
        cwd=work,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    python = venv / "bin" / "python"
    done = run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--ignore-installed",
            "--disable-pip-version-check",
            wheel,
        ],
        cwd=work,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    # The package imported is the venv's, not the checkout (an editable install
    # of it may be visible through the system site-packages).
    done = run(
        [
            python,
            "-c",
            "import reconciler, reconciler.resources as r; "
            "print(reconciler.__file__); print(r.examples_dir())",
        ],
        cwd=work,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    module_file, examples_dir = (Path(line) for line in done.stdout.splitlines())
    package = module_file.parent
    assert package.is_relative_to(venv)
    assert (package / "_data" / "schemas" / "purchases.schema.json").is_file()
    assert examples_dir == package / "_data" / "examples"
    for example in EXAMPLES:
        assert (package / "_data" / example).is_file()

    # examples/ci holds CI templates, not declarations: the customers are under customers/.
    examples = work / "examples"
    shutil.copytree(ROOT / "examples", examples)
    customers = examples / "customers"
    done = run([venv / "bin" / "reconciler", "validate", customers], cwd=work, env=env)
    assert (done.returncode, done.stdout, done.stderr) == (0, "OK: 10 purchases in 3 files\n", "")

    done = run([python, "-m", "reconciler", "validate", "examples/customers"], cwd=work, env=env)
    assert (done.returncode, done.stdout) == (0, "OK: 10 purchases in 3 files\n")

    # The shipped schema is the one the installed loader checks against.
    bad = work / "bad.yaml"
    bad.write_text("version: 1\npurchases:\n  - name: a\n    quantity: 0\n", encoding="utf-8")
    done = run([venv / "bin" / "reconciler", "validate", bad], cwd=work, env=env)
    assert done.returncode == 1
    assert f"{bad}:4:15: purchases[0].quantity: 0 is less than the minimum of 1" in done.stderr
    assert "Traceback" not in done.stderr
