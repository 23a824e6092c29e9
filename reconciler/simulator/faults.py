"""The simulator's programmable failures, queued until the requests they hit arrive.

What a test or ``reconciler simulator --fail`` can ask for: an error status
(with Retry-After or a custom body) instead of the answer, an answer that is not
JSON (``garble_next``), a slow answer, a
checkout taken and then dropped or answered 500 (the ambiguous cases), a valid
checkout answered 500 without being taken, the same three for a valid update
(PUT) of a subscription, a checkout held before it is answered, order-level
errors in verify answers, and a storm: each request failing at random, with a
seeded choice of those faults (``storm``). Expiring tokens is the other fault:
tokens live in the simulated cloud, so it is ``Tokens.expire``. This module
only queues; the server applies what it takes from here. It must not import
``reconciler.api`` or ``reconciler.model``.
"""

from __future__ import annotations

import random
import threading
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Final, Literal

from reconciler.simulator.wire import ENDPOINTS, check_endpoint

#: How a valid checkout ends instead of 204: taken, then the connection dropped
#: ("drop") or 500 ("500"); or 500 without being taken ("unrecorded").
CheckoutFault = Literal["drop", "500", "unrecorded"]
_CHECKOUT_FAULTS: Final = ("drop", "500", "unrecorded")
#: What a storm does to a request it hits, on any endpoint: an error status (the
#: request is not acted on) or an answer slower than a client's read timeout.
STORM_FAULTS: Final = ("429", "503", "slow")
#: And, on a valid checkout only: the checkout faults above.
STORM_CHECKOUT_FAULTS: Final = ("500-after-record", "drop-after-record", "500-unrecorded")
_STORM_DROPS: Final[dict[str, CheckoutFault]] = {
    "500-after-record": "500",
    "drop-after-record": "drop",
    "500-unrecorded": "unrecorded",
}
#: How a valid update (PUT) ends instead of 200: applied, then the connection dropped
#: ("drop") or 500 ("500"); or 500 without being applied ("unapplied").
UpdateFault = Literal["drop", "500", "unapplied"]
_UPDATE_FAULTS: Final = ("drop", "500", "unapplied")
#: And, on a valid update only.
STORM_UPDATE_FAULTS: Final = ("500-after-apply", "drop-after-apply", "500-unapplied")
_STORM_UPDATES: Final[dict[str, UpdateFault]] = {
    "500-after-apply": "500",
    "drop-after-apply": "drop",
    "500-unapplied": "unapplied",
}


@dataclass
class _Storm:
    rate: float
    slow: float
    chance: random.Random


#: The body of a garbled answer: JSON cut off in the middle.
GARBLED: Final = b'{"Items": [{"Id": 5000'


@dataclass
class Failure:
    """The answer an injected failure gives instead of the real one (``body`` bytes are
    sent as they are)."""

    status: int
    retry_after: str | None
    body: dict[str, Any] | bytes | None


class Faults:
    """Injected failures waiting for their requests; every method is thread-safe."""

    def __init__(self, lock: threading.RLock) -> None:
        # The ledger's lock: a checkout is recorded and its drop taken in one step.
        self._lock = lock
        self._failures: dict[str, deque[Failure]] = {e: deque() for e in ENDPOINTS}
        self._delays: dict[str, deque[float]] = {e: deque() for e in ENDPOINTS}
        self._order_errors: deque[dict[str, Any]] = deque()
        self._drops: deque[CheckoutFault] = deque()
        self._update_faults: deque[UpdateFault] = deque()
        self._hold = 0.0
        self._storm: _Storm | None = None
        # The storm decides a checkout's fault when the request arrives (``take``) and
        # the server asks for it once the checkout is found valid (``take_drop``), on
        # the same handler thread.
        self._storm_drop = threading.local()
        #: How many faults the storm injected, by "endpoint fault" (e.g. "checkout 429").
        self.injected: Counter[str] = Counter()

    # ----------------------------------------------------------------- programming

    def fail_next(
        self,
        endpoint: str,
        status: int,
        count: int = 1,
        retry_after: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        check_endpoint(endpoint)
        with self._lock:
            for _ in range(count):
                self._failures[endpoint].append(Failure(status, retry_after, body))

    def garble_next(self, endpoint: str, status: int = 200, count: int = 1) -> None:
        check_endpoint(endpoint)
        with self._lock:
            for _ in range(count):
                self._failures[endpoint].append(Failure(status, None, GARBLED))

    def delay_next(self, endpoint: str, seconds: float, count: int = 1) -> None:
        check_endpoint(endpoint)
        with self._lock:
            self._delays[endpoint].extend([seconds] * count)

    def drop_after_checkout(self, count: int = 1, mode: Literal["drop", "500"] = "drop") -> None:
        if mode not in ("drop", "500"):
            raise ValueError(f"mode must be 'drop' or '500', not {mode!r}")
        self.fail_checkouts(mode, count)

    def fail_checkouts(self, fault: CheckoutFault, count: int = 1) -> None:
        """End the next ``count`` valid checkouts with ``fault``, after those already queued."""
        if fault not in _CHECKOUT_FAULTS:
            raise ValueError(f"fault must be one of {', '.join(_CHECKOUT_FAULTS)}, not {fault!r}")
        with self._lock:
            self._drops.extend([fault] * count)

    def fail_updates(self, fault: UpdateFault, count: int = 1) -> None:
        """End the next ``count`` valid updates with ``fault``, after those already queued."""
        if fault not in _UPDATE_FAULTS:
            raise ValueError(f"fault must be one of {', '.join(_UPDATE_FAULTS)}, not {fault!r}")
        with self._lock:
            self._update_faults.extend([fault] * count)

    def hold_checkouts(self, seconds: float) -> None:
        with self._lock:
            self._hold = seconds

    def add_order_error(self, code: int, description: str, count: int = 1) -> None:
        with self._lock:
            self._order_errors.extend(
                [{"orderGroupId": "", "code": code, "description": description}] * count
            )

    def storm(self, rate: float, seed: int, slow: float = 1.0) -> None:
        """Fail each later request with probability ``rate`` (0 ends the storm).

        A hit request gets, chosen at random (``random.Random(seed)``): 429 or 503
        without being acted on (each with ``Retry-After: 0`` half of the time), or
        its answer ``slow`` seconds late; a valid checkout or update may instead be
        taken (applied) and then answered 500 or dropped, or answered 500 without
        being taken. Queued faults go first; a request they hit is not hit by the
        storm as well.
        """
        if not 0 <= rate <= 1:
            raise ValueError(f"rate must be between 0 and 1, not {rate!r}")
        with self._lock:
            self._storm = _Storm(rate, slow, random.Random(seed)) if rate else None

    def reset(self) -> None:
        with self._lock:
            self._storm = None
            self.injected.clear()
            for queue in self._failures.values():
                queue.clear()
            for delays in self._delays.values():
                delays.clear()
            self._order_errors.clear()
            self._drops.clear()
            self._update_faults.clear()
            self._hold = 0.0

    # ----------------------------------------------------------------- taking

    def take(self, endpoint: str) -> tuple[float, Failure | None]:
        """The delay and the failure queued for the next request to ``endpoint``."""
        self._storm_drop.kind = None
        with self._lock:
            delay = self._delays[endpoint].popleft() if self._delays[endpoint] else 0.0
            failure = self._failures[endpoint].popleft() if self._failures[endpoint] else None
            storm = self._storm
            if storm is None or delay or failure or storm.chance.random() >= storm.rate:
                return delay, failure
            kinds = STORM_FAULTS + {
                "checkout": STORM_CHECKOUT_FAULTS,
                "update": STORM_UPDATE_FAULTS,
            }.get(endpoint, ())
            kind = storm.chance.choice(kinds)
            if kind in _STORM_DROPS or kind in _STORM_UPDATES:
                self._storm_drop.kind = kind
                return 0.0, None  # counted once the request is found valid
            self.injected[f"{endpoint} {kind}"] += 1
            if kind == "slow":
                return storm.slow, None
            retry_after = "0" if storm.chance.random() < 0.5 else None
            return 0.0, Failure(int(kind), retry_after, None)

    def take_order_errors(self) -> list[dict[str, Any]]:
        """The order-level errors for the next verify answer (none or one)."""
        with self._lock:
            return [self._order_errors.popleft()] if self._order_errors else []

    def take_drop(self) -> CheckoutFault | None:
        """How to end the next valid checkout: a ``CheckoutFault``, or normally (None)."""
        with self._lock:
            if self._drops:
                return self._drops.popleft()
            kind: str | None = getattr(self._storm_drop, "kind", None)
            self._storm_drop.kind = None
            if kind not in _STORM_DROPS:
                return None
            self.injected[f"checkout {kind}"] += 1
            return _STORM_DROPS[kind]

    def take_update_fault(self) -> UpdateFault | None:
        """How to end the next valid update: an ``UpdateFault``, or normally (None)."""
        with self._lock:
            if self._update_faults:
                return self._update_faults.popleft()
            kind: str | None = getattr(self._storm_drop, "kind", None)
            self._storm_drop.kind = None
            if kind not in _STORM_UPDATES:
                return None
            self.injected[f"update {kind}"] += 1
            return _STORM_UPDATES[kind]

    @property
    def hold(self) -> float:
        """Seconds to wait between recording a checkout and answering it."""
        with self._lock:
            return self._hold
