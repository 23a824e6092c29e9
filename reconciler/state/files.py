"""Durable file operations for the file store.

Write-then-fsync helpers (a new file appears complete or not at all; a
replacement leaves the old or the new content), our temp-file names and inode
checks. No state rules, no locking decisions.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
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
