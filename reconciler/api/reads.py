"""What Cloud-iQ lists, read: the pure parse functions and the paged list reader.

    parse_subscription(s)       GET /api/v1/subscriptions/           -> Subscription
    parse_subscription_detail   GET /api/v1/subscriptions/{id}       -> SubscriptionDetail
    parse_processed_order(s)    GET /api/v1/purchaserequest/orders/  -> ProcessedOrder
    parse_asset_order(s)        GET /api/v1/assets/orders/           -> AssetOrder
    parse_agreement_product(s)  GET /api/v1/agreementproducts/       -> CatalogEntry
    ListReader                  every page of a list endpoint, within bounds, parsed

``parse_*`` are pure functions from the JSON the API answered to the records of
``reconciler.api.records``. Field names are matched case-insensitively and
unknown fields are ignored. A field a record needs that is missing, or a known
field of the wrong type, makes the item unreadable: the list functions then
raise a DEFINITIVE ``ApiError`` naming the item (position and id) and the
field, or, with ``skip_unreadable``, leave it out and name it in the
``Listing``'s ``unreadable`` (a caller that does so must treat whatever the item
may hold as unknown: a skipped subscription is not "no seats"). Agreement
products are always read that way, and a product whose price alone is
unreadable keeps its name with the price unknown. Every list is also checked
against its query: items of another customer tenant (or, for subscriptions,
outside the asked statuses; for asset orders, with another externalOrderId)
are left out, so a server that ignored a filter cannot make another tenant's
seats count or another order pass for proof.

``ListReader`` pages a list endpoint through a ``PageSource`` (the client's GET):
it follows ``TotalHits`` when the answer has it; a bare array is read until an
empty page or a page shorter than the longest one before (a server may cap the
page size below the one asked for). A page that repeats the one before means
the server ignores ``page``; more than ``max_pages`` pages or ``max_items``
items means it never stops: both are refused with a DEFINITIVE ``ApiError``
rather than read partly, twice or forever. Pages are parsed as they arrive, so
only one page of JSON is held at a time.

Part numbers and catalogue ids are "productId:skuId[:...]"; one without a colon
(a legacy, non-NCE product) reads as that product id with an empty sku id, which
no declaration can have. Naive timestamps (the API writes
"2025-08-04T09:17:18.193") are taken as UTC.

This module must not import ``requests``, must do no I/O of its own (the page
source does) and must not decide how a failed call counts (``failures`` does).
The records are re-exported here for the code that imports them from ``reads``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, Protocol, TypeVar

from reconciler.api.fields import (
    INTEGER_TEXT,
    Fields,
    ci_get,
    definitive,
    enum_word,
    malformed,
    shown,
)
from reconciler.api.records import (
    STATUS_ACTIVE,
    ApiReader,
    AssetOrder,
    AssetOrderLine,
    CatalogEntry,
    Listing,
    Price,
    ProcessedOrder,
    Subscription,
    SubscriptionDetail,
    UnreadableItem,
)
from reconciler.api.settings import (
    AGREEMENT_PRODUCTS_PATH,
    ASSET_ORDERS_PATH,
    ORDERS_PATH,
    SUBSCRIPTIONS_PATH,
)
from reconciler.errors import ApiError
from reconciler.model import BILLING_CYCLES, PURCHASE_TYPES

__all__ = [
    "ASSET_TYPES",
    "MAX_ITEMS",
    "MAX_PAGES",
    "ORDER_BILLING_CYCLES",
    "ORDER_STATES",
    "PAGE_SIZE",
    "STATUS_ACTIVE",
    "SUBSCRIPTION_BILLING_CYCLES",
    "SUBSCRIPTION_STATUSES",
    "ApiReader",
    "AssetOrder",
    "AssetOrderLine",
    "CatalogEntry",
    "ListReader",
    "Listing",
    "PageSource",
    "Price",
    "ProcessedOrder",
    "Subscription",
    "SubscriptionDetail",
    "UnreadableItem",
    "parse_agreement_product",
    "parse_agreement_products",
    "parse_asset_order",
    "parse_asset_orders",
    "parse_processed_order",
    "parse_processed_orders",
    "parse_subscription",
    "parse_subscription_detail",
    "parse_subscriptions",
]

_T = TypeVar("_T")

#: The ``pageSize`` the list calls ask for.
PAGE_SIZE: Final = 100
#: A list read stops with an error past this many pages or items: a server that
#: never stops paging is refused in seconds and in well under 300 MB.
MAX_PAGES: Final = 2_000
MAX_ITEMS: Final = 50_000

#: SubscriptionStatus flags -> the names records carry (the published document has
#: 0-64; 128 and 256 come from Crayon's SDK).
SUBSCRIPTION_STATUSES: Final[Mapping[int, str]] = {
    0: "none",
    1: "active",
    2: "suspended",
    4: "deleted",
    8: "customer-cancellation",
    16: "converted",
    32: "expired",
    64: "pending",
    128: "cancelled",
    256: "disabled",
}
#: A subscription's BillingCycleEnum -> our billing-cycle names where one fits
#: (1, 2, 3, 4 and 8 = ThreeYears -> "triennial"); the others get names no
#: declaration can have, so such a subscription never matches a declared identity.
SUBSCRIPTION_BILLING_CYCLES: Final[Mapping[int, str]] = {
    0: "unknown",
    1: "monthly",
    2: "annual",
    3: "none",
    4: "one-time",
    5: "biannually",
    7: "two-years",
    8: "triennial",
    9: "quarterly",
}
#: An order's BillingCycleType (verify, checkout, asset orders) -> our names.
ORDER_BILLING_CYCLES: Final[Mapping[int, str]] = {
    0: "unknown",
    **{code: name for name, code in BILLING_CYCLES.items()},
}
#: AssetType -> our purchase type names.
ASSET_TYPES: Final[Mapping[int, str]] = {code: name for name, code in PURCHASE_TYPES.items()}
#: The processed-orders ``orderState`` filter values -> the names records carry.
ORDER_STATES: Final[Mapping[int, str]] = {0: "none", 1: "succeeded", 2: "failed", 4: "processing"}

# Names the API writes instead of the integers, casefolded, without separators.
_STATE_WORDS: Final = {
    "none": "none",
    "succeeded": "succeeded",
    "successful": "succeeded",
    "success": "succeeded",
    "failed": "failed",
    "failure": "failed",
    "processing": "processing",
    "inprogress": "processing",
}
_STATUS_WORDS: Final = {name.replace("-", ""): name for name in SUBSCRIPTION_STATUSES.values()}


# --------------------------------------------------------------------------- lists


def parse_subscriptions(
    items: Sequence[Any],
    *,
    tenant: int,
    statuses: int | None = None,
    skip_unreadable: bool = False,
    first: int = 0,
) -> Listing[Subscription]:
    """The subscriptions of ``tenant`` among ``items`` (those whose status is in
    ``statuses``); ``first`` is the position of ``items[0]`` in the whole list."""

    def wanted(tenant_id: int | None, status: str | None) -> bool:
        return (tenant_id is None or tenant_id == tenant) and (
            statuses is None or status is None or (_status_code(status) & statuses) != 0
        )

    def hints(item: Any) -> tuple[UnreadableItem, bool]:
        f = Fields(item)
        found = UnreadableItem(
            position=0,
            problem="",
            item_id=_try(lambda: f.reference("Id")),
            customer_tenant_id=_try(lambda: f.integer("CustomerTenant.Id")),
            product=_try(lambda: _product(f.text("PartNumber") or f.text("Product.PartNumber"))),
        )
        return found, wanted(found.customer_tenant_id, _try(lambda: _subscription_status(f)))

    records = _each(
        items,
        lambda item: parse_subscription(item, tenant=tenant),
        hints,
        skip_unreadable=skip_unreadable,
        first=first,
    )
    return _kept(records, lambda s: wanted(s.customer_tenant_id, s.status))


def parse_processed_orders(
    items: Sequence[Any], *, tenant: int, skip_unreadable: bool = False, first: int = 0
) -> Listing[ProcessedOrder]:
    """The processed order lines of ``tenant`` (the items carry no tenant of their own)."""

    def hints(item: Any) -> tuple[UnreadableItem, bool]:
        f = Fields(item)
        found = UnreadableItem(
            position=0,
            problem="",
            item_id=_try(lambda: f.reference("OrderReferenceId")),
            customer_tenant_id=tenant,
            product=_try(lambda: _product(f.text("CatalogId"))),
        )
        return found, True

    return _each(
        items,
        lambda item: parse_processed_order(item, tenant=tenant),
        hints,
        skip_unreadable=skip_unreadable,
        first=first,
    )


def parse_asset_orders(
    items: Sequence[Any],
    *,
    tenant: int,
    external_order_id: str,
    skip_unreadable: bool = False,
    first: int = 0,
) -> Listing[AssetOrder]:
    """The asset orders of ``tenant`` whose externalOrderId is exactly ``external_order_id``."""

    def hints(item: Any) -> tuple[UnreadableItem, bool]:
        f = Fields(item)
        reference = _try(lambda: f.text("externalOrderId") or None)
        found = UnreadableItem(
            position=0,
            problem="",
            item_id=reference,
            customer_tenant_id=_try(lambda: f.integer("resellerCustomerId")),
        )
        ours = found.customer_tenant_id in (None, tenant) and reference in (
            None,
            external_order_id,
        )
        return found, ours

    records = _each(
        items,
        lambda item: parse_asset_order(item, tenant=tenant),
        hints,
        skip_unreadable=skip_unreadable,
        first=first,
    )
    return _kept(
        records,
        lambda order: (
            order.customer_tenant_id == tenant and order.external_order_id == external_order_id
        ),
    )


def parse_agreement_products(items: Sequence[Any], *, first: int = 0) -> Listing[CatalogEntry]:
    """Every agreement product that can be read; one whose price alone cannot be read
    is kept with the price unknown. Both kinds are named in ``unreadable``."""
    listing: Listing[CatalogEntry] = Listing()
    for index, item in enumerate(items):
        try:
            listing.append(parse_agreement_product(_mapping(item)))
            continue
        except ApiError as error:
            problem = str(error)
        found = _with_problem(_catalog_hints(item), problem, position=first + index)
        try:
            entry = parse_agreement_product(_mapping(item), prices=False)
        except ApiError:
            listing.unreadable += (found,)
            continue
        listing.append(entry)
        listing.unreadable += (_with_problem(found, f"{problem}; its price is unknown"),)
    return listing


def _catalog_hints(item: Any) -> UnreadableItem:
    if not isinstance(item, Mapping):
        return UnreadableItem(0, "")
    f = Fields(item)
    return UnreadableItem(
        position=0,
        problem="",
        item_id=_try(lambda: f.reference("productVariant.id")),
        product=_try(lambda: _product(f.text("productVariant.partNumber"))),
    )


def _each(
    items: Sequence[Any],
    parse: Callable[[Mapping[str, Any]], _T],
    hints: Callable[[Any], tuple[UnreadableItem, bool]],
    *,
    skip_unreadable: bool,
    first: int,
) -> Listing[_T]:
    """``parse`` of every item; an unreadable one raises, or is named and skipped.

    ``hints`` reads what it can of an unreadable item and says whether the item
    may belong to the query at all (one of another tenant is simply not ours).
    """
    listing: Listing[_T] = Listing()
    for index, item in enumerate(items):
        try:
            listing.append(parse(_mapping(item)))
            continue
        except ApiError as error:
            problem = str(error)
        found, relevant = (UnreadableItem(0, ""), True)
        if isinstance(item, Mapping):
            found, relevant = hints(item)
        if not relevant:
            continue
        found = _with_problem(found, problem, position=first + index)
        if not skip_unreadable:
            raise definitive(str(found)) from None
        listing.unreadable += (found,)
    return listing


def _kept(listing: Listing[_T], keep: Callable[[_T], bool]) -> Listing[_T]:
    return Listing((record for record in listing if keep(record)), listing.unreadable)


def _mapping(item: Any) -> Mapping[str, Any]:
    if not isinstance(item, Mapping):
        raise malformed("", f"expected an object, got {shown(item)}")
    return item


def _with_problem(
    found: UnreadableItem, problem: str, position: int | None = None
) -> UnreadableItem:
    return UnreadableItem(
        position=found.position if position is None else position,
        problem=problem,
        item_id=found.item_id,
        customer_tenant_id=found.customer_tenant_id,
        product=found.product,
    )


def _try(read: Callable[[], _T]) -> _T | None:
    """What ``read`` gives, or None when the field it reads is unreadable too."""
    try:
        return read()
    except ApiError:
        return None


def _product(part_number: str) -> str | None:
    if not part_number:
        return None
    product_id, sku_id = _split_part_number(part_number, "")
    return f"{product_id}:{sku_id}"


# --------------------------------------------------------------------------- items


def parse_subscription(item: Mapping[str, Any], *, tenant: int | None = None) -> Subscription:
    """One subscription item; ``tenant`` stands in for a missing ``CustomerTenant.Id``."""
    f = Fields(item)
    part_number = f.text("PartNumber") or f.need_text("Product.PartNumber")
    product_id, sku_id = _split_part_number(part_number, "PartNumber")
    name = f.text("Name")
    product_name = f.text("Product.ItemName") or name or part_number
    return Subscription(
        id=f.need_integer("Id"),
        customer_tenant_id=_tenant(f, "CustomerTenant.Id", tenant),
        product_id=product_id,
        sku_id=sku_id,
        part_number=part_number,
        name=name or product_name,
        product_name=product_name,
        quantity=f.need_count("Quantity"),
        status=_subscription_status(f),
        billing_cycle=f.cycle("BillingCycle", SUBSCRIPTION_BILLING_CYCLES) or "unknown",
        term_duration=f.term("TermDuration"),
        order_id=f.reference("OrderId"),
        publisher_subscription_id=f.reference("PublisherSubscriptionId"),
        start_date=f.time("StartDate"),
        end_date=f.time("EndDate"),
        auto_renew=f.flag("AutoRenewEnabled"),
        creation_date=f.time("CreationDate"),
        commitment_end_date=f.time("CommitmentEndDate"),
    )


def parse_subscription_detail(body: Mapping[str, Any]) -> SubscriptionDetail:
    """One ``SubscriptionDetailed`` answer; ``body`` is kept whole (a read-only copy)."""
    s = parse_subscription(body)
    kept = json.loads(json.dumps(body))  # a deep copy no later change to ``body`` reaches
    return SubscriptionDetail(
        id=s.id,
        customer_tenant_id=s.customer_tenant_id,
        product_id=s.product_id,
        sku_id=s.sku_id,
        part_number=s.part_number,
        name=s.name,
        quantity=s.quantity,
        status=s.status,
        billing_cycle=s.billing_cycle,
        term_duration=s.term_duration,
        order_id=s.order_id,
        auto_renew=s.auto_renew,
        creation_date=s.creation_date,
        start_date=s.start_date,
        end_date=s.end_date,
        commitment_end_date=s.commitment_end_date,
        body=MappingProxyType(kept),
    )


def parse_processed_order(item: Mapping[str, Any], *, tenant: int) -> ProcessedOrder:
    """One processed-order line of ``tenant``."""
    f = Fields(item)
    catalog_id = f.need_text("CatalogId")
    product_id, sku_id = _split_part_number(catalog_id, "CatalogId")
    return ProcessedOrder(
        order_reference_id=f.need_reference("OrderReferenceId"),
        customer_tenant_id=tenant,
        catalog_id=catalog_id,
        product_id=product_id,
        sku_id=sku_id,
        name=f.text("Name"),
        quantity=f.need_count("Quantity"),
        billing_cycle=f.cycle("BillingCycle", ORDER_BILLING_CYCLES),
        term_duration=f.term("TermDuration"),
        created=f.time("Created"),
        order_state=_order_state(f),
        error=_error_text(f.raw("Error")),
    )


def parse_asset_order(item: Mapping[str, Any], *, tenant: int | None = None) -> AssetOrder:
    """One asset order (an AssetOrder); ``tenant`` stands in for a missing tenant."""
    f = Fields(item)
    errors = _error_texts(f.array("errors"))
    lines = []
    for index, raw in enumerate(f.array("orderLines")):
        where = f"orderLines[{index}]"
        if not isinstance(raw, Mapping):
            raise f.wrong(where, "an object", raw)
        line = Fields(raw, where + ".")
        asset_type = line.integer("type")
        lines.append(
            AssetOrderLine(
                product_id=line.need_text("productId"),
                sku_id=line.need_text("skuId"),
                quantity=line.need_count("quantity"),
                billing_cycle=line.cycle("billingCycle", ORDER_BILLING_CYCLES),
                term_duration=line.term("termDuration"),
                type=None
                if asset_type is None
                else ASSET_TYPES.get(asset_type, f"type-{asset_type}"),
                catalog_item_id=line.text("catalogItemId") or None,
                subscription_id=line.integer("subscriptionId"),
            )
        )
        errors += _error_texts(line.array("errors"))
    return AssetOrder(
        external_order_id=f.text("externalOrderId") or None,
        customer_tenant_id=_tenant(f, "resellerCustomerId", tenant),
        lines=tuple(lines),
        errors=tuple(errors),
    )


def parse_agreement_product(item: Mapping[str, Any], *, prices: bool = True) -> CatalogEntry:
    """One agreement product; without ``prices`` its prices are not read (unknown)."""
    f = Fields(item)
    part_number = f.need_text("productVariant.partNumber")
    product_id, sku_id = _split_part_number(part_number, "productVariant.partNumber")
    product_name = f.text("productVariant.productName")
    name = f.text("name") or product_name or part_number
    return CatalogEntry(
        product_id=product_id,
        sku_id=sku_id,
        part_number=part_number,
        product_variant_id=f.integer("productVariant.id"),
        name=name,
        product_name=product_name or name,
        sales_price=f.price("salesPrice") if prices else None,
        recommended_retail_price=f.price("recommendedRetailPrice") if prices else None,
        minimum_quantity=f.count("minimumQuantity"),
        maximum_quantity=f.count("maximumQuantity"),
    )


def _tenant(f: Fields, path: str, tenant: int | None) -> int:
    value = f.integer(path)
    if value is not None:
        return value
    if tenant is None:
        raise f.missing(path)
    return tenant


def _split_part_number(text: str, field: str) -> tuple[str, str]:
    """ "productId:skuId[:availabilityId...]" -> (productId, skuId); no colon -> (text, "")."""
    product_id, _, rest = text.partition(":")
    sku_id = rest.split(":", 1)[0]
    if not product_id or (rest and not sku_id):
        raise malformed(field, f"expected productId:skuId, got {shown(text)}")
    return product_id, sku_id


def _subscription_status(f: Fields) -> str:
    value = f.raw("Status")
    if isinstance(value, int) and not isinstance(value, bool):
        return SUBSCRIPTION_STATUSES.get(value, f"status-{value}")
    if isinstance(value, str) and value.strip():
        word = enum_word(value)
        return _STATUS_WORDS.get(word, word)
    if value is None:
        raise f.missing("Status")
    raise f.wrong("Status", "a subscription status", value)


def _status_code(status: str) -> int:
    """The flag of a status name (0 for a name no source documents)."""
    for code, name in SUBSCRIPTION_STATUSES.items():
        if name == status:
            return code
    number = status.removeprefix("status-")
    return int(number) if INTEGER_TEXT.fullmatch(number) else 0


def _order_state(f: Fields) -> str:
    value = f.raw("OrderState")
    if value is None or value == "":
        return "unknown"
    if isinstance(value, int) and not isinstance(value, bool):
        return ORDER_STATES.get(value, f"state-{value}")
    if isinstance(value, str):
        word = enum_word(value)
        return _STATE_WORDS.get(word, word)
    raise f.wrong("OrderState", "an order state", value)


def _error_texts(entries: Iterable[Any]) -> list[str]:
    return [text for text in map(_error_text, entries) if text is not None]


def _error_text(value: Any) -> str | None:
    """An ``Error`` / ``errors[]`` entry as one line of text; None when there is none."""
    if value is None or value == "" or value == {}:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        code = ci_get(value, "ErrorCode") or ci_get(value, "code") or ci_get(value, "reasonCode")
        message = ci_get(value, "Message") or ci_get(value, "description")
        parts = [str(part) for part in (code, message) if part not in (None, "")]
        if parts:
            return ": ".join(parts)
    return json.dumps(value, sort_keys=True, default=str)


# --------------------------------------------------------------------------- paging


class PageSource(Protocol):
    """Where a ``ListReader`` gets its pages (the client: token, retries, errors)."""

    def get_page(self, operation: str, path: str, params: Mapping[str, Any]) -> Any:
        """The JSON of one GET of ``path`` with ``params``; raises ``ApiError``."""
        ...

    def refuse(self, operation: str, path: str, message: str) -> ApiError:
        """The DEFINITIVE error for an answer from ``path`` that cannot be used."""
        ...


class ListReader:
    """Reads the list endpoints through a ``PageSource``: every page, within bounds.

    ``page_size`` is the ``pageSize`` asked for; ``max_pages`` and ``max_items``
    bound one read. As thread-safe as the source is.
    """

    def __init__(
        self,
        source: PageSource,
        *,
        page_size: int = PAGE_SIZE,
        max_pages: int = MAX_PAGES,
        max_items: int = MAX_ITEMS,
    ) -> None:
        if min(page_size, max_pages, max_items) < 1:
            raise ValueError("page_size, max_pages and max_items must be at least 1")
        self._source = source
        self._page_size = page_size
        self._max_pages = max_pages
        self._max_items = max_items

    # ----------------------------------------------------------------- raw lists

    def list_orders(self, customer_tenant_id: int) -> list[dict[str, Any]]:
        """Every processed purchase order of one customer tenant (all pages), as JSON."""
        filters = {"customerTenantId": customer_tenant_id}
        return self._objects("list orders", ORDERS_PATH, filters)

    def list_subscriptions(self, customer_tenant_id: int) -> list[dict[str, Any]]:
        """Every subscription of one customer tenant (all pages), as JSON."""
        filters = {"customerTenantId": customer_tenant_id}
        return self._objects("list subscriptions", SUBSCRIPTIONS_PATH, filters)

    # ----------------------------------------------------------------- typed reads

    def read_subscriptions(
        self,
        customer_tenant_id: int,
        *,
        statuses: int | None = None,
        skip_unreadable: bool = False,
    ) -> Listing[Subscription]:
        """The tenant's subscriptions, those with a status flag in ``statuses`` if given
        (``STATUS_ACTIVE`` for the ones holding seats)."""
        filters: dict[str, Any] = {"customerTenantId": customer_tenant_id}
        if statuses is not None:
            filters["statuses"] = statuses
        return self._read(
            "read subscriptions",
            SUBSCRIPTIONS_PATH,
            filters,
            lambda items, first: parse_subscriptions(
                items,
                tenant=customer_tenant_id,
                statuses=statuses,
                skip_unreadable=skip_unreadable,
                first=first,
            ),
        )

    def read_processed_orders(
        self, customer_tenant_id: int, *, skip_unreadable: bool = False
    ) -> Listing[ProcessedOrder]:
        """Every processed purchase order line of the tenant, oldest first as the API lists them."""
        return self._read(
            "read processed orders",
            ORDERS_PATH,
            {"customerTenantId": customer_tenant_id},
            lambda items, first: parse_processed_orders(
                items, tenant=customer_tenant_id, skip_unreadable=skip_unreadable, first=first
            ),
        )

    def find_asset_orders(
        self, customer_tenant_id: int, external_order_id: str, *, skip_unreadable: bool = False
    ) -> Listing[AssetOrder]:
        """The tenant's asset orders whose externalOrderId is exactly ``external_order_id``."""
        filters = {"ResellerCustomerId": customer_tenant_id, "ExternalOrderId": external_order_id}
        return self._read(
            "find asset orders",
            ASSET_ORDERS_PATH,
            filters,
            lambda items, first: parse_asset_orders(
                items,
                tenant=customer_tenant_id,
                external_order_id=external_order_id,
                skip_unreadable=skip_unreadable,
                first=first,
            ),
            paging=("Page", "PageSize"),
        )

    def read_agreement_products(
        self, customer_tenant_id: int, search: str | None = None
    ) -> Listing[CatalogEntry]:
        """The products (names, unit prices) the tenant may buy, matching ``search`` if given."""
        filters: dict[str, Any] = {"CustomerTenantId": customer_tenant_id}
        if search:
            filters["Search"] = search
        return self._read(
            "read agreement products",
            AGREEMENT_PRODUCTS_PATH,
            filters,
            lambda items, first: parse_agreement_products(items, first=first),
            paging=("Page", "PageSize"),
        )

    # ----------------------------------------------------------------- paging

    def _read(
        self,
        operation: str,
        path: str,
        filters: Mapping[str, Any],
        parse: Callable[[list[Any], int], Listing[_T]],
        *,
        paging: tuple[str, str] = ("page", "pageSize"),
    ) -> Listing[_T]:
        """Every page parsed as it arrives; an unreadable item is refused with the URL."""
        listing: Listing[_T] = Listing()
        for first, items in self.pages(operation, path, filters, paging=paging):
            try:
                listing.add(parse(items, first))
            except ApiError as error:
                raise self._source.refuse(operation, path, f"{operation}: {error}") from None
        return listing

    def _objects(
        self, operation: str, path: str, filters: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for first, items in self.pages(operation, path, filters):
            for index, item in enumerate(items):
                if not isinstance(item, dict):
                    raise self._source.refuse(
                        operation,
                        path,
                        f"{operation}: item {first + index}: expected an object, got {shown(item)}",
                    )
                found.append(item)
        return found

    def pages(
        self,
        operation: str,
        path: str,
        filters: Mapping[str, Any],
        *,
        paging: tuple[str, str] = ("page", "pageSize"),
    ) -> Iterator[tuple[int, list[Any]]]:
        """Each page's items with the position of its first, from page 1 to the end.

        Takes ``{Items, TotalHits}`` and a bare array alike (see the module docstring).
        """
        page_name, size_name = paging
        size = self._page_size
        source = self._source
        read = 0
        longest = 0
        previous: list[Any] | None = None
        for page in range(1, self._max_pages + 1):
            data = source.get_page(operation, path, {**filters, page_name: page, size_name: size})
            items, total = _page(data)
            if items is None:
                raise source.refuse(
                    operation, path, f"{operation}: the API answered without a list of Items"
                )
            if not items:
                if total is not None and read < total:
                    raise source.refuse(
                        operation,
                        path,
                        f"{operation}: page {page} was empty after {read} of the {total} "
                        "items TotalHits announced; the list changed while it was read, "
                        "or the API does not page as documented",
                    )
                return
            if items == previous:
                if total is None and len(items) > size:
                    return  # it ignores paging and answered the whole list each time
                raise source.refuse(
                    operation,
                    path,
                    f"{operation}: the API answered page {page} with the items of page "
                    f"{page - 1}; it does not page as documented",
                )
            if read + len(items) > self._max_items:
                raise source.refuse(
                    operation,
                    path,
                    f"{operation}: stopped at page {page}: the API listed more than "
                    f"{self._max_items:,} items, more than one read takes; it may not page "
                    "as documented",
                )
            yield read, items
            read += len(items)
            previous = items
            if total is not None:
                if read >= total:
                    return
            elif len(items) < longest:
                return
            longest = max(longest, len(items))
        raise source.refuse(
            operation,
            path,
            f"{operation}: stopped after {self._max_pages:,} pages ({read:,} items): the API "
            "kept answering with more; it may not page as documented",
        )


def _page(data: Any) -> tuple[list[Any] | None, int | None]:
    """A page's items and its ``TotalHits`` (None when absent): envelope or bare array."""
    if isinstance(data, list):
        return data, None
    if not isinstance(data, Mapping):
        return None, None
    items = ci_get(data, "Items")
    total = ci_get(data, "TotalHits")
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        total = None
    return (items if isinstance(items, list) else None), total
