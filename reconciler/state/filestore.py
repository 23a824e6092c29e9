"""The state in a JSON file, with its journal and lock file beside it.

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
entries are then skipped by serial), never lose entries. A pair that looks
mismatched (a run compacted or started a journal between the two reads) is read
again, twice at most, before it is refused.

How a damaged or cut journal is refused instead of replayed short
------------------------------------------------------------------
Only the last line may be unreadable: a crash cut it short before its fsync, so
it was never acknowledged. Anything else must hold, or the journal is refused
naming the line: each line carries the run's id and a CRC-32 of its content
(``jsonformat.journal_line``: a bit flip or a line from another run's journal);
serials run on from the state file's serial without a gap, a repeat or a skip
(a line lost, doubled or swapped; a state file whose serial falls inside its
journal); and the state file, marked when the journal starts, records the run's
id and the serial of the last acknowledged line. That serial is overwritten in
place (20 digits at a fixed offset in the first sector) after each line's fsync
and the lock check, with no fsync of its own: it may lag the journal after a
power failure, never run ahead of it. A journal that ends before that serial
was cut short (a partial copy, upload or backup, even inside its last line) and
is refused. What stays undetectable is listed in docs/reference/state-format.md
("What the checks cannot detect"). Journals of the previous version (no run, no checksum, a mark
without the two keys) replay with the checks they allow.

Locking uses ``flock`` on ``<state>.lock``: the kernel drops it when its holder
dies, even by SIGKILL, so a dead run never blocks the next one. The lock file is
never deleted (deleting it would race with ``flock``). Should someone delete or
replace it anyway, a second run would lock a new file beside the first: so a run
takes its lock only on the file the path still names after ``flock``, and checks
that again before and after each journal line and before compacting; a run that
finds its lock file gone stops writing (``PersistError``) and leaves its journal
for the next run.

One state file, one lock: a symlink is resolved to the file it names, and a
state file with a second hard link is refused (two names would give two locks
and two journals). A read-only state file (no write bit) is refused by every
locked run instead of being replaced. Temp files of ours (``.<state>.<hex>.tmp``)
left by a kill are removed by the next locked run.

This module only persists and locks: the write rules are the ledger's. It must
not talk to the API, read declarations or print.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path

from reconciler.errors import StateError
from reconciler.model import State
from reconciler.state import files, jsonformat, jsonrender
from reconciler.state.base import StateWriter
from reconciler.state.filelock import LockFile, no_file_lock_error, posix_locks
from reconciler.state.jsonformat import JournalMark
from reconciler.state.ledger import Persistence, PersistError, locked_writer
from reconciler.state.locking import OnWait
from reconciler.state.replay import replay
from reconciler.state.rules import Tables
from reconciler.state.writes import Write


class JsonFileStateStore:
    """The state in a JSON file, with its journal and lock file beside it."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lock_timeout: float = 0.0,
        on_wait: OnWait | None = None,
    ) -> None:
        self._display = os.fspath(path)
        # Through a symlink, write the file it points to (a rename would replace the
        # link) and lock beside that file, so every path to one state shares one lock.
        self._path = Path(os.path.realpath(path))
        self._journal = self._path.with_name(self._path.name + ".journal")
        lock_path = self._path.with_name(self._path.name + ".lock")
        self._lock = LockFile(lock_path, lock_timeout, on_wait)

    @property
    def location(self) -> str:
        return self._display

    @property
    def journal_location(self) -> str:
        return os.fspath(self._journal)

    @property
    def lock_location(self) -> str:
        return self._lock.location

    def load(self) -> State:
        return self._load_tables()[0].freeze()

    def exists(self) -> bool:
        return self._path.exists()

    def create(self, state: State | None = None) -> bool:
        """Start the state file; False (and nothing changed) when one already exists.

        With ``state`` (``state migrate``), the file starts as a copy of it; an
        existing file must then hold an empty state, which is replaced.
        """
        self._refuse_without_flock()
        initial = state or State(lineage=str(uuid.uuid4()))
        try:
            files.create_exclusively(self._path, jsonrender.render(initial))
            return True
        except FileExistsError:
            if state is None:
                return False
        except OSError as exc:
            raise StateError(f"cannot create state file {self._display}: {exc.strerror}") from exc
        with self.lock("reconciler state migrate") as writer:
            current = writer.state
            if current.serial or current.purchases or current.pending:
                raise StateError(
                    f"{self._display} already holds a state (serial {current.serial}); "
                    "migrate only into an empty one"
                )
            files.replace_atomically(self._path, jsonrender.render(initial))
        return True

    def _missing(self) -> StateError:
        return StateError(
            f"no state at {self._display}; run 'reconciler init' to start an empty one"
        )

    def lock(self, command: str) -> AbstractContextManager[StateWriter]:
        return self._locked(command)

    def locked_by(self) -> str | None:
        """Who holds the lock now ("pid 12 on host ci-3 (command ...)"), or None."""
        return self._lock.locked_by()

    def _refuse_hard_links(self, status: os.stat_result) -> None:
        """One state, one lock: a second name for the file would get a lock of its own."""
        if status.st_nlink <= 1:
            return
        # A kill inside `init` can leave our own temp file as a second name; the next
        # locked run removes it, and it never takes a lock.
        temps = 0
        with contextlib.suppress(OSError), os.scandir(self._path.parent) as entries:
            for entry in entries:
                if files.is_temp_of(self._path, entry.name) and files.same_file(
                    entry.stat(follow_symlinks=False), status
                ):
                    temps += 1
        links = status.st_nlink - temps
        if links > 1:
            raise StateError(
                f"state file {self._display} has {links} hard links: each name would get a "
                "lock and a journal of its own, and two runs could buy the same seats twice. "
                "Keep one name (delete the other links) and share it through a symlink "
                "(ln -s), which reaches the same file and the same lock"
            )

    def _refuse_unwritable(self) -> None:
        """A locked run may rewrite the file: refuse one that is read-only, before locking."""
        try:
            status = os.stat(self._path)
        except FileNotFoundError:
            raise self._missing() from None
        except OSError as exc:
            raise StateError(
                f"cannot read state file {self._display}: {exc.strerror or exc}"
            ) from exc
        self._refuse_hard_links(status)
        mode = status.st_mode & 0o7777
        # The mode bits are checked on their own: root may write a 0444 file, and a
        # rename would replace it whatever its mode.
        if not mode & 0o222 or not os.access(self._path, os.W_OK):
            what = "read-only" if not mode & 0o222 else "not writable by this user"
            raise StateError(
                f"state file {self._display} is {what} (mode {mode:04o}); this command "
                "would rewrite it, so it refuses. Make it writable (chmod u+w) to change the "
                "state; plan and show read it as it is"
            )

    def _remove_stale_temps(self) -> None:
        """Delete the temp files a killed run left beside the state (ours only)."""
        with contextlib.suppress(OSError), os.scandir(self._path.parent) as entries:
            for entry in entries:
                if files.is_temp_of(self._path, entry.name) and entry.is_file(
                    follow_symlinks=False
                ):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)

    # -- reading --

    def _load_tables(self) -> tuple[Tables, int, bool]:
        """The replayed state, the JSON file's own serial, and whether a journal exists."""
        for attempt in range(3):
            # The journal first: see the module docstring.
            journal = self._read_journal()
            base, mark = self._read_file()
            try:
                replayed = replay(
                    base,
                    mark,
                    journal,
                    state_file=self._display,
                    journal_file=self.journal_location,
                )
                return replayed, base.serial, journal is not None
            except StateError:
                # A run may have compacted, or started a journal, between the two
                # reads: the pair then looks mismatched. Read both again; what is
                # still wrong after that is.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _read_file(self) -> tuple[State, JournalMark | None]:
        """The JSON file's state, and what it says of a journal going with it."""
        name = f"state file {self._display}"
        try:
            with open(self._path, "rb") as file:
                self._refuse_hard_links(os.fstat(file.fileno()))
                raw = file.read()
        except FileNotFoundError:
            raise self._missing() from None
        except OSError as exc:
            raise StateError(f"cannot read {name}: {exc.strerror or exc}") from exc
        return jsonformat.parse_state_file(raw, name)

    def _read_journal(self) -> bytes | None:
        try:
            return self._journal.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(
                f"cannot read state journal {self.journal_location}: {exc.strerror or exc}"
            ) from exc

    # -- writing --

    @contextlib.contextmanager
    def _locked(self, command: str) -> Iterator[StateWriter]:
        self._refuse_without_flock()
        # Before the lock, which would leave a lock file behind: a missing, hard-linked
        # or read-only state file.
        self._refuse_unwritable()
        fd = self._lock.acquire(command)
        try:
            self._remove_stale_temps()
            tables, _, journal_exists = self._load_tables()
            if journal_exists:
                # A run died before compacting: finish its work before adding ours. The
                # file is rewritten even when the journal adds nothing, because it may
                # still carry the mark of a journal that is about to go.
                self._compact(tables, rewrite=True)
            with locked_writer(tables, self.location, _Journaled(self, fd)) as writer:
                yield writer
        finally:
            self._lock.release(fd)

    def _refuse_without_flock(self) -> None:
        if not posix_locks():
            raise no_file_lock_error(self._display)

    def _create_journal(self, state: State) -> _Journal:
        """Open a new journal, then mark the state file as having one.

        The mark makes a state file that is later saved or copied without its
        journal refuse to load, instead of silently missing the journal's writes;
        its acknowledged serial, updated in place after each line, does the same
        for a journal that is saved cut short. The journal exists before the mark,
        so a crash between the two leaves an empty journal, never a mark without one.
        """
        run = jsonformat.new_run_id()
        # Rendered first: a state that cannot be marked leaves no journal behind.
        marked = jsonrender.render(state, JournalMark(self._journal.name, run, state.serial))
        fd = os.open(
            self._journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666
        )
        try:
            files.fsync_directory(self._path.parent)
            files.replace_atomically(self._path, marked)
            # The lock keeps every other writer away, so the path names what we wrote.
            mark_fd = os.open(self._path, os.O_WRONLY | os.O_CLOEXEC)
        except BaseException:
            os.close(fd)
            raise
        return _Journal(fd, run, mark_fd)

    def _compact(self, tables: Tables, *, rewrite: bool) -> None:
        """Put everything in the JSON file, then drop the journal."""
        try:
            if rewrite:
                files.replace_atomically(self._path, jsonrender.render(tables.freeze()))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._journal)
            files.fsync_directory(self._path.parent)
        except OSError as exc:
            raise StateError(
                f"cannot write state file {self._display}: {exc.strerror or exc}; every "
                f"write is kept in {self.journal_location} and the next run finishes it"
            ) from exc


@dataclass
class _Journal:
    """A run's open journal, its run id, and the state file whose mark it updates."""

    fd: int
    run: str
    mark_fd: int

    def close(self) -> None:
        for fd in (self.fd, self.mark_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


class _Journaled(Persistence):
    """How a locked JsonFileStateStore persists the ledger's writes: journal lines,
    then one compaction when the lock is released."""

    def __init__(self, store: JsonFileStateStore, lock_fd: int) -> None:
        self._store = store
        self._lock_fd = lock_fd
        self._journal: _Journal | None = None
        self._journal_started = False
        self._marked: State | None = None

    def before_first_write(self, state: State) -> None:
        # The state file is marked with the state before the run's first write (its
        # journal lines must follow on from it).
        self._marked = state

    def persist(self, batch: Sequence[Write]) -> None:
        """The batch's lines, one write and one fsync; acknowledged in the state file's mark."""
        journal = f"cannot write state journal {self._store.journal_location}"
        lost = "the lock file was deleted or replaced"
        if not self._store._lock.holds(self._lock_fd):
            raise PersistError(self._store._lock.lost(journal), lost)
        try:
            if self._journal is None:
                assert self._marked is not None
                marked = replace(self._marked, lineage=batch[0].lineage)
                self._journal_started = True
                self._journal = self._store._create_journal(marked)
            run = self._journal.run
            files.write_all(
                self._journal.fd, b"".join(jsonformat.journal_line(w, run) for w in batch)
            )
            os.fsync(self._journal.fd)
        except OSError as exc:
            # After a failed write or fsync the journal's tail is unknown.
            reason = exc.strerror or str(exc)
            raise PersistError(
                f"cannot write state journal {self._store.journal_location}: {reason}", reason
            ) from exc
        # Still ours after the fsync means no other run could lock the state during
        # the write: the path cannot name this lock file again once it was replaced.
        if not self._store._lock.holds(self._lock_fd):
            raise PersistError(
                self._store._lock.lost(f"{journal} (this write may or may not be kept)"), lost
            )
        # Acknowledged: record so in the state file's mark, in place and without an
        # fsync. The lines are on disk before this is issued, so the mark can lag the
        # journal after a power loss but never run ahead of it; a copy taken later
        # shows it, and a journal copied cut short is then refused.
        try:
            digits = jsonformat.acknowledged_text(batch[-1].serial).encode("ascii")
            os.pwrite(self._journal.mark_fd, digits, jsonformat.ACKNOWLEDGED_OFFSET)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise PersistError(
                f"cannot update state file {self._store.location}: {reason} (this write is in "
                f"state journal {self._store.journal_location})",
                reason,
            ) from exc

    def finish(self, tables: Tables, *, uncertain: bool) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if not self._journal_started:
            return
        if not self._store._lock.holds(self._lock_fd):
            raise StateError(self._store._lock.lost(f"{self._store.location} not compacted"))
        if uncertain:
            # A line may be on disk that the tables lack (its fsync succeeded, then its
            # acknowledgement failed, or the run was interrupted): compacting the tables
            # would drop it. The journal stays; the next locked run replays and folds it.
            raise StateError(
                f"{self._store.location} was not compacted after a failed write; every "
                f"write is kept in {self._store.journal_location} and the next run finishes it"
            )
        # Rewritten even without a write: a journal whose first line failed may have
        # marked the file already, and the mark must not outlive the journal.
        self._store._compact(tables, rewrite=True)
