"""What the caller read from the API, and the key seats are compared by.

Holds data only: it must not read the API, compare anything or decide what a
reading proves (``evidence``, ``ownership`` and ``cloud`` do).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

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
    """What was read from the API, and when.

    ``subscriptions`` holds the subscriptions of every tenant read, in every
    status (a tenant read with none maps to an empty list); ``processed_orders``
    the order lines of the tenants with pending entries; ``asset_orders`` the
    asset orders found per externalOrderId. ``unreadable`` names, per tenant, the
    subscription items that could not be read (so the tenant's seats are not
    fully known). ``now`` is the time of the read on the API's clock when known
    (the local clock corrected by ``clock_skew``), and ``clock_skew`` how far the
    API's clock is ahead of ours (None: not measured).
    """

    subscriptions: Mapping[int, Sequence[Subscription]]
    processed_orders: Mapping[int, Sequence[ProcessedOrder]] = field(default_factory=dict)
    asset_orders: Mapping[str, Sequence[AssetOrder]] = field(default_factory=dict)
    unreadable: Mapping[int, Sequence[str]] = field(default_factory=dict)
    now: datetime | None = None
    clock_skew: timedelta | None = None
    #: Tenants the API refused to list (unknown, not this account's), with its reason.
    refused: Mapping[int, str] = field(default_factory=dict)
