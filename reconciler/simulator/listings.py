"""What the simulator's read endpoints answer: its records and the JSON items made from them.

``OrderRecord`` (one processed-order line) and ``SubscriptionRecord`` are what
the ledger keeps for every accepted checkout line (one subscription per line,
as NCE makes one per order) and for every portal purchase; the functions here
turn them, the recorded checkouts and the catalogue into the items of the
processed-orders, subscriptions, asset-orders and agreement-products lists,
in the casing ``crayon-api.md`` shows for each (PascalCase for the first two,
camelCase for the others). Pure: no state, no HTTP, and no import of
``reconciler.api`` or ``reconciler.model``.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from reconciler.simulator.catalog import CatalogItem
from reconciler.simulator.orders import RecordedCheckout

#: SubscriptionStatus flags the simulator sets.
STATUS_ACTIVE: Final = 1
STATUS_CANCELLED: Final = 128
#: BillingCycleType (orders) -> its name, and -> BillingCycleEnum (subscriptions).
CYCLE_NAMES: Final = {1: "Monthly", 2: "Annual", 3: "None", 4: "OneTime", 5: "Triennial"}
CYCLE_TO_SUBSCRIPTION: Final = {1: 1, 2: 2, 3: 3, 4: 4, 5: 8}
_TERM_MONTHS: Final = {"P1M": 1, "P1Y": 12, "P3Y": 36}
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


@dataclass(frozen=True)
class SubscriptionRecord:
    """One subscription; ``billing_cycle`` is the order's BillingCycleType it was bought with.

    ``order_reference`` is None for a subscription added in the portal without an order.
    """

    id: int
    tenant: int
    product_id: str
    sku_id: str
    catalog_item_id: str
    name: str
    quantity: int
    billing_cycle: int
    term_duration: str
    start: str
    order_reference: int | None
    status: int = STATUS_ACTIVE

    @property
    def product(self) -> str:
        return f"{self.product_id}:{self.sku_id}"

    @property
    def active(self) -> bool:
        return self.status == STATUS_ACTIVE


def checkout_listing_records(
    lines: Iterable[RecordedCheckout],
    catalog: Mapping[str, CatalogItem],
    subscription_ids: Iterable[int],
) -> tuple[list[OrderRecord], list[SubscriptionRecord]]:
    """The processed-order lines and the subscriptions (one per line) a checkout leaves."""
    orders, subscriptions = [], []
    for line, subscription_id in zip(lines, subscription_ids, strict=False):
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
            SubscriptionRecord(
                id=subscription_id,
                tenant=line.tenant,
                product_id=line.product_id,
                sku_id=line.sku_id,
                catalog_item_id=line.catalog_item_id,
                name=name,
                quantity=line.quantity,
                billing_cycle=line.billing_cycle,
                term_duration=line.term_duration,
                start=line.time,
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
    subscriptions: Sequence[SubscriptionRecord], tenant: int, statuses: int | None = None
) -> list[dict[str, Any]]:
    """The subscriptions list of ``tenant``, those with a status flag in ``statuses`` if given."""
    return [
        subscription_item(s)
        for s in subscriptions
        if s.tenant == tenant and (statuses is None or s.status & statuses)
    ]


def subscription_item(s: SubscriptionRecord) -> dict[str, Any]:
    """One subscription as the subscriptions list shows it."""
    start = datetime.fromisoformat(s.start.replace("Z", "+00:00"))
    months = _TERM_MONTHS.get(s.term_duration, 1)
    year, month = divmod(start.month - 1 + months, 12)
    end = start.replace(year=start.year + year, month=month + 1, day=min(start.day, 28))
    return {
        "Id": s.id,
        "PublisherSubscriptionId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"subscription:{s.id}")),
        "CustomerTenant": {"Id": s.tenant},
        "Product": {"Id": s.catalog_item_id, "PartNumber": s.product, "ItemName": s.name},
        "PartNumber": s.product,
        "Name": s.name,
        "Quantity": s.quantity,
        "Status": s.status,
        "BillingCycle": CYCLE_TO_SUBSCRIPTION.get(s.billing_cycle, 0),
        "TermDuration": s.term_duration,
        "OrderId": s.order_reference,
        "StartDate": s.start,
        "EndDate": end.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "AutoRenewEnabled": s.active,
    }


def asset_order_items(
    checkouts: Sequence[RecordedCheckout], tenant: int, external_order_id: str | None = None
) -> list[dict[str, Any]]:
    """The asset orders of ``tenant``: each accepted checkout's order as it was checked out.

    ``external_order_id`` keeps only the orders with exactly that externalOrderId.
    """
    items = []
    seen: set[int] = set()
    for c in checkouts:
        if c.tenant != tenant or c.order_reference_id in seen:
            continue
        seen.add(c.order_reference_id)
        if external_order_id is None or c.external_order_id == external_order_id:
            items.append(copy.deepcopy(dict(c.body)))
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
