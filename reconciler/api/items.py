"""One item of the API's JSON to one record, and the API's codes in our names.

    parse_subscription          GET /api/v1/subscriptions/ item       -> Subscription
    parse_subscription_detail   GET /api/v1/subscriptions/{id}        -> SubscriptionDetail
    parse_processed_order       GET /api/v1/purchaserequest/orders/ item -> ProcessedOrder
    parse_asset_order           GET /api/v1/assets/orders/ item       -> AssetOrder
    parse_agreement_product     GET /api/v1/agreementproducts/ item   -> CatalogEntry

Field names are matched case-insensitively and unknown fields are ignored; a
field a record needs that is missing, or a known field of the wrong type,
raises a DEFINITIVE ``ApiError`` naming the field (``reads`` decides what that
means for a list). Statuses, billing cycles, asset types and order states come
as integers or as words; both are read into our names. Part numbers and
catalogue ids are "productId:skuId[:...]"; one without a colon (a legacy,
non-NCE product) reads as that product id with an empty sku id, which no
declaration can have. Naive timestamps (the API writes
"2025-08-04T09:17:18.193") are taken as UTC.

Pure: this module must not import ``requests``, must do no I/O and must not
decide how a failed call counts (``failures`` does).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final

from reconciler.api.fields import INTEGER_TEXT, Fields, ci_get, enum_word, malformed, shown
from reconciler.api.records import (
    AssetOrder,
    AssetOrderLine,
    CatalogEntry,
    ProcessedOrder,
    Subscription,
    SubscriptionDetail,
)
from reconciler.model import BILLING_CYCLES, PURCHASE_TYPES

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


def parse_subscription(item: Mapping[str, Any], *, tenant: int | None = None) -> Subscription:
    """One subscription item; ``tenant`` stands in for a missing ``CustomerTenant.Id``."""
    f = Fields(item)
    part_number = f.text("PartNumber") or f.need_text("Product.PartNumber")
    product_id, sku_id = split_part_number(part_number, "PartNumber")
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
        status=subscription_status(f),
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
    product_id, sku_id = split_part_number(catalog_id, "CatalogId")
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
    product_id, sku_id = split_part_number(part_number, "productVariant.partNumber")
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


def split_part_number(text: str, field: str) -> tuple[str, str]:
    """ "productId:skuId[:availabilityId...]" -> (productId, skuId); no colon -> (text, "")."""
    product_id, _, rest = text.partition(":")
    sku_id = rest.split(":", 1)[0]
    if not product_id or (rest and not sku_id):
        raise malformed(field, f"expected productId:skuId, got {shown(text)}")
    return product_id, sku_id


def subscription_status(f: Fields) -> str:
    value = f.raw("Status")
    if isinstance(value, int) and not isinstance(value, bool):
        return SUBSCRIPTION_STATUSES.get(value, f"status-{value}")
    if isinstance(value, str) and value.strip():
        word = enum_word(value)
        return _STATUS_WORDS.get(word, word)
    if value is None:
        raise f.missing("Status")
    raise f.wrong("Status", "a subscription status", value)


def status_code(status: str) -> int:
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
