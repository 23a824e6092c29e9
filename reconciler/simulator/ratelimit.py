"""The simulator's rate limit: at most N requests a second, 429 with Retry-After above.

A token bucket: it holds up to one second's worth of requests (``rate``, at least
one) and refills at ``rate`` a second; a request that finds it empty is answered
429 with the whole seconds until the next token (at least 1) as Retry-After and is
not acted on. The admin endpoints and ping are not limited. It must not import
``reconciler.api`` or ``reconciler.model``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from reconciler.simulator.wire import Reply, error_body


class RateLimiter:
    """Decides, per request, whether it is within the rate; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._rate: float | None = None
        self._tokens = 0.0
        self._stamp = 0.0

    def take(self, rate: float | None) -> int | None:
        """None when a request may go through at ``rate`` a second (None: no limit),
        else the Retry-After in whole seconds."""
        if rate is None:
            self._rate = None
            return None
        with self._lock:
            now = self._clock()
            burst = max(1.0, rate)
            if self._rate != rate:  # a new or changed limit starts with a full bucket
                self._rate, self._tokens, self._stamp = rate, burst, now
            self._tokens = min(burst, self._tokens + (now - self._stamp) * rate)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return None
            return max(1, math.ceil((1.0 - self._tokens) / rate))

    def check(self, rate: float | None) -> None:
        """Raise the 429 ``Reply`` for a request above ``rate`` a second."""
        wait = self.take(rate)
        if wait is not None:
            raise Reply(429, error_body(429, "Rate limit exceeded"), {"Retry-After": str(wait)})
