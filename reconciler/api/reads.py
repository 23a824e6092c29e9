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
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Protocol, TypeVar

from reconciler.api.jsonread import ci_get
from reconciler.errors import ApiError, FailureKind
from reconciler.model import BILLING_CYCLES, PURCHASE_TYPES

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
_CYCLE_WORDS: Final = {
    "unknown": "unknown",
    "monthly": "monthly",
    "annual": "annual",
    "annually": "annual",
    "yearly": "annual",
    "none": "none",
    "onetime": "one-time",
    "biannually": "biannually",
    "twoyears": "two-years",
    "triennial": "triennial",
    "threeyears": "triennial",
    "quarterly": "quarterly",
}
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
_INTEGER_TEXT: Final = re.compile(r"-?[0-9]{1,18}")


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
    """One subscription of a customer tenant.

    ``billing_cycle`` is one of our names ("monthly", "annual", "none",
    "one-time", "triennial") or a name no declaration has (see
    ``SUBSCRIPTION_BILLING_CYCLES``); ``status`` one of ``SUBSCRIPTION_STATUSES``'
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

    @property
    def active(self) -> bool:
        return self.status == "active"

    @property
    def product(self) -> str:
        """ "productId:skuId", as the simulator and the orders write it."""
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
    """One line of an asset order; ``type`` is "subscription", "software", "reservation"."""

    product_id: str
    sku_id: str
    quantity: int
    billing_cycle: str | None
    term_duration: str | None
    type: str | None
    catalog_item_id: str | None

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
                raise _malformed("", f"expected an object, got {_shown(item)}")
            records.append(parse(item))
        except ApiError as error:
            raise _error(f"item {index}: {error}") from None
    return records


# --------------------------------------------------------------------------- items


def parse_subscription(item: Mapping[str, Any], *, tenant: int | None = None) -> Subscription:
    """One subscription item; ``tenant`` stands in for a missing ``CustomerTenant.Id``."""
    f = _Fields(item)
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
    )


def parse_processed_order(item: Mapping[str, Any], *, tenant: int) -> ProcessedOrder:
    """One processed-order line of ``tenant``."""
    f = _Fields(item)
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
    f = _Fields(item)
    errors = _error_texts(f.array("errors"))
    lines = []
    for index, raw in enumerate(f.array("orderLines")):
        where = f"orderLines[{index}]"
        if not isinstance(raw, Mapping):
            raise f.wrong(where, "an object", raw)
        line = _Fields(raw, where + ".")
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
    f = _Fields(item)
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


# --------------------------------------------------------------------------- fields


class _Fields:
    """Typed, case-insensitive reads of one JSON object; errors name the field's path.

    ``need_*`` raise when the field is absent or null; the others return None
    (or "" for text). Every reader raises when the field has the wrong type.
    """

    def __init__(self, data: Mapping[str, Any], prefix: str = "") -> None:
        self._data = data
        self._prefix = prefix

    def raw(self, path: str) -> Any:
        """The value at a dotted ``path``; None when it or an object on the way is absent."""
        value: Any = self._data
        walked: list[str] = []
        for name in path.split("."):
            if value is None:
                return None
            if not isinstance(value, Mapping):
                raise self.wrong(".".join(walked), "an object", value)
            walked.append(name)
            value = ci_get(value, name)
        return value

    def missing(self, path: str) -> ApiError:
        return _malformed(self._prefix + path, "missing")

    def wrong(self, path: str, expected: str, value: Any) -> ApiError:
        return _malformed(self._prefix + path, f"expected {expected}, got {_shown(value)}")

    def integer(self, path: str) -> int | None:
        value = self.raw(path)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value.strip()):
            return int(value)
        raise self.wrong(path, "a whole number", value)

    def need_integer(self, path: str) -> int:
        value = self.integer(path)
        if value is None:
            raise self.missing(path)
        return value

    def count(self, path: str) -> int | None:
        value = self.integer(path)
        if value is not None and value < 0:
            raise self.wrong(path, "a number of seats (0 or more)", value)
        return value

    def need_count(self, path: str) -> int:
        value = self.count(path)
        if value is None:
            raise self.missing(path)
        return value

    def text(self, path: str) -> str:
        """A string, stripped; "" when absent or null."""
        value = self.raw(path)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self.wrong(path, "a string", value)
        return value.strip()

    def need_text(self, path: str) -> str:
        value = self.text(path)
        if not value:
            raise self.missing(path)
        return value

    def reference(self, path: str) -> str | None:
        """An id the API writes as a number or as a string, as text."""
        value = self.raw(path)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, str):
            return value.strip() or None
        if value is None:
            return None
        raise self.wrong(path, "an id (a number or a string)", value)

    def need_reference(self, path: str) -> str:
        value = self.reference(path)
        if value is None:
            raise self.missing(path)
        return value

    def flag(self, path: str) -> bool | None:
        value = self.raw(path)
        if value is None or isinstance(value, bool):
            return value
        raise self.wrong(path, "true or false", value)

    def term(self, path: str) -> str | None:
        return self.text(path).upper() or None

    def cycle(self, path: str, codes: Mapping[int, str]) -> str | None:
        """A billing cycle given as its integer or its name, in our names."""
        value = self.raw(path)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return codes.get(value, f"billing-cycle-{value}")
        if isinstance(value, str) and value.strip():
            word = _word(value)
            return _CYCLE_WORDS.get(word, word)
        raise self.wrong(path, "a billing cycle", value)

    def time(self, path: str) -> datetime | None:
        value = self.raw(path)
        if value is None or value == "":
            return None
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.strip())
            except ValueError:
                pass
            else:
                # The API's examples write UTC without an offset.
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        raise self.wrong(path, "an ISO-8601 date and time", value)

    def array(self, path: str) -> list[Any]:
        value = self.raw(path)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.wrong(path, "a list", value)
        return value

    def price(self, path: str) -> Price | None:
        """``{value, currencyCode}``; None when absent, null or without a value."""
        container = self.raw(path)
        if container is not None and not isinstance(container, Mapping):
            raise self.wrong(path, "an object", container)
        value = self.raw(path + ".value")
        if value is None:
            return None
        amount = _amount(value)
        if amount is None:
            raise self.wrong(path + ".value", "an amount", value)
        return Price(amount, self.need_text(path + ".currencyCode").upper())


def _amount(value: Any) -> Decimal | None:
    """A JSON number (or numeric text) as a finite Decimal; None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        # repr is the shortest text that reads back as the same float: 5.6, not 5.5999...
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:
            return None
        return amount if amount.is_finite() else None
    return None


def _word(text: str) -> str:
    """An enum name the API wrote, casefolded and without separators: "One Time" -> "onetime"."""
    return re.sub(r"[\s_-]", "", text).casefold()


def _tenant(f: _Fields, path: str, tenant: int | None) -> int:
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
        raise _malformed(field, f"expected productId:skuId, got {_shown(text)}")
    return product_id, sku_id


def _subscription_status(f: _Fields) -> str:
    value = f.raw("Status")
    if isinstance(value, int) and not isinstance(value, bool):
        return SUBSCRIPTION_STATUSES.get(value, f"status-{value}")
    if isinstance(value, str) and value.strip():
        word = _word(value)
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
    return int(number) if _INTEGER_TEXT.fullmatch(number) else 0


def _order_state(f: _Fields) -> str:
    value = f.raw("OrderState")
    if value is None or value == "":
        return "unknown"
    if isinstance(value, int) and not isinstance(value, bool):
        return ORDER_STATES.get(value, f"state-{value}")
    if isinstance(value, str):
        word = _word(value)
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


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _malformed(field: str, problem: str) -> ApiError:
    return _error(f"{field}: {problem}" if field else problem)


def _error(message: str) -> ApiError:
    # Asking again gets the same answer: DEFINITIVE. The client adds the URL.
    return ApiError(message, kind=FailureKind.DEFINITIVE)
