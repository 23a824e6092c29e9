"""The bearer tokens the simulated API has issued, and whether one is still good.

``Tokens`` is part of the ``SimulatedCloud`` and shares its re-entrant lock, so
that ``SimulatedCloud.reset`` forgets them with everything else in one step.
Lifetimes run on the real monotonic clock, not the simulated one. It speaks no
HTTP, checks no credentials (``server`` does), keeps everything in memory and
must not import ``reconciler.api`` or ``reconciler.model``.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass


@dataclass
class _Token:
    expires_at: float
    calls_left: int | None


class Tokens:
    """Issued tokens, each valid for a time and optionally a number of calls."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._tokens: dict[str, _Token] = {}
        self._issued = 0

    def issue(self, ttl_seconds: float, ttl_calls: int | None) -> str:
        """A new bearer token, valid for ``ttl_seconds`` and at most ``ttl_calls`` calls."""
        token = "sim-" + secrets.token_hex(16)
        with self._lock:
            self._tokens[token] = _Token(
                expires_at=time.monotonic() + ttl_seconds, calls_left=ttl_calls
            )
            self._issued += 1
        return token

    def authorize(self, token: str | None) -> bool:
        """Whether ``token`` is valid now; a valid one spends one of its calls."""
        with self._lock:
            state = self._tokens.get(token) if token is not None else None
            if state is None or time.monotonic() >= state.expires_at:
                return False
            if state.calls_left is not None:
                if state.calls_left <= 0:
                    return False
                state.calls_left -= 1
            return True

    def expire(self) -> None:
        """Make every issued token invalid; the count of issued tokens stays."""
        with self._lock:
            self._tokens.clear()

    @property
    def issued(self) -> int:
        with self._lock:
            return self._issued
