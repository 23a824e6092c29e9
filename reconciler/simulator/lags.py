"""How far the simulator's lists lag behind what happened: ``ListLags``.

The real Cloud-iQ lists a new subscription some time after the checkout's 204; a
test makes the simulator do the same, per list, on the simulated clock: a record
is listed once the clock is the list's lag past its creation (``math.inf`` hides
the whole list, 0 lists everything at once). Thread-safe; no HTTP, and no import
of ``reconciler.api`` or ``reconciler.model``.
"""

from __future__ import annotations

import math
import threading
from datetime import datetime, timedelta
from typing import Final

from reconciler.simulator.clock import SimulatedClock

#: The lists that can lag: subscriptions, asset orders and processed orders.
LAGGING_LISTS: Final = ("subscriptions", "asset-orders", "orders")


class ListLags:
    """The lag of each lagging list (none at first)."""

    def __init__(self, clock: SimulatedClock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._lags = dict.fromkeys(LAGGING_LISTS, 0.0)

    def set(self, listing: str, seconds: float) -> None:
        """List a new record of ``listing`` only once the clock is ``seconds`` past its
        creation. Raises ValueError for another list, or seconds that are not a
        number of 0 or more (``math.inf`` allowed)."""
        if listing not in LAGGING_LISTS:
            raise ValueError(f"listing must be one of {', '.join(LAGGING_LISTS)}, not {listing!r}")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ValueError(f"seconds must be a number, not {seconds!r}")
        if math.isnan(seconds) or seconds < 0:
            raise ValueError(f"seconds must be 0 or more, not {seconds!r}")
        with self._lock:
            self._lags[listing] = float(seconds)

    def listed(self, listing: str, created: datetime | str) -> bool:
        """Whether a record of ``listing`` created at ``created`` (a datetime, or a time
        as the simulator stamps it) is listed now."""
        with self._lock:
            lag = self._lags[listing]
        if lag == 0:
            return True
        if math.isinf(lag):
            return False
        if isinstance(created, str):
            created = datetime.fromisoformat(created.replace("Z", "+00:00"))
        return self._clock.now() - created >= timedelta(seconds=lag)

    def reset(self) -> None:
        with self._lock:
            self._lags = dict.fromkeys(LAGGING_LISTS, 0.0)
