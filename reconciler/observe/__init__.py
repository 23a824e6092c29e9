"""Observations: what Cloud-iQ shows, held against what the state records.

Given the declarations, the state and what was read from the API (``Readings``:
the subscriptions of each customer tenant in every status, processed orders,
asset orders by externalOrderId, the API's clock), ``observe`` finds for every
pending entry the ``Evidence`` the API holds about it; for every recorded
address the subscriptions it owns and the seats they hold (``AddressSeats``),
with the links refresh records (a checkout to the subscription it made, an
address to the subscriptions of its identity it takes over) and the ``Drift``
between those seats and the seats recorded; and the ``Unmanaged``
subscriptions no address owns. ``project`` gives the state refresh leaves.

    readings    Readings (what the caller read), SeatKey, seat_key
    evidence    Proof, Evidence, CLOCK_SKEW: the matching rules for a pending checkout
    ownership   AddressSeats, Link, own: which subscriptions each address owns
    cloud       observe -> Observations (Drift, Unmanaged, CloudSeats), project, tenants_of
    catalogue   catalogue_for -> ProductInfo (names and unit prices for plan output)

Subscriptions carry no purchase type, so seats are compared by ``seat_key``,
which leaves the type out.

Pure: no I/O, no clock, no environment; the caller reads the API and passes
what it read in. Nothing in this package imports ``requests`` or a store.
"""

from typing import TYPE_CHECKING

from reconciler.lazy import lazy_exports

if TYPE_CHECKING:
    from reconciler.observe.catalogue import ProductInfo, catalogue_for
    from reconciler.observe.cloud import (
        CloudSeats,
        Drift,
        Observations,
        Unmanaged,
        observe,
        project,
        settle,
        tenants_of,
    )
    from reconciler.observe.evidence import CLOCK_SKEW, Evidence, Proof
    from reconciler.observe.ownership import AddressSeats, Link
    from reconciler.observe.readings import Readings, SeatKey, seat_key

__all__ = [
    "CLOCK_SKEW",
    "AddressSeats",
    "CloudSeats",
    "Drift",
    "Evidence",
    "Link",
    "Observations",
    "ProductInfo",
    "Proof",
    "Readings",
    "SeatKey",
    "Unmanaged",
    "catalogue_for",
    "observe",
    "project",
    "seat_key",
    "settle",
    "tenants_of",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ProductInfo": "catalogue",
        "catalogue_for": "catalogue",
        "CloudSeats": "cloud",
        "Drift": "cloud",
        "Observations": "cloud",
        "Unmanaged": "cloud",
        "observe": "cloud",
        "project": "cloud",
        "settle": "cloud",
        "tenants_of": "cloud",
        "CLOCK_SKEW": "evidence",
        "Evidence": "evidence",
        "Proof": "evidence",
        "AddressSeats": "ownership",
        "Link": "ownership",
        "Readings": "readings",
        "SeatKey": "readings",
        "seat_key": "readings",
    },
)
