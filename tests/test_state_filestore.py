"""The state file store (``reconciler.state.filestore``) on a disk that fails.

A run killed or refused at any durable step leaves a state the next runs load and
finish; the file is refused, never replaced, when it has a second hard link or no
write bit; temp files of killed runs are removed; a write whose acknowledgement
failed is kept.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import StateError
from reconciler.model import CheckoutRecord, PendingOperation, RecordedPurchase, State
from reconciler.state import JsonFileStateStore, files, filestore
from tests.support.cli import run
from tests.support.declarations import declare, purchase
from tests.support.records import BASIC, pending
from tests.support.states import lock_file
from tests.support.times import T0


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


PENDING = pending("acme/a")

#: The three writes of the run under test and the state each leaves behind.
STEPS: list[tuple[Callable[[Any], None], Callable[[State], State]]] = [
    (
        lambda w: w.add_pending(PENDING),
        lambda s: State(s.lineage, s.serial + 1, s.purchases, {"acme/a": PENDING}),
    ),
    (
        lambda w: w.record_checkout("acme/a", BASIC, CheckoutRecord("ord-1", 5, T0)),
        lambda s: State(
            s.lineage,
            s.serial + 1,
            {
                "acme/a": RecordedPurchase(
                    "acme/a", BASIC, 5, (CheckoutRecord("ord-1", 5, T0),), unseen=("ord-1",)
                )
            },
            {},
        ),
    ),
    (
        lambda w: w.import_purchase("acme/b", BASIC, 2, T0),
        lambda s: State(
            s.lineage,
            s.serial + 1,
            {**s.purchases, "acme/b": RecordedPurchase("acme/b", BASIC, 2)},
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
                writer.import_purchase("acme/final", BASIC, 1, T0)
            final = store.load()
        except StateError as exc:
            pytest.fail(f"{where}: {exc}")
        final_purchase = RecordedPurchase("acme/final", BASIC, 1)
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


def test_a_hard_linked_state_file_is_refused_and_left_alone(
    file_store: JsonFileStateStore, state_path: Path
) -> None:
    other = state_path.with_name("other.json")
    os.link(state_path, other)
    before = state_path.read_bytes()
    message = (
        "has 2 hard links: each name would get a lock and a journal of its own, and two "
        "runs could buy the same seats twice. Keep one name (delete the other links) and "
        "share it through a symlink (ln -s)"
    )
    for name in (state_path, other):
        linked = JsonFileStateStore(name)
        with pytest.raises(StateError) as caught:
            linked.load()
        assert f"state file {name} {message}" in str(caught.value)
        with pytest.raises(StateError) as caught, linked.lock("reconciler apply"):
            pass
        assert f"state file {name} {message}" in str(caught.value)
    assert not lock_file(other).exists()
    assert not lock_file(state_path).exists()
    assert state_path.read_bytes() == before
    assert os.stat(state_path).st_nlink == 2

    result = run(
        "plan",
        str(declare(state_path.parent / "decl", purchase("acme/a", 1))),
        "--state",
        str(other),
    )
    assert result.exit_code == 1
    assert message in result.stderr

    other.unlink()  # one name again: everything works
    with JsonFileStateStore(state_path).lock("reconciler apply") as writer:
        writer.import_purchase("acme/a", BASIC, 1, T0)
    assert os.stat(state_path).st_nlink == 1


def test_a_temp_file_left_by_a_killed_init_is_not_a_second_link(
    file_store: JsonFileStateStore, state_path: Path
) -> None:
    """`init` writes a temp file and links it to the state: a kill between the link and
    the unlink leaves the temp as a second name, which the next locked run removes."""
    leftover = state_path.with_name(f".{state_path.name}.0123456789ab.tmp")
    os.link(state_path, leftover)
    assert file_store.load().serial == 0
    with file_store.lock("reconciler apply"):
        pass
    assert not leftover.exists()
    assert os.stat(state_path).st_nlink == 1


def test_temp_files_left_by_kills_are_removed_by_the_next_locked_run(
    file_store: JsonFileStateStore, state_path: Path
) -> None:
    ours = [
        state_path.with_name(f".{state_path.name}.{suffix}.tmp")
        for suffix in ("0123456789ab", "ffffffffffff")
    ]
    others = [
        state_path.with_name(f".{state_path.name}.notours.tmp"),
        state_path.with_name(f".{state_path.name}.0123456789AB.tmp"),
        state_path.with_name("keep.tmp"),
        state_path.with_name(".other.json.0123456789ab.tmp"),
    ]
    for temp in ours + others:
        temp.write_text("{}")
    file_store.load()  # reading removes nothing
    assert all(temp.exists() for temp in ours)
    with file_store.lock("reconciler apply"):
        pass
    assert not any(temp.exists() for temp in ours)
    assert all(temp.exists() for temp in others)


def test_locked_by_names_nobody_after_a_clean_release(
    file_store: JsonFileStateStore, state_path: Path
) -> None:
    with file_store.lock("reconciler apply"):
        pass
    assert lock_file(state_path).exists()
    assert file_store.locked_by() is None


def test_a_read_only_state_file_is_refused_not_replaced(
    file_store: JsonFileStateStore, state_path: Path, tmp_path: Path
) -> None:
    with file_store.lock("test") as writer:
        writer.import_purchase("acme/a", BASIC, 1, T0)
    state_path.chmod(0o444)
    before = state_path.read_bytes()
    inode = state_path.stat().st_ino
    with pytest.raises(StateError) as caught, file_store.lock("reconciler state rm"):
        pass
    assert str(caught.value) == (
        f"state file {state_path} is read-only (mode 0444); this command would rewrite it, so it "
        "refuses. Make it writable (chmod u+w) to change the state; plan and show read it "
        "as it is"
    )
    assert state_path.read_bytes() == before
    assert state_path.stat().st_ino == inode
    assert (state_path.stat().st_mode & 0o777) == 0o444
    assert file_store.load().purchases["acme/a"].quantity == 1  # reading still works

    result = run("state", "rm", "acme/a", "--state", str(state_path), "--yes")
    assert result.exit_code == 1
    assert "is read-only (mode 0444)" in result.stderr
    assert state_path.read_bytes() == before
    assert state_path.stat().st_ino == inode


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

    def interrupted_apply() -> None:
        with store.lock("reconciler apply") as writer:
            writer.add_pending(PendingOperation("acme/a", BASIC, "ord-1", 5, T0))
            # The file store's module ``os`` is this one: patched for the process.
            monkeypatch.setattr(os, "pwrite", pwrite_failing_once)
            writer.record_checkout("acme/a", BASIC, CheckoutRecord("ord-1", 5, T0))

    with pytest.raises(StateError):
        interrupted_apply()
    monkeypatch.undo()
    # The 204's line is durable in the journal: the next run replays it, never drops it.
    state = JsonFileStateStore(path).load()
    assert state.pending == {}
    assert state.purchases["acme/a"].quantity == 5
    with JsonFileStateStore(path).lock("next") as writer:
        assert writer.state.purchases["acme/a"].quantity == 5
    assert JsonFileStateStore(path).load().purchases["acme/a"].quantity == 5
