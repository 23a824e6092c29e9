"""The records the read endpoints' items become, and the role that reads them.

    Price, Subscription, SubscriptionDetail, ProcessedOrder, AssetOrder(Line),
    CatalogEntry, ApiReader

Frozen records only: this module must not import ``requests``, parse JSON or
do I/O (``reads`` parses, ``client`` fetches).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol


@dataclass(frozen=True)
class Price:
    """An amount of money as the API gave it; never a float."""

    value: Decimal
    currency: str

    def __str__(self) -> str:
        return f"{self.value} {self.currency}".rstrip()


@dataclass(frozen=True)
class Subscription:
    """One subscription of a customer tenant.

    ``billing_cycle`` is one of our names ("monthly", "annual", "none",
    "one-time", "triennial") or a name no declaration has (see
    ``reads.SUBSCRIPTION_BILLING_CYCLES``); ``status`` one of ``SUBSCRIPTION_STATUSES``'
    names or "status-N" for a value no source documents. Only ``active``
    subscriptions hold seats.
    """

    id: int
    customer_tenant_id: int
    product_id: str
    sku_id: str
    part_number: str
    name: str
    product_name: str
    quantity: int
    status: str
    billing_cycle: str
    term_duration: str | None
    order_id: str | None
    publisher_subscription_id: str | None
    start_date: datetime | None
    end_date: datetime | None
    auto_renew: bool | None
    creation_date: datetime | None = None
    commitment_end_date: datetime | None = None

    @property
    def active(self) -> bool:
        return self.status == "active"

    @property
    def product(self) -> str:
        """ "productId:skuId", as the simulator and the orders write it."""
        return f"{self.product_id}:{self.sku_id}"


@dataclass(frozen=True)
class SubscriptionDetail:
    """One subscription as ``GET /subscriptions/{id}`` answers it (``SubscriptionDetailed``).

    ``subscription`` holds the fields the reconciler reads; ``body`` is the JSON
    object exactly as read (every field, its own key casing), so an update sends it
    back whole with only the fields it changes.
    """

    subscription: Subscription
    body: Mapping[str, Any]

    @property
    def id(self) -> int:
        return self.subscription.id

    @property
    def quantity(self) -> int:
        return self.subscription.quantity

    @property
    def active(self) -> bool:
        return self.subscription.active

    @property
    def status(self) -> str:
        return self.subscription.status

    @property
    def auto_renew(self) -> bool | None:
        return self.subscription.auto_renew


@dataclass(frozen=True)
class ProcessedOrder:
    """One line of a processed purchase order (``OrderReferenceId`` repeats across lines).

    ``order_state`` is "succeeded", "failed", "processing", "none", the API's own
    word casefolded when it is another, or "unknown" when absent.
    """

    order_reference_id: str
    customer_tenant_id: int
    catalog_id: str
    product_id: str
    sku_id: str
    name: str
    quantity: int
    billing_cycle: str | None
    term_duration: str | None
    created: datetime | None
    order_state: str
    error: str | None

    @property
    def succeeded(self) -> bool:
        return self.order_state == "succeeded"

    @property
    def failed(self) -> bool:
        return self.order_state == "failed"

    @property
    def product(self) -> str:
        return f"{self.product_id}:{self.sku_id}"


@dataclass(frozen=True)
class AssetOrderLine:
    """One line of an asset order; ``type`` is "subscription", "software", "reservation"."""

    product_id: str
    sku_id: str
    quantity: int
    billing_cycle: str | None
    term_duration: str | None
    type: str | None
    catalog_item_id: str | None
    #: The subscription the line made or changed, when the API says so.
    subscription_id: int | None = None

    @property
    def product(self) -> str:
        return f"{self.product_id}:{self.sku_id}"


@dataclass(frozen=True)
class AssetOrder:
    """An order the API took, found by the ``externalOrderId`` we sent with it.

    ``errors`` holds the descriptions of the order's and its lines' errors; an
    order with errors proves nothing was bought. ``external_order_id`` is None for
    an order placed without one (``find_asset_orders`` never returns such).
    """

    external_order_id: str | None
    customer_tenant_id: int
    lines: tuple[AssetOrderLine, ...]
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class CatalogEntry:
    """One agreement product: a product:sku's name and unit price for a customer.

    ``sales_price`` is None when the API gave none: an unknown price, never 0.
    """

    product_id: str
    sku_id: str
    part_number: str
    product_variant_id: int | None
    name: str
    product_name: str
    sales_price: Price | None
    recommended_retail_price: Price | None
    minimum_quantity: int | None
    maximum_quantity: int | None

    @property
    def product(self) -> str:
        return f"{self.product_id}:{self.sku_id}"


class ApiReader(Protocol):
    """The read calls refresh, import and ``plan --refresh`` need.

    ``reconciler.api.client.CrayonClient`` is one; each reads every page and
    raises ``ApiError`` when a call fails or an item cannot be read.
    """

    def read_subscriptions(
        self, customer_tenant_id: int, *, statuses: int | None = None
    ) -> list[Subscription]: ...

    def read_processed_orders(self, customer_tenant_id: int) -> list[ProcessedOrder]: ...

    def find_asset_orders(
        self, customer_tenant_id: int, external_order_id: str
    ) -> list[AssetOrder]: ...

    def read_agreement_products(
        self, customer_tenant_id: int, search: str | None = None
    ) -> list[CatalogEntry]: ...
