"""The simulator's memory: catalogue, tenants, tokens, verified orders, checkouts, traffic.

``Ledger`` is the one place the simulated API keeps what happened, guarded by
one re-entrant lock that the fault queues share (a checkout's record and the
fault it triggers are taken in one step). It speaks no HTTP, keeps everything
in memory, writes no file and must not import ``reconciler.api`` or
``reconciler.model``.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.simulator.catalog import CatalogItem
from reconciler.simulator.orders import RecordedCheckout, checkout_records
from reconciler.simulator.wire import now


@dataclass(frozen=True)
class RecordedCall:
    """One HTTP request the simulator answered (or dropped: status 0)."""

    method: str
    path: str
    endpoint: str
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedRequest:
    """The JSON body of a verify or checkout request and of the answer to it."""

    endpoint: str
    path: str
    body: Any
    status: int
    response: Any = None


@dataclass
class _Token:
    expires_at: float
    calls_left: int | None


class Ledger:
    """What the simulated API knows and has done; every method is thread-safe."""

    def __init__(
        self, lock: threading.RLock, catalog: Sequence[CatalogItem], tenants: Iterable[int]
    ) -> None:
        #: Held by callers that must read or change the ledger and the faults in one step.
        self.lock = lock
        self._catalog = {i.key: i for i in catalog}
        self._tenants = set(tenants)
        self._tokens: dict[str, _Token] = {}
        self._tokens_issued = 0
        self._verified: set[str] = set()
        self._verified_with_errors: set[str] = set()
        self._checkouts: list[RecordedCheckout] = []
        self._calls: list[RecordedCall] = []
        self._requests: list[RecordedRequest] = []
        self._references = itertools.count(1001)

    # ----------------------------------------------------------------- catalogue

    def replace_catalog(self, catalog: Sequence[CatalogItem], tenants: Iterable[int]) -> None:
        with self.lock:
            self._catalog = {i.key: i for i in catalog}
            self._tenants = set(tenants)

    @property
    def catalog(self) -> dict[str, CatalogItem]:
        """The catalogue by "productId:skuId" (a copy)."""
        with self.lock:
            return dict(self._catalog)

    @property
    def tenants(self) -> set[int]:
        with self.lock:
            return set(self._tenants)

    def has_tenant(self, tenant: int) -> bool:
        with self.lock:
            return tenant in self._tenants

    # ----------------------------------------------------------------- tokens

    def issue_token(self, ttl_seconds: float, ttl_calls: int | None) -> str:
        """A new bearer token, valid for ``ttl_seconds`` and at most ``ttl_calls`` calls."""
        token = "sim-" + secrets.token_hex(16)
        with self.lock:
            self._tokens[token] = _Token(
                expires_at=time.monotonic() + ttl_seconds, calls_left=ttl_calls
            )
            self._tokens_issued += 1
        return token

    def authorize(self, token: str | None) -> bool:
        """Whether ``token`` is valid now; a valid one spends one of its calls."""
        with self.lock:
            state = self._tokens.get(token) if token is not None else None
            if state is None or time.monotonic() >= state.expires_at:
                return False
            if state.calls_left is not None:
                if state.calls_left <= 0:
                    return False
                state.calls_left -= 1
            return True

    def expire_tokens(self) -> None:
        with self.lock:
            self._tokens.clear()

    @property
    def tokens_issued(self) -> int:
        with self.lock:
            return self._tokens_issued

    # ----------------------------------------------------------------- orders

    def remember_verified(self, canonical: str, has_errors: bool) -> None:
        """Note a verify answer; only one without errors may be checked out."""
        with self.lock:
            (self._verified_with_errors if has_errors else self._verified).add(canonical)

    def verification(self, canonical: str) -> tuple[bool, bool]:
        """Whether this exact order was verified clean, and whether it was verified with errors."""
        with self.lock:
            return canonical in self._verified, canonical in self._verified_with_errors

    def record_checkout(self, order: Mapping[str, Any]) -> None:
        """Take a verified order: each of its lines counts as bought from now on."""
        with self.lock:
            self._checkouts.extend(checkout_records(order, next(self._references), now()))

    @property
    def checkouts(self) -> list[RecordedCheckout]:
        with self.lock:
            return list(self._checkouts)

    def seats(self, tenant: int, product: str) -> int:
        with self.lock:
            return sum(
                c.quantity for c in self._checkouts if c.tenant == tenant and c.product == product
            )

    # ----------------------------------------------------------------- traffic

    def record_call(self, call: RecordedCall) -> None:
        with self.lock:
            self._calls.append(call)

    def record_request(self, request: RecordedRequest) -> None:
        with self.lock:
            self._requests.append(request)

    @property
    def calls(self) -> list[RecordedCall]:
        with self.lock:
            return list(self._calls)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self.lock:
            return list(self._requests)

    def count(self, endpoint: str, status: int | None = None) -> int:
        with self.lock:
            return sum(
                1
                for c in self._calls
                if c.endpoint == endpoint and (status is None or c.status == status)
            )

    def reset(self) -> None:
        """Forget tokens, verified orders, checkouts and traffic; keep the catalogue."""
        with self.lock:
            self._tokens.clear()
            self._verified.clear()
            self._verified_with_errors.clear()
            self._checkouts.clear()
            self._calls.clear()
            self._requests.clear()
