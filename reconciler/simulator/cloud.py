"""The simulator's memory: catalogue, tenants, clock, tokens, verified orders, checkouts,
processed orders, subscriptions, traffic.

``SimulatedCloud`` is the one place the simulated API keeps what happened,
guarded by one re-entrant lock that the fault queues share (a checkout's record
and the fault it triggers are taken in one step). Every accepted checkout line
leaves a processed-order line and its own subscription (its asset order line
names that subscription); ``update_subscription`` applies a PUT under the
cancellation window's rules (``subscriptions``); the portal methods change
subscriptions the way a person in the Cloud-iQ portal would (add one, change its
seats, cancel it), without any checkout. Every time it records comes from its
``SimulatedClock``. It speaks no HTTP, keeps everything in memory, writes no file
and must not import ``reconciler.api`` or ``reconciler.model``.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from reconciler.simulator.catalog import CYCLE_BY_NAME, CatalogItem
from reconciler.simulator.clock import SimulatedClock, stamp
from reconciler.simulator.lags import ListLags
from reconciler.simulator.listings import OrderRecord, checkout_listing_records
from reconciler.simulator.orders import RecordedCheckout, checkout_records
from reconciler.simulator.subscriptions import (
    STATUS_CUSTOMER_CANCELLATION,
    SubscriptionRecord,
    check_quantity,
    new_subscription,
    update,
)
from reconciler.simulator.tokens import Tokens
from reconciler.simulator.wire import is_int

FIRST_SUBSCRIPTION_ID: Final = 500001


class UnknownSubscription(LookupError):
    """A change names a subscription the simulator does not have."""

    def __str__(self) -> str:
        return f"subscription {self.args[0]!r} was not found"


@dataclass(frozen=True)
class RecordedCall:
    """One HTTP request the simulator answered (or dropped: status 0)."""

    method: str
    path: str
    endpoint: str
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AppliedUpdate:
    """A PUT of a subscription the simulator applied: the subscription before and after
    (seats, status, renewal), whatever answer the client then got."""

    subscription_id: int
    before: tuple[int, int, bool]
    after: tuple[int, int, bool]
    time: str


@dataclass(frozen=True)
class RecordedRequest:
    """The JSON body of a verify, checkout or update request and of the answer to it."""

    endpoint: str
    path: str
    body: Any
    status: int
    response: Any = None


class SimulatedCloud:
    """What the simulated API knows and has done; every method is thread-safe."""

    def __init__(
        self, lock: threading.RLock, catalog: Sequence[CatalogItem], tenants: Iterable[int]
    ) -> None:
        #: Held by callers that must read or change the records and the faults in one step.
        self.lock = lock
        #: The simulated now: every date recorded, and the Date of every answer.
        self.clock = SimulatedClock()
        self._catalog = {i.key: i for i in catalog}
        self._tenants = set(tenants)
        #: The bearer tokens issued, under the same lock.
        self.tokens = Tokens(lock)
        self._verified: set[str] = set()
        self._verified_with_errors: set[str] = set()
        self._checkouts: list[RecordedCheckout] = []
        self._calls: list[RecordedCall] = []
        self._requests: list[RecordedRequest] = []
        self._references = itertools.count(1001)
        self._orders: list[OrderRecord] = []
        self._subscriptions: dict[int, SubscriptionRecord] = {}
        self._subscription_ids = itertools.count(FIRST_SUBSCRIPTION_ID)
        self._updates: list[AppliedUpdate] = []
        #: How far each list lags behind what happened (the list endpoints ask it).
        self.lags = ListLags(self.clock)

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
        """Take a verified order: each of its lines counts as bought from now on, and
        leaves a processed-order line and a subscription of its own."""
        with self.lock:
            when = self.clock.now()
            lines = checkout_records(order, next(self._references), stamp(when))
            ids = [next(self._subscription_ids) for _ in lines]
            lines = [
                dataclasses.replace(line, subscription_id=sid)
                for line, sid in zip(lines, ids, strict=True)
            ]
            self._checkouts.extend(lines)
            orders, subscriptions = checkout_listing_records(lines, self._catalog, when)
            self._orders.extend(orders)
            self._subscriptions.update((s.id, s) for s in subscriptions)

    @property
    def orders(self) -> list[OrderRecord]:
        """Every processed-order line, oldest first (a copy)."""
        with self.lock:
            return list(self._orders)

    @property
    def subscriptions(self) -> list[SubscriptionRecord]:
        """Every subscription, oldest first (a copy)."""
        with self.lock:
            return list(self._subscriptions.values())

    def subscription(self, subscription_id: int) -> SubscriptionRecord:
        """One subscription; raises ``UnknownSubscription``."""
        with self.lock:
            return self._subscription(subscription_id)

    def active_seats(self, tenant: int, product: str) -> int:
        """Seats of ``product`` ("productId:skuId") in ``tenant``'s active subscriptions."""
        with self.lock:
            return sum(
                s.quantity
                for s in self._subscriptions.values()
                if s.tenant == tenant and s.product == product and s.active
            )

    def update_subscription(self, subscription_id: int, body: Any) -> SubscriptionRecord:
        """Apply a PUT of ``body`` (``subscriptions.update``'s rules); raises
        ``UnknownSubscription`` or the refusing ``Reply``."""
        with self.lock:
            current = self._subscription(subscription_id)
            now = self.clock.now()
            changed = update(current, subscription_id, body, now)
            self._subscriptions[subscription_id] = changed
            self._updates.append(
                AppliedUpdate(subscription_id, _held(current), _held(changed), stamp(now))
            )
            return changed

    @property
    def updates(self) -> list[AppliedUpdate]:
        """Every update (PUT) applied, oldest first (a copy)."""
        with self.lock:
            return list(self._updates)

    def check_update(self, subscription_id: int, body: Any) -> SubscriptionRecord:
        """What a PUT of ``body`` would make of the subscription, changing nothing."""
        with self.lock:
            return update(
                self._subscription(subscription_id), subscription_id, body, self.clock.now()
            )

    # ----------------------------------------------------------------- the portal

    def portal_add(
        self,
        tenant: int,
        product: str,
        quantity: int,
        billing_cycle: int | str,
        term_duration: str,
        record_order: bool,
    ) -> SubscriptionRecord:
        """A subscription bought by hand in the portal (and its processed order, if asked).

        Raises ValueError for an unknown tenant or product, a quantity below 1, or a
        term or billing cycle the catalogue does not offer for the product.
        """
        cycle = _cycle_code(billing_cycle)
        check_quantity(quantity)
        with self.lock:
            item = self._offered(tenant, product)
            if term_duration not in item.terms:
                raise ValueError(f"term {term_duration!r} is not offered for {product}")
            if cycle not in item.billing_cycles:
                raise ValueError(f"billing cycle {billing_cycle!r} is not offered for {product}")
            when = self.clock.now()
            reference = next(self._references) if record_order else None
            subscription = new_subscription(
                next(self._subscription_ids),
                tenant=tenant,
                product_id=item.product_id,
                sku_id=item.sku_id,
                catalog_item_id=item.catalog_item_id,
                name=item.name,
                quantity=quantity,
                billing_cycle=cycle,
                term_duration=term_duration,
                created=when,
                order_reference=reference,
            )
            self._subscriptions[subscription.id] = subscription
            if reference is not None:
                self._orders.append(
                    OrderRecord(
                        reference=reference,
                        tenant=tenant,
                        product_id=item.product_id,
                        sku_id=item.sku_id,
                        catalog_item_id=item.catalog_item_id,
                        name=item.name,
                        quantity=quantity,
                        billing_cycle=cycle,
                        term_duration=term_duration,
                        created=stamp(when),
                    )
                )
            return subscription

    def portal_failed_order(
        self,
        tenant: int,
        product: str,
        quantity: int,
        billing_cycle: int | str,
        term_duration: str,
        error: str,
    ) -> OrderRecord:
        """A purchase a person tried in the portal that failed: a processed order in
        state Failed with ``error``, and no subscription, checkout or asset order.

        Raises ValueError for an unknown tenant or product or a quantity below 1 (the
        term and billing cycle are not checked: a failed order may be of any).
        """
        cycle = _cycle_code(billing_cycle)
        check_quantity(quantity)
        with self.lock:
            item = self._offered(tenant, product)
            order = OrderRecord(
                reference=next(self._references),
                tenant=tenant,
                product_id=item.product_id,
                sku_id=item.sku_id,
                catalog_item_id=item.catalog_item_id,
                name=item.name,
                quantity=quantity,
                billing_cycle=cycle,
                term_duration=term_duration,
                created=stamp(self.clock.now()),
                state="Failed",
                error=error,
            )
            self._orders.append(order)
            return order

    def portal_set_quantity(self, subscription_id: int, quantity: int) -> SubscriptionRecord:
        """Change an active subscription's seats (no order, no checkout, no window check):
        an increase adds seats now, a decrease takes the newest first."""
        check_quantity(quantity)
        with self.lock:
            subscription = self._subscription(subscription_id)
            if not subscription.active:
                raise ValueError(f"subscription {subscription_id} is not active")
            changed = subscription.with_quantity(quantity, self.clock.now())
            self._subscriptions[subscription_id] = changed
            return changed

    def portal_cancel(self, subscription_id: int) -> SubscriptionRecord:
        """Cancel a subscription (status CustomerCancellation): its seats no longer count.
        Cancelling twice changes nothing; the portal does not check the window."""
        with self.lock:
            subscription = self._subscription(subscription_id)
            if not subscription.active:
                return subscription
            cancelled = dataclasses.replace(subscription, status=STATUS_CUSTOMER_CANCELLATION)
            self._subscriptions[subscription_id] = cancelled
            return cancelled

    def _offered(self, tenant: int, product: str) -> CatalogItem:
        """The catalogue item of ``product`` for ``tenant``, or ValueError."""
        if not (is_int(tenant) and tenant in self._tenants):
            raise ValueError(f"customer tenant {tenant!r} is not in the catalogue")
        item = self._catalog.get(product) if isinstance(product, str) else None
        if item is None:
            raise ValueError(f"product {product!r} is not in the catalogue")
        return item

    def _subscription(self, subscription_id: int) -> SubscriptionRecord:
        subscription = self._subscriptions.get(subscription_id) if is_int(subscription_id) else None
        if subscription is None:
            raise UnknownSubscription(subscription_id)
        return subscription

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
        """Forget tokens, verified orders, checkouts, orders, subscriptions, traffic and
        the lists' lags, and set the clock back to real time; keep the catalogue."""
        with self.lock:
            self.tokens.expire()
            self.clock.reset()
            self._verified.clear()
            self._verified_with_errors.clear()
            self._checkouts.clear()
            self._orders.clear()
            self._subscriptions.clear()
            self._updates.clear()
            self._calls.clear()
            self._requests.clear()
            self.lags.reset()


def _held(subscription: SubscriptionRecord) -> tuple[int, int, bool]:
    return (subscription.quantity, subscription.status, subscription.auto_renew)


def _cycle_code(billing_cycle: int | str) -> int:
    """A BillingCycleType given as its integer or as a catalogue name ("monthly")."""
    if is_int(billing_cycle):
        return int(billing_cycle)
    if isinstance(billing_cycle, str) and billing_cycle.casefold() in CYCLE_BY_NAME:
        return CYCLE_BY_NAME[billing_cycle.casefold()]
    raise ValueError(f"unknown billing cycle {billing_cycle!r}")
