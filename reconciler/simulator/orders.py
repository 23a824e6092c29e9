"""The simulator's order rules: what verify accepts, reports and checkout records.

Pure functions over JSON documents: the shape and type checks (ObjectErrors of
a 400), the business errors verify reports inside a 200 (catalogue, quantity,
term, billing cycle, type), the camelCase the answers use whichever casing the
request had, and the records an accepted checkout leaves. The legacy
``/assets/*`` endpoints take and answer an ``AssetOrder`` as the published
document has it: a field it does not have is refused, and the answer has none
(no ``scheduledPurchaseDate``, no line ``customTermEndDate``). No state, no HTTP,
and no import of ``reconciler.api`` or ``reconciler.model``: these rules are
written from the API reference, not shared with the client they check.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from reconciler.simulator.catalog import CatalogItem
from reconciler.simulator.wire import is_int, object_error

COUNTRY_CODE: Final = "NO"

_ORDER_FIELDS: Final = (
    "resellerCustomerId",
    "externalOrderId",
    "countryCode",
    "adminAccount",
    "notificationEmail",
    "invoiceProfileId",
    "scheduledPurchaseDate",
    "errors",
    "orderLines",
)
_LINE_FIELDS: Final = (
    "productId",
    "skuId",
    "productVariantId",
    "catalogItemId",
    "quantity",
    "billingCycle",
    "termDuration",
    "type",
    "scope",
    "subscriptionId",
    "armRegionName",
    "provisioningContext",
    "requiresInventoryCheck",
    "isTrial",
    "resellerPriceType",
    "resellerPriceTypeValue",
    "name",
    "attestationAccepted",
    "customTermEndDate",
    "tags",
    "errors",
)
_CAMEL: Final = {name.casefold(): name for name in (*_ORDER_FIELDS, *_LINE_FIELDS)}
#: The fields of the published AssetOrder and AssetOrderLine (no others allowed).
ASSET_ORDER_FIELDS: Final = frozenset(
    {
        "externalOrderId",
        "countryCode",
        "resellerCustomerId",
        "adminAccount",
        "notificationEmail",
        "invoiceProfileId",
        "errors",
        "orderLines",
    }
)
ASSET_LINE_FIELDS: Final = frozenset(
    {
        "productId",
        "subscriptionId",
        "armRegionName",
        "skuId",
        "productVariantId",
        "quantity",
        "billingCycle",
        "provisioningContext",
        "type",
        "requiresInventoryCheck",
        "catalogItemId",
        "termDuration",
        "scope",
        "resellerPriceType",
        "resellerPriceTypeValue",
        "isTrial",
        "tags",
        "errors",
    }
)


@dataclass(frozen=True)
class RecordedCheckout:
    """One order line of a checkout the simulator accepted (it counts as bought)."""

    tenant: int
    product_id: str
    sku_id: str
    quantity: int
    billing_cycle: int
    term_duration: str
    type: int
    external_order_id: str | None
    time: str
    body: Mapping[str, Any]
    catalog_item_id: str
    order_reference_id: int
    line: int = 0
    #: The subscription the line created.
    subscription_id: int | None = None

    @property
    def product(self) -> str:
        return f"{self.product_id}:{self.sku_id}"


def camel(order: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the order with its known field names in camelCase (PascalCase accepted)."""

    def rename(data: Mapping[str, Any]) -> dict[str, Any]:
        return {_CAMEL.get(k.casefold(), k): copy.deepcopy(v) for k, v in data.items()}

    result = rename(order)
    result["orderLines"] = [rename(line) for line in result["orderLines"]]
    return result


def order_problems(order: Any, *, legacy: bool = False) -> list[dict[str, Any]]:
    """ObjectErrors for a malformed order (wrong shape or types, or on the ``legacy``
    endpoints a field AssetOrder does not have); empty when well-formed."""
    if not isinstance(order, dict):
        return [object_error("InvalidValue", "The order must be a JSON object.", "")]
    problems: list[dict[str, Any]] = []
    if legacy:
        problems += _unknown(order, ASSET_ORDER_FIELDS, "")
        for index, line in enumerate(order.get(_key(order, "orderLines"), None) or []):
            if isinstance(line, dict):
                problems += _unknown(line, ASSET_LINE_FIELDS, f"orderLines[{index}].")
    order = {k.casefold(): v for k, v in order.items()}

    _check(problems, order, "resellerCustomerId", "", "int", required=True)
    tenant = order.get("resellercustomerid")
    if is_int(tenant) and tenant <= 0:
        problems.append(
            object_error(
                "InvalidValue", "resellerCustomerId must be positive", "resellerCustomerId"
            )
        )
    for name in ("externalOrderId", "countryCode", "notificationEmail", "adminAccount"):
        _check(problems, order, name, "", "str", required=False)
    _check(problems, order, "invoiceProfileId", "", "int", required=False)
    lines = order.get("orderlines")
    if not isinstance(lines, list) or not lines:
        problems.append(
            object_error("Required", "orderLines must hold at least one line", "orderLines")
        )
        return problems
    for index, line in enumerate(lines):
        where = f"orderLines[{index}]."
        if not isinstance(line, dict):
            problems.append(
                object_error("InvalidValue", "an order line must be an object", where[:-1])
            )
            continue
        line = {k.casefold(): v for k, v in line.items()}
        for name in ("productId", "skuId", "termDuration"):
            _check(problems, line, name, where, "str", required=True)
        for name in ("quantity", "billingCycle"):
            _check(problems, line, name, where, "int", required=True)
        for name in ("type", "productVariantId"):
            _check(problems, line, name, where, "int", required=False)
        _check(problems, line, "attestationAccepted", where, "bool", required=False)
        _check(problems, line, "provisioningContext", where, "map", required=False)
        _check(problems, line, "tags", where, "obj", required=False)
    return problems


def _check(
    problems: list[dict[str, Any]],
    data: dict[str, Any],
    name: str,
    where: str,
    kind: str,
    required: bool,
) -> None:
    """Add the ObjectError of a missing or mistyped field ``name`` of ``data``, if any."""
    value = data.get(name.casefold())
    path = f"{where}{name}"
    if value is None:
        if required:
            problems.append(object_error("Required", f"{name} is required", path))
        return
    valid = {
        "int": is_int(value),
        "str": isinstance(value, str),
        "bool": isinstance(value, bool),
        "map": isinstance(value, dict) and all(isinstance(v, str | None) for v in value.values()),
        "obj": isinstance(value, dict),
    }[kind]
    if not valid:
        problems.append(object_error("InvalidValue", f"{path} has the wrong type", path))


def _key(data: dict[str, Any], name: str) -> str:
    return next((k for k in data if k.casefold() == name.casefold()), name)


def _unknown(data: dict[str, Any], known: frozenset[str], where: str) -> list[dict[str, Any]]:
    folded = {name.casefold() for name in known}
    return [
        object_error("UnknownField", f"{where}{key} is not a field of an asset order", where + key)
        for key in data
        if key.casefold() not in folded
    ]


def line_errors(line: Mapping[str, Any], item: CatalogItem | None) -> list[dict[str, Any]]:
    """The business errors verify reports on one well-formed line."""
    product = f"{line['productId']}:{line['skuId']}"
    if item is None:
        return [
            {
                "reasonCode": "ProductNotFound",
                "description": f"Product {product} was not found in the catalogue.",
                "properties": {"productId": line["productId"], "skuId": line["skuId"]},
            }
        ]
    errors = []
    quantity = line["quantity"]
    if not 1 <= quantity <= item.max_quantity:
        errors.append(
            {
                "reasonCode": "QuantityOutOfRange",
                "description": (
                    f"Quantity {quantity} is outside the allowed range 1-{item.max_quantity}."
                ),
                "properties": {"min": "1", "max": str(item.max_quantity)},
            }
        )
    if line["termDuration"] not in item.terms:
        errors.append(
            {
                "reasonCode": "TermDurationNotSupported",
                "description": f"Term {line['termDuration']} is not offered for {product}.",
                "properties": {"supported": ",".join(item.terms)},
            }
        )
    if line["billingCycle"] not in item.billing_cycles:
        errors.append(
            {
                "reasonCode": "BillingCycleNotSupported",
                "description": (
                    f"Billing cycle {line['billingCycle']} is not offered for {product}."
                ),
                "properties": {"supported": ",".join(str(c) for c in item.billing_cycles)},
            }
        )
    if line["type"] not in item.types:
        errors.append(
            {
                "reasonCode": "TypeNotSupported",
                "description": f"Type {line['type']} is not offered for {product}.",
                "properties": {"supported": ",".join(str(t) for t in item.types)},
            }
        )
    return errors


def verified(
    order: dict[str, Any],
    catalog: Mapping[str, CatalogItem],
    order_errors: list[dict[str, Any]],
    *,
    legacy: bool = False,
) -> dict[str, Any]:
    """Fill in what verify adds to a well-formed, camelCased order of a known tenant.

    Changes ``order`` in place and returns it: defaults for the optional fields,
    each line's ``catalogItemId`` and business errors, and ``order_errors``. An
    order from the ``legacy`` endpoints gets only AssetOrder's fields.
    """
    order.setdefault("externalOrderId", None)
    if not order.get("countryCode"):
        order["countryCode"] = COUNTRY_CODE
    if not legacy:
        order.setdefault("scheduledPurchaseDate", None)
    order["errors"] = order_errors
    for line in order["orderLines"]:
        item = catalog.get(f"{line['productId']}:{line['skuId']}")
        line.setdefault("type", 3)
        line["catalogItemId"] = item.catalog_item_id if item else None
        line.setdefault("isTrial", False)
        if not legacy:
            line.setdefault("customTermEndDate", None)
        line["errors"] = line_errors(line, item)
    return order


def has_errors(order: Mapping[str, Any]) -> bool:
    """Whether a verify answer reports any error: such an order may not be checked out."""
    return bool(order["errors"]) or any(line["errors"] for line in order["orderLines"])


def checkout_records(order: Mapping[str, Any], reference: int, when: str) -> list[RecordedCheckout]:
    """The records of an accepted checkout of a verified ``order``, one per line."""
    return [
        RecordedCheckout(
            tenant=order["resellerCustomerId"],
            product_id=line["productId"],
            sku_id=line["skuId"],
            quantity=line["quantity"],
            billing_cycle=line["billingCycle"],
            term_duration=line["termDuration"],
            type=line["type"],
            external_order_id=order.get("externalOrderId"),
            time=when,
            body=order,
            catalog_item_id=line["catalogItemId"],
            order_reference_id=reference,
            line=index,
        )
        for index, line in enumerate(order["orderLines"])
    ]
