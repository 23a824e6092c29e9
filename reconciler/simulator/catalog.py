"""The simulator's catalogue: the products and customer tenants verify accepts.

``default_catalog`` is the built-in set the examples use, with unit prices;
``load_catalog`` reads a YAML or JSON file and reports every problem in it at
once. Agreement products list each item's name and price. This module must
not import ``reconciler.api`` or ``reconciler.model``; its one link to the rest
of the package is ``CatalogError``, a ``ReconcilerError`` so that the CLI's
error boundary prints a bad ``--catalog`` file as ``error: ...``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import yaml

from reconciler.errors import ReconcilerError
from reconciler.simulator.wire import is_int

#: The billing-cycle names a catalogue file (and a portal change) may use -> BillingCycleType.
CYCLE_BY_NAME: Final = {"monthly": 1, "annual": 2, "none": 3, "one-time": 4, "triennial": 5}
#: The currency of a catalogue price given without one.
DEFAULT_CURRENCY: Final = "EUR"


class CatalogError(ReconcilerError):
    """A simulator catalogue file is unreadable or invalid."""


@dataclass(frozen=True)
class CatalogItem:
    """One product:sku the simulated tenants may buy, and its limits."""

    product_id: str
    sku_id: str
    availability_id: str
    name: str
    max_quantity: int
    terms: tuple[str, ...]
    billing_cycles: tuple[int, ...]
    types: tuple[int, ...] = (3,)
    #: Unit price (agreement products' salesPrice); None: the API gives no price.
    price: Decimal | None = None
    currency: str | None = None

    @property
    def key(self) -> str:
        return f"{self.product_id}:{self.sku_id}"

    @property
    def catalog_item_id(self) -> str:
        return f"{self.product_id}:{self.sku_id}:{self.availability_id}"


def default_catalog() -> tuple[list[CatalogItem], set[int]]:
    """The built-in catalogue: common Microsoft NCE products and a few tenants."""
    both_terms = ("P1M", "P1Y")
    both_cycles = (1, 2)

    def item(
        product: str, sku: str, availability: str, name: str, price: str, max_q: int = 300
    ) -> CatalogItem:
        return CatalogItem(
            product,
            sku,
            availability,
            name,
            max_q,
            both_terms,
            both_cycles,
            price=Decimal(price),
            currency=DEFAULT_CURRENCY,
        )

    # Prices are plausible monthly list prices per seat, not Crayon's.
    catalog = [
        item("CFQ7TTC0LF8R", "0010", "CFQ7TTC0Q3X5", "Microsoft 365 Business Basic", "5.60"),
        item("CFQ7TTC0LDPB", "0001", "CFQ7TTC0Q3KB", "Microsoft 365 Business Standard", "11.70"),
        item("CFQ7TTC0LH18", "0001", "CFQ7TTC0Q3PN", "Microsoft 365 Business Premium", "20.60"),
        item("CFQ7TTC0LFLZ", "0002", "CFQ7TTC0Q3NP", "Microsoft 365 E3", "33.75"),
        item("CFQ7TTC0LFK5", "0002", "CFQ7TTC0Q3LZ", "Microsoft 365 E5", "54.75"),
        item("CFQ7TTC0LH1G", "0001", "CFQ7TTC0Q3SW", "Exchange Online (Plan 1)", "3.75"),
        item("CFQ7TTC0LHSF", "0001", "CFQ7TTC0QJ3K", "Microsoft Teams Essentials", "3.75", 20),
        item("CFQ7TTC0LCHC", "0002", "CFQ7TTC0Q3FM", "Power BI Pro", "13.10"),
        item("CFQ7TTC0MM8R", "0002", "CFQ7TTC0Q3VM", "Visio Plan 2", "14.10"),
        item("CFQ7TTC0HD33", "0001", "CFQ7TTC0Q3DD", "Project Plan 3", "28.10"),
        item("DG7GMGF0D7FV", "0001", "CFQ7TTC0Q3WV", "Windows 10/11 Enterprise E3", "6.80"),
    ]
    tenants = {100001, 100002, 100003, 111111, 222222, 333333, 123456}
    return catalog, tenants


def load_catalog(path: str | Path) -> tuple[list[CatalogItem], set[int]]:
    """Read a YAML or JSON catalogue file::

    tenants: [111111, 222222]
    products:
      - {productId: CFQ7TTC0LF8R, skuId: "0010", availabilityId: CFQ7TTC0Q3X5,
         name: Microsoft 365 Business Basic, maxQuantity: 300,
         terms: [P1M, P1Y], billingCycles: [monthly, annual], types: [3],
         price: 5.60, currency: EUR}

    ``price`` (optional) is the unit price agreement products answer as
    ``salesPrice.value``; without it ``salesPrice`` is null (an unknown price).
    ``currency`` (optional, a three-letter code, default EUR) needs a ``price``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise CatalogError(f"{path}: cannot read the catalogue: {error.strerror}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise CatalogError(f"{path}: not valid YAML/JSON: {error}") from None
    problems: list[str] = []
    catalog, tenants = _parse_catalog(data, problems)
    if problems:
        raise CatalogError("\n".join(f"{path}: {p}" for p in problems))
    return catalog, tenants


def _parse_catalog(data: Any, problems: list[str]) -> tuple[list[CatalogItem], set[int]]:
    if not isinstance(data, dict):
        problems.append("the catalogue must be a mapping with 'tenants' and 'products'")
        return [], set()
    unknown = sorted(set(data) - {"tenants", "products"})
    problems.extend(f"{key}: unknown key" for key in unknown)
    tenants = _parse_tenants(data.get("tenants"), problems)
    catalog: list[CatalogItem] = []
    raw_products = data.get("products")
    if not isinstance(raw_products, list):
        problems.append("products: must be a list")
        return catalog, tenants
    for index, raw in enumerate(raw_products):
        where = f"products[{index}]"
        if not isinstance(raw, dict):
            problems.append(f"{where}: must be a mapping")
            continue
        item = _parse_product(raw, where, problems)
        if item is not None:
            catalog.append(item)
    return catalog, tenants


def _parse_tenants(raw_tenants: Any, problems: list[str]) -> set[int]:
    tenants: set[int] = set()
    if not isinstance(raw_tenants, list):
        problems.append("tenants: must be a list of customer tenant ids")
        return tenants
    for index, tenant in enumerate(raw_tenants):
        if is_int(tenant) and tenant > 0:
            tenants.add(tenant)
        else:
            problems.append(f"tenants[{index}]: must be a positive integer")
    return tenants


def _parse_product(raw: dict[str, Any], where: str, problems: list[str]) -> CatalogItem | None:
    """The product at ``where``, or None after adding its problems."""
    allowed = {"productId", "skuId", "availabilityId", "name", "maxQuantity"}
    allowed |= {"terms", "billingCycles", "types", "price", "currency"}
    problems.extend(f"{where}.{key}: unknown key" for key in sorted(set(raw) - allowed))
    before = len(problems)
    strings = {}
    for key in ("productId", "skuId", "availabilityId", "name"):
        value = raw.get(key)
        if not isinstance(value, str) or not value:
            problems.append(f"{where}.{key}: must be a non-empty string")
        strings[key] = str(value)
    max_quantity = raw.get("maxQuantity", 300)
    if not is_int(max_quantity) or max_quantity < 1:
        problems.append(f"{where}.maxQuantity: must be a positive integer")
    terms = raw.get("terms", ["P1M", "P1Y"])
    if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
        problems.append(f"{where}.terms: must be a list of ISO-8601 durations")
        terms = []
    cycles: list[int] = []
    for cycle in raw.get("billingCycles", [1, 2]) or []:
        if isinstance(cycle, str) and cycle.casefold() in CYCLE_BY_NAME:
            cycles.append(CYCLE_BY_NAME[cycle.casefold()])
        elif is_int(cycle):
            cycles.append(cycle)
        else:
            problems.append(f"{where}.billingCycles: unknown billing cycle {cycle!r}")
    types = raw.get("types", [3])
    if not isinstance(types, list) or not all(is_int(t) for t in types):
        problems.append(f"{where}.types: must be a list of integers")
        types = []
    price, currency = _price(raw, where, problems)
    if len(problems) != before:
        return None
    return CatalogItem(
        product_id=strings["productId"],
        sku_id=strings["skuId"],
        availability_id=strings["availabilityId"],
        name=strings["name"],
        max_quantity=max_quantity,
        terms=tuple(terms),
        billing_cycles=tuple(cycles),
        types=tuple(types),
        price=price,
        currency=currency,
    )


def _price(
    raw: dict[str, Any], where: str, problems: list[str]
) -> tuple[Decimal | None, str | None]:
    """A product's optional ``price`` and ``currency``."""
    price = raw.get("price")
    currency = raw.get("currency")
    amount: Decimal | None = None
    if price is not None:
        if (
            isinstance(price, bool)
            or not isinstance(price, int | float)
            or not math.isfinite(price)
        ):
            problems.append(f"{where}.price: must be a number")
        elif price < 0:
            problems.append(f"{where}.price: must not be negative")
        else:
            # str() keeps what the file said: 5.6, not 5.5999999999999996447...
            amount = Decimal(str(price))
    if currency is not None:
        if not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha()):
            problems.append(f"{where}.currency: must be a three-letter currency code")
            currency = None
        elif price is None:
            problems.append(f"{where}.currency: needs a price")
    if amount is None:
        return None, None
    return amount, (currency or DEFAULT_CURRENCY).upper()
