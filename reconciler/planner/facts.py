"""What the planner knows of one address, and the words and times its rules share.

Pure; no I/O, no clock (the read's time comes with the observations).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

from reconciler.model import (
    HOLDING_STATUSES,
    Action,
    Adopt,
    Change,
    PendingOperation,
    Purchase,
    RecordedPurchase,
    Removal,
)

if TYPE_CHECKING:  # an offline plan loads nothing of observe or the API's records
    from reconciler.api.records import Subscription
    from reconciler.observe.cloud import Observations
    from reconciler.observe.ownership import AddressSeats

HOLDING = HOLDING_STATUSES

#: Microsoft's cancellation window: seats can be removed this long after they were
#: bought (or the term renewed); afterwards only at the end of the term.
WINDOW = timedelta(hours=168)


class Address(NamedTuple):
    """Everything known of one address (a named tuple: the planner makes one per
    address, and a tuple is made several times faster than a frozen dataclass)."""

    address: str
    desired: Purchase | None
    recorded: RecordedPurchase | None
    pending: PendingOperation | None
    cloud: Observations | None
    removal: Removal | None = None
    adoption: Adopt | None = None

    @property
    def tenant(self) -> int:
        for entry in (self.desired, self.recorded, self.pending):
            if entry is not None:
                return entry.identity.customer_tenant_id
        raise AssertionError("an address is declared, recorded or pending")

    @property
    def online(self) -> bool:
        """Whether Cloud-iQ was read for this address's tenant."""
        return self.cloud is not None and self.cloud.read(self.tenant)


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def seats(n: int) -> str:
    return count(n, "seat")


def conflict(
    desired: Purchase,
    before: int,
    reason: str,
    *,
    subscriptions: tuple[int, ...] = (),
    window_ends: str | None = None,
    cloud: bool = False,
) -> Change:
    return Change(
        desired.address,
        Action.CONFLICT,
        before,
        desired.quantity,
        0,
        desired.identity,
        desired,
        reason=reason,
        subscriptions=subscriptions,
        window_ends=window_ends,
        cloud=cloud,
    )


def now_of(facts: Address) -> datetime | None:
    cloud = facts.cloud
    return utc(cloud.now) if cloud is not None and cloud.now is not None else None


def term_start(sub: Subscription) -> datetime | None:
    """When the window of ``sub``'s seats opened: its purchase, or its term's renewal."""
    moments = [utc(m) for m in (sub.creation_date, sub.start_date) if m is not None]
    return max(moments) if moments else None


def renewal(seen: AddressSeats) -> str | None:
    ends = [utc(s.end_date) for s in seen.holding if s.end_date is not None]
    return show(min(ends)) if ends else None


def utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def show(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else ""
