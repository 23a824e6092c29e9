"""Which declarations files there are, and their text.

Only regular files are read, and at most ``MAX_FILE_BYTES`` of each: a FIFO in the
tree would block every command, a link to ``/dev/zero`` would read until memory runs
out. Problems with a file (unreadable, special, too large, not UTF-8) are located
problems like any other. Must not parse what it reads.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from reconciler.errors import ConfigProblem, ReconcilerError

SUFFIXES = (".yaml", ".yml")
#: The most one declarations file may hold; thousands of purchases take far less.
MAX_FILE_BYTES = 10 * 1024 * 1024

#: What a file that is not regular is, by the type bits of its mode.
_SPECIAL_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def discover(path: str | os.PathLike[str]) -> list[Path]:
    """The declarations files at ``path``: the file itself, or every YAML file below
    a directory, recursively, sorted, skipping hidden files and folders."""
    root = Path(path)
    if root.is_dir():
        found: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            found.extend(
                Path(dirpath) / name
                for name in filenames
                if name.endswith(SUFFIXES) and not name.startswith(".")
            )
        return sorted(found)
    if root.exists():  # a regular file, or a special one that reading will refuse
        return [root]
    raise ReconcilerError(f"no such file or directory: {root}")


def read_text(file: Path, problems: list[ConfigProblem]) -> str | None:
    """The text of ``file``, or None with the reason added to ``problems``."""
    try:
        data = _read_regular(file)
    except OSError as exc:
        problems.append(_problem(file, f"cannot read file: {exc.strerror}"))
        return None
    except _NotReadableError as exc:
        problems.append(_problem(file, str(exc)))
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        problems.append(
            ConfigProblem(
                str(file),
                line,
                column,
                "",
                f"file is not valid UTF-8 (byte 0x{data[exc.start]:02x}); save it as UTF-8",
            )
        )
        return None


class _NotReadableError(Exception):
    """The file is not one we read; the message says why."""


def _read_regular(file: Path) -> bytes:
    """The bytes of a regular file of at most MAX_FILE_BYTES.

    The type is checked before opening (opening a device can have effects of its own)
    and again on the open descriptor, in case the name was swapped in between; the
    open does not wait for a writer should the name now be a FIFO.
    """
    _check_regular(file, os.stat(file))
    fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        status = os.fstat(fd)
        _check_regular(file, status)
        limit = MAX_FILE_BYTES
        chunks: list[bytes] = []
        total = 0
        # The size is only a hint (the file may grow meanwhile): ask for it at once,
        # then in chunks, never for more than one byte past the limit.
        want = min(status.st_size, limit) + 1
        while total <= limit:
            chunk = os.read(fd, min(limit + 1 - total, max(want - total, 1 << 16)))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    finally:
        os.close(fd)
    if total > limit:
        raise _NotReadableError(_too_large())
    return b"".join(chunks)


def _check_regular(file: Path, status: os.stat_result) -> None:
    if stat.S_ISREG(status.st_mode):
        if status.st_size > MAX_FILE_BYTES:
            raise _NotReadableError(_too_large())
        return
    kind = next((name for test, name in _SPECIAL_KINDS if test(status.st_mode)), "a special file")
    if file.is_symlink():
        kind = f"a symbolic link to {kind} ({os.path.realpath(file)})"
    raise _NotReadableError(f"not a regular file but {kind}; only regular files are read")


def _too_large() -> str:
    return (
        f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB, the limit for one "
        "declarations file; split it into smaller files"
    )


def _problem(file: Path, message: str) -> ConfigProblem:
    return ConfigProblem(str(file), 1, 1, "", message)
