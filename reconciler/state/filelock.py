"""The file store's lock: ``flock`` on ``<state>.lock``, naming its holder.

The kernel drops an ``flock`` when its holder dies, even by SIGKILL, so a dead
run never blocks the next one. The lock file is never deleted by us; when
someone deletes or replaces it, a run that held it notices (``holds``) and stops
writing, and a run that is taking it locks the file the path names now.

``flock`` exists on POSIX systems only. Where it is missing (Windows), importing
this module still works, so the commands that only read a state file (validate,
plan, show) work there; taking the lock, and so every command that writes the
state, fails with an error that says so and points to PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from types import ModuleType

from reconciler.errors import StateError
from reconciler.state.files import names_file_of
from reconciler.state.locking import (
    Acquired,
    Held,
    LockHolder,
    OnWait,
    run_description,
    wait_for_lock,
)

fcntl: ModuleType | None
try:
    import fcntl
except ImportError:  # not a POSIX system
    fcntl = None

#: How long a run that finds the lock held waits for its holder to say who it is: a
#: holder writes its description right after it takes the lock.
_DESCRIPTION_GRACE = 0.5


def no_file_lock_error(location: str) -> StateError:
    """Why a state file cannot be written on this system."""
    return StateError(
        f"cannot lock the state file {location}: a state file is locked with flock, which "
        "this system does not have, so the file backend needs a POSIX system (Linux, macOS, "
        "BSD) to write it. A postgresql:// state works on every system; validate, plan and "
        "show still read a state file here"
    )


def _flock() -> ModuleType:
    if fcntl is None:
        raise AssertionError("callers check posix_locks() first")
    return fcntl


def posix_locks() -> bool:
    """Whether this system has ``flock``, which the file store needs to write."""
    return fcntl is not None


class LockFile:
    """The exclusive lock of one state file."""

    def __init__(self, path: Path, timeout: float = 0.0, on_wait: OnWait | None = None) -> None:
        self.path = path
        self.timeout = timeout
        self.on_wait = on_wait

    @property
    def location(self) -> str:
        return os.fspath(self.path)

    def locked_by(self) -> str | None:
        """Who holds the lock now ("pid 12 on host ci-3 (command ...)"), or None.

        Never creates the lock file. A released lock leaves the file empty, so only
        a described holder is probed with a shared ``flock``, which cannot be taken
        while a run holds the exclusive one. Without ``flock`` nothing is known.
        """
        if fcntl is None:
            return None  # only a hint for plan: without flock no run here holds it
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            holder = read_holder(fd)
            if holder is None:
                return None
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return holder.describe()
            except OSError:
                return None
            return None  # the description of a run that died
        finally:
            os.close(fd)

    def acquire(self, command: str) -> int:
        """Take the lock for a run of ``command`` (waiting up to the timeout); its fd.

        Only where ``posix_locks()``: the store refuses to write before it gets here.
        """
        deadline = time.monotonic() + self.timeout
        for _ in range(100):
            fd = self._lock_file(max(0.0, deadline - time.monotonic()))
            try:
                if names_file_of(self.path, fd):
                    break
            except OSError as exc:
                os.close(fd)
                raise StateError(f"cannot lock {self.location}: {exc.strerror or exc}") from exc
            # The lock file was deleted or replaced while we waited: a lock on it keeps
            # out no run that opens the path now. Lock the file the path names.
            os.close(fd)
        else:
            raise StateError(
                f"cannot lock {self.location}: it was deleted or replaced 100 times while "
                "this run tried to lock it; never delete the lock file"
            )
        info = {**run_description(command), "user": current_user()}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info, sort_keys=True) + "\n").encode("utf-8"), 0)
        except OSError:
            pass  # the lock holds without its description; others just cannot name us
        return fd

    def _lock_file(self, timeout: float) -> int:
        """An fd of the lock file with ``flock`` taken on it, waiting up to ``timeout``."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StateError(
                f"cannot open lock file {self.location}: {exc.strerror or exc}"
            ) from exc
        grace = [_DESCRIPTION_GRACE]

        def try_once() -> Acquired[int] | Held:
            try:
                _flock().flock(fd, _flock().LOCK_EX | _flock().LOCK_NB)
            except BlockingIOError:
                return Held(self._holder(fd, grace))
            except OSError as exc:
                raise StateError(f"cannot lock {self.location}: {exc.strerror or exc}") from exc
            return Acquired(fd)

        try:
            return wait_for_lock(try_once, timeout=timeout, on_wait=self.on_wait)
        except BaseException:
            os.close(fd)
            raise

    def _holder(self, fd: int, grace: list[float]) -> LockHolder | None:
        """The holder's description; a run that has just taken the lock is given a
        moment (``grace``, spent once per acquire) to write it."""
        holder = read_holder(fd)
        while holder is None and grace[0] > 0:
            time.sleep(0.01)
            grace[0] -= 0.01
            holder = read_holder(fd)
        return holder

    def holds(self, fd: int) -> bool:
        """Whether the lock file ``fd`` locked is still the one its path names."""
        try:
            return names_file_of(self.path, fd)
        except OSError:
            return False

    def lost(self, what: str) -> str:
        return (
            f"{what}: the lock file {self.location} was deleted or replaced while this run "
            "held it, so another run may be writing this state now; this run writes nothing "
            "more and leaves its journal for the next run. Never delete the lock file"
        )

    def release(self, fd: int) -> None:
        try:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            _flock().flock(fd, _flock().LOCK_UN)
        finally:
            os.close(fd)


def read_holder(fd: int) -> LockHolder | None:
    """Who the lock file open as ``fd`` says holds it (None: nobody said so)."""
    try:
        data = json.loads(os.pread(fd, 65536, 0).decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return LockHolder.from_description(data)


def current_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return str(os.getuid())
