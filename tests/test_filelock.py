"""The file store's lock (``reconciler.state.filelock``): who holds it, and systems
without ``flock``.

Where ``fcntl`` is missing (Windows), the commands that only read a state file work
and every command that would write one says that the file backend needs a POSIX
system and that a postgresql:// state works everywhere. This is proved on the real
CLI in a child process whose ``import fcntl`` fails (a ``sitecustomize`` puts None
into ``sys.modules['fcntl']``, as Python does for a module it cannot have).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import reconciler
from reconciler.errors import StateLockedError
from reconciler.model import Identity
from reconciler.state import JsonFileStateStore

ROOT = Path(reconciler.__file__).resolve().parents[1]
IDENTITY = Identity(111111, "CFQ7TTC0LF8R", "0010", "monthly", "P1M")
T0 = "2026-11-26T19:00:00Z"
DECLARED = {
    "version": 1,
    "purchases": [{"name": "acme/a", "quantity": 5, **IDENTITY.as_dict()}],
}
NO_FCNTL = "import sys\nsys.modules['fcntl'] = None  # what `import fcntl` finds on Windows\n"


def without_fcntl(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """``python -m reconciler ARGS`` in a child whose ``import fcntl`` fails."""
    hook = tmp_path / "no-fcntl"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(NO_FCNTL, encoding="utf-8")
    child = {**os.environ, **(env or {})}
    child["PYTHONPATH"] = os.pathsep.join([str(hook), str(ROOT)])
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=tmp_path,
        env=child,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout, done.stderr


def posix_only(state: Path) -> str:
    return (
        f"error: cannot lock the state file {state}: a state file is locked with flock, which "
        "this system does not have, so the file backend needs a POSIX system (Linux, macOS, "
        "BSD) to write it. A postgresql:// state works on every system; validate, plan and "
        "show still read a state file here\n"
    )


def test_the_child_really_has_no_fcntl(tmp_path: Path) -> None:
    hook = tmp_path / "no-fcntl"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(NO_FCNTL, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(hook)}
    probe = subprocess.run(
        [sys.executable, "-c", "import fcntl"], env=env, capture_output=True, text=True, check=False
    )
    assert probe.returncode == 1
    assert "ModuleNotFoundError: import of fcntl halted" in probe.stderr


def test_without_flock_reading_commands_work_and_writing_ones_say_why_not(
    tmp_path: Path,
) -> None:
    decl = tmp_path / "decl.yaml"
    decl.write_text(json.dumps(DECLARED), encoding="utf-8")
    state = tmp_path / "reconciler.state.json"
    store = JsonFileStateStore(state)  # made here, where flock exists
    store.create()
    with store.lock("reconciler apply") as writer:
        writer.import_purchase("acme/a", IDENTITY, 3, T0)
    before = state.read_bytes()
    files_before = sorted(p.name for p in tmp_path.iterdir())

    assert without_fcntl(tmp_path, "validate", str(decl))[0] == 0
    code, out, err = without_fcntl(tmp_path, "plan", str(decl), "--state", str(state))
    assert code == 0
    assert err.startswith("note: Cloud-iQ not read (no credentials")
    assert "acme/a" in out, out
    assert "+2" in out, out
    code, out, err = without_fcntl(tmp_path, "show", "--state", str(state))
    assert (code, err) == (0, "")
    assert "acme/a" in out
    code, out, _ = without_fcntl(tmp_path, "state", "list", "--state", str(state))
    assert (code, out) == (0, "acme/a\n")

    for args in (
        ("apply", str(decl), "--auto-approve"),
        ("state", "rm", "acme/a", "-y"),
        ("state", "import", "acme/a", "--quantity", "1", "--config", str(decl), "-y"),
        ("state", "migrate", "--to", str(tmp_path / "copy.json")),
    ):
        code, out, err = without_fcntl(tmp_path, *args, "--state", str(state))
        assert (code, out, err) == (1, "", posix_only(state)), args
    new = tmp_path / "new.json"
    assert without_fcntl(tmp_path, "init", "--state", str(new)) == (1, "", posix_only(new))

    # Nothing was written: no lock file, no journal, no copy, no new state.
    assert state.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*files_before, "no-fcntl"])


def test_without_flock_a_postgresql_state_works(tmp_path: Path, pg_database: str) -> None:
    decl = tmp_path / "decl.yaml"
    decl.write_text(json.dumps(DECLARED), encoding="utf-8")
    code, out, err = without_fcntl(tmp_path, "init", "--state", pg_database)
    assert code == 0, err
    assert out.startswith(f"Initialized an empty state at {pg_database} ")
    import_ = ("state", "import", "acme/a", "--quantity", "5", "--config", str(decl), "-y")
    code, out, err = without_fcntl(tmp_path, *import_, "--state", pg_database)
    assert code == 0, err
    code, out, err = without_fcntl(
        tmp_path, "plan", str(decl), "--state", pg_database, "--detailed-exitcode"
    )
    assert code == 0, out + err
    assert "No changes" in out


# --- naming the holder ------------------------------------------------------------------


def test_a_holder_that_names_itself_a_moment_late_is_still_named(tmp_path: Path) -> None:
    """A run that has just taken the lock writes who it is right after: a run refused
    in between waits a moment for the name rather than say nobody holds it."""
    state = tmp_path / "reconciler.state.json"
    JsonFileStateStore(state).create()
    lock = tmp_path / "reconciler.state.json.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # locked, not yet described
        described = {"pid": 4242, "host": "ci-3", "command": "reconciler apply", "started": T0}
        late = threading.Timer(0.1, lambda: os.pwrite(fd, json.dumps(described).encode(), 0))
        late.start()
        with pytest.raises(StateLockedError) as caught, JsonFileStateStore(state).lock("rm"):
            pytest.fail("locked twice")
        late.join()
    finally:
        os.close(fd)
    assert str(caught.value).startswith(
        f"state is locked by pid 4242 on host ci-3 (command 'reconciler apply', since {T0}): "
    )


def test_a_holder_that_never_names_itself_is_said_to_be_unknown(tmp_path: Path) -> None:
    state = tmp_path / "reconciler.state.json"
    JsonFileStateStore(state).create()
    fd = os.open(tmp_path / "reconciler.state.json.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        started = time.monotonic()
        with pytest.raises(StateLockedError) as caught, JsonFileStateStore(state).lock("rm"):
            pytest.fail("locked twice")
        assert time.monotonic() - started < 2
    finally:
        os.close(fd)
    assert str(caught.value).startswith(
        "state is locked by another run, which did not say who: another run is in progress"
    )


def test_the_lock_file_names_the_ci_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI_JOB_URL", "https://gitlab.example/acme/-/jobs/9")
    state = tmp_path / "reconciler.state.json"
    store = JsonFileStateStore(state)
    store.create()
    with store.lock("reconciler apply"):
        described = json.loads((tmp_path / "reconciler.state.json.lock").read_text())
        assert described["ci_url"] == "https://gitlab.example/acme/-/jobs/9"
        assert described["host"] == socket.gethostname()
        assert store.locked_by() == (
            f"pid {os.getpid()} on host {socket.gethostname()} (command 'reconciler apply', "
            f"since {described['started']}, https://gitlab.example/acme/-/jobs/9)"
        )
