"""The file store's lock: ``flock`` on ``<state>.lock``, naming its holder.

The kernel drops an ``flock`` when its holder dies, even by SIGKILL, so a dead
run never blocks the next one. The lock file is never deleted by us; when
someone deletes or replaces it, a run that held it notices (``holds``) and stops
writing, and a run that is taking it locks the file the path names now.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from reconciler.errors import StateError, StateLockedError
from reconciler.state.base import utc_now
from reconciler.state.files import Holder, current_user, describe, names_file_of, read_holder


class LockFile:
    """The exclusive lock of one state file."""

    def __init__(self, path: Path, timeout: float = 0.0) -> None:
        self.path = path
        self.timeout = timeout

    @property
    def location(self) -> str:
        return os.fspath(self.path)

    def locked_by(self) -> str | None:
        """Who holds the lock now ("pid 12 on host ci-3 (command ...)"), or None.

        Never creates the lock file. A released lock leaves the file empty, so only
        a described holder is probed with a shared ``flock``, which cannot be taken
        while a run holds the exclusive one.
        """
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
                return describe(holder)
            except OSError:
                return None
            return None  # the description of a run that died
        finally:
            os.close(fd)

    def acquire(self, command: str) -> int:
        """Take the lock for a run of ``command`` (waiting up to the timeout); its fd."""
        deadline = time.monotonic() + self.timeout
        for _ in range(100):
            fd = self._lock_file(deadline)
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
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": command,
            "user": current_user(),
            "started": utc_now(),
        }
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info, sort_keys=True) + "\n").encode("utf-8"), 0)
        except OSError:
            pass  # the lock holds without its description; others just cannot name us
        return fd

    def _lock_file(self, deadline: float) -> int:
        """An fd of the lock file with ``flock`` taken on it, waiting up to ``deadline``."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StateError(
                f"cannot open lock file {self.location}: {exc.strerror or exc}"
            ) from exc
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise
                    time.sleep(min(0.2, max(0.01, deadline - time.monotonic())))
        except BlockingIOError:
            holder = read_holder(fd)
            os.close(fd)
            raise StateLockedError(self._locked_message(holder)) from None
        except BaseException as exc:
            os.close(fd)
            if not isinstance(exc, OSError):
                raise
            raise StateError(f"cannot lock {self.location}: {exc.strerror or exc}") from exc
        return fd

    def _locked_message(self, holder: Holder | None) -> str:
        hint = "another run is in progress; wait for it to finish"
        if holder is None or holder.pid is None:
            return f"state is locked by another process (lock file {self.location}): {hint}"
        return f"state is locked by {describe(holder)}: {hint}"

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
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
