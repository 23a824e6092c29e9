"""The file lock of ``reconciler.state.filelock``: one run writes at a time, whatever
happens to the lock file."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from reconciler.state import JsonFileStateStore
from tests.support.processes import TIMEOUT, read_until, start_script
from tests.support.records import BASIC
from tests.support.states import journal, lock_file
from tests.support.times import T0

# Each test races this process against another Python process.
pytestmark = pytest.mark.slow

_IMPORTER = """
import sys
from reconciler.errors import StateError
from reconciler.model import Identity
from reconciler.state import JsonFileStateStore

identity = Identity(111111, "CFQ7TTC0LF8R", "0010", "monthly", "P1M")
store = JsonFileStateStore(sys.argv[1])
prefix, pause = sys.argv[2], sys.argv[3] == "pause"
try:
    with store.lock("writer " + prefix) as writer:
        for number in range(6):
            if pause and number == 3:
                print("ready", flush=True)
                sys.stdin.readline()
            writer.import_purchase(f"{prefix}/{number}", identity, 1, "2026-11-26T19:00:00Z")
            print(f"acked {prefix}/{number}", flush=True)
except StateError as exc:
    print("stopped", exc, *getattr(exc, "__notes__", ()), flush=True)
    sys.exit(3)
"""


def test_a_deleted_lock_file_never_lets_two_runs_write_beside_each_other(
    file_store: JsonFileStateStore, state_path: Path
) -> None:
    first = start_script(_IMPORTER, str(state_path), "a", "pause", stdin=subprocess.PIPE)
    first_lines = read_until(first, "ready")
    lock_file(state_path).unlink()  # what an attacker (or a clean-up script) does

    second = start_script(_IMPORTER, str(state_path), "b", "go")
    second_out, second_err = second.communicate(timeout=TIMEOUT)
    assert second.returncode in (0, 3), second_err
    assert first.stdin is not None
    first.stdin.write("go\n")
    first.stdin.flush()
    rest, first_err = first.communicate(timeout=TIMEOUT)
    first_lines += rest.splitlines()

    acked_first = [line.split()[1] for line in first_lines if line.startswith("acked ")]
    acked_second = [
        line.split()[1] for line in second_out.splitlines() if line.startswith("acked ")
    ]
    # The second run got a lock on a new lock file; the first must then stop writing.
    if second.returncode == 0:
        assert acked_first == ["a/0", "a/1", "a/2"], first_lines
        assert first.returncode == 3, first_err
        stopped = first_lines[-1]
        assert f"the lock file {lock_file(state_path)} was deleted or replaced" in stopped, stopped
        assert "this run writes nothing more" in stopped
        assert "Never delete the lock file" in stopped
    # No acknowledged write of either run is lost, now or after the next run.
    for check in range(2):
        recorded = JsonFileStateStore(state_path).load().purchases
        assert set(acked_first + acked_second) <= set(recorded), (check, sorted(recorded))
        with JsonFileStateStore(state_path).lock("reconciler state list"):
            pass
    assert not journal(state_path).exists()


def test_a_run_locks_the_lock_file_the_path_names_after_waiting(
    file_store: JsonFileStateStore, state_path: Path
) -> None:
    """A lock file replaced while a run waited for it is locked again, by its new inode."""
    holder = start_script(_IMPORTER, str(state_path), "a", "pause", stdin=subprocess.PIPE)
    read_until(holder, "ready")
    waiting = JsonFileStateStore(state_path, lock_timeout=TIMEOUT)
    old_inode = lock_file(state_path).stat().st_ino
    replaced = lock_file(state_path).with_name("replacement")
    replaced.write_bytes(b"")

    def replace_soon() -> None:
        time.sleep(0.3)
        os.replace(replaced, lock_file(state_path))  # the waiter's fd now names a dead file
        time.sleep(0.3)
        assert holder.stdin is not None
        holder.stdin.write("go\n")
        holder.stdin.flush()

    thread = threading.Thread(target=replace_soon)
    thread.start()
    with waiting.lock("reconciler apply") as writer:
        # The holder stopped (its lock file is gone) instead of writing beside us.
        assert lock_file(state_path).stat().st_ino != old_inode
        writer.import_purchase("b/0", BASIC, 1, T0)
    thread.join()
    out, _ = holder.communicate(timeout=TIMEOUT)
    assert holder.returncode == 3, out
    assert {"a/0", "a/1", "a/2", "b/0"} <= set(JsonFileStateStore(state_path).load().purchases)
