"""What Cloud-iQ says was bought: the read endpoints' items as typed, frozen records.

    Subscription      GET /api/v1/subscriptions/            (seats, status, identity)
    ProcessedOrder    GET /api/v1/purchaserequest/orders/   (one line of a processed order)
    AssetOrder        GET /api/v1/assets/orders/            (an order found by externalOrderId)
    CatalogEntry      GET /api/v1/agreementproducts/        (names and unit prices)
    ApiReader         the role the refresh, import and plan code reads through

``parse_*`` are pure functions from the JSON items a list endpoint answered to
records; ``CrayonClient.read_*`` fetch every page and call them. Field names
are matched case-insensitively and unknown fields are ignored. A field the
record needs that is missing, or any known field of the wrong type, raises a
DEFINITIVE ``ApiError`` naming the item and the field: an item is never skipped,
because a skipped subscription would read as seats that do not exist. Optional
fields that are absent or null read as None. Every list is also checked
against its query: items of another customer tenant (or, for subscriptions,
outside the asked statuses; for asset orders, with another externalOrderId)
are left out, so a server that ignored a filter cannot make another tenant's
seats count or another order pass for proof.

Part numbers and catalogue ids are "productId:skuId[:...]"; one without a colon
(a legacy, non-NCE product) reads as that product id with an empty sku id, which
no declaration can have. Naive timestamps (the API writes
"2025-08-04T09:17:18.193") are taken as UTC.

This module must not import ``requests``, must do no I/O and must not decide
how a failed call counts (``failures`` does).

The records live in ``reconciler.api.records`` and the field reader in
``reconciler.api.fields``; the records are re-exported here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, TypeVar

from reconciler.api.fields import INTEGER_TEXT, Fields, definitive, enum_word, malformed, shown
from reconciler.api.jsonread import ci_get
from reconciler.api.records import (
    ApiReader,
    AssetOrder,
    AssetOrderLine,
    CatalogEntry,
    Price,
    ProcessedOrder,
    Subscription,
    SubscriptionDetail,
)
from reconciler.errors import ApiError
from reconciler.model import BILLING_CYCLES, PURCHASE_TYPES

__all__ = [
    "ASSET_TYPES",
    "ORDER_BILLING_CYCLES",
    "ORDER_STATES",
    "STATUS_ACTIVE",
    "SUBSCRIPTION_BILLING_CYCLES",
    "SUBSCRIPTION_STATUSES",
    "ApiReader",
    "AssetOrder",
    "AssetOrderLine",
    "CatalogEntry",
    "Price",
    "ProcessedOrder",
    "Subscription",
    "SubscriptionDetail",
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

#: The subscription status flag of a subscription whose seats count.
STATUS_ACTIVE: Final = 1
#: SubscriptionStatus flags (crayon-api.md section 6) -> the names records carry.
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
    items: Sequence[Any], *, tenant: int, statuses: int | None = None
) -> list[Subscription]:
    """The subscriptions of ``tenant`` among ``items`` (those whose status is in ``statuses``)."""
    records = _each(items, lambda item: parse_subscription(item, tenant=tenant))
    return [
        s
        for s in records
        if s.customer_tenant_id == tenant
        and (statuses is None or (_status_code(s.status) & statuses) != 0)
    ]


def parse_processed_orders(items: Sequence[Any], *, tenant: int) -> list[ProcessedOrder]:
    """The processed order lines of ``tenant`` (the items carry no tenant of their own)."""
    return _each(items, lambda item: parse_processed_order(item, tenant=tenant))


def parse_asset_orders(
    items: Sequence[Any], *, tenant: int, external_order_id: str
) -> list[AssetOrder]:
    """The asset orders of ``tenant`` whose externalOrderId is exactly ``external_order_id``."""
    records = _each(items, lambda item: parse_asset_order(item, tenant=tenant))
    return [
        order
        for order in records
        if order.customer_tenant_id == tenant and order.external_order_id == external_order_id
    ]


def parse_agreement_products(items: Sequence[Any]) -> list[CatalogEntry]:
    return _each(items, parse_agreement_product)


def _each(items: Sequence[Any], parse: Callable[[Mapping[str, Any]], _T]) -> list[_T]:
    records = []
    for index, item in enumerate(items):
        try:
            if not isinstance(item, Mapping):
                raise malformed("", f"expected an object, got {shown(item)}")
            records.append(parse(item))
        except ApiError as error:
            raise definitive(f"item {index}: {error}") from None
    return records


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


def parse_subscription_detail(item: Any) -> SubscriptionDetail:
    """One ``SubscriptionDetailed`` answer, kept whole for a later PUT."""
    if not isinstance(item, Mapping):
        raise definitive(f"subscription: expected an object, got {shown(item)}")
    try:
        return SubscriptionDetail(parse_subscription(item), dict(item))
    except ApiError as error:
        raise definitive(f"subscription: {error}") from None


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
    """One asset order (a PurchaseRequestOrder); ``tenant`` stands in for a missing tenant."""
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


def parse_agreement_product(item: Mapping[str, Any]) -> CatalogEntry:
    """One agreement product."""
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
        sales_price=f.price("salesPrice"),
        recommended_retail_price=f.price("recommendedRetailPrice"),
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
