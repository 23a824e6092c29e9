"""The state contract (``reconciler.state.contract``) run against every store: the
JSON file store, the in-memory fake and PostgreSQL, each through one fixture."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.state import JsonFileStateStore, StateStore, open_store
from reconciler.state.contract import DurableStoreContract, Harness, StateStoreContract
from reconciler.state.locking import OnWait
from reconciler.state.postgres import PostgresStateStore
from tests.fakes import InMemoryStateStore
from tests.pgserver import PgServer


class TestJsonFileStateStore(DurableStoreContract):
    @pytest.fixture
    def harness(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Harness:
        path = tmp_path / "reconciler.state.json"

        def reopen(*, lock_timeout: float = 0.0, on_wait: OnWait | None = None) -> StateStore:
            return JsonFileStateStore(path, lock_timeout=lock_timeout, on_wait=on_wait)

        def break_writes() -> None:
            def fail(fd: int) -> None:
                raise OSError(28, "No space left on device")

            monkeypatch.setattr(os, "fsync", fail)

        return Harness("file", reopen, break_writes, str(path))


class TestInMemoryStateStore(StateStoreContract):
    @pytest.fixture
    def harness(self) -> Harness:
        root = InMemoryStateStore()

        def reopen(*, lock_timeout: float = 0.0, on_wait: OnWait | None = None) -> StateStore:
            return root.handle(lock_timeout=lock_timeout, on_wait=on_wait)

        def break_writes() -> None:
            root.fail_writes = True

        return Harness("memory", reopen, break_writes, None)


class TestPostgresStateStore(DurableStoreContract):
    @pytest.fixture
    def harness(self, pg_database: str, pg_server: PgServer) -> Harness:
        def reopen(*, lock_timeout: float = 0.0, on_wait: OnWait | None = None) -> StateStore:
            # Through the registry, as the CLI opens it.
            store = open_store(pg_database, lock_timeout=lock_timeout, on_wait=on_wait)
            assert isinstance(store, PostgresStateStore)
            return store

        def break_writes() -> None:
            assert pg_server.terminate_backends(application_name="crayon-reconciler") > 0

        return Harness(
            "postgres", reopen, break_writes, pg_database, failure="terminat|closed|lost"
        )
