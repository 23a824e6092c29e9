"""The state in a JSON file, with its journal and lock file beside it (CONTRACT section 8).

How a write survives a crash, and why it stays cheap
----------------------------------------------------
Rewriting the whole JSON file after every 204 would make each durable write cost
as much as the state is large. So a locked writer appends one JSON line per write
to ``<state>.journal`` (lineage, the new serial, the operation and the records it
leaves behind at one address) and fsyncs it: a write is acknowledged once its
line is on disk. When the lock is released the full JSON file is rewritten once
(temp file, fsync, rename, fsync of the directory) and only then is the journal
deleted. A crash at any instant leaves the old JSON plus a journal that holds
every acknowledged write; ``load`` replays it, and the next ``lock`` compacts it.

``load`` reads the journal *before* the JSON file, so a compaction that runs
concurrently can only make the JSON file newer than the journal it read (its
entries are then skipped by serial), never lose entries.

Locking uses ``flock`` on ``<state>.lock``: the kernel drops it when its holder
dies, even by SIGKILL, so a dead run never blocks the next one. The lock file is
never deleted (deleting it would race with ``flock``).

This module only persists and locks: the write rules are the ledger's. It must
not talk to the API, read declarations or print.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path

from reconciler.errors import StateError, StateLockedError
from reconciler.model import STATE_VERSION, State
from reconciler.state import jsonformat
from reconciler.state.base import StateWriter, utc_now
from reconciler.state.ledger import Ledger, LedgerWriter, PersistError, Tables
from reconciler.state.writes import Write


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _replace_atomically(path: Path, text: str) -> None:
    """Write ``path`` so that a crash leaves either its old or its new content."""
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        try:
            with contextlib.suppress(FileNotFoundError):
                os.fchmod(fd, os.stat(path).st_mode & 0o7777)
            _write_all(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_directory(path.parent)


@dataclass(frozen=True)
class _Holder:
    pid: int | None
    host: str | None
    command: str | None
    started: str | None


def _read_holder(fd: int) -> _Holder | None:
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
    return _Holder(
        pid=pid if type(pid) is int else None,
        host=text("host"),
        command=text("command"),
        started=text("started"),
    )


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return str(os.getuid())


class JsonFileStateStore:
    """The state in a JSON file, with its journal and lock file beside it."""

    def __init__(self, path: str | os.PathLike[str], *, lock_timeout: float = 0.0) -> None:
        self._display = os.fspath(path)
        self._lock_timeout = lock_timeout
        # Through a symlink, write the file it points to (a rename would replace the
        # link) and lock beside that file, so every path to one state shares one lock.
        self._path = Path(os.path.realpath(path))
        self._journal = self._path.with_name(self._path.name + ".journal")
        self._lock_path = self._path.with_name(self._path.name + ".lock")

    @property
    def location(self) -> str:
        return self._display

    @property
    def journal_location(self) -> str:
        return os.fspath(self._journal)

    @property
    def lock_location(self) -> str:
        return os.fspath(self._lock_path)

    def load(self) -> State:
        return self._load_tables()[0].freeze()

    def lock(self, command: str) -> AbstractContextManager[StateWriter]:
        return self._locked(command)

    # -- reading --

    def _load_tables(self) -> tuple[Tables, int, bool]:
        """The replayed state, the JSON file's own serial, and whether a journal exists."""
        for _ in range(3):
            # The journal first: see the module docstring.
            entries, journal_exists = self._read_journal()
            base, marked = self._read_file()
            if journal_exists or not marked:
                break
            if self._journal.exists():
                continue  # a run started between the two reads: read both again
            raise StateError(
                f"state file {self._display} was being written by a run that did not finish, "
                f"and its journal {self.journal_location} is missing: the state file alone "
                "lacks that run's last purchases and pending checkouts, and planning from it "
                "could buy them again. Put the journal file back beside the state file (keep "
                "both when a pipeline saves the state). If it is lost for good, check the "
                'orders in Crayon Cloud-iQ, then delete the "journal" line from the state '
                "file and record what was bought with `reconciler state import`."
            )
        tables = Tables(base)
        applying = False
        for line, entry in entries:
            where = f"state journal {self.journal_location} line {line}"
            if tables.lineage and entry.lineage != tables.lineage:
                raise StateError(
                    f"{where} belongs to another state (lineage {entry.lineage}; state file "
                    f"{self._display} has lineage {tables.lineage}); move one of them away"
                )
            if entry.serial <= tables.serial and not applying:
                continue  # already in the JSON file (a compaction ran)
            if entry.serial != tables.serial + 1:
                raise StateError(
                    f"{where} has serial {entry.serial} but serial {tables.serial + 1} "
                    f"was expected; the journal does not continue state file {self._display}"
                )
            tables.apply(entry)
            applying = True
        return tables, base.serial, journal_exists

    def _read_file(self) -> tuple[State, bool]:
        """The JSON file's state, and whether it says a journal goes with it."""
        name = f"state file {self._display}"
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            return State(lineage="", serial=0), False
        except OSError as exc:
            raise StateError(f"cannot read {name}: {exc.strerror or exc}") from exc
        if not raw.strip():
            raise StateError(f"{name} is empty; it is not a state this reconciler wrote")
        try:
            data = jsonformat.parse_json(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise StateError(f"{name} is not valid UTF-8 (byte {exc.start})") from None
        except json.JSONDecodeError as exc:
            raise StateError(
                f"{name} is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
            ) from None
        except jsonformat.Invalid as exc:
            raise StateError(f"{name} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise StateError(f"{name} is invalid: expected an object, got {jsonformat.show(data)}")
        # The version decides how to read the rest, so it is checked before anything else.
        if "version" not in data:
            raise StateError(f"{name} is invalid: it has no version")
        version = data["version"]
        if type(version) is not int or version < 1:
            raise StateError(
                f"{name} is invalid: version: expected 1, got {jsonformat.show(version)}"
            )
        if version > STATE_VERSION:
            raise StateError(
                f"{name} was written by a newer reconciler (version {version}); upgrade to read it"
            )
        try:
            return jsonformat.parse_document(data), jsonformat.JOURNAL_KEY in data
        except jsonformat.Invalid as exc:
            raise StateError(f"{name} is invalid: {exc}") from None

    def _read_journal(self) -> tuple[list[tuple[int, Write]], bool]:
        name = f"state journal {self.journal_location}"
        try:
            raw = self._journal.read_bytes()
        except FileNotFoundError:
            return [], False
        except OSError as exc:
            raise StateError(f"cannot read {name}: {exc.strerror or exc}") from exc
        lines = raw.split(b"\n")
        # Every write is one line ending in a newline and is acknowledged only after
        # its fsync, so an unterminated or unreadable last line is a write that a crash
        # cut short: it was never acknowledged and is ignored.
        tail = lines.pop()
        entries: list[tuple[int, Write]] = []
        for number, line in enumerate(lines, 1):
            try:
                data = jsonformat.parse_json(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError, jsonformat.Invalid) as exc:
                if number == len(lines) and not tail:
                    break  # torn last line
                raise StateError(f"{name} line {number} is not valid JSON: {exc}") from None
            try:
                entries.append((number, jsonformat.parse_entry(data)))
            except jsonformat.Invalid as exc:
                raise StateError(f"{name} line {number} is invalid: {exc}") from None
        return entries, True

    # -- writing --

    @contextlib.contextmanager
    def _locked(self, command: str) -> Iterator[StateWriter]:
        fd = self._acquire(command)
        try:
            tables, file_serial, journal_exists = self._load_tables()
            if journal_exists:
                # A run died before compacting: finish its work before adding ours.
                self._compact(tables, rewrite=tables.serial != file_serial)
            writer = _FileWriter(self, Ledger(tables, self.location))
            try:
                yield writer
            except BaseException as exc:
                try:
                    writer._close()
                except StateError as close_error:
                    exc.add_note(str(close_error))
                raise
            writer._close()
        finally:
            self._release(fd)

    def _acquire(self, command: str) -> int:
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StateError(
                f"cannot open lock file {self.lock_location}: {exc.strerror or exc}"
            ) from exc
        deadline = time.monotonic() + self._lock_timeout
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
            holder = _read_holder(fd)
            os.close(fd)
            raise StateLockedError(self._locked_message(holder)) from None
        except BaseException as exc:
            os.close(fd)
            if not isinstance(exc, OSError):
                raise
            raise StateError(f"cannot lock {self.lock_location}: {exc.strerror or exc}") from exc
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": command,
            "user": _current_user(),
            "started": utc_now(),
        }
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info, sort_keys=True) + "\n").encode("utf-8"), 0)
        except OSError:
            pass  # the lock holds without its description; others just cannot name us
        return fd

    def _locked_message(self, holder: _Holder | None) -> str:
        hint = "another run is in progress; wait for it to finish"
        if holder is None or holder.pid is None:
            return f"state is locked by another process (lock file {self.lock_location}): {hint}"
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
        return f"state is locked by pid {holder.pid}{host}{details}: {hint}"

    def _release(self, fd: int) -> None:
        try:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _create_journal(self, state: State) -> int:
        """Open a new journal, then mark the state file as having one.

        The mark makes a state file that is later saved or copied without its
        journal refuse to load, instead of silently missing the journal's writes.
        The journal exists before the mark, so a crash between the two leaves an
        empty journal, never a mark without one.
        """
        fd = os.open(
            self._journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666
        )
        try:
            _fsync_directory(self._path.parent)
            _replace_atomically(self._path, jsonformat.render(state, journal=self._journal.name))
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _compact(self, tables: Tables, *, rewrite: bool) -> None:
        """Put everything in the JSON file, then drop the journal."""
        try:
            if rewrite:
                _replace_atomically(self._path, jsonformat.render(tables.freeze()))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._journal)
            _fsync_directory(self._path.parent)
        except OSError as exc:
            raise StateError(
                f"cannot write state file {self._display}: {exc.strerror or exc}; every "
                f"write is kept in {self.journal_location} and the next run finishes it"
            ) from exc


class _FileWriter(LedgerWriter):
    """The StateWriter of a locked JsonFileStateStore: ledger writes as journal lines."""

    def __init__(self, store: JsonFileStateStore, ledger: Ledger) -> None:
        super().__init__(ledger, self._append, store.location)
        self._store = store
        self._file_ledger = ledger
        self._journal_fd: int | None = None

    def _append(self, write: Write) -> None:
        line = jsonformat.entry_line(write) + "\n"
        try:
            if self._journal_fd is None:
                marked = replace(self._file_ledger.freeze(), lineage=write.lineage)
                self._journal_fd = self._store._create_journal(marked)
            _write_all(self._journal_fd, line.encode("utf-8"))
            os.fsync(self._journal_fd)
        except OSError as exc:
            # After a failed write or fsync the journal's tail is unknown.
            reason = exc.strerror or str(exc)
            raise PersistError(
                f"cannot write state journal {self._store.journal_location}: {reason}", reason
            ) from exc

    def _close(self) -> None:
        if not self.close():
            return
        journal_created = self._journal_fd is not None
        if self._journal_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._journal_fd)
            self._journal_fd = None
        if self.written or journal_created:
            self._store._compact(self._file_ledger.tables, rewrite=self.written)
