"""The recorded state: purchases, their checkouts and adjustments, pending operations.

Data only; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.model.declarations import Identity


@dataclass(frozen=True)
class CheckoutRecord:
    """One checkout the API answered 204 (or that was resolved as purchased).

    ``evidence`` says how ``reconciler refresh`` learned that a pending checkout
    was made (the order it found, how it matched); None for a 204 or a hand resolve.
    """

    external_order_id: str
    quantity: int
    time: str
    evidence: str | None = None


#: The ``source`` of an adjustment written by ``reconciler refresh``.
REFRESH_SOURCE = "refresh"


@dataclass(frozen=True)
class Adjustment:
    """Seats changed outside the reconciler (in the Cloud-iQ portal), as recorded.

    ``quantity`` is the change (negative for seats cancelled); never a checkout:
    nothing was bought through the reconciler.
    """

    quantity: int
    time: str
    source: str
    evidence: str


@dataclass(frozen=True)
class RecordedPurchase:
    """Seats the state says are held for one address.

    ``quantity`` is what was bought (the checkouts, or the seats imported) plus
    every adjustment; 0 only after adjustments took every seat away.
    """

    address: str
    identity: Identity
    quantity: int
    checkouts: tuple[CheckoutRecord, ...] = ()
    adjustments: tuple[Adjustment, ...] = ()


@dataclass(frozen=True)
class PendingOperation:
    """A checkout that was sent (or about to be) and whose outcome is not known."""

    address: str
    identity: Identity
    external_order_id: str
    quantity: int
    time: str


STATE_VERSION = 1


@dataclass(frozen=True)
class State:
    """The recorded purchases and pending operations, as of ``serial``."""

    lineage: str
    serial: int = 0
    purchases: Mapping[str, RecordedPurchase] = field(default_factory=dict)
    pending: Mapping[str, PendingOperation] = field(default_factory=dict)
