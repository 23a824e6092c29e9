"""A change a person makes by hand in the Cloud-iQ portal: ``PortalChanges`` (the
``Simulator``'s ``portal_*`` methods) and ``POST /_admin/portal`` (the same over HTTP).

The real API has no such path; the simulator offers it so that a demo or a test
in another process can add, resize or cancel subscriptions, or list a purchase
that failed, without a checkout. It takes no token and no faults (``server``
routes it before both), keeps nothing itself (the ``SimulatedCloud`` does) and
must not import ``reconciler.api`` or ``reconciler.model``.
"""

from __future__ import annotations

from typing import Any

from reconciler.simulator.cloud import SimulatedCloud, UnknownSubscription
from reconciler.simulator.subscriptions import SubscriptionRecord, subscription_item
from reconciler.simulator.wire import Reply, error_body, parse_json

#: The error a failed portal order carries unless another is given.
FAILED_ORDER_ERROR = "The purchase could not be completed."


class PortalChanges:
    """The ``Simulator``'s portal methods (a mixin): each only asks the simulated cloud."""

    # Set by ``Simulator.__init__``.
    _cloud: SimulatedCloud

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
        return self._cloud.portal_add(
            tenant, product, quantity, billing_cycle, term_duration, record_order
        ).id

    def portal_failed_order(
        self,
        tenant: int,
        product: str,
        quantity: int,
        *,
        billing_cycle: int | str = "monthly",
        term_duration: str = "P1M",
        error: str = FAILED_ORDER_ERROR,
    ) -> int:
        """A purchase a person tried in the portal that failed: a processed order of
        ``product`` ("productId:skuId") in state Failed with ``error``, created now, and
        nothing bought (no subscription, checkout or asset order); returns its order
        reference. Raises ValueError for an unknown tenant or product."""
        return self._cloud.portal_failed_order(
            tenant, product, quantity, billing_cycle, term_duration, error
        ).reference

    def portal_set_quantity(self, subscription_id: int, quantity: int) -> None:
        """Change an active subscription's seats (an increase adds seats at the simulated
        now, a decrease takes the newest first; the portal does not check the window);
        raises LookupError for an unknown id."""
        self._cloud.portal_set_quantity(subscription_id, quantity)

    def portal_cancel(self, subscription_id: int) -> None:
        """Cancel a subscription (status 8, CustomerCancellation); its seats no longer count."""
        self._cloud.portal_cancel(subscription_id)


def portal_reply(cloud: SimulatedCloud, raw: bytes) -> Reply:
    """``POST /_admin/portal``: a change made by hand in the Cloud-iQ portal.

    ``{"action": "add", "customerTenantId": 111111, "product": "CFQ7TTC0LF8R:0010",
    "quantity": 5, "billingCycle": "monthly", "termDuration": "P1M",
    "recordOrder": true}`` (the last three optional, as shown) adds a subscription
    and, unless ``recordOrder`` is false, a processed order for it;
    ``{"action": "set-quantity", "subscriptionId": N, "quantity": M}`` changes its
    seats (an increase adds seats at the simulated now, a decrease takes the
    newest first, without the cancellation window's check);
    ``{"action": "cancel", "subscriptionId": N}`` cancels it. Answers 200
    with ``{"subscription": <as the subscriptions list shows it>}``, 400 for a bad
    request, 404 for an unknown subscription.
    ``{"action": "failed-order", "customerTenantId": 111111, "product": ...,
    "quantity": 5, "billingCycle": "monthly", "termDuration": "P1M", "error": "..."}``
    (the last three optional) lists a processed order in state Failed and buys
    nothing; it answers 200 with ``{"orderReferenceId": N}``. No token, no faults,
    no checkout.
    """
    request = parse_json(raw)
    action = request.get("action") if isinstance(request, dict) else None
    if not isinstance(action, str) or action not in _FIELDS:
        raise Reply(400, error_body(400, f"action must be one of {', '.join(_FIELDS)}"))
    unknown = sorted(set(request) - _FIELDS[action])
    if unknown:
        raise Reply(400, error_body(400, f"unknown field(s) for {action}: {', '.join(unknown)}"))
    try:
        if action == "failed-order":
            return Reply(200, {"orderReferenceId": _failed_order(cloud, request)})
        subscription = _change(cloud, action, request)
    except UnknownSubscription as error:
        raise Reply(404, error_body(404, str(error))) from None
    except ValueError as error:
        raise Reply(400, error_body(400, str(error))) from None
    return Reply(200, {"subscription": subscription_item(subscription)})


_FIELDS = {
    "add": {"action", "customerTenantId", "product", "quantity"}
    | {"billingCycle", "termDuration", "recordOrder"},
    "set-quantity": {"action", "subscriptionId", "quantity"},
    "cancel": {"action", "subscriptionId"},
    "failed-order": {"action", "customerTenantId", "product", "quantity"}
    | {"billingCycle", "termDuration", "error"},
}


def _change(cloud: SimulatedCloud, action: str, request: Any) -> SubscriptionRecord:
    if action == "add":
        record_order = request.get("recordOrder", True)
        if not isinstance(record_order, bool):
            raise ValueError("recordOrder must be true or false")
        return cloud.portal_add(*_ordered(request), record_order)
    if action == "set-quantity":
        return cloud.portal_set_quantity(request.get("subscriptionId"), request.get("quantity"))
    return cloud.portal_cancel(request.get("subscriptionId"))


def _failed_order(cloud: SimulatedCloud, request: Any) -> int:
    error = request.get("error", FAILED_ORDER_ERROR)
    if not isinstance(error, str):
        raise ValueError("error must be text")
    return cloud.portal_failed_order(*_ordered(request), error).reference


def _ordered(request: Any) -> tuple[Any, Any, Any, Any, Any]:
    """What a person orders in the portal: tenant, product, quantity, billing cycle
    (monthly unless said) and term (P1M unless said), checked by the cloud."""
    return (
        request.get("customerTenantId"),
        request.get("product"),
        request.get("quantity"),
        request.get("billingCycle", "monthly"),
        request.get("termDuration", "P1M"),
    )
