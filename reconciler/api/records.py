"""What Cloud-iQ says: the wire records and the roles that read and change them.

    Price, Subscription, SubscriptionDetail, ProcessedOrder, AssetOrder(Line),
    CatalogEntry                      frozen records of the read endpoints' items
    Listing, UnreadableItem           a list read: its records and the items it skipped
    ApiReader, SubscriptionUpdater    the roles refresh, import, plan and apply code against

The JSON they are read from is read by ``reconciler.api.fields``. This module
must not import ``requests``, must do no I/O and must not decide how a failed
call counts (``failures`` does).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Protocol, TypeVar

_T = TypeVar("_T")

#: The subscription status flag of a subscription whose seats count.
STATUS_ACTIVE: Final = 1
#: The status a subscription is PUT with to cancel it (the documented way).
STATUS_SUSPENDED: Final = 2


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Price:
    """An amount of money as the API gave it; never a float."""

    value: Decimal
    currency: str

    def __str__(self) -> str:
        return f"{self.value} {self.currency}".rstrip()


@dataclass(frozen=True)
class Subscription:
    """One subscription of a customer tenant, as the subscriptions list shows it.

    ``billing_cycle`` is one of our names ("monthly", "annual", "none",
    "one-time", "triennial") or a name no declaration has (see
    ``items.SUBSCRIPTION_BILLING_CYCLES``); ``status`` one of
    ``items.SUBSCRIPTION_STATUSES``' names or "status-N" for a value no source
    documents. Only ``active`` subscriptions hold seats. The dates are those the
    API gave (None when absent); the list does not always carry
    ``commitment_end_date`` (``SubscriptionDetail`` does).
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
    """One subscription as ``GET /api/v1/subscriptions/{id}`` answers it.

    ``body`` is the answer's JSON object exactly as read (every field, its key
    casing kept), so that an update sends back every field it did not mean to
    change. The other fields are read from it as ``Subscription``'s are.
    """

    id: int
    customer_tenant_id: int
    product_id: str
    sku_id: str
    part_number: str
    name: str
    quantity: int
    status: str
    billing_cycle: str
    term_duration: str | None
    order_id: str | None
    auto_renew: bool | None
    creation_date: datetime | None
    start_date: datetime | None
    end_date: datetime | None
    commitment_end_date: datetime | None
    body: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def active(self) -> bool:
        return self.status == "active"

    @property
    def product(self) -> str:
        return f"{self.product_id}:{self.sku_id}"


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
    """One line of an asset order; ``type`` is "subscription", "software", "reservation".

    ``subscription_id`` is the subscription the line created, when the API says.
    """

    product_id: str
    sku_id: str
    quantity: int
    billing_cycle: str | None
    term_duration: str | None
    type: str | None
    catalog_item_id: str | None
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

    ``sales_price`` is None when the API gave none or gave one that could not be
    read: an unknown price, never 0.
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


@dataclass(frozen=True)
class UnreadableItem:
    """A list item that could not be read whole, named by its place and its id.

    ``position`` counts from 0 over the whole list (every page). ``item_id``,
    ``customer_tenant_id`` and ``product`` ("productId:skuId") are what could be
    read of it, None where even that failed: a caller that must not assume seats
    away treats every purchase the item may be of as unknown.
    """

    position: int
    problem: str
    item_id: str | None = None
    customer_tenant_id: int | None = None
    product: str | None = None

    def __str__(self) -> str:
        name = f"item {self.position}"
        if self.item_id is not None:
            name += f" (id {self.item_id})"
        return f"{name}: {self.problem}"


class Listing(list[_T]):
    """The records of a list the API answered, and the items it could not read.

    A list (so code that only iterates keeps working) with ``unreadable``: every
    item that was skipped or read only in part, each named. ``complete`` is true
    when there is none.
    """

    def __init__(self, records: Iterable[_T] = (), unreadable: Iterable[UnreadableItem] = ()):
        super().__init__(records)
        self.unreadable: tuple[UnreadableItem, ...] = tuple(unreadable)

    @property
    def complete(self) -> bool:
        return not self.unreadable

    @property
    def warnings(self) -> tuple[str, ...]:
        """One line per unreadable item, for a person."""
        return tuple(str(item) for item in self.unreadable)

    def add(self, other: Listing[_T]) -> None:
        """Append ``other``'s records and unreadable items."""
        self.extend(other)
        self.unreadable += other.unreadable


# --------------------------------------------------------------------------- roles


class ApiReader(Protocol):
    """The read calls refresh, import and ``plan --refresh`` need.

    ``reconciler.api.client.CrayonClient`` is one; each reads every page and
    raises ``ApiError`` when a call fails. An item that cannot be read raises
    too, unless ``skip_unreadable`` is true: then it is left out and named in
    the result's ``unreadable``, and the caller must treat every purchase it may
    be of as unknown (never as "no seats"). Agreement products always skip such
    items (a product whose price cannot be read keeps its name, price unknown).
    """

    def read_subscriptions(
        self,
        customer_tenant_id: int,
        *,
        statuses: int | None = None,
        skip_unreadable: bool = False,
    ) -> Listing[Subscription]: ...

    def read_processed_orders(
        self, customer_tenant_id: int, *, skip_unreadable: bool = False
    ) -> Listing[ProcessedOrder]: ...

    def find_asset_orders(
        self, customer_tenant_id: int, external_order_id: str, *, skip_unreadable: bool = False
    ) -> Listing[AssetOrder]: ...

    def read_agreement_products(
        self, customer_tenant_id: int, search: str | None = None
    ) -> Listing[CatalogEntry]: ...


class SubscriptionUpdater(Protocol):
    """Reading one subscription and changing it (``CrayonClient`` is one).

    ``get_subscription`` is a read, retried like every read.
    ``update_subscription`` PUTs ``current.body`` with only the given fields
    changed and returns the record the API answered. Its failures: RETRYABLE (and
    already retried) when the request provably never reached the server or got
    429; DEFINITIVE with ``ApiError.refused`` for 400, 403, 404, 409 and 422;
    DEFINITIVE for a 401 that a fresh token did not cure; AMBIGUOUS, never
    repeated, for a timeout after sending, a dropped connection, a 5xx or an
    answer that cannot be read: read the subscription again to learn whether it
    changed (the quantity is absolute, so sending the same change twice is safe,
    but whether to is the caller's decision). ``cancel_subscription`` is an
    update to Suspended with the quantity unchanged.
    """

    def get_subscription(self, subscription_id: int) -> SubscriptionDetail: ...

    def update_subscription(
        self,
        current: SubscriptionDetail,
        *,
        quantity: int | None = None,
        auto_renew: bool | None = None,
        status: int | None = None,
    ) -> SubscriptionDetail: ...

    def cancel_subscription(self, current: SubscriptionDetail) -> SubscriptionDetail: ...
