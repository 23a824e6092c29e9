"""The fixtures every test can use (``tests/conftest.py`` makes them visible).

An autouse fixture keeps every test away from the real API and from a state file
where the suite runs; the others give a throwaway PostgreSQL database and the
state file and declarations directory of the CLI tests.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.state import JsonFileStateStore
from tests.pgserver import PgServer, PgServerError
from tests.support.cli import init
from tests.support.processes import hold_the_lock
from tests.support.states import add_pending, record


@pytest.fixture(autouse=True)
def _no_default_endpoint_or_state(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No test may reach the real API or write a state file where it runs.

    The default API URL becomes one the client refuses outright (plain http to a
    non-loopback host), CRAYON_* variables from the developer's shell are removed,
    and the default state path is a directory, which every command rejects, so a
    test must name its own ``--state``.
    """
    import reconciler.api.settings

    # Patched where ApiSettings.from_env reads it (the package does not re-export it).
    monkeypatch.setattr(
        reconciler.api.settings, "DEFAULT_API_URL", "http://default-api-url.invalid"
    )
    for name in ("CRAYON_API_URL", *reconciler.api.settings.CREDENTIAL_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RECONCILER_STATE", str(tmp_path_factory.mktemp("no-default-state")))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One throwaway PostgreSQL cluster for the whole session (tests/pgserver.py).

    Without one, the tests that need it skip, except under CI=true, where they fail:
    CI must never pass by skipping the database tests.
    """
    try:
        if importlib.util.find_spec("psycopg") is None:
            raise PgServerError("psycopg is not installed (pip install -e '.[test]')")
        server = PgServer.start()
    except PgServerError as error:
        reason = f"no PostgreSQL server for the tests: {error}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_pg_database(
    pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[], str]]:
    """Create empty databases on ``pg_server``; each call returns its URL (no password).

    The password reaches libpq, in this process and in subprocesses, through PGPASSWORD,
    as it would in CI. Variables that would redirect or break the connection are removed.
    The databases are dropped afterwards, whoever is still connected.
    """
    monkeypatch.setenv("PGPASSWORD", pg_server.password)
    for name in ("PGSERVICE", "PGSSLMODE", "PGOPTIONS"):
        monkeypatch.delenv(name, raising=False)
    names: list[str] = []

    def make() -> str:
        names.append(pg_server.create_database())
        return pg_server.url(names[-1])

    yield make
    for name in names:
        pg_server.drop_database(name)


@pytest.fixture
def pg_database(make_pg_database: Callable[[], str]) -> str:
    """A fresh empty database: ``postgresql://reconciler@127.0.0.1:PORT/test_<hex>``."""
    return make_pg_database()


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """An empty state file created by ``reconciler init``."""
    return init(tmp_path / "reconciler.state.json")


@pytest.fixture
def decl(tmp_path: Path) -> Path:
    """Where a test writes its declarations (not created)."""
    return tmp_path / "decl"


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    """Where a state file goes (nothing is there yet)."""
    return tmp_path / "reconciler.state.json"


@pytest.fixture
def file_store(state_path: Path) -> JsonFileStateStore:
    """A file store holding an empty state at ``state_path``."""
    created = JsonFileStateStore(state_path)
    assert created.create() is True
    return created


LockHolder = Callable[..., subprocess.Popen[str]]


@pytest.fixture
def hold_lock() -> Iterator[LockHolder]:
    """Start processes that hold a state's lock (``processes.hold_the_lock``, same
    arguments); every one still running is killed afterwards."""
    started: list[subprocess.Popen[str]] = []

    def start(state: Path, seconds: float = 120, write: str = "nothing") -> subprocess.Popen[str]:
        started.append(hold_the_lock(state, seconds, write))
        return started[-1]

    yield start
    for proc in started:
        proc.kill()
        proc.communicate()


@pytest.fixture
def nowhere(tmp_path: Path) -> Path:
    """A state path in an empty directory of its own, with no state at it."""
    directory = tmp_path / "states"
    directory.mkdir()
    return directory / "reconciler.state.json"


@pytest.fixture
def held(state: Path) -> Iterator[Path]:
    """A state (acme/basic recorded, acme/first pending) whose lock another holder
    ("test") keeps for the whole test."""
    record(state, "acme/basic", 10)
    add_pending(state, "acme/first", 2, "order-first")
    with JsonFileStateStore(state).lock("test"):
        yield state
