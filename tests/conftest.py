"""Shared fixtures."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pgserver import PgServer, PgServerError

from reconciler.simulator import Simulator


@pytest.fixture
def simulator_factory() -> Iterator[Callable[..., Simulator]]:
    """Start simulators with any ``Simulator`` arguments; all are stopped afterwards.

    RECONCILER_SIM_LIST_SHAPE (envelope or bare) is the list shape of every simulator
    a test does not give one, so the whole suite can run against bare lists.
    """
    started: list[Simulator] = []

    def start(**kwargs: Any) -> Simulator:
        kwargs.setdefault("list_shape", os.environ.get("RECONCILER_SIM_LIST_SHAPE", "envelope"))
        sim = Simulator(**kwargs)
        sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def simulator(simulator_factory: Callable[..., Simulator]) -> Simulator:
    """A running Crayon API simulator on 127.0.0.1 with the default catalogue."""
    return simulator_factory()


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
