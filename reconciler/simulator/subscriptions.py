"""Subscriptions: their seats, Microsoft's cancellation window, and Update subscription.

A ``SubscriptionRecord`` keeps its seats in batches, each with the time it was
added (at creation, at each increase by PUT or in the portal). Microsoft's
new-commerce rule, as assumed here: seats may be taken back, or a subscription
cancelled, only within 168 hours of the purchase or of the increase that added
them. So a PUT may lower the quantity by at most the seats added within the
last 168 hours (reductions take the newest seats first), a cancellation
(Status Suspended) is refused for a subscription created more than 168 hours
ago, and a quantity below 1 is refused (cancel instead). A cancelled
subscription keeps its quantity and has status Suspended; assumed too: the
status a subscription is PUT with is the one it then has.

``update`` checks a PUT body against ``SubscriptionDetailed`` as the published
document has it (names matched ignoring case, unknown fields refused, the body's
id the path's) and returns the changed record or raises the API's error answer.
``subscription_item`` and ``subscription_detail`` are the JSON the list and the
single-subscription endpoints answer (PascalCase, as Crayon's examples show).
Pure: no state, no clock of its own (the caller passes now), no HTTP, and no
import of ``reconciler.api`` or ``reconciler.model``.
"""

from __future__ import annotations

import calendar
import dataclasses
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from reconciler.simulator.clock import stamp
from reconciler.simulator.wire import Reply, error_body, is_int, object_error

#: SubscriptionStatus values the simulator sets (the published document's enum).
STATUS_ACTIVE: Final = 1
STATUS_SUSPENDED: Final = 2
STATUS_CUSTOMER_CANCELLATION: Final = 8
SUBSCRIPTION_STATUSES: Final = frozenset({0, 1, 2, 4, 8, 16, 30, 31, 32, 64})
#: Seats may be taken back within this long of being added.
CANCELLATION_WINDOW: Final = timedelta(hours=168)
#: BillingCycleType (orders) -> BillingCycleEnum (subscriptions).
CYCLE_TO_SUBSCRIPTION: Final = {1: 1, 2: 2, 3: 3, 4: 4, 5: 8}
#: The one organisation (reseller) every simulated customer tenant belongs to.
ORGANIZATION_ID: Final = 9001
ORGANIZATION_NAME: Final = "Simulated Reseller"
_PUBLISHER: Final = {"Id": 2, "Name": "Microsoft"}
_TERM_MONTHS: Final = {"P1M": 1, "P1Y": 12, "P3Y": 36}

#: Every field of SubscriptionDetailed in the published document; a PUT may carry
#: no other, and may change only the last three.
DETAILED_FIELDS: Final = frozenset(
    {
        "effectiveStartDate",
        "commitmentEndDate",
        "suspensionReasons",
        "originalAgreementId",
        "pricing",
        "attestationAccepted",
        "id",
        "publisherSubscriptionId",
        "entitlementId",
        "publisher",
        "organization",
        "customerTenant",
        "product",
        "quantity",
        "name",
        "status",
        "provisionType",
        "availableAddonsCount",
        "subscriptions",
        "orderId",
        "creationDate",
        "billingCycle",
        "markup",
        "isTrial",
        "startDate",
        "endDate",
        "priceType",
        "salesPrice",
        "registeredForReservedInstance",
        "invoiceProfile",
        "subscriptionTags",
        "acceptAutoSuspension",
        "autoSuspensionDate",
        "partNumber",
        "termDuration",
        "autoRenewEnabled",
    }
)
_CHANGEABLE: Final = frozenset({"quantity", "status", "autorenewenabled"})
_DETAILED_BY_FOLDED: Final = {name.casefold(): name for name in DETAILED_FIELDS}


@dataclass(frozen=True)
class SeatBatch:
    """Seats added to a subscription at one time."""

    added: datetime
    seats: int


@dataclass(frozen=True)
class SubscriptionRecord:
    """One subscription; ``billing_cycle`` is the order's BillingCycleType it was bought with.

    ``order_reference`` is None for a subscription added in the portal without an
    order. Its quantity is the sum of its seat batches.
    """

    id: int
    tenant: int
    product_id: str
    sku_id: str
    catalog_item_id: str
    name: str
    billing_cycle: int
    term_duration: str
    created: datetime
    order_reference: int | None
    batches: tuple[SeatBatch, ...]
    status: int = STATUS_ACTIVE
    auto_renew: bool = True

    @property
    def quantity(self) -> int:
        return sum(batch.seats for batch in self.batches)

    @property
    def product(self) -> str:
        return f"{self.product_id}:{self.sku_id}"

    @property
    def active(self) -> bool:
        return self.status == STATUS_ACTIVE

    @property
    def start(self) -> str:
        return stamp(self.created)

    @property
    def commitment_end(self) -> datetime:
        """The end of the current term: its renewal."""
        return _add_months(self.created, _TERM_MONTHS.get(self.term_duration, 1))

    def reducible(self, now: datetime) -> int:
        """Seats added within the cancellation window before ``now``."""
        return sum(b.seats for b in self.batches if now - b.added < CANCELLATION_WINDOW)

    def window_ends(self, now: datetime) -> datetime | None:
        """When the last seats still inside the window leave it; None when none are."""
        inside = [b.added for b in self.batches if now - b.added < CANCELLATION_WINDOW]
        return max(inside) + CANCELLATION_WINDOW if inside else None

    def with_quantity(self, quantity: int, now: datetime) -> SubscriptionRecord:
        """This subscription holding ``quantity`` seats: an increase is a batch added
        ``now``; a decrease takes the newest seats first (no window check here)."""
        batches = list(self.batches)
        if quantity > self.quantity:
            batches.append(SeatBatch(now, quantity - self.quantity))
        remove = self.quantity - quantity
        while remove > 0 and batches:
            newest = batches.pop()
            if newest.seats > remove:
                batches.append(SeatBatch(newest.added, newest.seats - remove))
            remove -= newest.seats
        return dataclasses.replace(self, batches=tuple(batches))


def new_subscription(
    subscription_id: int,
    *,
    tenant: int,
    product_id: str,
    sku_id: str,
    catalog_item_id: str,
    name: str,
    quantity: int,
    billing_cycle: int,
    term_duration: str,
    created: datetime,
    order_reference: int | None,
) -> SubscriptionRecord:
    return SubscriptionRecord(
        id=subscription_id,
        tenant=tenant,
        product_id=product_id,
        sku_id=sku_id,
        catalog_item_id=catalog_item_id,
        name=name,
        billing_cycle=billing_cycle,
        term_duration=term_duration,
        created=created,
        order_reference=order_reference,
        batches=(SeatBatch(created, quantity),),
    )


# --------------------------------------------------------------------------- JSON


def product_reference_id(product: str) -> int:
    """A stable int32 id for a "productId:skuId" (ProductReference.id is an integer)."""
    return zlib.crc32(product.encode()) % 2_000_000_000 + 1


def subscription_item(s: SubscriptionRecord) -> dict[str, Any]:
    """One subscription as the subscriptions list shows it (``Subscription``)."""
    end = stamp(s.commitment_end)
    return {
        "Id": s.id,
        "PublisherSubscriptionId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"subscription:{s.id}")),
        "Publisher": dict(_PUBLISHER),
        "Organization": {"Id": ORGANIZATION_ID, "Name": ORGANIZATION_NAME},
        "CustomerTenant": {"Id": s.tenant},
        "Product": {
            "Id": product_reference_id(s.product),
            "PartNumber": s.product,
            "ItemName": s.name,
        },
        "PartNumber": s.product,
        "Name": s.name,
        "Quantity": s.quantity,
        "Status": s.status,
        "BillingCycle": CYCLE_TO_SUBSCRIPTION.get(s.billing_cycle, 0),
        "TermDuration": s.term_duration,
        "OrderId": None if s.order_reference is None else str(s.order_reference),
        "CreationDate": s.start,
        "StartDate": s.start,
        "EndDate": end,
        "IsTrial": False,
        "AutoRenewEnabled": s.auto_renew,
    }


def subscription_detail(s: SubscriptionRecord) -> dict[str, Any]:
    """One subscription as ``GET /api/v1/subscriptions/{id}`` answers it
    (``SubscriptionDetailed``)."""
    return subscription_item(s) | {
        "EffectiveStartDate": s.start,
        "CommitmentEndDate": stamp(s.commitment_end),
    }


def _add_months(when: datetime, months: int) -> datetime:
    year, month = divmod(when.month - 1 + months, 12)
    year += when.year
    day = min(when.day, calendar.monthrange(year, month + 1)[1])
    return when.replace(year=year, month=month + 1, day=day)


# --------------------------------------------------------------------------- PUT


def update(
    current: SubscriptionRecord, path_id: int, body: Any, now: datetime
) -> SubscriptionRecord:
    """The subscription after a PUT of ``body``, or the 4xx ``Reply`` refusing it."""
    fields = _body_fields(body, path_id)
    if not current.active:
        raise _refused(
            409,
            f"Subscription {current.id} is not active (status {current.status}); "
            "only an active subscription can be updated.",
            "status",
            "SubscriptionNotActive",
        )
    stored = {k.casefold(): v for k, v in subscription_detail(current).items()}
    for name, value in fields.items():
        if name in _CHANGEABLE or value is None or name not in stored:
            continue
        if _folded(stored[name]) != _folded(value):
            raise _refused(400, f"{_DETAILED_BY_FOLDED[name]} cannot be changed.", name)
    quantity = fields.get("quantity", current.quantity)
    status = fields.get("status", current.status)
    auto_renew = fields.get("autorenewenabled", current.auto_renew)
    if not is_int(quantity):
        raise _refused(400, "Quantity must be a whole number.", "quantity")
    if not is_int(status) or status not in SUBSCRIPTION_STATUSES:
        raise _refused(400, f"Status {status!r} is not a subscription status.", "status")
    if auto_renew is not None and not isinstance(auto_renew, bool):
        raise _refused(400, "AutoRenewEnabled must be true or false.", "autoRenewEnabled")
    if quantity < 1:
        raise _refused(
            400,
            f"Quantity must be at least 1, not {quantity}; to cancel the subscription, "
            f"set Status to Suspended ({STATUS_SUSPENDED}).",
            "quantity",
        )
    changed = dataclasses.replace(
        current, auto_renew=current.auto_renew if auto_renew is None else auto_renew
    )
    if status != current.status:
        if status != STATUS_SUSPENDED:
            raise _refused(
                400,
                f"Status can only be changed to Suspended ({STATUS_SUSPENDED}), not {status}.",
                "status",
            )
        if quantity != current.quantity:
            raise _refused(400, "Change the quantity or the status, not both.", "status")
        return _cancelled(changed, now)
    if quantity < current.quantity:
        _check_reduction(current, quantity, now)
    return changed.with_quantity(quantity, now)


def _body_fields(body: Any, path_id: int) -> dict[str, Any]:
    """The PUT body's fields by casefolded name, or the 400 ``Reply`` refusing a body
    that is no object, has a field twice or one a subscription lacks, or names
    another subscription than the path."""
    if not isinstance(body, dict):
        raise _refused(400, "The body must be a SubscriptionDetailed object.")
    fields: dict[str, Any] = {}
    for key, value in body.items():
        folded = key.casefold()
        if folded not in _DETAILED_BY_FOLDED:
            raise _refused(400, f"{key} is not a field of a subscription.", key)
        if folded in fields:
            raise _refused(400, f"{key} is given twice.", key)
        fields[folded] = value
    if "id" in fields and fields["id"] != path_id:
        message = f"The body is subscription {fields['id']!r}, the path subscription {path_id}."
        raise _refused(400, message, "id")
    return fields


def _folded(value: Any) -> Any:
    """``value`` with every object key casefolded: names are matched ignoring case."""
    if isinstance(value, dict):
        return {str(k).casefold(): _folded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_folded(v) for v in value]
    return value


def _cancelled(s: SubscriptionRecord, now: datetime) -> SubscriptionRecord:
    if now - s.created >= CANCELLATION_WINDOW:
        raise _refused(
            409,
            f"Subscription {s.id} was created at {s.start}, more than 168 hours ago: it "
            "can no longer be cancelled. It ends at its renewal on "
            f"{stamp(s.commitment_end)} if auto-renew is turned off.",
            "status",
            "CancellationWindowExpired",
        )
    return dataclasses.replace(s, status=STATUS_SUSPENDED)


def _check_reduction(s: SubscriptionRecord, quantity: int, now: datetime) -> None:
    fewer = s.quantity - quantity
    allowed = s.reducible(now)
    if fewer <= allowed:
        return
    if allowed:
        inside = f"only {allowed} of them were added within the last 168 hours"
    else:
        inside = "none of them were added within the last 168 hours"
    raise _refused(
        409,
        f"Subscription {s.id} cannot go from {s.quantity} to {quantity} seats: {inside}, "
        "and seats can be removed only within 168 hours of being added. Lower the "
        f"quantity at the renewal on {stamp(s.commitment_end)} instead.",
        "quantity",
        "CancellationWindowExpired",
    )


def _refused(status: int, message: str, field: str = "", code: str = "InvalidValue") -> Reply:
    return Reply(status, error_body(status, message, [object_error(code, message, field)]))


def check_quantity(quantity: Any) -> int:
    """A portal quantity: a whole number of at least 1, or ValueError."""
    if not is_int(quantity) or quantity < 1:
        raise ValueError(f"quantity must be a positive integer, not {quantity!r}")
    return int(quantity)
