"""``Simulator``: the one object tests, benchmarks and the CLI drive the simulated API through.

It owns the configuration (credentials, token lifetime, latency, verbosity, list
shape, page-size cap) and delegates: what happened to the ``SimulatedCloud``
(with its clock), programmed failures to ``Faults`` (through the
``FaultInjection`` methods it inherits), the socket to ``LoopbackServer``. It
adds no behaviour of its own beyond argument checks and must not import
``reconciler.api`` or ``reconciler.model``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Self

from reconciler.simulator.catalog import CatalogItem, default_catalog, load_catalog
from reconciler.simulator.cloud import (
    AppliedUpdate,
    RecordedCall,
    RecordedRequest,
    SimulatedCloud,
)
from reconciler.simulator.faults import Faults
from reconciler.simulator.injection import FaultInjection
from reconciler.simulator.listings import OrderRecord
from reconciler.simulator.loopback import LoopbackServer
from reconciler.simulator.orders import RecordedCheckout
from reconciler.simulator.portal import PortalChanges
from reconciler.simulator.subscriptions import ORGANIZATION_ID, SubscriptionRecord
from reconciler.simulator.wire import LIST_SHAPES, check_endpoint


class Simulator(FaultInjection, PortalChanges):
    """The simulated API. Use as a context manager, or ``start()``/``stop()``.

    The fault-injection methods (``fail_next``, ``storm``, ``expire_tokens``,
    ``lag_listing``, ...) come from ``FaultInjection``, the portal's changes
    (``portal_add_subscription``, ...) from ``PortalChanges``.

    The credentials, ``token_ttl_*``, ``latency``, ``verbose``, ``list_shape``
    ("envelope": ``{"Items", "TotalHits"}``; "bare": the array alone) and
    ``max_page_size`` (None: any page size asked for) and ``rate_limit`` (requests a
    second, None: no limit; above it 429 with Retry-After) are read at each request,
    so a test may change them while the simulator serves.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        catalog: Sequence[CatalogItem] | None = None,
        tenants: Iterable[int] | None = None,
        client_id: str = "sim-client",
        client_secret: str = "sim-secret",
        username: str = "sim-user",
        password: str = "sim-password",
        token_ttl_seconds: float = 3600,
        token_ttl_calls: int | None = None,
        latency: float = 0.0,
        verbose: bool = False,
        list_shape: str = "envelope",
        max_page_size: int | None = None,
        rate_limit: float | None = None,
    ) -> None:
        if list_shape not in LIST_SHAPES:
            shapes = ", ".join(LIST_SHAPES)
            raise ValueError(f"list_shape must be one of {shapes}, not {list_shape!r}")
        if max_page_size is not None and (
            isinstance(max_page_size, bool)
            or not isinstance(max_page_size, int)
            or max_page_size < 1
        ):
            raise ValueError(f"max_page_size must be a positive integer, not {max_page_size!r}")
        if rate_limit is not None and not rate_limit > 0:
            raise ValueError(f"rate_limit must be a positive number, not {rate_limit!r}")
        default_items, default_tenants = default_catalog()
        self.port = port
        self.client_id = client_id
        self.client_secret = client_secret
        self.username = username
        self.password = password
        self.token_ttl_seconds = token_ttl_seconds
        self.token_ttl_calls = token_ttl_calls
        self.latency = latency
        self.verbose = verbose
        self.list_shape = list_shape
        self.max_page_size = max_page_size
        #: Requests a second the API takes (None: any); above it, 429 with Retry-After.
        self.rate_limit = rate_limit
        #: The organisation (reseller) every simulated customer tenant belongs to.
        self.organization_id = ORGANIZATION_ID
        self.url = ""
        # One lock for the records and the faults: a checkout is recorded and the
        # drop it triggers taken in one step, and reset() forgets both at once.
        lock = threading.RLock()
        self._cloud = SimulatedCloud(
            lock,
            default_items if catalog is None else catalog,
            default_tenants if tenants is None else tenants,
        )
        self._faults = Faults(lock)
        self._server = LoopbackServer(self, self._cloud, self._faults)

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> str:
        """Listen on 127.0.0.1 and serve in a background thread; returns the base URL."""
        self.port = self._server.start(self.port)
        self.url = f"http://127.0.0.1:{self.port}"
        return self.url

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no connection is open (every request that arrived was handled).

        A client killed mid-request leaves its handler running (a checkout it sent
        may still be recorded); tests that ask "did the API take it?" wait for this.
        """
        deadline = time.monotonic() + timeout
        while self._server.open_connections:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def stop(self) -> None:
        """Stop serving and close every connection; safe to call twice."""
        self._server.stop()

    @property
    def running(self) -> bool:
        return self._server.running

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """The CRAYON_* variables that point a client at this simulator."""
        return {
            "CRAYON_API_URL": self.url,
            "CRAYON_CLIENT_ID": self.client_id,
            "CRAYON_CLIENT_SECRET": self.client_secret,
            "CRAYON_USERNAME": self.username,
            "CRAYON_PASSWORD": self.password,
        }

    def load_catalog_file(self, path: str | Path) -> None:
        """Replace the catalogue and tenants with those of a YAML or JSON file."""
        catalog, tenants = load_catalog(path)
        self._cloud.replace_catalog(catalog, tenants)

    # ----------------------------------------------------------------- what happened

    @property
    def catalog(self) -> list[CatalogItem]:
        return list(self._cloud.catalog.values())

    @property
    def tenants(self) -> set[int]:
        return self._cloud.tenants

    @property
    def checkouts(self) -> list[RecordedCheckout]:
        """Every accepted checkout line, oldest first (a copy)."""
        return self._cloud.checkouts

    @property
    def updates(self) -> list[AppliedUpdate]:
        """Every update (PUT of a subscription) applied, oldest first (a copy): what the
        subscription was and became, whatever answer the client got."""
        return self._cloud.updates

    @property
    def calls(self) -> list[RecordedCall]:
        """Every request answered so far, in order (a copy)."""
        return self._cloud.calls

    @property
    def requests_log(self) -> list[RecordedRequest]:
        """Bodies of every verify and checkout request and of their answers (a copy)."""
        return self._cloud.requests

    @property
    def tokens_issued(self) -> int:
        return self._cloud.tokens.issued

    def count(self, endpoint: str, status: int | None = None) -> int:
        """How many requests reached ``endpoint`` (answered with ``status``, if given)."""
        check_endpoint(endpoint)
        return self._cloud.count(endpoint, status)

    def seats(self, tenant: int, product: str) -> int:
        """Seats bought for ``product`` ("productId:skuId") by ``tenant`` through checkouts."""
        return self._cloud.seats(tenant, product)

    @property
    def processed_orders(self) -> list[OrderRecord]:
        """Every processed-order line (checkouts and portal purchases), oldest first (a copy)."""
        return self._cloud.orders

    @property
    def subscriptions(self) -> list[SubscriptionRecord]:
        """Every subscription, cancelled ones too, oldest first (a copy)."""
        return self._cloud.subscriptions

    def subscription(self, subscription_id: int) -> SubscriptionRecord:
        """One subscription as it is now (its seat batches, status, auto-renew);
        raises LookupError for an unknown id."""
        return self._cloud.subscription(subscription_id)

    def active_seats(self, tenant: int, product: str) -> int:
        """Seats of ``product`` ("productId:skuId") in ``tenant``'s active subscriptions:
        what was bought, with the portal's changes."""
        return self._cloud.active_seats(tenant, product)

    # ----------------------------------------------------------------- the clock
    # Every date the simulator records and the Date header of every answer; token
    # lifetimes run on real time. ``POST /_admin/clock`` moves it over HTTP.

    @property
    def now(self) -> datetime:
        """The simulated current time (UTC)."""
        return self._cloud.clock.now()

    def advance_clock(
        self, *, hours: float = 0.0, minutes: float = 0.0, seconds: float = 0.0
    ) -> datetime:
        """Move the simulated clock forward (or back, with negative values); returns now."""
        return self._cloud.clock.advance(timedelta(hours=hours, minutes=minutes, seconds=seconds))

    def set_clock(self, when: datetime | str) -> datetime:
        """Make ``when`` (a datetime, naive meaning UTC, or ISO-8601 text) the current time."""
        if isinstance(when, str):
            when = datetime.fromisoformat(when)
        return self._cloud.clock.set(when)

    def reset(self) -> None:
        """Forget recorded traffic, purchases, tokens and pending injections; the clock
        goes back to real time and no list lags."""
        with self._cloud.lock:
            self._cloud.reset()
            self._faults.reset()


def serve_forever(sim: Simulator) -> None:
    """Serve until KeyboardInterrupt (Ctrl-C), then stop cleanly."""
    sim.start()
    try:
        while sim.running:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
