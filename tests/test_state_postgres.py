"""The PostgreSQL state store (``reconciler.state.postgres``): who holds the lock, and
a database of an older schema read and upgraded."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from reconciler.state import open_store, pgschema
from tests.support.records import BASIC
from tests.support.times import T0


def test_locked_by_on_postgresql_names_the_holder_while_the_lock_is_held(
    pg_database: str,
) -> None:
    from reconciler.state.postgres import PostgresStateStore

    store = PostgresStateStore(pg_database, "ws-a")
    other = PostgresStateStore(pg_database, "ws-b")
    assert store.create()
    assert other.create()
    assert store.locked_by() is None
    with store.lock("reconciler apply"):
        held_by = PostgresStateStore(pg_database, "ws-a").locked_by()
        assert held_by is not None
        assert held_by.startswith(f"pid {os.getpid()} on host ")
        assert "(command 'reconciler apply', since " in held_by
        assert other.locked_by() is None
    assert store.locked_by() is None


def test_a_database_of_schema_1_reads_and_is_upgraded_by_the_first_locked_run(
    pg_server: Any, pg_database: str, make_pg_database: Callable[[], str]
) -> None:
    import psycopg

    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {pgschema.SCHEMA}")
        conn.execute(
            f"CREATE TABLE {pgschema.SCHEMA}.schema_migrations "
            "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute(pgschema.MIGRATIONS[0])
        conn.execute(f"INSERT INTO {pgschema.SCHEMA}.schema_migrations (version) VALUES (1)")
        conn.execute(
            f"INSERT INTO {pgschema.SCHEMA}.workspaces (name, lineage) VALUES ('default', 'l')"
        )
    store = open_store(pg_database)
    assert store.load().purchases == {}
    with store.lock("reconciler refresh") as writer:
        writer.import_purchase("acme/basic", BASIC, 5, T0)
        writer.adjust_quantity("acme/basic", -5, "2026-11-27T19:00:00Z", "Cloud-iQ showed 0")
    loaded = store.load().purchases["acme/basic"]
    assert (loaded.quantity, [a.quantity for a in loaded.adjustments]) == (0, [-5])
