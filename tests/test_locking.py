"""``reconciler.state.locking``: waiting for a lock on a clock the test drives, and
how a holder and a refusal are worded."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

import pytest

from reconciler.errors import StateLockedError
from reconciler.state.locking import (
    REPORT_EVERY,
    Acquired,
    Held,
    LockHolder,
    locked_message,
    run_description,
    wait_for_lock,
)

HOLDER = LockHolder(
    4242, "ci-3", "reconciler apply", "2026-11-26T19:00:00Z", "https://ci.example/jobs/7"
)


class Clock:
    """A clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def held_for(clock: Clock, seconds: float) -> Callable[[], Acquired[str] | Held]:
    """A try_once that finds the lock held until ``seconds`` have passed."""
    start = clock.now

    def try_once() -> Acquired[str] | Held:
        return Acquired("fd") if clock.now - start >= seconds else Held(HOLDER)

    return try_once


def test_a_free_lock_is_taken_at_once_without_sleeping() -> None:
    clock = Clock()
    got = wait_for_lock(lambda: Acquired(7), timeout=0, clock=clock, sleep=clock.sleep)
    assert got == 7
    assert clock.slept == []


def test_without_a_timeout_a_held_lock_fails_at_once_naming_its_holder() -> None:
    clock = Clock()
    with pytest.raises(StateLockedError) as caught:
        wait_for_lock(held_for(clock, 1), timeout=0, clock=clock, sleep=clock.sleep)
    assert clock.slept == []
    assert str(caught.value) == (
        "state is locked by pid 4242 on host ci-3 (command 'reconciler apply', since "
        "2026-11-26T19:00:00Z, https://ci.example/jobs/7): another run is in progress; wait "
        "for it to finish, or give --lock-timeout DURATION (e.g. 10m) to wait for it"
    )


def test_a_wait_reports_about_every_ten_seconds_then_takes_the_lock() -> None:
    clock = Clock()
    reports: list[tuple[float, LockHolder | None]] = []
    got = wait_for_lock(
        held_for(clock, 35),
        timeout=60,
        on_wait=lambda waited, holder: reports.append((waited, holder)),
        clock=clock,
        sleep=clock.sleep,
    )
    assert got == "fd"
    assert [round(waited) for waited, _ in reports] == [10, 20, 30]
    assert all(holder == HOLDER for _, holder in reports)
    assert REPORT_EVERY == 10.0
    assert max(clock.slept) <= 0.25, "the lock is tried at least four times a second"


def test_a_wait_that_runs_out_names_the_holder_and_how_long_it_waited() -> None:
    clock = Clock()
    reports: list[float] = []
    with pytest.raises(StateLockedError) as caught:
        wait_for_lock(
            held_for(clock, 3600),
            timeout=30,
            on_wait=lambda waited, _: reports.append(waited),
            subject="state postgresql://reconciler@db/licences",
            clock=clock,
            sleep=clock.sleep,
        )
    assert [round(w) for w in reports] == [10, 20]
    assert clock.now - 1000.0 == pytest.approx(30)
    assert str(caught.value) == (
        "state postgresql://reconciler@db/licences is locked by pid 4242 on host ci-3 "
        "(command 'reconciler apply', since 2026-11-26T19:00:00Z, https://ci.example/jobs/7): "
        "another run is in progress and still held the lock after 30s of waiting; wait for "
        "it to finish, or give a longer --lock-timeout DURATION to wait for it"
    )


@pytest.mark.parametrize(
    ("timeout", "shown"), [(0.3, "300ms"), (5, "5s"), (90, "90s"), (300, "5m"), (5400, "90m")]
)
def test_the_wait_is_said_as_it_was_given(timeout: float, shown: str) -> None:
    assert f"after {shown} of waiting" in locked_message("state", HOLDER, timeout)


def test_an_unknown_holder_is_said_to_be_unknown() -> None:
    assert locked_message("state", None, 0).startswith(
        "state is locked by another run, which did not say who: "
    )


def test_a_run_describes_itself_with_its_ci_job(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CI_JOB_URL", "GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    plain = run_description("reconciler apply")
    assert sorted(plain) == ["command", "host", "pid", "started"]
    assert (plain["pid"], plain["host"]) == (os.getpid(), socket.gethostname())

    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/licences")
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    github = LockHolder.from_description(run_description("reconciler apply"))
    assert github is not None
    assert github.ci_url == "https://github.com/acme/licences/actions/runs/42"

    monkeypatch.setenv("CI_JOB_URL", "https://gitlab.example/acme/-/jobs/9")
    gitlab = LockHolder.from_description(run_description("reconciler apply"))
    assert gitlab is not None
    assert gitlab.ci_url == "https://gitlab.example/acme/-/jobs/9"
    assert gitlab.describe().endswith(", https://gitlab.example/acme/-/jobs/9)")


@pytest.mark.parametrize(
    "recorded",
    [None, "text", [], {}, {"pid": "12"}, {"pid": True}, {"host": "ci-3"}],
)
def test_a_description_without_a_pid_names_no_holder(recorded: object) -> None:
    assert LockHolder.from_description(recorded) is None
