"""``POST /_admin/portal``: a change a person makes by hand in the Cloud-iQ portal.

The real API has no such path; the simulator offers it so that a demo or a test
in another process can add, resize or cancel subscriptions without a checkout.
It takes no token and no faults (``server`` routes it before both), keeps
nothing itself (the ``SimulatedCloud`` does) and must not import ``reconciler.api`` or
``reconciler.model``.
"""

from __future__ import annotations

from reconciler.simulator.cloud import SimulatedCloud, UnknownSubscription
from reconciler.simulator.subscriptions import subscription_item
from reconciler.simulator.wire import Reply, error_body, parse_json


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
    fields = {
        "add": {"action", "customerTenantId", "product", "quantity"}
        | {"billingCycle", "termDuration", "recordOrder"},
        "set-quantity": {"action", "subscriptionId", "quantity"},
        "cancel": {"action", "subscriptionId"},
        "failed-order": {"action", "customerTenantId", "product", "quantity"}
        | {"billingCycle", "termDuration", "error"},
    }
    action = request.get("action") if isinstance(request, dict) else None
    if not isinstance(action, str) or action not in fields:
        raise Reply(400, error_body(400, f"action must be one of {', '.join(fields)}"))
    unknown = sorted(set(request) - fields[action])
    if unknown:
        raise Reply(400, error_body(400, f"unknown field(s) for {action}: {', '.join(unknown)}"))
    try:
        if action == "add":
            record_order = request.get("recordOrder", True)
            if not isinstance(record_order, bool):
                raise ValueError("recordOrder must be true or false")
            subscription = cloud.portal_add(
                request.get("customerTenantId"),
                request.get("product"),
                request.get("quantity"),
                request.get("billingCycle", "monthly"),
                request.get("termDuration", "P1M"),
                record_order,
            )
        elif action == "failed-order":
            error = request.get("error", "The purchase could not be completed.")
            if not isinstance(error, str):
                raise ValueError("error must be text")
            order = cloud.portal_failed_order(
                request.get("customerTenantId"),
                request.get("product"),
                request.get("quantity"),
                request.get("billingCycle", "monthly"),
                request.get("termDuration", "P1M"),
                error,
            )
            return Reply(200, {"orderReferenceId": order.reference})
        elif action == "set-quantity":
            subscription = cloud.portal_set_quantity(
                request.get("subscriptionId"), request.get("quantity")
            )
        else:
            subscription = cloud.portal_cancel(request.get("subscriptionId"))
    except UnknownSubscription as error:
        raise Reply(404, error_body(404, str(error))) from None
    except ValueError as error:
        raise Reply(400, error_body(400, str(error))) from None
    return Reply(200, {"subscription": subscription_item(subscription)})
