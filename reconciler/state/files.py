"""Durable file operations for the file store, and the lock file's holder record.

Write-then-fsync helpers (a new file appears complete or not at all; a
replacement leaves the old or the new content), our temp-file names, inode
checks, and reading who holds a lock. No state rules, no locking decisions.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def create_exclusively(path: Path, text: str) -> None:
    """Write ``path`` complete and durable, or raise FileExistsError if it exists."""
    temp = temp_name(path)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        try:
            write_all(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(temp, path)  # atomic, and fails when another init got there first
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)
    fsync_directory(path.parent)


def replace_atomically(path: Path, text: str) -> None:
    """Write ``path`` so that a crash leaves either its old or its new content."""
    temp = temp_name(path)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        try:
            with contextlib.suppress(FileNotFoundError):
                os.fchmod(fd, os.stat(path).st_mode & 0o7777)
            write_all(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    fsync_directory(path.parent)


def temp_name(path: Path) -> Path:
    """A new temp file name beside ``path``; ``is_temp_of`` recognises it."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")


def is_temp_of(path: Path, name: str) -> bool:
    return re.fullmatch(rf"\.{re.escape(path.name)}\.[0-9a-f]{{12}}\.tmp", name) is not None


def same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def names_file_of(path: Path, fd: int) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (not deleted, not replaced)."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    return same_file(named, os.fstat(fd))


@dataclass(frozen=True)
class Holder:
    pid: int | None
    host: str | None
    command: str | None
    started: str | None


def read_holder(fd: int) -> Holder | None:
    try:
        data = json.loads(os.pread(fd, 65536, 0).decode("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None

    def text(name: str) -> str | None:
        value = data.get(name)
        return value if isinstance(value, str) else None

    pid = data.get("pid")
    return Holder(
        pid=pid if type(pid) is int else None,
        host=text("host"),
        command=text("command"),
        started=text("started"),
    )


def describe(holder: Holder) -> str:
    """``pid 12 on host ci-3 (command 'reconciler apply', since ...)``."""
    if holder.pid is None:
        return "another process"
    details = ", ".join(
        part
        for part in (
            f"command {holder.command!r}" if holder.command else "",
            f"since {holder.started}" if holder.started else "",
        )
        if part
    )
    host = f" on host {holder.host}" if holder.host else ""
    details = f" ({details})" if details else ""
    return f"pid {holder.pid}{host}{details}"


def current_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return str(os.getuid())
