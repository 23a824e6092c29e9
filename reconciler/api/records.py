"""What Cloud-iQ says: the wire records, the roles that read and change them, and the
typed, case-insensitive reading of the JSON they come from.

    Price, Subscription, SubscriptionDetail, ProcessedOrder, AssetOrder(Line),
    CatalogEntry                      frozen records of the read endpoints' items
    Listing, UnreadableItem           a list read: its records and the items it skipped
    ApiReader, SubscriptionUpdater    the roles refresh, import, plan and apply code against
    load_json                         JSON with limits on nesting depth and number size
    ci_get, Fields                    case-insensitive, typed reads of one JSON object

The Crayon API answers in PascalCase on some endpoints and camelCase on others,
so every field is looked up without regard to case. ``Fields`` raises a
DEFINITIVE ``ApiError`` naming the field's path for a needed field that is
missing or any field of the wrong type; ``reads`` decides what that means for a
list. This module must not import ``requests``, must do no I/O and must not
decide how a failed call counts (``failures`` does).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, Final, Protocol, TypeVar

from reconciler.errors import ApiError, FailureKind

_T = TypeVar("_T")

#: The subscription status flag of a subscription whose seats count.
STATUS_ACTIVE: Final = 1
#: The status a subscription is PUT with to cancel it (the documented way).
STATUS_SUSPENDED: Final = 2

#: How deep an answer's JSON may nest. Every documented answer stays under 10 levels.
MAX_JSON_DEPTH: Final = 64
#: How many characters one number in an answer may have (an int64 has at most 20).
MAX_NUMBER_TEXT: Final = 40


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
    ``reads.SUBSCRIPTION_BILLING_CYCLES``); ``status`` one of
    ``reads.SUBSCRIPTION_STATUSES``' names or "status-N" for a value no source
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


# --------------------------------------------------------------------------- JSON


class UnreadableJson(ValueError):
    """An answer that is not JSON, or JSON beyond the limits ``load_json`` keeps."""


def load_json(content: bytes | str) -> Any:
    """``content`` parsed as JSON, nested at most ``MAX_JSON_DEPTH`` levels, no number
    longer than ``MAX_NUMBER_TEXT`` characters, no NaN or Infinity.

    Raises ``UnreadableJson`` (never ``RecursionError`` or another ``ValueError``)
    for anything else. The parser itself stops at Python's recursion limit; the
    depth is then measured without recursing.
    """
    try:
        text = content.decode("utf-8") if isinstance(content, bytes) else content
    except UnicodeDecodeError:
        raise UnreadableJson("a body that is not UTF-8 text") from None
    try:
        data = json.loads(text, parse_int=_integer, parse_float=_float, parse_constant=_no_constant)
    except UnreadableJson:
        raise
    except RecursionError:
        raise UnreadableJson(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:
        raise UnreadableJson("a body that is not JSON") from None
    if _depth(data) > MAX_JSON_DEPTH:
        raise UnreadableJson(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return data


def _depth(data: Any) -> int:
    """How many arrays and objects nest in ``data``, counted without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Iterable[Any] = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        stack.extend((child, depth) for child in children if isinstance(child, dict | list))
    return deepest


def _integer(text: str) -> int:
    if len(text) > MAX_NUMBER_TEXT:
        raise UnreadableJson(f"a number of {len(text)} digits in JSON")
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_TEXT:
        raise UnreadableJson(f"a number of {len(text)} characters in JSON")
    value = float(text)
    if not math.isfinite(value):
        raise UnreadableJson(f"a number too large for a float ({text[:20]}) in JSON")
    return value


def _no_constant(text: str) -> Any:
    raise UnreadableJson(f"{text}, which is not a JSON number")


def ci_get(data: Mapping[str, Any], name: str) -> Any:
    """``data[name]`` matching the key case-insensitively; None when absent."""
    if name in data:
        return data[name]
    wanted = name.casefold()
    for key, value in data.items():
        if isinstance(key, str) and key.casefold() == wanted:
            return value
    return None


def ci_key(data: Mapping[str, Any], name: str) -> str | None:
    """The key of ``data`` that is ``name`` ignoring case; None when there is none."""
    if name in data:
        return name
    wanted = name.casefold()
    return next((k for k in data if isinstance(k, str) and k.casefold() == wanted), None)


def as_list(value: Any) -> list[Any]:
    """``value`` when it is a JSON array, else an empty list."""
    return value if isinstance(value, list) else []


def text_map(value: Any) -> Mapping[str, str]:
    """A read-only string-to-string copy of a JSON object; anything else reads as empty."""
    if not isinstance(value, dict):
        return MappingProxyType({})
    return MappingProxyType({str(k): "" if v is None else str(v) for k, v in value.items()})


# --------------------------------------------------------------------------- fields

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

INTEGER_TEXT: Final = re.compile(r"-?[0-9]{1,18}")


class Fields:
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
        return malformed(self._prefix + path, "missing")

    def wrong(self, path: str, expected: str, value: Any) -> ApiError:
        return malformed(self._prefix + path, f"expected {expected}, got {shown(value)}")

    def integer(self, path: str) -> int | None:
        value = self.raw(path)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and INTEGER_TEXT.fullmatch(value.strip()):
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
            word = enum_word(value)
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
    if isinstance(value, str) and len(value) <= MAX_NUMBER_TEXT:
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:
            return None
        return amount if amount.is_finite() else None
    return None


def enum_word(text: str) -> str:
    """An enum name the API wrote, casefolded and without separators: "One Time" -> "onetime"."""
    return re.sub(r"[\s_-]", "", text).casefold()


def shown(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def malformed(field: str, problem: str) -> ApiError:
    return definitive(f"{field}: {problem}" if field else problem)


def definitive(message: str) -> ApiError:
    # Asking again gets the same answer: DEFINITIVE. The client adds the URL.
    return ApiError(message, kind=FailureKind.DEFINITIVE)
