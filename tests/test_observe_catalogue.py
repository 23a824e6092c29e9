"""Product names and prices from the API's catalogue (``reconciler.observe.catalogue``)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from reconciler.api.records import CatalogEntry, Price
from reconciler.model import Identity
from reconciler.observe import catalogue_for
from tests.support.records import BASIC, PREMIUM, TENANT


def entry(identity: Identity, price: Price | None) -> CatalogEntry:
    return CatalogEntry(
        identity.product_id,
        identity.sku_id,
        identity.product,
        None,
        "Microsoft 365 Business Basic",
        "Microsoft 365 Business Basic",
        price,
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("price", "unit", "currency"),
    [(Price(Decimal("5.60"), "EUR"), Decimal("5.60"), "EUR"), (None, None, None)],
)
def test_catalogue_gives_names_and_prices_and_unknown_for_absent_prices(
    price: Price | None, unit: Decimal | None, currency: str | None
) -> None:
    found = catalogue_for([BASIC, PREMIUM], {TENANT: [entry(BASIC, price)]})
    assert set(found) == {BASIC}
    info = found[BASIC]
    assert (info.name, info.unit_price, info.currency) == (
        "Microsoft 365 Business Basic",
        unit,
        currency,
    )
