"""The state in PostgreSQL: one workspace per state, rows per purchase (CONTRACT section 9).

Fresh CI runners share no disk, so the state and its lock live in a database
every runner reaches. Each workspace is one independent state: a row in
``workspaces`` (lineage, serial, lock epoch, lock holder) and its rows in
``purchases``, ``checkouts``, ``pending`` and the append-only ``history``.

Writes: each ledger write is one transaction touching the rows of one address,
the workspace row and one history row, so its cost does not grow with the state.

Locking and fencing: ``lock`` takes a session-level advisory lock for the
workspace on a dedicated connection (released by the server when that
connection or its process dies) and bumps the workspace's ``lock_epoch``. Every
write transaction locks the workspace row and checks, before changing anything,
that the epoch is still ours *and* that our lock connection still holds the
advisory lock. A run whose lock connection was dropped or terminated, or whose
lock was taken over (a pooler in transaction mode hands session locks around),
fails that check and can never write again; what it had in flight stays
pending in the database.

This module only persists and locks (the rules are the ledger's); it must not
talk to the API, read declarations or print. psycopg is imported here only,
lazily, so the file backend never needs it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
import uuid
import zlib
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from reconciler.errors import StateError, StateLockedError
from reconciler.model import (
    State,
)
from reconciler.state import pgrows as rows
from reconciler.state.base import StateWriter, utc_now
from reconciler.state.ledger import Ledger, LedgerWriter, PersistError, Tables
from reconciler.state.pgrows import SCHEMA
from reconciler.state.writes import Write

if TYPE_CHECKING:
    import psycopg

#: The first key of every advisory lock this tool takes ("RECN").
_LOCK_CLASS = 0x5245434E
#: Taken (per transaction) while migrations run, so racing runners apply each once.
_MIGRATION_LOCK = 0

#: libpq also takes the password as a query parameter: ``...?password=secret``.
_QUERY_PASSWORD = re.compile(r"(?:^|(?<=&))(password=)[^&]*")


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for every message and display)."""
    parts = urlsplit(url)
    parts = parts._replace(query=_QUERY_PASSWORD.sub(r"\1***", parts.query))
    if parts.password is not None:
        user = parts.username or ""
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port is not None else ""
        parts = parts._replace(netloc=f"{user}:***@{host}{port}")
    return urlunsplit(parts)


def _passwords(url: str) -> set[str]:
    """Every password written into ``url``, as written and decoded, to scrub from errors."""
    parts = urlsplit(url)
    found = [parts.password or ""]
    found += [m.group(0).split("=", 1)[1] for m in _QUERY_PASSWORD.finditer(parts.query)]
    return {text for raw in found for text in (raw, unquote(raw)) if text}


def run_description(command: str) -> dict[str, Any]:
    """Who holds a lock or made a write: host, pid, command, start time, CI job URL."""
    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "command": command,
        "started": utc_now(),
    }
    ci_url = os.environ.get("CI_JOB_URL")
    server, repo, run = (
        os.environ.get(name) for name in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    )
    if not ci_url and server and repo and run:
        ci_url = f"{server}/{repo}/actions/runs/{run}"
    if ci_url:
        info["ci_url"] = ci_url
    return info


def _lock_key(workspace: str) -> int:
    return zlib.crc32(workspace.encode("utf-8")) & 0x7FFFFFFF


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

    def __init__(self, url: str, workspace: str = "default", *, lock_timeout: float = 0.0) -> None:
        self._url = url
        self._workspace = workspace
        self._lock_timeout = lock_timeout
        self._display = redact_url(url)
        self._key = _lock_key(workspace)

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
                connect_timeout=int(os.environ.get("PGCONNECT_TIMEOUT", "10")),
                application_name="crayon-reconciler",
            )
        except pg.Error as exc:
            raise StateError(f"cannot connect to {self._display}: {self._clean(exc)}") from None
        return conn

    def _clean(self, exc: BaseException) -> str:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        for password in _passwords(self._url):
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
                    rows.migrate(conn, self._display)
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
            if rows.schema_version(conn) >= len(rows.MIGRATIONS):
                return
            # Racing runs wait here; migrate applies only what is still missing.
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_LOCK_CLASS, _MIGRATION_LOCK))
            rows.migrate(conn, self._display)

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
        rows.refuse_newer_schema(conn, self._display)
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
        return rows.read_state(conn, self._workspace, row[0], row[1])

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
                    ledger = Ledger(Tables(state), self.location)
                    writer = LedgerWriter(ledger, writes.persist, self.location)
                    try:
                        yield writer
                    finally:
                        writer.close()
            finally:
                # Unlocked first: until then, a run finding the lock taken reads our name.
                # The epoch keeps this from clearing the name of a run that took it since.
                with contextlib.suppress(psycopg.Error):
                    lock_conn.execute("SELECT pg_advisory_unlock(%s, %s)", (_LOCK_CLASS, self._key))
                    lock_conn.execute(
                        f"UPDATE {SCHEMA}.workspaces SET lock_holder = NULL "
                        "WHERE name = %s AND lock_epoch = %s",
                        (self._workspace, epoch),
                    )


class _AdvisoryLock:
    """A workspace's session advisory lock, taken on the caller's dedicated connection."""

    def __init__(self, store: PostgresStateStore) -> None:
        self._store = store

    def acquire(self, conn: psycopg.Connection[Any], run: dict[str, Any]) -> tuple[int, int]:
        """Take the workspace's advisory lock (waiting up to the lock timeout); bump the epoch."""
        psycopg = _psycopg()
        deadline = time.monotonic() + self._store._lock_timeout
        try:
            if self._store._workspace_row(conn) is None:
                raise self._store._missing()
            while True:
                # The advisory lock is only ever tried holding the workspace row, and the
                # winner names itself before letting the row go: a run that finds the lock
                # taken has waited for that row, so it names the run that holds the lock,
                # not a previous one (or none, as for a moment after the lock is taken).
                with conn.transaction():
                    found = conn.execute(
                        f"SELECT lock_holder FROM {SCHEMA}.workspaces WHERE name = %s FOR UPDATE",
                        (self._store._workspace,),
                    ).fetchone()
                    if found is None:
                        raise self._store._missing()
                    got = conn.execute(
                        "SELECT pg_try_advisory_lock(%s, %s)", (_LOCK_CLASS, self._store._key)
                    ).fetchone()
                    if got is not None and got[0]:
                        row = conn.execute(
                            f"UPDATE {SCHEMA}.workspaces SET lock_epoch = lock_epoch + 1, "
                            "lock_holder = %s WHERE name = %s "
                            "RETURNING lock_epoch, pg_backend_pid()",
                            (json.dumps(run), self._store._workspace),
                        ).fetchone()
                        break
                if time.monotonic() >= deadline:
                    raise StateLockedError(self._locked_message(found[0]))
                time.sleep(min(0.5, max(0.05, deadline - time.monotonic())))
        except psycopg.Error as exc:
            raise StateError(
                f"cannot lock the state at {self._store.location}: {self._store._clean(exc)}"
            ) from None
        if row is None:
            raise self._store._missing()
        return int(row[0]), int(row[1])

    def locked_by(self) -> str | None:
        """The lock holder recorded in the workspace row, while its advisory lock is held."""
        psycopg = _psycopg()
        try:
            with contextlib.closing(self._store._connect(autocommit=True)) as conn:
                row = conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                    "AND granted AND database = (SELECT oid FROM pg_database "
                    "WHERE datname = current_database()) AND classid::bigint = %s "
                    "AND objid::bigint = %s AND objsubid = 2)",
                    (_LOCK_CLASS, self._store._key),
                ).fetchone()
                if row is None or not row[0]:
                    return None
                workspace = self._store._workspace_row(conn)
        except psycopg.Error:
            return None  # only a hint for plan: never a reason to fail
        # Two workspaces may share a lock key; a released lock clears lock_holder.
        holder = workspace[3] if workspace else None
        if isinstance(holder, str):
            with contextlib.suppress(ValueError):
                holder = json.loads(holder)
        if not isinstance(holder, dict) or "pid" not in holder:
            return None
        return _describe(holder)

    def _locked_message(self, holder: Any) -> str:
        hint = "another run is in progress; wait for it to finish"
        if isinstance(holder, str):
            with contextlib.suppress(ValueError):
                holder = json.loads(holder)
        if not isinstance(holder, dict) or "pid" not in holder:
            return f"state {self._store.location} is locked by another process: {hint}"
        return f"state {self._store.location} is locked by {_describe(holder)}: {hint}"


def _describe(holder: dict[str, Any]) -> str:
    """Who holds a lock, as a lock refusal and `plan` name it."""
    details = [f"command {holder.get('command')!r}"] if holder.get("command") else []
    if holder.get("started"):
        details.append(f"since {holder['started']}")
    if holder.get("ci_url"):
        details.append(str(holder["ci_url"]))
    host = f" on host {holder['host']}" if holder.get("host") else ""
    shown = f" ({', '.join(details)})" if details else ""
    return f"pid {holder['pid']}{host}{shown}"


class _Writes:
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
            f"SELECT lock_epoch, serial, "
            "EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND pid = %s AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 2) "
            f"FROM {SCHEMA}.workspaces WHERE name = %s FOR UPDATE",
            (self._lock_pid, _LOCK_CLASS, store._key, store.workspace),
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
