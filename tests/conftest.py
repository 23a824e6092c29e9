"""The fixtures every test can use; they live in ``tests/support``."""

from __future__ import annotations

from tests.support.fixtures import (
    _no_default_endpoint_or_state,
    decl,
    file_store,
    held,
    hold_lock,
    make_pg_database,
    nowhere,
    pg_database,
    pg_server,
    state,
    state_path,
)
from tests.support.simulator import h, make_harness, project, simulator, simulator_factory

__all__ = [
    "_no_default_endpoint_or_state",
    "decl",
    "file_store",
    "h",
    "held",
    "hold_lock",
    "make_harness",
    "make_pg_database",
    "nowhere",
    "pg_database",
    "pg_server",
    "project",
    "simulator",
    "simulator_factory",
    "state",
    "state_path",
]
