"""Child processes of the tests: Python scripts, ``python -m reconciler``, lock holders.

For what only another process can show: a lock held by someone else, a run killed or
interrupted mid-way, a terminal. Every wait is bounded by ``TIMEOUT``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import reconciler

#: Seconds a test waits for a child process before it fails.
TIMEOUT = 30


def python_env() -> dict[str, str]:
    """The environment of a child Python that imports this checkout's reconciler."""
    package_root = Path(reconciler.__file__).resolve().parents[1]
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(package_root), *sys.path[1:]])}


def start_script(script: str, *args: str, stdin: int | None = None) -> subprocess.Popen[str]:
    """``python -c SCRIPT ARGS`` with pipes for stdout and stderr (and stdin if asked)."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=python_env(),
    )


def read_until(proc: subprocess.Popen[str], wanted: str) -> list[str]:
    """Lines of ``proc``'s stdout up to and including ``wanted``."""
    assert proc.stdout is not None
    lines: list[str] = []
    while True:
        line = proc.stdout.readline()
        if not line:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"child exited before printing {wanted!r}: {lines}\n{err}")
        lines.append(line.strip())
        if line.strip() == wanted:
            return lines


def wait_until(condition: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    """Poll ``condition`` while ``proc`` runs; fail if it exits or ``TIMEOUT`` passes first."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"process exited {proc.returncode} before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.002)


_LOCK_HOLDER = """
import sys, time
from reconciler.model import Identity, PendingOperation
from reconciler.state import JsonFileStateStore

state, seconds, write = sys.argv[1], float(sys.argv[2]), sys.argv[3]
identity = Identity(111111, "CFQ7TTC0LF8R", "0010", "monthly", "P1M")
with JsonFileStateStore(state).lock("reconciler apply") as writer:
    if write == "import":
        writer.import_purchase("acme/basic", identity, 4, "2026-11-26T19:00:00Z")
    elif write == "pending":
        writer.add_pending(PendingOperation("acme/a", identity, "ord-1", 3, "2026-11-26T19:00:00Z"))
    print("ready", flush=True)
    time.sleep(seconds)
"""


def hold_the_lock(state: Path, seconds: float, write: str = "nothing") -> subprocess.Popen[str]:
    """Another process, running as ``reconciler apply``, that holds the lock of the state
    file ``state`` for ``seconds`` once this returns. Under the lock it first records
    ``write``: "import" (acme/basic, 4 seats), "pending" (acme/a, 3 seats) or "nothing"."""
    proc = start_script(_LOCK_HOLDER, str(state), str(seconds), write)
    read_until(proc, "ready")
    return proc
