"""What the simulator's read endpoints answer: its records and the JSON items made from them.

``OrderRecord`` (one processed-order line) is what the simulated cloud keeps for
every accepted checkout line and every portal purchase, beside a subscription
(``subscriptions.SubscriptionRecord``: one per checkout line, as new commerce
makes one per order). The functions here turn them, the recorded checkouts and
the catalogue into the items of the processed-orders, subscriptions,
asset-orders and agreement-products lists: PascalCase for the first two, as
Crayon's examples show them, camelCase for the others, with the fields and
types of the published document where it has the endpoint. Pure: no state, no
HTTP, and no import of ``reconciler.api`` or ``reconciler.model``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from reconciler.simulator.catalog import CatalogItem
from reconciler.simulator.orders import ASSET_LINE_FIELDS, ASSET_ORDER_FIELDS, RecordedCheckout
from reconciler.simulator.subscriptions import (
    SubscriptionRecord,
    new_subscription,
    subscription_item,
)

#: BillingCycleType (orders) -> its name.
CYCLE_NAMES: Final = {1: "Monthly", 2: "Annual", 3: "None", 4: "OneTime", 5: "Triennial"}
#: Product variant ids of the agreement products: this plus the catalogue position.
_FIRST_VARIANT_ID: Final = 2_600_001


@dataclass(frozen=True)
class OrderRecord:
    """One line of a processed order: an accepted checkout line or a portal purchase."""

    reference: int
    tenant: int
    product_id: str
    sku_id: str
    catalog_item_id: str
    name: str
    quantity: int
    billing_cycle: int
    term_duration: str
    created: str
    email: str | None = None
    state: str = "Succeeded"
    error: str | None = None

    @property
    def product(self) -> str:
        return f"{self.product_id}:{self.sku_id}"


def checkout_listing_records(
    lines: Iterable[RecordedCheckout], catalog: Mapping[str, CatalogItem], when: datetime
) -> tuple[list[OrderRecord], list[SubscriptionRecord]]:
    """The processed-order lines and the subscriptions (one per line, each with the
    line's ``subscription_id``) a checkout taken at ``when`` leaves."""
    orders, subscriptions = [], []
    for line in lines:
        if line.subscription_id is None:
            raise ValueError("a checkout line without its subscription id")
        item = catalog.get(line.product)
        name = item.name if item else line.product
        email = line.body.get("notificationEmail")
        orders.append(
            OrderRecord(
                reference=line.order_reference_id,
                tenant=line.tenant,
                product_id=line.product_id,
                sku_id=line.sku_id,
                catalog_item_id=line.catalog_item_id,
                name=name,
                quantity=line.quantity,
                billing_cycle=line.billing_cycle,
                term_duration=line.term_duration,
                created=line.time,
                email=email if isinstance(email, str) else None,
            )
        )
        subscriptions.append(
            new_subscription(
                line.subscription_id,
                tenant=line.tenant,
                product_id=line.product_id,
                sku_id=line.sku_id,
                catalog_item_id=line.catalog_item_id,
                name=name,
                quantity=line.quantity,
                billing_cycle=line.billing_cycle,
                term_duration=line.term_duration,
                created=when,
                order_reference=line.order_reference_id,
            )
        )
    return orders, subscriptions


# --------------------------------------------------------------------------- items


def order_items(orders: Sequence[OrderRecord], tenant: int) -> list[dict[str, Any]]:
    """The processed-orders list of ``tenant``: one PascalCase item per order line."""
    return [
        {
            "OrderReferenceId": o.reference,
            "CatalogId": o.catalog_item_id,
            "Name": o.name,
            "Quantity": o.quantity,
            "BillingCycle": CYCLE_NAMES.get(o.billing_cycle, "Unknown"),
            "TermDuration": o.term_duration,
            "EmailReceiver": o.email,
            "Created": o.created,
            "OrderState": o.state,
            "Error": o.error,
        }
        for o in orders
        if o.tenant == tenant
    ]


def subscription_items(
    subscriptions: Sequence[SubscriptionRecord],
    tenants: Iterable[int],
    statuses: int | None = None,
) -> list[dict[str, Any]]:
    """The subscriptions list of ``tenants``, those with a status flag in ``statuses`` if given."""
    wanted = set(tenants)
    return [
        subscription_item(s)
        for s in subscriptions
        if s.tenant in wanted and (statuses is None or s.status & statuses)
    ]


def asset_order_items(
    checkouts: Sequence[RecordedCheckout],
    tenants: Iterable[int],
    external_order_id: str | None = None,
) -> list[dict[str, Any]]:
    """The asset orders of ``tenants``: each accepted checkout's order as it was checked
    out, with only AssetOrder's fields, each line naming the subscription it created
    (``subscriptionId``; assumed of the real API, which documents the field).

    ``external_order_id`` keeps only the orders with exactly that externalOrderId.
    """
    wanted = set(tenants)
    lines: dict[int, list[RecordedCheckout]] = {}
    for c in checkouts:
        if c.tenant in wanted and (
            external_order_id is None or c.external_order_id == external_order_id
        ):
            lines.setdefault(c.order_reference_id, []).append(c)
    items = []
    for order_lines in lines.values():
        body = order_lines[0].body
        item = {k: copy.deepcopy(v) for k, v in body.items() if k in ASSET_ORDER_FIELDS}
        item["orderLines"] = [
            {k: copy.deepcopy(v) for k, v in line.items() if k in ASSET_LINE_FIELDS}
            | {"subscriptionId": c.subscription_id}
            for line, c in zip(body["orderLines"], order_lines, strict=True)
        ]
        items.append(item)
    return items


def agreement_product_items(
    catalog: Sequence[CatalogItem], search: str | None = None
) -> list[dict[str, Any]]:
    """The agreement products: every catalogue item (those matching ``search``, if given)."""
    wanted = (search or "").casefold()
    items = []
    for position, item in enumerate(catalog):
        haystack = f"{item.name} {item.key} {item.catalog_item_id}".casefold()
        if wanted and wanted not in haystack:
            continue
        price = (
            None
            if item.price is None
            else {"value": float(item.price), "currencyCode": item.currency}
        )
        items.append(
            {
                "name": item.name,
                "productVariant": {
                    "id": _FIRST_VARIANT_ID + position,
                    "partNumber": item.key,
                    "productName": item.name,
                    "minimumQuantity": 1,
                },
                "salesPrice": price,
                "recommendedRetailPrice": price,
                "minimumQuantity": 1,
                "maximumQuantity": item.max_quantity,
                "priceListName": "Simulator",
            }
        )
    return items
