"""state: the recorded purchases and pending operations, and where they are kept.

``StateStore``/``StateWriter`` (``base``) are the roles the rest of the
reconciler codes against. ``ledger`` holds every write rule once; each store only
persists and locks: ``filestore.JsonFileStateStore`` keeps the state in a JSON
file with a journal and ``flock`` (CONTRACT section 8). ``jsonformat`` reads and
writes the state's JSON format. No module here talks to the API, reads
declarations or prints.
"""

from __future__ import annotations

from reconciler.state.base import StateStore, StateWriter, utc_now
from reconciler.state.filestore import JsonFileStateStore

__all__ = ["JsonFileStateStore", "StateStore", "StateWriter", "open_store", "utc_now"]


def open_store(
    location: str, *, workspace: str = "default", lock_timeout: float = 0.0
) -> StateStore:
    """The store a ``--state`` value names: a ``postgresql://`` URL or a JSON file path."""
    if location.startswith(("postgresql://", "postgres://")):
        from reconciler.state.postgres import PostgresStateStore  # deferred: psycopg

        return PostgresStateStore(location, workspace, lock_timeout=lock_timeout)
    return JsonFileStateStore(location, lock_timeout=lock_timeout)
