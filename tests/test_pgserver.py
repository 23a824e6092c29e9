"""The throwaway PostgreSQL server fixtures: real connections, no mocks."""

from __future__ import annotations

import os
from collections.abc import Callable
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.pgserver import SUPERUSER, PgServer


def _dbname(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def test_database_url_needs_the_password_from_pgpassword(
    pg_server: PgServer, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert pg_database.startswith(f"postgresql://{SUPERUSER}@127.0.0.1:{pg_server.port}/test_")
    assert pg_server.password not in pg_database
    assert os.environ["PGPASSWORD"] == pg_server.password
    with psycopg.connect(pg_database) as connection:
        row = connection.execute("SELECT current_user, current_database()").fetchone()
    assert row == (SUPERUSER, _dbname(pg_database))

    # The server really checks it: without PGPASSWORD (and no password file) it refuses.
    monkeypatch.delenv("PGPASSWORD")
    monkeypatch.setenv("PGPASSFILE", os.devnull)
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(pg_database, connect_timeout=10).close()


def test_two_databases_are_independent(make_pg_database: Callable[[], str]) -> None:
    first, second = make_pg_database(), make_pg_database()
    assert first != second
    with psycopg.connect(first, autocommit=True) as connection:
        connection.execute("CREATE TABLE only_here (id int)")
    with psycopg.connect(second) as connection:
        row = connection.execute("SELECT to_regclass('only_here')").fetchone()
    assert row == (None,)


def test_terminate_backends_breaks_the_victims_connection(
    pg_server: PgServer, pg_database: str
) -> None:
    with psycopg.connect(pg_database, application_name="victim") as victim:
        victim.execute("SELECT 1")
        with psycopg.connect(pg_database, application_name="bystander") as bystander:
            terminated = pg_server.terminate_backends(
                dbname=_dbname(pg_database), application_name="victim"
            )
            assert terminated == 1
            with pytest.raises(psycopg.OperationalError):
                victim.execute("SELECT 1")
            assert bystander.execute("SELECT 1").fetchone() == (1,)
