"""The recorded state: purchases, their checkouts and adjustments, pending operations.

Data only; no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

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
    #: The Cloud-iQ subscription the checkout made, once it is known.
    subscription: int | None = None


class UpdateField(enum.StrEnum):
    """What a PUT of a subscription changes."""

    #: The seats (an absolute quantity: up or down).
    QUANTITY = "quantity"
    #: The subscription is cancelled (``before`` its seats, ``after`` 0).
    CANCEL = "cancel"
    #: Renewal at the end of the term (``before``/``after`` 1 on, 0 off).
    AUTO_RENEW = "autoRenew"


@dataclass(frozen=True)
class SubscriptionChange:
    """One PUT of one subscription: ``field`` from ``before`` to ``after``."""

    subscription: int
    field: UpdateField
    before: int
    after: int

    @property
    def seats(self) -> int:
        """The seats it adds (negative: removes)."""
        if self.field is UpdateField.AUTO_RENEW:
            return 0
        return self.after - self.before

    @property
    def operation(self) -> str:
        """An id for the change, unique in one state: it names the pending entry."""
        return f"update:{self.subscription}:{self.field.value}:{self.before}->{self.after}"


@dataclass(frozen=True)
class UpdateRecord:
    """A PUT of a subscription that took effect, as the state records it.

    ``evidence`` says how an answer that was lost was settled (read back); None for
    a 200.
    """

    change: SubscriptionChange
    time: str
    evidence: str | None = None


#: Cloud-iQ subscription statuses (as the API records name them) in which a subscription
#: holds seats (a new one may still be provisioning), and in which they are gone for good.
HOLDING_STATUSES = frozenset({"active", "pending"})
GONE_STATUSES = frozenset({"deleted", "customer-cancellation", "converted", "expired", "cancelled"})


def describe_subscriptions(ids: Sequence[int]) -> str:
    """``subscription 500001``, ``subscriptions 500001, 500002``: as evidence and reasons
    name them."""
    if not ids:
        return "no subscription"
    label = "subscription" if len(ids) == 1 else "subscriptions"
    return f"{label} {', '.join(str(i) for i in ids)}"


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
    #: The Cloud-iQ subscriptions the address owns, by id, in the order it gained them.
    subscriptions: tuple[int, ...] = ()
    #: The externalOrderIds of checkouts answered 204 whose subscription Cloud-iQ has
    #: not shown yet: their seats count as the address's until it does.
    unseen: tuple[str, ...] = ()
    #: The PUTs this tool made of the address's subscriptions.
    updates: tuple[UpdateRecord, ...] = ()

    @classmethod
    def bought(cls, address: str, identity: Identity, record: CheckoutRecord) -> RecordedPurchase:
        """The purchase a first checkout makes at ``address``."""
        return cls(address, identity, 0).with_checkout(record)

    def with_checkout(self, record: CheckoutRecord) -> RecordedPurchase:
        """This purchase and one more checkout: its seats, and its subscription when known
        (else the checkout waits, unseen, until Cloud-iQ lists it)."""
        owned, unseen = self.subscriptions, self.unseen
        if record.subscription is None:
            unseen = (*unseen, record.external_order_id)
        elif record.subscription not in owned:
            owned = (*owned, record.subscription)
        return replace(
            self,
            quantity=self.quantity + record.quantity,
            checkouts=(*self.checkouts, record),
            subscriptions=owned,
            unseen=unseen,
        )

    def with_links(self, links: Sequence[tuple[int, str | None]]) -> RecordedPurchase:
        """This purchase owning more subscriptions: each ``(subscription, order)`` link,
        ``order`` the unseen checkout (externalOrderId) that made it, or None."""
        owned = list(self.subscriptions)
        made = {order: sid for sid, order in links if order is not None}
        for sid, _ in links:
            if sid not in owned:
                owned.append(sid)
        checkouts = tuple(
            replace(c, subscription=made[c.external_order_id]) if c.external_order_id in made else c
            for c in self.checkouts
        )
        unseen = tuple(o for o in self.unseen if o not in made)
        return replace(self, subscriptions=tuple(owned), checkouts=checkouts, unseen=unseen)

    def with_adjustment(self, adjustment: Adjustment) -> RecordedPurchase:
        """This purchase with seats changed outside the reconciler."""
        return replace(
            self,
            quantity=self.quantity + adjustment.quantity,
            adjustments=(*self.adjustments, adjustment),
        )

    def with_update(self, record: UpdateRecord) -> RecordedPurchase:
        """This purchase after a PUT of one of its subscriptions took effect."""
        return replace(
            self, quantity=self.quantity + record.change.seats, updates=(*self.updates, record)
        )


@dataclass(frozen=True)
class PendingOperation:
    """An order or update that was sent (or about to be) whose outcome is not known.

    A checkout has its ``external_order_id`` and the seats it buys in ``quantity``;
    an update has ``update`` set, its ``operation`` as the id, and its seat change
    (negative for fewer) in ``quantity``.
    """

    address: str
    identity: Identity
    external_order_id: str
    quantity: int
    time: str
    update: SubscriptionChange | None = None

    @property
    def is_update(self) -> bool:
        return self.update is not None


STATE_VERSION = 1


@dataclass(frozen=True)
class State:
    """The recorded purchases and pending operations, as of ``serial``."""

    lineage: str
    serial: int = 0
    purchases: Mapping[str, RecordedPurchase] = field(default_factory=dict)
    pending: Mapping[str, PendingOperation] = field(default_factory=dict)
