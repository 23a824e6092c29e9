"""The state backends, one row each: which locations a backend takes, how it opens
a store, and what it can do.

``backend_for(location)`` is the one place a ``--state`` value is told apart (a
``postgresql://`` or ``postgres://`` URL, or else a file path); everything that
needs to know asks the row: whether the backend has workspaces or keeps a
history of writes, how a location is shown with its secrets masked, whether it
may be printed in a pull-request comment. ``open_store`` builds the store.

A new backend is one row in ``BACKENDS`` (its factory imports its module when
called, so a command pays only for the backend it uses) and one fixture that
runs ``reconciler.state.contract`` against it. This module opens nothing itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reconciler.errors import StateError
from reconciler.state.base import StateStore
from reconciler.state.locking import OnWait
from reconciler.state.urls import mask_url

DEFAULT_WORKSPACE = "default"


@dataclass(frozen=True)
class StoreOptions:
    """How a run wants its store: which workspace, and how long to wait for its lock
    (``on_wait`` hears about the wait every 10 seconds or so)."""

    workspace: str = DEFAULT_WORKSPACE
    lock_timeout: float = 0.0
    on_wait: OnWait | None = None


@dataclass(frozen=True)
class Backend:
    """One kind of state store and what it can do."""

    #: A short name for messages: "file", "postgresql".
    name: str
    #: The location prefixes it takes; an empty tuple for the fallback (file paths).
    schemes: tuple[str, ...]
    #: Whether one location holds many states, told apart by ``--workspace``.
    has_workspaces: bool
    #: Whether the store keeps a history of every write (``state history``).
    keeps_history: bool
    #: Whether a location may be printed where many read it (a pull-request comment):
    #: a file path may; a database URL names a host and a user, so it may not.
    comment_safe: bool
    #: The location as users may see it: no password, whatever the location holds.
    show: Callable[[str], str]
    #: The store at a location, for a run with these options.
    factory: Callable[[str, StoreOptions], StateStore]

    def takes(self, location: str) -> bool:
        """Whether ``location`` is one of this backend's (the fallback takes any)."""
        return not self.schemes or location.startswith(self.schemes)

    def open(self, location: str, options: StoreOptions = StoreOptions()) -> StateStore:
        """The store at ``location``; a workspace other than the default needs a backend
        that has workspaces."""
        if options.workspace != DEFAULT_WORKSPACE and not self.has_workspaces:
            raise StateError(
                f"a state {self.name} holds one state, so --workspace {options.workspace} has "
                f"nothing to select in {self.show(location)}; --workspace needs a "
                "postgresql:// state"
            )
        return self.factory(location, options)


def _file_store(location: str, options: StoreOptions) -> StateStore:
    from reconciler.state.filestore import JsonFileStateStore

    return JsonFileStateStore(location, lock_timeout=options.lock_timeout, on_wait=options.on_wait)


def _postgres_store(location: str, options: StoreOptions) -> StateStore:
    from reconciler.state.postgres import PostgresStateStore  # deferred: psycopg

    return PostgresStateStore(
        location,
        options.workspace,
        lock_timeout=options.lock_timeout,
        on_wait=options.on_wait,
    )


POSTGRESQL = Backend(
    name="postgresql",
    schemes=("postgresql://", "postgres://"),
    has_workspaces=True,
    keeps_history=True,
    comment_safe=False,
    show=mask_url,
    factory=_postgres_store,
)
FILE = Backend(
    name="file",
    schemes=(),
    has_workspaces=False,
    keeps_history=False,
    comment_safe=True,
    show=str,
    factory=_file_store,
)
#: Every backend, the fallback last: the first that takes a location opens it.
BACKENDS: tuple[Backend, ...] = (POSTGRESQL, FILE)


def backend_for(location: str) -> Backend:
    """The backend of a ``--state`` value: a ``postgresql://`` URL, or a file path."""
    return next(backend for backend in BACKENDS if backend.takes(location))


def open_store(
    location: str,
    *,
    workspace: str = DEFAULT_WORKSPACE,
    lock_timeout: float = 0.0,
    on_wait: OnWait | None = None,
) -> StateStore:
    """The store a ``--state`` value names, for a run with these options."""
    return backend_for(location).open(location, StoreOptions(workspace, lock_timeout, on_wait))
