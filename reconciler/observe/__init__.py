"""Observations: what Cloud-iQ shows, held against what the state records.

Given the declarations, the state and what was read from the API
(``Readings``: active subscriptions per customer tenant, processed orders,
asset orders by externalOrderId), ``observe`` computes per identity (tenant,
product, sku, billing cycle, term; see ``seat_key``) the seats Cloud-iQ shows
against the seats recorded, as ``Drift``; the identities no declared or
recorded address has, as ``Unmanaged``; and for every pending entry the
``Evidence`` the API holds about its checkout, by the matching rules in
``reconciler.observe.evidence``. ``guard_purchases`` turns a purchase into a
conflict when Cloud-iQ already shows seats of its identity that no address
accounts for (read before buying).

    readings    Readings (what the caller read), SeatKey, seat_key
    evidence    Proof, Evidence, CLOCK_SKEW: the matching rules for a pending checkout
    drift       observe -> Observations (Drift, Unmanaged, CloudSeats), tenants_of
    guard       guard_purchases: read before buying
    catalogue   catalogue_for -> ProductInfo (names and unit prices for plan output)

Subscriptions carry no purchase type, so seats are compared by ``seat_key``,
which leaves the type out; the identity shown is that of the addresses.

Pure: no I/O, no clock, no environment; the caller reads the API and passes
what it read in. Nothing in this package imports ``requests`` or a store.
"""

from typing import TYPE_CHECKING

from reconciler.lazy import lazy_exports

if TYPE_CHECKING:
    from reconciler.observe.catalogue import ProductInfo, catalogue_for
    from reconciler.observe.drift import (
        CloudSeats,
        Drift,
        Observations,
        Unmanaged,
        observe,
        tenants_of,
    )
    from reconciler.observe.evidence import CLOCK_SKEW, Evidence, Proof
    from reconciler.observe.guard import guard_purchases
    from reconciler.observe.readings import Readings, SeatKey, seat_key

__all__ = [
    "CLOCK_SKEW",
    "CloudSeats",
    "Drift",
    "Evidence",
    "Observations",
    "ProductInfo",
    "Proof",
    "Readings",
    "SeatKey",
    "Unmanaged",
    "catalogue_for",
    "guard_purchases",
    "observe",
    "seat_key",
    "tenants_of",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ProductInfo": "catalogue",
        "catalogue_for": "catalogue",
        "CloudSeats": "drift",
        "Drift": "drift",
        "Observations": "drift",
        "Unmanaged": "drift",
        "observe": "drift",
        "tenants_of": "drift",
        "CLOCK_SKEW": "evidence",
        "Evidence": "evidence",
        "Proof": "evidence",
        "guard_purchases": "guard",
        "Readings": "readings",
        "SeatKey": "readings",
        "seat_key": "readings",
    },
)
