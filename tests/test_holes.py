"""Regression tests for the holes of issue 13 that concern the file store, the CLI and
the API client (holes 2, 3, 4, 7, 9, 10 and 11).

Each test failed before its fix: a second run beside a run whose lock file was
deleted, a journal cut short, damaged or spliced read as a torn last write, a state
bricked by a failure between the journal mark and its first line,
hard-linked state files, secrets outside Latin-1, secrets echoed back in encoded
forms, temp files left by kills, Ctrl-C while waiting for the lock, a plan that
told users to resolve the in-flight checkouts of a running apply, and a read-only
state file that a run replaced.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, urlencode

import pytest
import yaml
from click.testing import CliRunner, Result

import reconciler
from reconciler.api.settings import ApiSettings
from reconciler.cli import cli
from reconciler.errors import ApiError, ConfigurationError, StateError
from reconciler.model import CheckoutRecord, Identity, PendingOperation, RecordedPurchase, State
from reconciler.simulator import Simulator
from reconciler.state import JsonFileStateStore, files, filestore

T0 = "2026-11-26T19:00:00Z"
TIMEOUT = 30
IDENTITY = Identity(111111, "CFQ7TTC0LF8R", "0010", "monthly", "P1M")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "reconciler.state.json"


@pytest.fixture
def store(path: Path) -> JsonFileStateStore:
    created = JsonFileStateStore(path)
    assert created.create() is True
    return created


def lock_file(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def journal(path: Path) -> Path:
    return path.with_name(path.name + ".journal")


def python_env() -> dict[str, str]:
    """The environment of a child Python that imports this checkout's reconciler."""
    package_root = Path(reconciler.__file__).resolve().parents[1]
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(package_root), *sys.path[1:]])}


def start_script(script: str, *args: str, stdin: int | None = None) -> subprocess.Popen[str]:
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


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    """The CLI in-process; an exception escaping its error boundary fails the test."""
    result = CliRunner().invoke(cli, list(args), env=env, prog_name="reconciler")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"reconciler {' '.join(args)} crashed") from result.exception
    return result


def declare(directory: Path, *names_and_quantities: tuple[str, int]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    purchases = [
        {
            "name": name,
            "customerTenantId": IDENTITY.customer_tenant_id,
            "productId": IDENTITY.product_id,
            "skuId": IDENTITY.sku_id,
            "quantity": quantity,
            "billingCycle": IDENTITY.billing_cycle,
            "termDuration": IDENTITY.term_duration,
        }
        for name, quantity in names_and_quantities
    ]
    (directory / "purchases.yaml").write_text(
        yaml.safe_dump({"version": 1, "purchases": purchases}, sort_keys=False), encoding="utf-8"
    )
    return directory


# --- hole 2: the lock file deleted while a run holds it ------------------------------

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
    store: JsonFileStateStore, path: Path
) -> None:
    first = start_script(_IMPORTER, str(path), "a", "pause", stdin=subprocess.PIPE)
    first_lines = read_until(first, "ready")
    lock_file(path).unlink()  # what the attacker did

    second = start_script(_IMPORTER, str(path), "b", "go")
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
        assert f"the lock file {lock_file(path)} was deleted or replaced" in stopped, stopped
        assert "this run writes nothing more" in stopped
        assert "Never delete the lock file" in stopped
    # No acknowledged write of either run is lost, now or after the next run.
    for check in range(2):
        recorded = JsonFileStateStore(path).load().purchases
        assert set(acked_first + acked_second) <= set(recorded), (check, sorted(recorded))
        with JsonFileStateStore(path).lock("reconciler state list"):
            pass
    assert not journal(path).exists()


def test_a_run_locks_the_lock_file_the_path_names_after_waiting(
    store: JsonFileStateStore, path: Path
) -> None:
    """A lock file replaced while a run waited for it is locked again, by its new inode."""
    holder = start_script(_IMPORTER, str(path), "a", "pause", stdin=subprocess.PIPE)
    read_until(holder, "ready")
    waiting = JsonFileStateStore(path, lock_timeout=TIMEOUT)
    old_inode = lock_file(path).stat().st_ino
    replaced = lock_file(path).with_name("replacement")
    replaced.write_bytes(b"")

    def replace_soon() -> None:
        time.sleep(0.3)
        os.replace(replaced, lock_file(path))  # the waiter's fd now names a dead file
        time.sleep(0.3)
        assert holder.stdin is not None
        holder.stdin.write("go\n")
        holder.stdin.flush()

    thread = threading.Thread(target=replace_soon)
    thread.start()
    with waiting.lock("reconciler apply") as writer:
        # The holder stopped (its lock file is gone) instead of writing beside us.
        assert lock_file(path).stat().st_ino != old_inode
        writer.import_purchase("b/0", IDENTITY, 1, T0)
    thread.join()
    out, _ = holder.communicate(timeout=TIMEOUT)
    assert holder.returncode == 3, out
    assert {"a/0", "a/1", "a/2", "b/0"} <= set(JsonFileStateStore(path).load().purchases)


# --- hole 4: every crash point of a run leaves a loadable state -----------------------


class _Killed(BaseException):
    """The process died here: nothing after it runs, not even cleanup."""


#: The calls of the file store that change what is on disk.
_DURABLE = frozenset({"write", "fsync", "replace", "unlink", "link", "ftruncate", "pwrite"})


class _OsInjector:
    """Stands in for ``os`` inside the file store: numbers each durable step and, at
    step N, kills the run right before or right after it, or fails it with ENOSPC.

    A kill also makes every later ``os`` call of the store raise, as in a dead
    process; ``reap`` then closes the descriptors it left open, as the kernel does.
    """

    def __init__(self, fail_at: int | None, mode: str) -> None:
        self.fail_at = fail_at
        self.mode = mode
        self.steps = 0
        self.dead = False
        self._open_fds: set[int] = set()

    def __getattr__(self, name: str) -> Any:
        real = getattr(os, name)
        if not callable(real) or name.startswith("O_"):
            return real
        durable = name in _DURABLE

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.dead:
                raise _Killed(name)
            step = durable or (name == "open" and bool(args[1] & os.O_CREAT))
            if step:
                self.steps += 1
            failing = step and self.steps == self.fail_at
            if failing and self.mode == "before":
                self.dead = True
                raise _Killed(name)
            if failing and self.mode == "enospc":
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            result = real(*args, **kwargs)
            if name == "open":
                self._open_fds.add(result)
            elif name == "close":
                self._open_fds.discard(args[0])
            if failing:
                self.dead = True
                raise _Killed(name)
            return result

        return call

    def reap(self) -> None:
        for fd in self._open_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._open_fds.clear()


PENDING = PendingOperation("acme/a", IDENTITY, "ord-1", 5, T0)
#: The three writes of the run under test and the state each leaves behind.
STEPS: list[tuple[Callable[[Any], None], Callable[[State], State]]] = [
    (
        lambda w: w.add_pending(PENDING),
        lambda s: State(s.lineage, s.serial + 1, s.purchases, {"acme/a": PENDING}),
    ),
    (
        lambda w: w.record_checkout("acme/a", IDENTITY, CheckoutRecord("ord-1", 5, T0)),
        lambda s: State(
            s.lineage,
            s.serial + 1,
            {"acme/a": RecordedPurchase("acme/a", IDENTITY, 5, (CheckoutRecord("ord-1", 5, T0),))},
            {},
        ),
    ),
    (
        lambda w: w.import_purchase("acme/b", IDENTITY, 2, T0),
        lambda s: State(
            s.lineage,
            s.serial + 1,
            {**s.purchases, "acme/b": RecordedPurchase("acme/b", IDENTITY, 2)},
            s.pending,
        ),
    ),
]


def _three_writes(store: JsonFileStateStore, acked: list[int]) -> None:
    with store.lock("reconciler apply") as writer:
        for number, (write, _) in enumerate(STEPS):
            write(writer)
            acked.append(number)


def _run_injected(
    path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: int | None, mode: str
) -> tuple[_OsInjector, list[int]]:
    injector = _OsInjector(fail_at, mode)
    acked: list[int] = []
    with monkeypatch.context() as patch:
        # Every module of the file store that touches the disk goes through the injector.
        patch.setattr(filestore, "os", injector)
        patch.setattr(files, "os", injector)
        try:
            _three_writes(JsonFileStateStore(path), acked)
        except _Killed:
            injector.reap()
        except (StateError, OSError):
            pass  # an ENOSPC the run reported; its state must still load
    return injector, acked


@pytest.mark.parametrize("mode", ["before", "after", "enospc"])
def test_every_crash_point_of_a_run_leaves_a_state_the_next_runs_load_and_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    clean = tmp_path / "clean" / "reconciler.state.json"
    clean.parent.mkdir()
    JsonFileStateStore(clean).create()
    counted, acked = _run_injected(clean, monkeypatch, None, mode)
    assert acked == [0, 1, 2]
    assert counted.steps >= 10
    for step in range(1, counted.steps + 1):
        path = tmp_path / f"{mode}-{step}" / "reconciler.state.json"
        path.parent.mkdir()
        store = JsonFileStateStore(path)
        store.create()
        start = store.load()
        expected = [start]
        for _, after in STEPS:
            expected.append(after(expected[-1]))
        injector, acked = _run_injected(path, monkeypatch, step, mode)
        assert injector.steps >= step, (mode, step)
        where = f"{mode} step {step} (acknowledged {acked})"
        # Every acknowledged write is kept; the one in flight may or may not be.
        possible = expected[len(acked) : len(acked) + 2]
        try:
            assert store.load() in possible, where
            # A locked run that writes nothing (plan under lock, a refused apply)...
            with store.lock("reconciler apply"):
                pass
            assert store.load() in possible, where
            # ...and the next run that writes finishes the job.
            before = store.load()
            with store.lock("reconciler state import") as writer:
                writer.import_purchase("acme/final", IDENTITY, 1, T0)
            final = store.load()
        except StateError as exc:
            pytest.fail(f"{where}: {exc}")
        final_purchase = RecordedPurchase("acme/final", IDENTITY, 1)
        assert final == State(
            before.lineage,
            before.serial + 1,
            {**before.purchases, "acme/final": final_purchase},
            before.pending,
        ), where
        assert sorted(p.name for p in path.parent.iterdir()) == [
            path.name,
            lock_file(path).name,
        ], where
        assert "journal" not in json.loads(path.read_text()), where


# --- hole 3: a journal cut, damaged or spliced is refused, a torn last line loads -------


def _run_kept_mid_way(path: Path, quantities: tuple[int, ...] = (4, 5)) -> tuple[bytes, bytes]:
    """The state file and journal of a run that made four acknowledged writes (a pending
    entry and its checkout per purchase), as a kill or a backup taken mid-run keeps them."""
    store = JsonFileStateStore(path)
    with store.lock("reconciler apply") as writer:
        for number, quantity in enumerate(quantities):
            op = PendingOperation(f"acme/{number}", IDENTITY, f"ord-{number}", quantity, T0)
            writer.add_pending(op)
            writer.record_checkout(
                op.address, IDENTITY, CheckoutRecord(op.external_order_id, quantity, T0)
            )
        kept = path.read_bytes(), journal(path).read_bytes()
    return kept


@pytest.fixture
def kept(store: JsonFileStateStore, path: Path) -> tuple[bytes, bytes]:
    return _run_kept_mid_way(path)


def _restore(path: Path, state: bytes, journal_bytes: bytes) -> JsonFileStateStore:
    path.write_bytes(state)
    journal(path).write_bytes(journal_bytes)
    return JsonFileStateStore(path)


def _refused(store: JsonFileStateStore, path: Path) -> str:
    """The error ``plan`` and a locked run give, the same for both; nothing is changed."""
    before = path.read_bytes(), journal(path).read_bytes()
    with pytest.raises(StateError) as caught:
        store.load()
    with pytest.raises(StateError) as locked, store.lock("reconciler apply"):
        pytest.fail("locked a damaged journal")
    assert str(locked.value) == str(caught.value)
    assert (path.read_bytes(), journal(path).read_bytes()) == before
    message = str(caught.value)
    assert message.startswith(f"state journal {journal(path)} "), message
    return message


def _lines(journal_bytes: bytes) -> list[bytes]:
    return [line + b"\n" for line in journal_bytes.split(b"\n")[:-1]]


def unmarked_state(state: bytes) -> bytes:
    data = json.loads(state)
    for key in ("acknowledgedSerial", "journal", "journalRun"):
        del data[key]
    return (json.dumps(data, sort_keys=True, indent=2) + "\n").encode()


def test_the_full_copy_of_a_run_kept_mid_way_loads_every_write(
    path: Path, kept: tuple[bytes, bytes]
) -> None:
    store = _restore(path, *kept)
    state = store.load()
    assert state.serial == 4
    assert {a: p.quantity for a, p in state.purchases.items()} == {"acme/0": 4, "acme/1": 5}
    assert json.loads(kept[0])["acknowledgedSerial"] == "0" * 19 + "4"
    # Updated in place, the marked file is still exactly what json.dumps would write.
    assert kept[0] == (json.dumps(json.loads(kept[0]), sort_keys=True, indent=2) + "\n").encode()


@pytest.mark.parametrize("lines_kept", [0, 1, 2, 3])
def test_a_journal_cut_at_a_line_boundary_is_refused(
    path: Path, kept: tuple[bytes, bytes], lines_kept: int
) -> None:
    state, whole = kept
    store = _restore(path, state, b"".join(_lines(whole)[:lines_kept]))
    lost = 4 - lines_kept
    assert _refused(store, path) == (
        f"state journal {journal(path)} ends at serial {lines_kept}, but state file {path} "
        f"records serial 4 as acknowledged: the journal was cut short (a partial copy, "
        f"upload or backup?) and lost {lost} acknowledged write{'s' if lost > 1 else ''}, "
        f"and planning without {'them' if lost > 1 else 'it'} could buy again. Put the "
        "complete journal back beside the state file. If it is lost for good, check the "
        'orders in Crayon Cloud-iQ, then delete the journal and the "journal" lines from '
        "the state file and record what was bought with `reconciler state import`."
    )


@pytest.mark.parametrize("line", [1, 2, 3, 4])
def test_a_journal_cut_in_the_middle_of_a_line_is_refused(
    path: Path, kept: tuple[bytes, bytes], line: int
) -> None:
    """The same bytes as a crash while writing that line, but the state file the run
    left says the line was acknowledged: the last line included."""
    state, whole = kept
    lines = _lines(whole)
    cut = b"".join(lines[: line - 1]) + lines[line - 1][: len(lines[line - 1]) // 2]
    store = _restore(path, state, cut)
    assert f"ends at serial {line - 1}, but state file {path} records serial 4" in _refused(
        store, path
    )


def test_plan_refuses_a_cut_journal_instead_of_buying_again(
    path: Path, kept: tuple[bytes, bytes], tmp_path: Path
) -> None:
    """The issue's case: apply re-bought 9 of 10 after a journal cut by an upload."""
    state, whole = kept
    _restore(path, state, b"".join(_lines(whole)[:1]))
    decl = declare(tmp_path / "decl", ("acme/0", 4), ("acme/1", 5))
    result = invoke("plan", str(decl), "--state", str(path))
    assert result.exit_code == 1
    assert f"error: state journal {journal(path)} ends at serial 1" in result.stderr
    assert "lost 3 acknowledged writes" in result.stderr


def test_a_bit_flip_in_a_middle_line_is_refused(path: Path, kept: tuple[bytes, bytes]) -> None:
    state, whole = kept
    lines = _lines(whole)
    assert b'"quantity":4' in lines[1]
    # Still valid JSON and a valid entry: only the checksum tells.
    lines[1] = lines[1].replace(b'"quantity":4', b'"quantity":5')
    store = _restore(path, state, b"".join(lines))
    assert _refused(store, path) == (
        f"state journal {journal(path)} line 2 fails its checksum: the line was changed "
        "after it was written (a damaged copy or disk?), so none of its values can be trusted"
    )


def test_a_bit_flip_in_the_last_line_is_refused_not_dropped_as_torn(
    path: Path, kept: tuple[bytes, bytes]
) -> None:
    state, whole = kept
    lines = _lines(whole)
    lines[3] = lines[3].replace(b'"quantity":5', b'"quantity":7')
    store = _restore(path, state, b"".join(lines))
    assert "ends at serial 3, but state file" in _refused(store, path)


def test_a_line_spliced_from_another_run_is_refused(
    path: Path, kept: tuple[bytes, bytes], tmp_path: Path
) -> None:
    """Two runs from the same state (a restored backup): same lineage, same serials."""
    state, whole = kept
    other = tmp_path / "other" / path.name
    other.parent.mkdir()
    other.write_bytes(unmarked_state(state))
    other_state, other_whole = _run_kept_mid_way(other, quantities=(4, 9))
    lines, other_lines = _lines(whole), _lines(other_whole)
    assert other_lines[3] != lines[3]
    run = json.loads(state)["journalRun"]
    other_run = json.loads(other_state)["journalRun"]

    store = _restore(path, state, b"".join([*lines[:3], other_lines[3]]))
    assert _refused(store, path) == (
        f"state journal {journal(path)} line 4 was written by run {other_run}, line 1 by "
        f"run {run}: lines of two journals were put together"
    )
    # The other run's whole journal beside this state file.
    store = _restore(path, state, other_whole)
    assert _refused(store, path) == (
        f"state journal {journal(path)} was written by run {other_run}, but state file "
        f"{path} is marked for the journal of run {run}: the two files do not belong "
        "together (a journal from another run or copy); put the right pair together"
    )


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param(b'{"crc":"0badf00d","address":"acme/2","lineage":', id="cut-mid-line"),
        pytest.param(b"\x00" * 64, id="allocated-never-written"),
        pytest.param(b'{"address":"acme/2"}\n', id="complete-but-not-checksummed"),
        pytest.param(b"{not json}\n", id="complete-but-unreadable"),
    ],
)
def test_a_torn_final_line_after_a_crash_still_loads(
    path: Path, kept: tuple[bytes, bytes], tail: bytes
) -> None:
    state, whole = kept
    store = _restore(path, state, whole + tail)
    assert store.load().serial == 4
    with store.lock("reconciler apply") as writer:
        writer.import_purchase("acme/new", IDENTITY, 1, T0)
    assert store.load().serial == 5
    assert not journal(path).exists()


def test_a_journal_of_the_previous_version_still_replays(
    path: Path, kept: tuple[bytes, bytes]
) -> None:
    """Lines without a run and a checksum, beside a file marked only with "journal"."""
    state, whole = kept
    expected = _restore(path, state, whole).load()
    legacy_lines = []
    for line in _lines(whole):
        entry = json.loads(line)
        del entry["crc"], entry["run"]
        legacy_lines.append(json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n")
    legacy_state = json.loads(state)
    del legacy_state["acknowledgedSerial"], legacy_state["journalRun"]
    legacy_text = (json.dumps(legacy_state, sort_keys=True, indent=2) + "\n").encode()
    legacy_journal = "".join(legacy_lines).encode()
    store = _restore(path, legacy_text, legacy_journal)
    assert store.load() == expected
    # One line of each kind is two journals put together.
    store = _restore(path, legacy_text, legacy_journal[: len(legacy_lines[0])] + _lines(whole)[1])
    assert "line 2 was written by run " in _refused(store, path)
    # A file marked the old way beside a checksummed journal does not belong to it.
    store = _restore(path, legacy_text, whole)
    assert "was marked by a reconciler without journal checksums" in _refused(store, path)
    # The next locked run compacts the old pair, then writes the new way.
    store = _restore(path, legacy_text, legacy_journal)
    with store.lock("reconciler apply") as writer:
        writer.import_purchase("acme/new", IDENTITY, 1, T0)
    assert store.load().serial == 5
    assert not journal(path).exists()


def test_the_readme_says_what_the_journal_checks_cannot_detect() -> None:
    readme = (Path(reconciler.__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("What the state's checks cannot detect") :]
    assert "a journal cut short together with a state file copied before" in section
    assert "the state file itself carries no checksum" in section


# --- hole 7: one state file, one lock, whatever path reaches it -----------------------


def test_a_hard_linked_state_file_is_refused_and_left_alone(
    store: JsonFileStateStore, path: Path
) -> None:
    other = path.with_name("other.json")
    os.link(path, other)
    before = path.read_bytes()
    message = (
        "has 2 hard links: each name would get a lock and a journal of its own, and two "
        "runs could buy the same seats twice. Keep one name (delete the other links) and "
        "share it through a symlink (ln -s)"
    )
    for name in (path, other):
        linked = JsonFileStateStore(name)
        with pytest.raises(StateError) as caught:
            linked.load()
        assert f"state file {name} {message}" in str(caught.value)
        with pytest.raises(StateError) as caught, linked.lock("reconciler apply"):
            pass
        assert f"state file {name} {message}" in str(caught.value)
    assert not lock_file(other).exists()
    assert not lock_file(path).exists()
    assert path.read_bytes() == before
    assert os.stat(path).st_nlink == 2

    result = invoke(
        "plan", str(declare(path.parent / "decl", ("acme/a", 1))), "--state", str(other)
    )
    assert result.exit_code == 1
    assert message in result.stderr

    other.unlink()  # one name again: everything works
    with JsonFileStateStore(path).lock("reconciler apply") as writer:
        writer.import_purchase("acme/a", IDENTITY, 1, T0)
    assert os.stat(path).st_nlink == 1


def test_a_temp_file_left_by_a_killed_init_is_not_a_second_link(
    store: JsonFileStateStore, path: Path
) -> None:
    """`init` writes a temp file and links it to the state: a kill between the link and
    the unlink leaves the temp as a second name, which the next locked run removes."""
    leftover = path.with_name(f".{path.name}.0123456789ab.tmp")
    os.link(path, leftover)
    assert store.load().serial == 0
    with store.lock("reconciler apply"):
        pass
    assert not leftover.exists()
    assert os.stat(path).st_nlink == 1


# --- hole 9: credentials outside Latin-1 ------------------------------------------------

CLIENT_ID = "clïent-ü"
SECRET = "sécret-ü€-ключ"
PASSWORD = "pässwörd-€-密码"


def _non_ascii(*secrets: str) -> set[str]:
    return {ch for secret in secrets for ch in secret if not ch.isascii()}


def test_credentials_outside_latin_1_work_end_to_end_and_show_no_character(
    simulator_factory: Callable[..., Simulator], tmp_path: Path
) -> None:
    sim = simulator_factory(
        client_id=CLIENT_ID, client_secret=SECRET, username="üser", password=PASSWORD
    )
    decl = declare(tmp_path / "decl", ("acme/a", 3))
    state = tmp_path / "reconciler.state.json"
    assert invoke("init", "--state", str(state)).exit_code == 0
    verified = invoke("plan", str(decl), "--state", str(state), "--verify", env=sim.env())
    applied = invoke("apply", str(decl), "--state", str(state), "--auto-approve", env=sim.env())
    assert verified.exit_code == 0, verified.output
    assert applied.exit_code == 0, applied.output
    product = f"{IDENTITY.product_id}:{IDENTITY.sku_id}"
    assert sim.seats(IDENTITY.customer_tenant_id, product) == 3
    assert JsonFileStateStore(state).load().purchases["acme/a"].quantity == 3

    # A refused secret: an error, not a traceback, and not a character of it.
    env = sim.env()
    sim.client_secret = "something-else"
    more = declare(tmp_path / "more", ("acme/a", 3), ("acme/b", 1))
    refused = invoke("plan", str(more), "--state", str(state), "--verify", env=env)
    assert refused.exit_code == 1
    assert "refused the credentials" in refused.stderr
    for result in (verified, applied, refused):
        shown = result.stdout + result.stderr
        assert not _non_ascii(SECRET, PASSWORD) & set(shown), shown
        assert SECRET not in shown
        assert PASSWORD not in shown


def test_credentials_that_are_not_utf_8_are_named_never_shown() -> None:
    env = {
        "CRAYON_API_URL": "https://api.example.com",
        "CRAYON_CLIENT_ID": "client",
        "CRAYON_CLIENT_SECRET": "s\udcffcret-value",  # os.environ's form of a non-UTF-8 byte
        "CRAYON_USERNAME": "user",
        "CRAYON_PASSWORD": "password",
    }
    with pytest.raises(ConfigurationError) as caught:
        ApiSettings.from_env(env)
    assert str(caught.value) == "CRAYON_CLIENT_SECRET is not valid UTF-8 text"


# --- hole 10: every encoded form of a secret is redacted --------------------------------

ECHO_SECRET = "sec  ret/+é&=key"
ECHO_PASSWORD = "pa  ss wörd+/?%"


def _forms(client_id: str, secret: str, password: str) -> dict[str, str]:
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    forms = {"basic": basic, "basic unpadded": basic.rstrip("=")}
    for name, value in (("secret", secret), ("password", password)):
        forms |= {
            f"{name}": value,
            f"{name} collapsed": " ".join(value.split()),
            f"{name} quote": quote(value, safe=""),
            f"{name} quote /": quote(value),
            f"{name} quote_plus": quote_plus(value),
            f"{name} lower hex": re.sub(
                "%[0-9A-F]{2}", lambda m: m.group().lower(), quote(value, safe="")
            ),
            f"{name} json": json.dumps(value)[1:-1],
        }
    return forms


def test_a_server_echoing_the_token_request_shows_no_form_of_a_secret(
    simulator_factory: Callable[..., Simulator], tmp_path: Path
) -> None:
    sim = simulator_factory(client_secret=ECHO_SECRET, password=ECHO_PASSWORD)
    forms = _forms(sim.client_id, ECHO_SECRET, ECHO_PASSWORD)
    form_body = urlencode(
        {"grant_type": "password", "username": sim.username, "password": ECHO_PASSWORD}
    )
    echo = f"Authorization: Basic {forms['basic']} body: {form_body} " + " | ".join(forms.values())
    sim.fail_next(
        "token",
        400,
        body={
            "error": f"invalid_client {echo}",
            "error_description": echo,
            "ObjectErrors": [{"ErrorCode": forms["basic"], "Message": echo}],
        },
    )
    decl = declare(tmp_path / "decl", ("acme/a", 3))
    state = tmp_path / "reconciler.state.json"
    assert invoke("init", "--state", str(state)).exit_code == 0
    result = invoke("plan", str(decl), "--state", str(state), "--verify", env=sim.env())
    assert result.exit_code == 1
    assert "refused the credentials" in result.stderr
    shown = result.stdout + result.stderr
    for name, form in forms.items():
        assert form not in shown, name
    assert "***" in shown


def test_a_secret_is_redacted_before_its_whitespace_is_collapsed_or_it_is_clipped(
    simulator_factory: Callable[..., Simulator], tmp_path: Path
) -> None:
    from reconciler.api.client import CrayonClient

    sim = simulator_factory(client_secret=ECHO_SECRET, password=ECHO_PASSWORD)
    # The secret straddles the 300-character clip of error texts.
    sim.fail_next("token", 400, body={"error_description": "x" * 290 + ECHO_PASSWORD})
    client = CrayonClient(ApiSettings.from_env(sim.env()))
    try:
        with pytest.raises(ApiError) as caught:
            client.list_orders(IDENTITY.customer_tenant_id)
    finally:
        client.close()
    text = caught.value.describe()
    assert "x" * 290 + "***" in text
    assert ECHO_PASSWORD[:3] not in text.replace("x" * 290, "")


# --- hole 11: temp files, Ctrl-C, plan beside a running apply, read-only state --------


def test_temp_files_left_by_kills_are_removed_by_the_next_locked_run(
    store: JsonFileStateStore, path: Path
) -> None:
    ours = [
        path.with_name(f".{path.name}.{suffix}.tmp") for suffix in ("0123456789ab", "ffffffffffff")
    ]
    others = [
        path.with_name(f".{path.name}.notours.tmp"),
        path.with_name(f".{path.name}.0123456789AB.tmp"),
        path.with_name("keep.tmp"),
        path.with_name(".other.json.0123456789ab.tmp"),
    ]
    for temp in ours + others:
        temp.write_text("{}")
    store.load()  # reading removes nothing
    assert all(temp.exists() for temp in ours)
    with store.lock("reconciler apply"):
        pass
    assert not any(temp.exists() for temp in ours)
    assert all(temp.exists() for temp in others)


_HOLDER = """
import sys, time
from reconciler.model import Identity, PendingOperation
from reconciler.state import JsonFileStateStore

identity = Identity(111111, "CFQ7TTC0LF8R", "0010", "monthly", "P1M")
with JsonFileStateStore(sys.argv[1]).lock("reconciler apply") as writer:
    if sys.argv[2] == "pending":
        writer.add_pending(PendingOperation("acme/a", identity, "ord-1", 3, "2026-11-26T19:00:00Z"))
    print("ready", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def holder(
    store: JsonFileStateStore, path: Path
) -> Iterator[Callable[[str], subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(mode: str) -> subprocess.Popen[str]:
        proc = start_script(_HOLDER, str(path), mode)
        started.append(proc)
        read_until(proc, "ready")
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.communicate()


def test_ctrl_c_while_waiting_for_the_lock_exits_130_without_a_traceback(
    holder: Callable[[str], subprocess.Popen[str]], path: Path, tmp_path: Path
) -> None:
    holder("hold")
    decl = declare(tmp_path / "decl", ("acme/a", 1))
    apply = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", str(decl), "--state", str(path),
         "--auto-approve", "--lock-timeout", "60s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=python_env(),
    )  # fmt: skip
    # It waits once it has the lock file open.
    deadline = time.monotonic() + TIMEOUT
    fds = Path(f"/proc/{apply.pid}/fd")
    while not any(os.path.realpath(fd) == str(lock_file(path)) for fd in _links(fds)):
        assert apply.poll() is None, apply.communicate()
        assert time.monotonic() < deadline, "apply never opened the lock file"
        time.sleep(0.02)
    apply.send_signal(signal.SIGINT)
    out, err = apply.communicate(timeout=TIMEOUT)
    assert apply.returncode == 130, err
    assert err.strip() == "Interrupted."
    assert "Traceback" not in out + err


def _links(directory: Path) -> list[str]:
    try:
        return [os.readlink(entry) for entry in directory.iterdir()]
    except OSError:
        return []


def test_plan_beside_a_running_apply_says_its_checkouts_are_in_flight(
    holder: Callable[[str], subprocess.Popen[str]], path: Path, tmp_path: Path
) -> None:
    store = JsonFileStateStore(path)
    assert store.locked_by() is None
    decl = declare(tmp_path / "decl", ("acme/a", 3))
    running = holder("pending")
    held_by = store.locked_by()
    assert held_by is not None
    assert held_by.startswith(f"pid {running.pid} on host ")
    assert "(command 'reconciler apply', since " in held_by

    result = invoke("plan", str(decl), "--state", str(path))
    assert result.exit_code == 1
    assert (
        f"error: an apply holds the lock on the state ({held_by}); its 1 in-flight "
        "checkout is pending for that reason and it records each outcome itself. "
        "Wait for it to finish, then plan again; do not resolve it while it runs"
    ) in result.stderr
    assert "state resolve" not in result.stderr

    running.kill()
    running.communicate()
    assert store.locked_by() is None  # a dead holder's description is not a lock
    result = invoke("plan", str(decl), "--state", str(path))
    assert result.exit_code == 1
    assert "an apply holds the lock" not in result.stderr
    assert "reconciler state resolve acme/a --purchased" in result.stderr


def test_locked_by_names_nobody_after_a_clean_release(
    store: JsonFileStateStore, path: Path
) -> None:
    with store.lock("reconciler apply"):
        pass
    assert lock_file(path).exists()
    assert store.locked_by() is None


def test_locked_by_on_postgresql_names_the_holder_while_the_lock_is_held(
    pg_database: str,
) -> None:
    from reconciler.state.postgres import PostgresStateStore

    store = PostgresStateStore(pg_database, "ws-a")
    other = PostgresStateStore(pg_database, "ws-b")
    assert store.create()
    assert other.create()
    assert store.locked_by() is None
    with store.lock("reconciler apply"):
        held_by = PostgresStateStore(pg_database, "ws-a").locked_by()
        assert held_by is not None
        assert held_by.startswith(f"pid {os.getpid()} on host ")
        assert "(command 'reconciler apply', since " in held_by
        assert other.locked_by() is None
    assert store.locked_by() is None


def test_a_read_only_state_file_is_refused_not_replaced(
    store: JsonFileStateStore, path: Path, tmp_path: Path
) -> None:
    with store.lock("test") as writer:
        writer.import_purchase("acme/a", IDENTITY, 1, T0)
    path.chmod(0o444)
    before = path.read_bytes()
    inode = path.stat().st_ino
    with pytest.raises(StateError) as caught, store.lock("reconciler state rm"):
        pass
    assert str(caught.value) == (
        f"state file {path} is read-only (mode 0444); this command would rewrite it, so it "
        "refuses. Make it writable (chmod u+w) to change the state; plan and show read it "
        "as it is"
    )
    assert path.read_bytes() == before
    assert path.stat().st_ino == inode
    assert (path.stat().st_mode & 0o777) == 0o444
    assert store.load().purchases["acme/a"].quantity == 1  # reading still works

    result = invoke("state", "rm", "acme/a", "--state", str(path), "--yes")
    assert result.exit_code == 1
    assert "is read-only (mode 0444)" in result.stderr
    assert path.read_bytes() == before
    assert path.stat().st_ino == inode


# --- a write on disk whose acknowledgement failed is never dropped by compaction -----


def test_a_write_whose_acknowledgement_failed_is_kept_for_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal line of a 204 reached the disk, then recording its acknowledgement
    failed: the run stops writing, but the seats must not vanish at unlock."""
    path = tmp_path / "reconciler.state.json"
    store = JsonFileStateStore(path)
    store.create()
    real_pwrite = os.pwrite
    calls = {"n": 0}

    def pwrite_failing_once(fd: int, data: bytes, offset: int) -> int:
        calls["n"] += 1
        if calls["n"] == 1:  # the acknowledgement of the record_checkout line
            raise OSError(errno.EIO, "Input/output error")
        return real_pwrite(fd, data, offset)

    def run() -> None:
        with store.lock("reconciler apply") as writer:
            writer.add_pending(PendingOperation("acme/a", IDENTITY, "ord-1", 5, T0))
            monkeypatch.setattr(filestore.os, "pwrite", pwrite_failing_once)
            writer.record_checkout("acme/a", IDENTITY, CheckoutRecord("ord-1", 5, T0))

    with pytest.raises(StateError):
        run()
    monkeypatch.undo()
    # The 204's line is durable in the journal: the next run replays it, never drops it.
    state = JsonFileStateStore(path).load()
    assert state.pending == {}
    assert state.purchases["acme/a"].quantity == 5
    with JsonFileStateStore(path).lock("next") as writer:
        assert writer.state.purchases["acme/a"].quantity == 5
    assert JsonFileStateStore(path).load().purchases["acme/a"].quantity == 5


# --- hole 6, second half: a per-purchase sanity limit -----------------------------------


def test_a_change_above_the_seat_limit_needs_max_seats_before_any_api_call(
    tmp_path: Path,
) -> None:
    """An extra zero in a quantity must not reach checkout unconfirmed."""
    decl = declare(tmp_path / "decl", ("acme/a", 3), ("acme/typo", 120_000))
    state = str(tmp_path / "reconciler.state.json")
    assert invoke("init", "--state", state).exit_code == 0

    planned = invoke("plan", str(decl), "--state", state)
    assert planned.exit_code == 0
    assert (
        "warning: acme/typo buys 120000 seats in one change, more than the sanity limit of "
        "10000 seats (RECONCILER_SEAT_LIMIT): apply will want the total confirmed with "
        "--max-seats 120003"
    ) in planned.stderr

    refused = invoke("apply", str(decl), "--state", state, "--auto-approve")
    assert refused.exit_code == 1
    assert (
        "error: the plan buys more than 10000 seats in one change: acme/typo (120000 seats); "
        "if that is intended, confirm the total with --max-seats 120003 (the limit is "
        "RECONCILER_SEAT_LIMIT); nothing was bought"
    ) in refused.stderr

    # Confirmed, apply goes on to the API (here: no credentials, so it stops there).
    confirmed = invoke(
        "apply", str(decl), "--state", state, "--auto-approve", "--max-seats", "120003"
    )
    assert confirmed.exit_code == 1
    assert "sanity limit" not in confirmed.stderr
    assert "in one change" not in confirmed.stderr
    assert "CRAYON_" in confirmed.stderr

    lower = invoke(
        "apply", str(decl), "--state", state, "--auto-approve", env={"RECONCILER_SEAT_LIMIT": "2"}
    )
    assert "acme/a (3 seats), acme/typo (120000 seats)" in lower.stderr
    bad = invoke("plan", str(decl), "--state", state, env={"RECONCILER_SEAT_LIMIT": "many"})
    assert bad.exit_code == 1
    assert "RECONCILER_SEAT_LIMIT must be a whole number >= 1, not 'many'" in bad.stderr
