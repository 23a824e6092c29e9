"""One state write, as every store persists it.

A ``Write`` says what one address holds after the write: a recorded purchase, a
pending entry, ``None`` for none, or ``KEEP`` for unchanged. The ledger makes
them, the stores persist them (a journal line, a database transaction) and
replay them. Data only: no I/O, no rules.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from reconciler.model import PendingOperation, RecordedPurchase


class Keep(enum.Enum):
    """A write leaves this table unchanged at its address."""

    KEEP = "keep"


KEEP = Keep.KEEP

#: The operations a write can record, as the journal names them.
OPERATIONS = (
    "add_pending",
    "record_checkout",
    "remove_pending",
    "remove_purchase",
    "import_purchase",
    "move_purchase",
    "adjust_quantity",
    "record_update",
    "link_subscriptions",
)


@dataclass(frozen=True)
class Write:
    """One write: after it, ``address`` holds ``purchase`` and ``pending`` (None = none).

    ``moved_from`` names the address a ``move_purchase`` write empties in the same
    write, so a move is one serial and never leaves the purchase at both addresses.
    """

    lineage: str
    serial: int
    op: str
    address: str
    purchase: RecordedPurchase | Keep | None
    pending: PendingOperation | Keep | None
    time: str | None = None
    moved_from: str | None = None
    #: The journal entry of this write, once the ledger has made and checked it
    #: (``jsonrecords.entry_line``); stores reuse it instead of encoding it again.
    entry: str | None = field(default=None, compare=False, repr=False)
