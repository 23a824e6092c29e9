"""Names and unit prices of identities, from the agreement products read.

Pure: it must not read the API; an unknown price stays None, never 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from reconciler.api.records import CatalogEntry
from reconciler.model import Identity


@dataclass(frozen=True)
class ProductInfo:
    """A product's name and unit price for one identity, as plan output shows them."""

    name: str | None
    unit_price: Decimal | None
    currency: str | None


def catalogue_for(
    identities: Iterable[Identity], entries: Mapping[int, Sequence[CatalogEntry]]
) -> dict[Identity, ProductInfo]:
    """Names and unit prices of ``identities`` from each tenant's agreement products.

    An identity whose tenant was not read, or whose product:sku is not listed, has
    no entry; a listed one without a price has ``unit_price`` None: unknown, never 0.
    """
    by_product: dict[tuple[int, str], CatalogEntry] = {}
    for tenant, listed in entries.items():
        for item in listed:
            by_product.setdefault((tenant, item.product), item)
    found = {}
    for identity in identities:
        entry = by_product.get((identity.customer_tenant_id, identity.product))
        if entry is None:
            continue
        price = entry.sales_price
        found[identity] = ProductInfo(
            name=entry.name or entry.product_name or None,
            unit_price=price.value if price is not None else None,
            currency=price.currency if price is not None else None,
        )
    return found
