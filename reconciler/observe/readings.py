"""What the caller read from the API, and the key seats are compared by.

Holds data only: it must not read the API, compare anything or decide what a
reading proves (``drift`` and ``evidence`` do).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from reconciler.api.records import AssetOrder, ProcessedOrder, Subscription
from reconciler.model import Identity

#: (tenant, product id, sku id, billing cycle, term): an identity without its type.
SeatKey = tuple[int, str, str, str, str]


def seat_key(identity: Identity) -> SeatKey:
    return (
        identity.customer_tenant_id,
        identity.product_id,
        identity.sku_id,
        identity.billing_cycle,
        identity.term_duration,
    )


def subscription_key(subscription: Subscription) -> SeatKey:
    return (
        subscription.customer_tenant_id,
        subscription.product_id,
        subscription.sku_id,
        subscription.billing_cycle,
        subscription.term_duration or "",
    )


@dataclass(frozen=True)
class Readings:
    """What was read from the API.

    ``subscriptions`` holds the active subscriptions of every tenant read (a
    tenant read with none maps to an empty list); ``processed_orders`` the order
    lines of the tenants with pending entries; ``asset_orders`` the asset orders
    found for each pending entry's externalOrderId.
    """

    subscriptions: Mapping[int, Sequence[Subscription]]
    processed_orders: Mapping[int, Sequence[ProcessedOrder]] = field(default_factory=dict)
    asset_orders: Mapping[str, Sequence[AssetOrder]] = field(default_factory=dict)
