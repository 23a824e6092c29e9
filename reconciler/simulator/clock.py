"""The simulator's clock: real time, moved forward or set by a test or ``POST /_admin/clock``.

Creation dates, order times, the cancellation window and the ``Date`` header of
every answer read it, so a test can step past the 168 hours of the window in an
instant. Token lifetimes do not: they run on the real monotonic clock, so moving
the simulated one never expires a token. Thread-safe; no HTTP beyond
``clock_reply``'s answer, and no import of ``reconciler.api`` or
``reconciler.model``.
"""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from reconciler.simulator.wire import Reply, error_body, parse_json


class SimulatedClock:
    """Real time plus an offset; ``advance`` and ``set`` change the offset."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = timedelta(0)

    def now(self) -> datetime:
        """The simulated current time, UTC."""
        with self._lock:
            return datetime.now(UTC) + self._offset

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock by ``delta`` (forward or back); returns the new now."""
        with self._lock:
            self._offset += delta
            return datetime.now(UTC) + self._offset

    def set(self, when: datetime) -> datetime:
        """Make ``when`` the current time (naive means UTC); returns it."""
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        with self._lock:
            self._offset = when - datetime.now(UTC)
            return when

    def reset(self) -> None:
        """Back to real time."""
        with self._lock:
            self._offset = timedelta(0)


def stamp(when: datetime) -> str:
    """A time the way the API writes it: UTC, milliseconds, ``Z``."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def clock_reply(clock: SimulatedClock, raw: bytes) -> Reply:
    """``POST /_admin/clock``: ``{"advance_hours": 200}`` (also ``advance_minutes``,
    ``advance_seconds``; negative moves back) or ``{"now": "2030-01-01T00:00:00Z"}``;
    ``{}`` only reads it. Answers 200 with ``{"now": ...}``, 400 for anything else."""
    request: Any = parse_json(raw) if raw.strip() else {}
    if not isinstance(request, dict):
        raise Reply(400, error_body(400, "the body must be a JSON object"))
    steps = {"advance_hours": 3600.0, "advance_minutes": 60.0, "advance_seconds": 1.0}
    unknown = sorted(set(request) - {*steps, "now"})
    if unknown:
        raise Reply(400, error_body(400, f"unknown field(s): {', '.join(unknown)}"))
    if "now" in request and len(request) > 1:
        raise Reply(400, error_body(400, "give either now or advance_*, not both"))
    if "now" in request:
        text = request["now"]
        try:
            when = datetime.fromisoformat(text) if isinstance(text, str) else None
        except ValueError:
            when = None
        if when is None:
            raise Reply(400, error_body(400, "now must be an ISO-8601 date and time"))
        clock.set(when)
    else:
        seconds = 0.0
        for name, unit in steps.items():
            value = request.get(name, 0)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise Reply(400, error_body(400, f"{name} must be a number"))
            seconds += value * unit
        try:
            clock.advance(timedelta(seconds=seconds))
        except OverflowError:
            raise Reply(400, error_body(400, "that would move the clock too far")) from None
    return Reply(200, {"now": stamp(clock.now())})
