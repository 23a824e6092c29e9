"""The order wire format: what verify is sent, and what its answer means.

``build_order`` turns a declared purchase into the camelCase order JSON
(``OrderJson``) the ``purchaserequest`` endpoints take; ``legacy_order`` keeps
only the fields the legacy ``/assets/verify`` and ``/assets/checkout`` take
(their published ``AssetOrder`` and ``AssetOrderLine`` allow no other), and
``legacy_dropped_fields`` names the declared fields that leaves out, so that a
caller can warn; ``read_verified`` turns verify's answer into a
``VerifiedOrder`` whose ``errors`` are the order's and every line's business
errors plus a ``VerifyResponseMismatch`` for any tenant, product, quantity or
term verify changed (checkout buys exactly what verify returned). ``ApiClient``
is the role the executor codes against. This module must not import
``requests``, must do no I/O, and must not decide how a failed call counts
(``failures`` does).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, NotRequired, Protocol, TypedDict, cast

from reconciler.api.fields import as_list, ci_get, text_map
from reconciler.model import BILLING_CYCLES, PURCHASE_TYPES, TAG_KEYS, Purchase


class _LineProduct(TypedDict):
    productId: str
    skuId: str
    productVariantId: NotRequired[int]


class _LineOptions(TypedDict):
    tags: NotRequired[dict[str, str]]
    provisioningContext: NotRequired[dict[str, str]]
    attestationAccepted: NotRequired[bool]


class OrderLineJson(_LineProduct, _LineOptions):
    """One order line as verify takes it (sent product keys first, options last)."""

    quantity: int
    billingCycle: int
    termDuration: str
    type: int


class _OrderHeader(TypedDict):
    resellerCustomerId: int
    externalOrderId: str
    notificationEmail: NotRequired[str]
    invoiceProfileId: NotRequired[int]


class OrderJson(_OrderHeader):
    """A purchase order as verify takes it (sent header keys first, lines last)."""

    orderLines: list[OrderLineJson]


@dataclass(frozen=True)
class LineError:
    """One business error from verify; ``line`` is the 0-based order line, -1 for the order."""

    line: int
    code: str
    description: str
    properties: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        where = "order" if self.line < 0 else f"orderLines[{self.line}]"
        props = ", ".join(f"{k}={v}" for k, v in sorted(self.properties.items()))
        text = f"{where}: {self.code}: {self.description}"
        return f"{text} ({props})" if props else text


@dataclass(frozen=True)
class VerifiedOrder:
    """The verify answer exactly as returned (checkout sends it back unchanged)."""

    body: Mapping[str, Any]
    errors: tuple[LineError, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors


class ApiClient(Protocol):
    """The API calls apply needs (``reconciler.api.client.CrayonClient`` is one).

    Both raise ``ApiError`` when the call fails; verify's business errors are
    data in ``VerifiedOrder.errors``.
    """

    def verify(self, order: OrderJson) -> VerifiedOrder: ...
    def checkout(self, verified: VerifiedOrder) -> None: ...


def build_order(purchase: Purchase, quantity: int, external_order_id: str) -> OrderJson:
    """The camelCase order buying ``quantity`` seats of ``purchase`` on one line."""
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise ValueError(f"quantity must be a positive integer, not {quantity!r}")
    identity = purchase.identity
    try:
        billing_cycle = BILLING_CYCLES[identity.billing_cycle]
        asset_type = PURCHASE_TYPES[identity.type]
    except KeyError as error:
        raise ValueError(f"{purchase.address}: unknown enum value {error}") from None
    unknown_tags = sorted(set(purchase.tags) - set(TAG_KEYS))
    if unknown_tags:
        raise ValueError(f"{purchase.address}: unknown tag keys {unknown_tags}")

    # Built in parts so that the JSON sent keeps its keys in the documented order.
    product: _LineProduct = {"productId": identity.product_id, "skuId": identity.sku_id}
    if purchase.product_variant_id is not None:
        product["productVariantId"] = purchase.product_variant_id
    options: _LineOptions = {}
    if purchase.tags:
        options["tags"] = {key: purchase.tags[key] for key in TAG_KEYS if key in purchase.tags}
    if purchase.provisioning_context:
        options["provisioningContext"] = dict(sorted(purchase.provisioning_context.items()))
    if purchase.attestation_accepted is not None:
        options["attestationAccepted"] = purchase.attestation_accepted
    line: OrderLineJson = {
        **product,
        "quantity": quantity,
        "billingCycle": billing_cycle,
        "termDuration": identity.term_duration,
        "type": asset_type,
        **options,
    }

    header: _OrderHeader = {
        "resellerCustomerId": identity.customer_tenant_id,
        "externalOrderId": external_order_id,
    }
    if purchase.notification_email is not None:
        header["notificationEmail"] = purchase.notification_email
    if purchase.invoice_profile_id is not None:
        header["invoiceProfileId"] = purchase.invoice_profile_id
    return {**header, "orderLines": [line]}


#: The fields of the legacy endpoints' order (AssetOrder) and order line (AssetOrderLine).
LEGACY_ORDER_FIELDS: Final = frozenset(
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
LEGACY_LINE_FIELDS: Final = frozenset(
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


def legacy_order(order: OrderJson) -> OrderJson:
    """``order`` with only the fields the legacy ``/assets/*`` endpoints take."""
    header = {k: v for k, v in order.items() if k in LEGACY_ORDER_FIELDS}
    lines = [
        {k: v for k, v in line.items() if k in LEGACY_LINE_FIELDS} for line in order["orderLines"]
    ]
    return cast("OrderJson", {**header, "orderLines": lines})


def legacy_dropped_fields(purchase: Purchase) -> tuple[str, ...]:
    """The order fields ``purchase`` declares that a legacy order cannot carry, sorted
    (``("attestationAccepted",)`` when it declares one): verify and checkout on
    ``/assets/*`` go without them."""
    full = build_order(purchase, 1, "reconciler-legacy-check")
    kept = legacy_order(full)
    dropped = set(full) - set(kept)
    for line, kept_line in zip(full["orderLines"], kept["orderLines"], strict=True):
        dropped |= set(line) - set(kept_line)
    return tuple(sorted(dropped))


def new_external_order_id() -> str:
    """A fresh, unique correlation id for one order."""
    return "reconciler-" + uuid.uuid4().hex


def read_verified(sent: Mapping[str, Any], body: Mapping[str, Any]) -> VerifiedOrder:
    """Verify's answer ``body`` to the order ``sent``, with every error it implies."""
    return VerifiedOrder(body=body, errors=_verify_errors(body) + _echo_mismatches(sent, body))


def _verify_errors(body: Mapping[str, Any]) -> tuple[LineError, ...]:
    """The order's ``errors`` and every line's ``errors``."""
    errors = [_line_error(-1, entry) for entry in as_list(ci_get(body, "errors"))]
    for index, line in enumerate(as_list(ci_get(body, "orderLines"))):
        if isinstance(line, dict):
            errors.extend(_line_error(index, entry) for entry in as_list(ci_get(line, "errors")))
    return tuple(error for error in errors if error is not None)


def _line_error(line: int, entry: Any) -> LineError | None:
    """One entry of an ``errors`` list; ``line`` -1 is the order's own list."""
    if entry is None:
        return None
    if not isinstance(entry, dict):
        return LineError(line, "", str(entry), MappingProxyType({}))
    # The order's errors name their code "code", a line's "reasonCode"; each
    # list falls back on the other name.
    first, second = ("code", "reasonCode") if line < 0 else ("reasonCode", "code")
    code = ci_get(entry, first)
    if code is None:
        code = ci_get(entry, second)
    description = ci_get(entry, "description") or ci_get(entry, "message") or ""
    properties = text_map(ci_get(entry, "properties"))
    group = ci_get(entry, "orderGroupId") if line < 0 else None
    if group is not None:
        properties = MappingProxyType({**properties, "orderGroupId": str(group)})
    return LineError(line, str(code or ""), str(description), properties)


_ECHO_ORDER_FIELDS: Final = ("resellerCustomerId", "externalOrderId")
_ECHO_LINE_FIELDS: Final = (
    "productId",
    "skuId",
    "productVariantId",
    "quantity",
    "billingCycle",
    "termDuration",
    "type",
)


def _echo_mismatches(sent: Mapping[str, Any], body: Mapping[str, Any]) -> tuple[LineError, ...]:
    """Errors for every field verify changed: checkout buys what verify returned.

    A verify answer with another quantity, product or tenant than we asked for
    would make the state record something else than what is bought.
    """
    found: list[LineError] = []

    def compare(line: int, name: str, ours: Any, theirs: Any) -> None:
        if ours is None or theirs is None or ours == theirs:
            return
        if str(ours).casefold() == str(theirs).casefold():
            return
        found.append(
            LineError(
                line,
                "VerifyResponseMismatch",
                f"verify answered {name}={theirs!r} for an order with {name}={ours!r}",
                MappingProxyType({"field": name}),
            )
        )

    for name in _ECHO_ORDER_FIELDS:
        compare(-1, name, ci_get(sent, name), ci_get(body, name))
    if not isinstance(ci_get(sent, "orderLines"), list):
        return tuple(found)
    sent_lines = as_list(ci_get(sent, "orderLines"))
    answered_lines = as_list(ci_get(body, "orderLines"))
    if len(sent_lines) != len(answered_lines):
        compare(-1, "len(orderLines)", len(sent_lines), len(answered_lines))
        return tuple(found)
    for index, (ours, theirs) in enumerate(zip(sent_lines, answered_lines, strict=True)):
        if isinstance(ours, dict) and isinstance(theirs, dict):
            for name in _ECHO_LINE_FIELDS:
                compare(index, name, ci_get(ours, name), ci_get(theirs, name))
    return tuple(found)
