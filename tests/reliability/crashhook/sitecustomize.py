"""Test-only crash hook for ``python -m reconciler`` children of tests/reliability.

Put this directory on a child's ``PYTHONPATH`` and Python imports this module at
start-up (the ``sitecustomize`` mechanism). With none of the variables below set
it does nothing. With them, it numbers the durable steps of the state store and
can kill the process right before or right after one of them:

``RECONCILER_TEST_CRASH_LOG=FILE``
    Append one JSON line per durable step to FILE: its number, the call
    (``fsync``, ``replace``, ``commit``...) and the store function that made it.
``RECONCILER_TEST_CRASH_AT=N`` and ``RECONCILER_TEST_CRASH_MODE=before|after``
    At step N, ``os._exit(137)`` before or after the call: nothing runs after it,
    no ``finally``, no ``atexit``, no flush, as with SIGKILL (the kernel still
    closes the files and sockets, which releases ``flock`` and database sessions).
``RECONCILER_TEST_CRASH_PSYCOPG=1``
    Also count PostgreSQL commits: every ``COMMIT`` psycopg sends, and every
    data-changing statement run outside a transaction on an autocommit connection.

A durable step is a call that changes what is on disk or in the database, made
by a module of ``reconciler.state`` (the nearest ``reconciler`` frame of the
call stack decides): creating a file (``open`` with ``O_CREAT``), ``write``,
``pwrite``, ``ftruncate``, ``fsync``, ``fdatasync``, ``replace``, ``rename``,
``link``, ``unlink``, ``remove``, and the commits above. Calls from elsewhere
(the CLI, plan files, libraries) are neither counted nor killed.

This module must not change what any call does except by ending the process, and
must never be installed outside tests: nothing in the reconciler imports it.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

#: The exit status of a hooked kill (128 + SIGKILL, as a shell reports a killed job).
EXIT_STATUS = 137
_FILE_CALLS = (
    "write",
    "pwrite",
    "ftruncate",
    "fsync",
    "fdatasync",
    "replace",
    "rename",
    "link",
    "unlink",
    "remove",
)
_WRITE_STATEMENTS = ("INSERT", "UPDATE", "DELETE")


class _Steps:
    """The step counter and the kill decision, shared by every thread."""

    def __init__(self, crash_at: int | None, mode: str, log: str | None) -> None:
        self.crash_at = crash_at
        self.mode = mode
        self.count = 0
        self.mutex = threading.Lock()
        # The real calls, taken before any is wrapped: the log never counts itself.
        self._write = os.write
        self._log = None if log is None else os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)

    def around(self, call: str, where: str, run: Callable[[], Any]) -> Any:
        with self.mutex:
            self.count += 1
            number = self.count
        self._record({"n": number, "call": call, "where": where})
        if number == self.crash_at and self.mode == "before":
            self._die(number)
        result = run()
        if number == self.crash_at and self.mode == "after":
            self._die(number)
        return result

    def _record(self, entry: dict[str, Any]) -> None:
        if self._log is not None:
            self._write(self._log, (json.dumps(entry) + "\n").encode())

    def _die(self, number: int) -> None:
        self._record({"killed": number, "mode": self.mode})
        os._exit(EXIT_STATUS)


def _store_caller() -> str | None:
    """Where the state store made this call (``files:write_all<filestore:_append``), or
    None when the nearest reconciler frame of the stack is not the state store's."""
    frame: FrameType | None = sys._getframe(2)
    found: list[str] = []
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name.startswith("reconciler.state"):
            found.append(f"{name.removeprefix('reconciler.state.')}:{frame.f_code.co_name}")
        elif name == "reconciler" or name.startswith("reconciler.") or len(found) >= 3:
            break
        frame = frame.f_back
    return "<".join(found[:3]) or None


def _wrap_os(steps: _Steps) -> None:
    def wrapped(call: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def hooked(*args: Any, **kwargs: Any) -> Any:
            where = _store_caller()
            if where is None:
                return real(*args, **kwargs)
            return steps.around(call, where, lambda: real(*args, **kwargs))

        return hooked

    for call in _FILE_CALLS:
        setattr(os, call, wrapped(call, getattr(os, call)))
    real_open = os.open

    def hooked_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> Any:
        where = _store_caller() if flags & os.O_CREAT else None
        if where is None:
            return real_open(path, flags, *args, **kwargs)
        return steps.around("create", where, lambda: real_open(path, flags, *args, **kwargs))

    os.open = hooked_open


def _wrap_psycopg(steps: _Steps) -> None:
    import psycopg
    from psycopg import _connection_base, pq

    real_command = _connection_base.BaseConnection._exec_command

    def exec_command(self: Any, command: Any, *args: Any, **kwargs: Any) -> Any:
        # A generator, as the method it wraps: psycopg drives it to send the command.
        if isinstance(command, bytes) and command.strip().upper() == b"COMMIT":
            where = _store_caller()
            if where is not None:
                with steps.mutex:
                    steps.count += 1
                    number = steps.count
                steps._record({"n": number, "call": "commit", "where": where})
                if number == steps.crash_at and steps.mode == "before":
                    steps._die(number)
                result = yield from real_command(self, command, *args, **kwargs)
                if number == steps.crash_at and steps.mode == "after":
                    steps._die(number)
                return result
        return (yield from real_command(self, command, *args, **kwargs))

    _connection_base.BaseConnection._exec_command = exec_command  # type: ignore[method-assign]

    real_execute = psycopg.Connection.execute

    def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        text = query if isinstance(query, str) else ""
        if (
            self.autocommit
            and self.pgconn.transaction_status == pq.TransactionStatus.IDLE
            and text.lstrip().upper().startswith(_WRITE_STATEMENTS)
        ):
            where = _store_caller()
            if where is not None:
                return steps.around(
                    "autocommit", where, lambda: real_execute(self, query, *args, **kwargs)
                )
        return real_execute(self, query, *args, **kwargs)

    psycopg.Connection.execute = execute  # type: ignore[method-assign]


def _install() -> None:
    crash_at = os.environ.get("RECONCILER_TEST_CRASH_AT")
    log = os.environ.get("RECONCILER_TEST_CRASH_LOG")
    if crash_at is None and log is None:
        return
    steps = _Steps(
        int(crash_at) if crash_at else None,
        os.environ.get("RECONCILER_TEST_CRASH_MODE", "before"),
        log,
    )
    _wrap_os(steps)
    if os.environ.get("RECONCILER_TEST_CRASH_PSYCOPG"):
        _wrap_psycopg(steps)


_install()
