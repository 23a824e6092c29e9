"""Waiting for a state's lock, the same way for every store, and naming who holds it.

A store knows how to *try* its lock once (``flock`` with ``LOCK_NB``, a
``pg_try_advisory_lock``); ``wait_for_lock`` turns that into the behaviour every
store shares: fail at once by default, or keep trying until ``--lock-timeout``
runs out, telling ``on_wait`` about every 10 seconds how long it has waited and
who holds the lock, and when it gives up, a ``StateLockedError`` that names the
holder and says how to wait for it.

``run_description`` is what a run writes about itself where it holds a lock (and,
on PostgreSQL, beside each write): host, pid, command, start time and the CI job.
This module does no I/O of its own: the store's ``try_once`` does.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from reconciler.errors import StateLockedError
from reconciler.state.base import utc_now

_T = TypeVar("_T")

#: How often ``on_wait`` hears from a wait that goes on.
REPORT_EVERY = 10.0
#: How long to sleep between two tries of a lock that is held.
POLL_INTERVAL = 0.25


@dataclass(frozen=True)
class LockHolder:
    """Who holds a lock, as far as the lock's holder said so."""

    pid: int | None = None
    host: str | None = None
    command: str | None = None
    started: str | None = None
    ci_url: str | None = None

    @classmethod
    def from_description(cls, data: Any) -> LockHolder | None:
        """The holder a ``run_description`` describes (None for anything else)."""
        if not isinstance(data, Mapping):
            return None

        def text(name: str) -> str | None:
            value = data.get(name)
            return value if isinstance(value, str) and value else None

        pid = data.get("pid")
        if type(pid) is not int:
            return None
        return cls(pid, text("host"), text("command"), text("started"), text("ci_url"))

    def describe(self) -> str:
        """``pid 12 on host ci-3 (command 'reconciler apply', since ..., CI job URL)``."""
        details = [f"command {self.command!r}"] if self.command else []
        if self.started:
            details.append(f"since {self.started}")
        if self.ci_url:
            details.append(self.ci_url)
        host = f" on host {self.host}" if self.host else ""
        shown = f" ({', '.join(details)})" if details else ""
        return f"pid {self.pid}{host}{shown}"

    def __str__(self) -> str:
        return self.describe()


def run_description(command: str) -> dict[str, Any]:
    """This run, as a lock holder and a writer names it: host, pid, command, start
    time, and the CI job's URL (``CI_JOB_URL``, or GitHub's run URL) when there is one."""
    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "command": command,
        "started": utc_now(),
    }
    ci_url = os.environ.get("CI_JOB_URL")
    server, repo, run = (
        os.environ.get(name) for name in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    )
    if not ci_url and server and repo and run:
        ci_url = f"{server}/{repo}/actions/runs/{run}"
    if ci_url:
        info["ci_url"] = ci_url
    return info


#: Told how long a run has waited for a lock (seconds) and who holds it (None when
#: the holder did not say), about every ``REPORT_EVERY`` seconds while it waits.
OnWait = Callable[[float, LockHolder | None], None]


@dataclass(frozen=True)
class Held:
    """What ``try_once`` returns when another run holds the lock."""

    holder: LockHolder | None


@dataclass(frozen=True)
class Acquired(Generic[_T]):
    """What ``try_once`` returns when it took the lock: the store's handle on it."""

    handle: _T


def wait_for_lock(
    try_once: Callable[[], Acquired[_T] | Held],
    *,
    timeout: float,
    on_wait: OnWait | None = None,
    subject: str = "state",
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> _T:
    """Try the lock until it is taken or ``timeout`` seconds have passed.

    ``try_once`` tries once without waiting. ``on_wait(waited, holder)`` is called
    after about every ``REPORT_EVERY`` seconds of waiting. When the time is up the
    lock's holder is named in a ``StateLockedError`` (``subject`` says what is
    locked: "state", or "state LOCATION").
    """
    started = clock()
    reported = 0.0
    while True:
        outcome = try_once()
        if isinstance(outcome, Acquired):
            return outcome.handle
        waited = clock() - started
        if waited >= timeout:
            raise StateLockedError(locked_message(subject, outcome.holder, timeout))
        if on_wait is not None and waited - reported >= REPORT_EVERY:
            reported = waited
            on_wait(waited, outcome.holder)
        sleep(max(0.0, min(POLL_INTERVAL, timeout - waited)))


def locked_message(subject: str, holder: LockHolder | None, timeout: float) -> str:
    """Why a run did not get the lock: who holds it, and how to wait for it."""
    who = holder.describe() if holder is not None else "another run, which did not say who"
    if timeout <= 0:
        advice = (
            "another run is in progress; wait for it to finish, or give --lock-timeout "
            "DURATION (e.g. 10m) to wait for it"
        )
    else:
        advice = (
            f"another run is in progress and still held the lock after {_seconds(timeout)} "
            "of waiting; wait for it to finish, or give a longer --lock-timeout DURATION to "
            "wait for it"
        )
    return f"{subject} is locked by {who}: {advice}"


def _seconds(value: float) -> str:
    if value < 1:
        return f"{round(value * 1000)}ms"
    return f"{value:g}s" if value < 120 else f"{value / 60:g}m"
