"""What a 429 means for every call of one client: wait out its Retry-After.

``Throttle`` keeps the latest moment a Retry-After asked the client to wait until;
every call waits for it before it is sent, so that the other threads do not only
collect more 429s, and a listener (apply's adaptive limit) hears of each 429. The
client decides what is retried; this module sends nothing and classifies nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from reconciler.api.settings import RetryPolicy


class Throttle:
    """What a 429 says to every thread: a Retry-After holds back every call of the
    client until it has passed, not only the one answered 429 (the others would
    only be refused too), and ``listener`` hears of each 429."""

    def __init__(self, clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._until = 0.0
        self.listener: Callable[[float | None], None] | None = None

    def throttled(self, retry_after: float | None, policy: RetryPolicy) -> float:
        """Hold back every call until the Retry-After has passed; returns that moment
        (the caller waits for it through its own retry delay)."""
        until = 0.0
        if retry_after is not None:
            until = self._clock() + policy.capped(retry_after)
            with self._lock:
                self._until = max(self._until, until)
        listener = self.listener
        if listener is not None:
            listener(retry_after)
        return until

    def wait(self, waited_until: float) -> None:
        """Before a call: sleep until the latest Retry-After has passed, unless this
        call already waited that long (``waited_until``)."""
        with self._lock:
            until = self._until
        if until > waited_until:
            delay = until - self._clock()
            if delay > 0:
                self._sleep(delay)
