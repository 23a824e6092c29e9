"""``Simulator``: the one object tests, benchmarks and the CLI drive the simulated API through.

It owns the configuration (credentials, token lifetime, latency, verbosity) and
delegates: what happened to the ``Ledger``, programmed failures to ``Faults``,
the socket to ``LoopbackServer``. It adds no behaviour of its own beyond
argument checks and must not import ``reconciler.api`` or ``reconciler.model``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from reconciler.simulator.catalog import CatalogItem, default_catalog, load_catalog
from reconciler.simulator.faults import Faults
from reconciler.simulator.ledger import Ledger, RecordedCall, RecordedRequest
from reconciler.simulator.listings import OrderRecord, SubscriptionRecord
from reconciler.simulator.orders import RecordedCheckout
from reconciler.simulator.server import LoopbackServer
from reconciler.simulator.wire import check_endpoint


class Simulator:
    """The simulated API. Use as a context manager, or ``start()``/``stop()``.

    The credentials, ``token_ttl_*``, ``latency`` and ``verbose`` are read at
    each request, so a test may change them while the simulator serves.
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
    ) -> None:
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
        self.url = ""
        # One lock for the ledger and the faults: a checkout is recorded and the
        # drop it triggers taken in one step, and reset() forgets both at once.
        lock = threading.RLock()
        self._ledger = Ledger(
            lock,
            default_items if catalog is None else catalog,
            default_tenants if tenants is None else tenants,
        )
        self._faults = Faults(lock)
        self._server = LoopbackServer(self, self._ledger, self._faults)

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
        self._ledger.replace_catalog(catalog, tenants)

    # ----------------------------------------------------------------- what happened

    @property
    def catalog(self) -> list[CatalogItem]:
        return list(self._ledger.catalog.values())

    @property
    def tenants(self) -> set[int]:
        return self._ledger.tenants

    @property
    def checkouts(self) -> list[RecordedCheckout]:
        """Every accepted checkout line, oldest first (a copy)."""
        return self._ledger.checkouts

    @property
    def calls(self) -> list[RecordedCall]:
        """Every request answered so far, in order (a copy)."""
        return self._ledger.calls

    @property
    def requests_log(self) -> list[RecordedRequest]:
        """Bodies of every verify and checkout request and of their answers (a copy)."""
        return self._ledger.requests

    @property
    def tokens_issued(self) -> int:
        return self._ledger.tokens_issued

    def count(self, endpoint: str, status: int | None = None) -> int:
        """How many requests reached ``endpoint`` (answered with ``status``, if given)."""
        check_endpoint(endpoint)
        return self._ledger.count(endpoint, status)

    def seats(self, tenant: int, product: str) -> int:
        """Seats bought for ``product`` ("productId:skuId") by ``tenant`` through checkouts."""
        return self._ledger.seats(tenant, product)

    @property
    def processed_orders(self) -> list[OrderRecord]:
        """Every processed-order line (checkouts and portal purchases), oldest first (a copy)."""
        return self._ledger.orders

    @property
    def subscriptions(self) -> list[SubscriptionRecord]:
        """Every subscription, cancelled ones too, oldest first (a copy)."""
        return self._ledger.subscriptions

    def active_seats(self, tenant: int, product: str) -> int:
        """Seats of ``product`` ("productId:skuId") in ``tenant``'s active subscriptions:
        what was bought, with the portal's changes."""
        return self._ledger.active_seats(tenant, product)

    # ----------------------------------------------------------------- the portal
    # Changes a person makes by hand in the Cloud-iQ portal, without verify or
    # checkout; ``POST /_admin/portal`` makes the same over HTTP.

    def portal_add_subscription(
        self,
        tenant: int,
        product: str,
        quantity: int,
        *,
        billing_cycle: int | str = "monthly",
        term_duration: str = "P1M",
        record_order: bool = True,
    ) -> int:
        """Add a subscription of ``product`` ("productId:skuId"); returns its id.

        ``billing_cycle`` is a catalogue name ("monthly", "annual", ...) or the
        BillingCycleType integer. With ``record_order`` a processed order (state
        Succeeded, no externalOrderId, no asset order) is listed for it too.
        Raises ValueError for what the catalogue does not offer.
        """
        return self._ledger.portal_add(
            tenant, product, quantity, billing_cycle, term_duration, record_order
        ).id

    def portal_set_quantity(self, subscription_id: int, quantity: int) -> None:
        """Change an active subscription's seats; raises LookupError for an unknown id."""
        self._ledger.portal_set_quantity(subscription_id, quantity)

    def portal_cancel(self, subscription_id: int) -> None:
        """Cancel a subscription (status 128, Cancelled); its seats no longer count."""
        self._ledger.portal_cancel(subscription_id)

    def reset(self) -> None:
        """Forget recorded traffic, purchases, tokens and pending injections."""
        with self._ledger.lock:
            self._ledger.reset()
            self._faults.reset()

    # ----------------------------------------------------------------- fault injection

    def fail_next(
        self,
        endpoint: str,
        status: int,
        count: int = 1,
        retry_after: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        """Answer the next ``count`` requests to ``endpoint`` with ``status``.

        The request is not acted on (a failed checkout buys nothing). ``body``
        replaces the standard error body; ``retry_after`` is sent as the header.
        """
        self._faults.fail_next(endpoint, status, count, retry_after, body)

    def delay_next(self, endpoint: str, seconds: float, count: int = 1) -> None:
        """Wait ``seconds`` before answering the next ``count`` requests to ``endpoint``."""
        self._faults.delay_next(endpoint, seconds, count)

    def drop_after_checkout(self, count: int = 1, mode: Literal["drop", "500"] = "drop") -> None:
        """Take (record) the next ``count`` valid checkouts, then close the connection
        without answering (``drop``) or answer 500 (``500``): the ambiguous cases."""
        self._faults.drop_after_checkout(count, mode)

    def fail_checkout_unrecorded(self, count: int = 1) -> None:
        """Answer the next ``count`` valid checkouts 500 without taking them: no
        purchase, processed order, subscription or asset order is left behind.

        Unlike ``fail_next("checkout", 500)`` the token and the order are checked
        first, and it queues with ``drop_after_checkout`` in the order programmed.
        """
        self._faults.fail_checkouts("unrecorded", count)

    def storm(self, rate: float, *, seed: int, slow: float = 1.0) -> None:
        """Fail each later request with probability ``rate``, at random but reproducibly
        (``seed``): 429 or 503 without acting on it, an answer ``slow`` seconds late,
        and for a valid checkout also taken-then-500, taken-then-dropped, or 500
        without being taken. ``storm(0, seed=...)`` ends it; ``faults_injected`` counts."""
        self._faults.storm(rate, seed, slow)

    @property
    def faults_injected(self) -> dict[str, int]:
        """How many faults ``storm`` injected, by "endpoint fault" (e.g. "verify 429")."""
        with self._ledger.lock:
            return dict(self._faults.injected)

    def hold_checkouts(self, seconds: float) -> None:
        """Record each valid checkout, then wait ``seconds`` before answering (0 ends it)."""
        self._faults.hold_checkouts(seconds)

    def add_order_error(self, code: int, description: str, count: int = 1) -> None:
        """Add an order-level error to the next ``count`` verify answers."""
        self._faults.add_order_error(code, description, count)

    def expire_tokens(self) -> None:
        """Make every issued token invalid (the next API call gets 401)."""
        self._ledger.expire_tokens()


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
