"""``FaultInjection``: the failures a test programs into the simulated API, and lists
that lag behind what happened.

A mixin of ``Simulator``: each method only queues work for ``Faults`` (or
expires the simulated cloud's tokens); ``server`` applies it to the next requests.
It adds no behaviour beyond what ``Faults`` does and must not import
``reconciler.api`` or ``reconciler.model``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from reconciler.simulator.cloud import SimulatedCloud
from reconciler.simulator.faults import Faults, UpdateFault


class FaultInjection:
    """Error statuses, garbled answers, delays, drops, storms, held checkouts, order
    errors, expired tokens."""

    # Set by ``Simulator.__init__``; the cloud's lock also guards the faults.
    _cloud: SimulatedCloud
    _faults: Faults

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

    def garble_next(self, endpoint: str, status: int = 200, count: int = 1) -> None:
        """Answer the next ``count`` requests to ``endpoint`` with ``status`` and a body
        that is not JSON (cut off in the middle), without acting on them; queued with
        ``fail_next`` in the order programmed."""
        self._faults.garble_next(endpoint, status, count)

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

    def fail_updates(self, fault: UpdateFault, count: int = 1) -> None:
        """End the next ``count`` valid updates (PUT of a subscription) with ``fault``:
        ``"500"`` applies the change then answers 500, ``"drop"`` applies it then closes
        the connection without an answer (both ambiguous to a client), ``"unapplied"``
        answers 500 without applying it. An invalid update is refused as usual."""
        self._faults.fail_updates(fault, count)

    def drop_after_update(self, count: int = 1, mode: Literal["drop", "500"] = "drop") -> None:
        """Apply the next ``count`` valid updates, then drop the connection or answer 500."""
        if mode not in ("drop", "500"):
            raise ValueError(f"mode must be 'drop' or '500', not {mode!r}")
        self._faults.fail_updates(mode, count)

    def storm(self, rate: float, *, seed: int, slow: float = 1.0) -> None:
        """Fail each later request with probability ``rate``, at random but reproducibly
        (``seed``): 429 or 503 without acting on it, an answer ``slow`` seconds late,
        and for a valid checkout or update also taken-then-500, taken-then-dropped,
        or 500 without being taken. ``storm(0, seed=...)`` ends it; ``faults_injected`` counts."""
        self._faults.storm(rate, seed, slow)

    @property
    def faults_injected(self) -> dict[str, int]:
        """How many faults ``storm`` injected, by "endpoint fault" (e.g. "verify 429")."""
        with self._cloud.lock:
            return dict(self._faults.injected)

    def hold_checkouts(self, seconds: float) -> None:
        """Record each valid checkout, then wait ``seconds`` before answering (0 ends it)."""
        self._faults.hold_checkouts(seconds)

    def add_order_error(self, code: int, description: str, count: int = 1) -> None:
        """Add an order-level error to the next ``count`` verify answers."""
        self._faults.add_order_error(code, description, count)

    def expire_tokens(self) -> None:
        """Make every issued token invalid (the next API call gets 401)."""
        self._cloud.tokens.expire()

    # ----------------------------------------------------------------- lagging lists
    # The real API lists a new subscription some time after the checkout's 204; the
    # lists may lag here too, on the simulated clock. GET of one subscription by id
    # does not lag.

    def lag_listing(self, listing: str, seconds: float) -> None:
        """List a new record of ``listing`` ("subscriptions", "asset-orders" or "orders")
        only once the simulated clock is ``seconds`` past its creation (its checkout,
        portal purchase or order); ``math.inf`` hides the whole list, 0 (the default)
        lists everything at once. Records created before keep to the same rule."""
        self._cloud.lags.set(listing, seconds)

    def hide_subscriptions(self, hidden: bool = True) -> None:
        """Hide every subscription from the subscriptions list (``False`` shows them all
        again): ``lag_listing("subscriptions", math.inf)`` or 0."""
        self._cloud.lags.set("subscriptions", math.inf if hidden else 0.0)

    def hide_asset_orders(self, hidden: bool = True) -> None:
        """Hide every asset order from the asset-orders list (``False`` shows them again)."""
        self._cloud.lags.set("asset-orders", math.inf if hidden else 0.0)
