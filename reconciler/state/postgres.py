"""The state in PostgreSQL: one workspace per state, rows per purchase.

Fresh CI runners share no disk, so the state and its lock live in a database
every runner reaches. Each workspace is one independent state: a row in
``workspaces`` (lineage, serial, lock epoch, lock holder) and its rows in
``purchases``, ``checkouts``, ``pending`` and the append-only ``history``.

Writes: each ledger write is one transaction touching the rows of one address,
the workspace row and one history row, so its cost does not grow with the state.

Locking and fencing: ``lock`` takes a session-level advisory lock for the
workspace on a dedicated connection (released by the server when that
connection or its process dies) and bumps the workspace's ``lock_epoch``. The
lock's key is 64 bits of a SHA-256 of the workspace's name, so two workspaces
never share a lock (a collision is as likely as guessing a 64-bit number). Every
write transaction locks the workspace row and checks, before changing anything,
that the epoch is still ours *and* that our lock connection still holds the
advisory lock. A run whose lock connection was dropped or terminated, or whose
lock was taken over (a pooler in transaction mode hands session locks around),
fails that check and can never write again; what it had in flight stays
pending in the database.

Rows are read through the state format's own checks (``pgrows``): a row edited
by hand into something the file format refuses is refused the same way, naming
the workspace and the row.

This module only persists and locks (the rules are the ledger's); it must not
talk to the API, read declarations or print. psycopg is imported here only,
lazily, so the file backend never needs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from reconciler.errors import StateError
from reconciler.model import State
from reconciler.state import pgrows as rows
from reconciler.state import pgschema
from reconciler.state.base import StateWriter
from reconciler.state.ledger import Persistence, PersistError, locked_writer
from reconciler.state.locking import (
    Acquired,
    Held,
    LockHolder,
    OnWait,
    run_description,
    wait_for_lock,
)
from reconciler.state.pgschema import MIGRATIONS, SCHEMA, schema_version
from reconciler.state.rules import Tables
from reconciler.state.urls import mask_url, url_secrets
from reconciler.state.writes import Write

if TYPE_CHECKING:
    import psycopg

#: The first key of the advisory lock migrations take ("RECN"), two-key form.
_LOCK_CLASS = 0x5245434E
#: Taken (per transaction) while migrations run, so racing runners apply each once.
_MIGRATION_LOCK = 0


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for every message and display)."""
    return mask_url(url)


def lock_key(workspace: str) -> int:
    """The workspace's advisory lock key: a signed 64-bit number from SHA-256.

    Taken with the one-key form (``pg_advisory_lock(bigint)``), which PostgreSQL
    keeps apart from the two-key form of the migration lock.
    """
    digest = hashlib.sha256(f"crayon-reconciler workspace {workspace}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _lock_tag(key: int) -> tuple[int, int]:
    """How ``pg_locks`` shows a one-key advisory lock: (classid, objid), its high and
    low 32 bits, unsigned (objsubid 1)."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return unsigned >> 32, unsigned & 0xFFFFFFFF


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise StateError(
            "a postgresql:// state needs psycopg 3: install crayon-reconciler[postgres] "
            "(pip install 'crayon-reconciler[postgres]')"
        ) from None
    return psycopg


class PostgresStateStore:
    """One workspace of a reconciler schema in a PostgreSQL database."""

    def __init__(
        self,
        url: str,
        workspace: str = "default",
        *,
        lock_timeout: float = 0.0,
        on_wait: OnWait | None = None,
    ) -> None:
        self._url = url
        self._workspace = workspace
        self._lock_timeout = lock_timeout
        self._on_wait = on_wait
        self._display = mask_url(url)
        self._key = lock_key(workspace)
        self._tag = _lock_tag(self._key)

    @property
    def location(self) -> str:
        if self._workspace == "default":
            return self._display
        return f"{self._display} (workspace {self._workspace})"

    @property
    def workspace(self) -> str:
        return self._workspace

    # -- connections --

    def _connect(self, *, autocommit: bool = False) -> psycopg.Connection[Any]:
        pg = _psycopg()
        try:
            conn: psycopg.Connection[Any] = pg.connect(
                self._url,
                autocommit=autocommit,
                connect_timeout=_connect_timeout(),
                application_name="crayon-reconciler",
            )
        except pg.Error as exc:
            raise StateError(f"cannot connect to {self._display}: {self._clean(exc)}") from None
        return conn

    def _clean(self, exc: BaseException) -> str:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        # Longest first: a password that contains another is replaced whole.
        for password in sorted(url_secrets(self._url), key=len, reverse=True):
            text = text.replace(password, "***")
        return text

    def _missing(self) -> StateError:
        return StateError(
            f"no state at {self.location}; run 'reconciler init' to start an empty one"
        )

    # -- creating --

    def exists(self) -> bool:
        with contextlib.closing(self._connect(autocommit=True)) as conn:
            return self._workspace_row(conn) is not None

    def create(self, state: State | None = None) -> bool:
        """Create the schema (migrations) and this workspace; False if it already existed.

        With ``state``, the workspace starts as a copy of it (``state migrate``);
        the target must then not exist or be empty.
        """
        psycopg = _psycopg()
        with contextlib.closing(self._connect()) as conn:
            try:
                with conn.transaction():
                    conn.execute(
                        "SELECT pg_advisory_xact_lock(%s, %s)", (_LOCK_CLASS, _MIGRATION_LOCK)
                    )
                    pgschema.migrate(conn, self._display)
                    row = conn.execute(
                        f"SELECT serial FROM {SCHEMA}.workspaces WHERE name = %s FOR UPDATE",
                        (self._workspace,),
                    ).fetchone()
                    if row is not None:
                        if state is None:
                            return False
                        if row[0] != 0 or rows.has_rows(conn, self._workspace):
                            raise StateError(
                                f"{self.location} already holds a state (serial {row[0]}); "
                                "migrate only into an empty one"
                            )
                        conn.execute(
                            f"DELETE FROM {SCHEMA}.workspaces WHERE name = %s", (self._workspace,)
                        )
                    initial = state or State(lineage=str(uuid.uuid4()))
                    conn.execute(
                        f"INSERT INTO {SCHEMA}.workspaces (name, lineage, serial) "
                        "VALUES (%s, %s, %s)",
                        (self._workspace, initial.lineage, initial.serial),
                    )
                    for purchase in initial.purchases.values():
                        rows.insert_purchase(conn, self._workspace, purchase)
                    for op in initial.pending.values():
                        rows.insert_pending(conn, self._workspace, op)
            except psycopg.Error as exc:
                raise StateError(
                    f"cannot create the state at {self.location}: {self._clean(exc)}"
                ) from None
        return True

    def _upgrade(self, conn: psycopg.Connection[Any]) -> None:
        """Apply the migrations a state set up by an older reconciler lacks, before a
        locked run writes to it; a current schema needs no right to create anything."""
        with conn.transaction():
            if schema_version(conn) >= len(MIGRATIONS):
                return
            # Racing runs wait here; migrate applies only what is still missing.
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_LOCK_CLASS, _MIGRATION_LOCK))
            pgschema.migrate(conn, self._display)

    # -- reading --

    def load(self) -> State:
        psycopg = _psycopg()
        with contextlib.closing(self._connect()) as conn:
            # One snapshot for every table: a concurrent write is wholly in or out.
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            try:
                with conn.transaction():
                    return self._read(conn)
            except psycopg.Error as exc:
                raise StateError(
                    f"cannot read the state at {self.location}: {self._clean(exc)}"
                ) from None

    def _workspace_row(self, conn: psycopg.Connection[Any]) -> tuple[Any, ...] | None:
        exists = conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.workspaces",)).fetchone()
        if exists is None or exists[0] is None:
            return None
        pgschema.refuse_newer_schema(conn, self._display)
        row: tuple[Any, ...] | None = conn.execute(
            f"SELECT lineage, serial, lock_epoch, lock_holder FROM {SCHEMA}.workspaces "
            "WHERE name = %s",
            (self._workspace,),
        ).fetchone()
        return row

    def _read(self, conn: psycopg.Connection[Any]) -> State:
        row = self._workspace_row(conn)
        if row is None:
            raise self._missing()
        return rows.read_state(conn, self._workspace, row[0], row[1], self.location)

    def history(self) -> list[dict[str, Any]]:
        """Every write ever made to this workspace, oldest first: serial, op, address, who."""
        with contextlib.closing(self._connect(autocommit=True)) as conn:
            if self._workspace_row(conn) is None:
                raise self._missing()
            found = conn.execute(
                f"SELECT serial, op, address, written_at, run, entry FROM {SCHEMA}.history "
                "WHERE workspace = %s ORDER BY serial",
                (self._workspace,),
            ).fetchall()
        return [
            {
                "serial": s,
                "op": op,
                "address": a,
                "written_at": w.isoformat(),
                "run": run,
                "entry": entry,
            }
            for s, op, a, w, run, entry in found
        ]

    def import_history(self, entries: list[dict[str, Any]]) -> None:
        """Append another workspace's history (``state migrate`` between databases)."""
        pg = _psycopg()
        with contextlib.closing(self._connect()) as conn:
            try:
                with conn.transaction():
                    rows.insert_history(conn, self._workspace, entries)
            except pg.Error as exc:
                raise StateError(
                    f"cannot copy the history to {self.location}: {self._clean(exc)}"
                ) from None

    # -- locking and writing --

    def locked_by(self) -> str | None:
        """Who holds this workspace's lock now, or None."""
        return _AdvisoryLock(self).locked_by()

    def lock(self, command: str) -> AbstractContextManager[StateWriter]:
        return self._locked(command)

    @contextlib.contextmanager
    def _locked(self, command: str) -> Iterator[StateWriter]:
        psycopg = _psycopg()
        run = run_description(command)
        # Closing the lock connection ends its session, which releases the lock
        # even when the release below never runs.
        with contextlib.closing(self._connect(autocommit=True)) as lock_conn:
            epoch, lock_pid = _AdvisoryLock(self).acquire(lock_conn, run)
            try:
                with contextlib.closing(self._connect()) as write_conn:
                    try:
                        self._upgrade(write_conn)
                        with write_conn.transaction():
                            state = self._read(write_conn)
                    except psycopg.Error as exc:
                        raise StateError(
                            f"cannot read the state at {self.location}: {self._clean(exc)}"
                        ) from None
                    writes = _Writes(self, write_conn, epoch, lock_pid, run)
                    with locked_writer(Tables(state), self.location, writes) as writer:
                        yield writer
            finally:
                # Unlocked first: until then, a run finding the lock taken reads our name.
                # The epoch keeps this from clearing the name of a run that took it since.
                with contextlib.suppress(psycopg.Error):
                    lock_conn.execute("SELECT pg_advisory_unlock(%s::bigint)", (self._key,))
                    lock_conn.execute(
                        f"UPDATE {SCHEMA}.workspaces SET lock_holder = NULL "
                        "WHERE name = %s AND lock_epoch = %s",
                        (self._workspace, epoch),
                    )


#: Whether the session whose backend pid is given holds the workspace's advisory lock.
_HOLDS_LOCK = (
    "EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND pid = %s AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 1)"
)
#: Whether any session of this database holds the workspace's advisory lock.
_LOCK_HELD = (
    "EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 1)"
)


class _AdvisoryLock:
    """A workspace's session advisory lock, taken on the caller's dedicated connection."""

    def __init__(self, store: PostgresStateStore) -> None:
        self._store = store

    def acquire(self, conn: psycopg.Connection[Any], run: dict[str, Any]) -> tuple[int, int]:
        """Take the workspace's advisory lock (waiting up to the lock timeout); bump the epoch."""
        psycopg = _psycopg()
        store = self._store

        def try_once() -> Acquired[tuple[int, int]] | Held:
            # The advisory lock is only ever tried holding the workspace row, and the
            # winner names itself before letting the row go: a run that finds the lock
            # taken has waited for that row, so it names the run that holds the lock,
            # not a previous one (or none, as for a moment after the lock is taken).
            with conn.transaction():
                found = conn.execute(
                    f"SELECT lock_holder FROM {SCHEMA}.workspaces WHERE name = %s FOR UPDATE",
                    (store._workspace,),
                ).fetchone()
                if found is None:
                    raise store._missing()
                got = conn.execute(
                    "SELECT pg_try_advisory_lock(%s::bigint)", (store._key,)
                ).fetchone()
                if got is None or not got[0]:
                    return Held(_holder(found[0]))
                row = conn.execute(
                    f"UPDATE {SCHEMA}.workspaces SET lock_epoch = lock_epoch + 1, "
                    "lock_holder = %s WHERE name = %s "
                    "RETURNING lock_epoch, pg_backend_pid()",
                    (json.dumps(run), store._workspace),
                ).fetchone()
            if row is None:
                raise store._missing()
            return Acquired((int(row[0]), int(row[1])))

        try:
            if store._workspace_row(conn) is None:
                raise store._missing()
            return wait_for_lock(
                try_once,
                timeout=store._lock_timeout,
                on_wait=store._on_wait,
                subject=f"state {store.location}",
            )
        except psycopg.Error as exc:
            raise StateError(
                f"cannot lock the state at {store.location}: {store._clean(exc)}"
            ) from None

    def locked_by(self) -> str | None:
        """The lock holder recorded in the workspace row, while its advisory lock is held."""
        psycopg = _psycopg()
        try:
            with contextlib.closing(self._store._connect(autocommit=True)) as conn:
                row = conn.execute(f"SELECT {_LOCK_HELD}", self._store._tag).fetchone()
                if row is None or not row[0]:
                    return None
                workspace = self._store._workspace_row(conn)
        except psycopg.Error:
            return None  # only a hint for plan: never a reason to fail
        # A released lock clears lock_holder.
        holder = _holder(workspace[3]) if workspace else None
        return holder.describe() if holder is not None else None


def _holder(recorded: Any) -> LockHolder | None:
    """The holder a workspace row's ``lock_holder`` names (jsonb, or its text)."""
    if isinstance(recorded, str):
        try:
            recorded = json.loads(recorded)
        except (ValueError, RecursionError):
            return None
    return LockHolder.from_description(recorded)


class _Writes(Persistence):
    """Persists one locked run's ledger writes, a batch per fenced transaction."""

    def __init__(
        self,
        store: PostgresStateStore,
        conn: psycopg.Connection[Any],
        epoch: int,
        lock_pid: int,
        run: dict[str, Any],
    ) -> None:
        self._store = store
        self._conn = conn
        self._epoch = epoch
        self._lock_pid = lock_pid
        self._run = json.dumps(run)

    def persist(self, batch: Sequence[Write]) -> None:
        """The batch in one fenced transaction: one commit for the writes of every
        worker that queued while the previous batch was committing."""
        psycopg = _psycopg()
        store = self._store
        try:
            with self._conn.transaction():
                self._fence(batch[0])
                for write in batch:
                    rows.apply_write(self._conn, self._store.workspace, write, self._run)
        except PersistError:
            raise
        except psycopg.Error as exc:
            reason = store._clean(exc)
            raise PersistError(
                f"cannot write the state at {store.location}: {reason}; the write may or may "
                "not have been committed, and this run writes nothing more",
                reason,
            ) from None

    def _fence(self, write: Write) -> None:
        store = self._store
        row = self._conn.execute(
            f"SELECT lock_epoch, serial, {_HOLDS_LOCK} "
            f"FROM {SCHEMA}.workspaces WHERE name = %s FOR UPDATE",
            (self._lock_pid, *store._tag, store.workspace),
        ).fetchone()
        if row is None or row[0] != self._epoch or not row[2]:
            reason = "this run no longer holds the state lock"
            raise PersistError(
                f"cannot write the state at {store.location}: {reason} (its lock connection "
                "was lost or another run took the lock); nothing more is written by this run",
                reason,
            )
        if row[1] != write.serial - 1:
            reason = f"the state is at serial {row[1]}, not {write.serial - 1}"
            raise PersistError(f"cannot write the state at {store.location}: {reason}", reason)


def _connect_timeout() -> int:
    """``PGCONNECT_TIMEOUT`` in whole seconds (default 10), as libpq reads it."""
    text = os.environ.get("PGCONNECT_TIMEOUT", "").strip() or "10"
    if not text.isascii() or not text.isdigit() or len(text) > 6:
        raise StateError(f"PGCONNECT_TIMEOUT must be a whole number of seconds, not {text[:20]!r}")
    return int(text)
