"""state: the recorded purchases and pending operations, and where they are kept.

``StateStore``/``StateWriter`` (``base``) are the roles the rest of the
reconciler codes against. ``ledger`` holds every write rule once and builds the
writer of every store (``locked_writer``); each store only persists and locks.
``backends`` is the table of stores: ``backend_for(location)`` says which one a
``--state`` value names and what it can do, ``open_store`` opens it — a JSON file
with a journal and ``flock`` (``filestore``), or a PostgreSQL workspace
(``postgres``). ``locking.wait_for_lock`` is how every store waits for its lock.
``jsonformat`` reads and writes the state's JSON format; ``contract`` is the test
suite every store passes (it imports pytest, so nothing at run time imports it).
No module here talks to the API, reads declarations or prints. The names below
are imported when first read (``reconciler.lazy``), so a command that opens no
store (``validate``) loads none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.lazy import lazy_exports

if TYPE_CHECKING:
    from reconciler.state.backends import Backend, StoreOptions, backend_for, open_store
    from reconciler.state.base import StateStore, StateWriter, utc_now
    from reconciler.state.filestore import JsonFileStateStore
    from reconciler.state.locking import LockHolder, OnWait, wait_for_lock

__all__ = [
    "Backend",
    "JsonFileStateStore",
    "LockHolder",
    "OnWait",
    "StateStore",
    "StateWriter",
    "StoreOptions",
    "backend_for",
    "open_store",
    "utc_now",
    "wait_for_lock",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Backend": "backends",
        "StoreOptions": "backends",
        "backend_for": "backends",
        "open_store": "backends",
        "StateStore": "base",
        "StateWriter": "base",
        "utc_now": "base",
        "JsonFileStateStore": "filestore",
        "LockHolder": "locking",
        "OnWait": "locking",
        "wait_for_lock": "locking",
    },
)
