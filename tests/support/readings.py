"""Builders of what the API's reads give: subscriptions, processed orders, asset orders.

The records ``reconciler.api`` parses from Cloud-iQ's answers, built by hand for the
tests of what is observed from them; no HTTP.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from reconciler.api.records import AssetOrder, AssetOrderLine, ProcessedOrder, Subscription
from reconciler.model import Identity
from tests.support.records import BASIC
from tests.support.times import AT


def subscription(
    id_: int,
    identity: Identity,
    quantity: int,
    *,
    status: str = "active",
    name: str = "Basic",
    created: datetime | None = None,
    auto_renew: bool | None = None,
    end: datetime | None = None,
) -> Subscription:
    """A subscription of ``identity`` holding ``quantity`` seats (created at ``created``)."""
    return Subscription(
        id=id_,
        customer_tenant_id=identity.customer_tenant_id,
        product_id=identity.product_id,
        sku_id=identity.sku_id,
        part_number=identity.product,
        name=name,
        product_name=name,
        quantity=quantity,
        status=status,
        billing_cycle=identity.billing_cycle,
        term_duration=identity.term_duration,
        order_id=None,
        publisher_subscription_id=None,
        start_date=None,
        end_date=end,
        auto_renew=auto_renew,
        creation_date=created,
    )


def processed_order(
    reference: str,
    quantity: int,
    *,
    created: datetime | None = AT + timedelta(seconds=2),
    state: str = "succeeded",
    identity: Identity = BASIC,
    error: str | None = None,
) -> ProcessedOrder:
    """A processed order of ``identity``, by default created just after ``T0``."""
    return ProcessedOrder(
        order_reference_id=reference,
        customer_tenant_id=identity.customer_tenant_id,
        catalog_id=f"{identity.product}:X",
        product_id=identity.product_id,
        sku_id=identity.sku_id,
        name="Basic",
        quantity=quantity,
        billing_cycle=identity.billing_cycle,
        term_duration=identity.term_duration,
        created=created,
        order_state=state,
        error=error,
    )


def asset_order(order_id: str, quantity: int, *, errors: tuple[str, ...] = ()) -> AssetOrder:
    """The asset order the API keeps under the ``externalOrderId`` ``order_id`` (``BASIC``)."""
    line = AssetOrderLine(BASIC.product_id, BASIC.sku_id, quantity, "monthly", "P1M", None, None)
    return AssetOrder(order_id, BASIC.customer_tenant_id, (line,), errors)
