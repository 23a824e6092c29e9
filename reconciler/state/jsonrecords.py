"""The state's records in JSON: each purchase, pending entry and journal entry
read with every value checked, and rendered back.

Reading checks every value (``schemas/state.schema.json`` describes the same
rules) and turns objects into the immutable records of ``model``; rendering gives
the objects the state file and the journal hold. ``parse_parts`` reads a state
given in parts, so the PostgreSQL store's rows pass the same checks as the file.
This module performs no I/O and knows nothing of the state file's document or its
journal marks (that is ``jsonformat``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from reconciler.model import (
    BILLING_CYCLES,
    IDENTITY_FIELDS,
    PURCHASE_TYPES,
    TERM_DURATIONS,
    Adjustment,
    CheckoutRecord,
    Identity,
    PendingOperation,
    RecordedPurchase,
    State,
    SubscriptionChange,
    UpdateField,
    UpdateRecord,
)
from reconciler.state.jsonvalues import (
    MAX_BIGINT,
    MAX_SEATS,
    Invalid,
    address_index,
    expect_address,
    expect_choice,
    expect_integer,
    expect_object,
    expect_string,
    expect_time,
    parse_json,
    show,
)
from reconciler.state.writes import KEEP, OPERATIONS, Keep, Write

_T = TypeVar("_T")

_PURCHASE_REQUIRED = (*IDENTITY_FIELDS, "quantity", "checkouts")
#: ``adjustments`` (seats changed in the portal, written by refresh) is present only
#: when there is one, so a state without any keeps its exact text.
_PURCHASE_KEYS = (*_PURCHASE_REQUIRED, "adjustments", "subscriptions", "unseen", "updates")
_CHECKOUT_REQUIRED = ("externalOrderId", "quantity", "time")
#: ``evidence`` only on a checkout refresh settled from what the API showed.
_CHECKOUT_KEYS = (*_CHECKOUT_REQUIRED, "evidence", "subscription")
_ADJUSTMENT_KEYS = ("quantity", "time", "source", "evidence")
_PENDING_REQUIRED = (*IDENTITY_FIELDS, "externalOrderId", "quantity", "time")
_PENDING_KEYS = (*_PENDING_REQUIRED, "update")
_CHANGE_KEYS = ("subscription", "field", "from", "to")
_UPDATE_REQUIRED = (*_CHANGE_KEYS, "time")
_UPDATE_KEYS = (*_UPDATE_REQUIRED, "evidence")
_FIELDS = tuple(f.value for f in UpdateField)
_ENTRY_REQUIRED = ("lineage", "serial", "op", "address")
_ENTRY_KEYS = (*_ENTRY_REQUIRED, "purchase", "pending", "time", "from")

_BILLING_CYCLES = tuple(BILLING_CYCLES)
_PURCHASE_TYPES = tuple(PURCHASE_TYPES)


#: Identities already checked, by their raw values: a state of 50,000 purchases holds a
#: few hundred distinct identities, and an Identity is immutable, so one is shared. The
#: tenant's type is part of the key because True == 1 (a boolean is no tenant id).
_IDENTITIES: dict[tuple[Any, ...], Identity] = {}


def _parse_identity(data: dict[str, Any]) -> Identity:
    tenant = data["customerTenantId"]
    key = (
        type(tenant),
        tenant,
        data["productId"],
        data["skuId"],
        data["billingCycle"],
        data["termDuration"],
        data["type"],
    )
    try:
        return _IDENTITIES[key]
    except (KeyError, TypeError):  # TypeError: an unhashable value, refused just below
        identity = _checked_identity(data)
    if len(_IDENTITIES) < 10_000:
        _IDENTITIES[key] = identity
    return identity


def _checked_identity(data: dict[str, Any]) -> Identity:
    return Identity(
        customer_tenant_id=expect_integer(
            data["customerTenantId"], "customerTenantId", 1, MAX_BIGINT
        ),
        product_id=expect_string(data["productId"], "productId"),
        sku_id=expect_string(data["skuId"], "skuId"),
        billing_cycle=expect_choice(data["billingCycle"], "billingCycle", _BILLING_CYCLES),
        term_duration=expect_choice(data["termDuration"], "termDuration", TERM_DURATIONS),
        type=expect_choice(data["type"], "type", _PURCHASE_TYPES),
    )


def _parse_checkout(data: Any) -> CheckoutRecord:
    expect_object(data, _CHECKOUT_KEYS, _CHECKOUT_REQUIRED)
    return CheckoutRecord(
        external_order_id=expect_string(data["externalOrderId"], "externalOrderId"),
        quantity=expect_integer(data["quantity"], "quantity", 1),
        time=expect_time(data["time"], "time"),
        evidence=expect_string(data["evidence"], "evidence") if "evidence" in data else None,
        subscription=(
            expect_integer(data["subscription"], "subscription", 1, MAX_BIGINT)
            if "subscription" in data
            else None
        ),
    )


def _parse_change(data: Any) -> SubscriptionChange:
    field = UpdateField(expect_choice(data["field"], "field", _FIELDS))
    high = 1 if field is UpdateField.AUTO_RENEW else MAX_SEATS
    return SubscriptionChange(
        subscription=expect_integer(data["subscription"], "subscription", 1, MAX_BIGINT),
        field=field,
        before=expect_integer(data["from"], "from", 0, high),
        after=expect_integer(data["to"], "to", 0, high),
    )


def _parse_update(data: Any) -> UpdateRecord:
    expect_object(data, _UPDATE_KEYS, _UPDATE_REQUIRED)
    return UpdateRecord(
        change=_parse_change(data),
        time=expect_time(data["time"], "time"),
        evidence=expect_string(data["evidence"], "evidence") if "evidence" in data else None,
    )


def _parse_ids(data: Any, name: str) -> tuple[int, ...]:
    ids = _parse_list(data, name, lambda v: expect_integer(v, "", 1, MAX_BIGINT))
    if not ids or len(set(ids)) != len(ids):
        raise Invalid("expected a non-empty array of distinct ids", (name,))
    return ids


def _parse_orders(data: Any, name: str) -> tuple[str, ...]:
    orders = _parse_list(data, name, lambda v: expect_string(v, ""))
    if not orders or len(set(orders)) != len(orders):
        raise Invalid("expected a non-empty array of distinct externalOrderIds", (name,))
    return orders


def _parse_adjustment(data: Any) -> Adjustment:
    expect_object(data, _ADJUSTMENT_KEYS, _ADJUSTMENT_KEYS)
    delta = data["quantity"]
    if type(delta) is not int or delta == 0 or abs(delta) > MAX_SEATS:
        raise Invalid(
            f"expected an integer other than 0, from -{MAX_SEATS} to {MAX_SEATS}, "
            f"got {show(delta)}",
            ("quantity",),
        )
    return Adjustment(
        quantity=delta,
        time=expect_time(data["time"], "time"),
        source=expect_string(data["source"], "source"),
        evidence=expect_string(data["evidence"], "evidence"),
    )


def _parse_list(data: Any, name: str, parse: Callable[[Any], _T]) -> tuple[_T, ...]:
    if not isinstance(data, list):
        raise Invalid(f"expected an array, got {show(data)}", (name,))
    records = []
    for number, item in enumerate(data):
        try:
            records.append(parse(item))
        except Invalid as exc:
            raise exc.within(name, f"[{number}]") from None
    return tuple(records)


def _parse_purchase(address: str, data: Any) -> RecordedPurchase:
    expect_object(data, _PURCHASE_KEYS, _PURCHASE_REQUIRED)
    identity = _parse_identity(data)
    adjustments: tuple[Adjustment, ...] = ()
    if "adjustments" in data:
        adjustments = _parse_list(data["adjustments"], "adjustments", _parse_adjustment)
        if not adjustments:
            # Written only when there is one: an empty list would not render back.
            raise Invalid("expected a non-empty array, got an array []", ("adjustments",))
    updates: tuple[UpdateRecord, ...] = ()
    if "updates" in data:
        updates = _parse_list(data["updates"], "updates", _parse_update)
        if not updates:
            raise Invalid("expected a non-empty array, got an array []", ("updates",))
    # Seats cancelled in the portal or by an update may take a purchase to 0; nothing
    # else can.
    quantity = expect_integer(data["quantity"], "quantity", 0 if adjustments or updates else 1)
    checkouts = _parse_list(data["checkouts"], "checkouts", _parse_checkout)
    owned = _parse_ids(data["subscriptions"], "subscriptions") if "subscriptions" in data else ()
    unseen = _parse_orders(data["unseen"], "unseen") if "unseen" in data else ()
    ordered = {c.external_order_id for c in checkouts}
    for order in unseen:
        if order not in ordered:
            raise Invalid(
                f"names {show(order)}, which is no checkout of this purchase", ("unseen",)
            )
    return RecordedPurchase(
        address=address,
        identity=identity,
        quantity=quantity,
        checkouts=checkouts,
        adjustments=adjustments,
        subscriptions=owned,
        unseen=unseen,
        updates=updates,
    )


def _parse_pending(address: str, data: Any) -> PendingOperation:
    expect_object(data, _PENDING_KEYS, _PENDING_REQUIRED)
    order = expect_string(data["externalOrderId"], "externalOrderId")
    if "update" not in data:
        return PendingOperation(
            address=address,
            identity=_parse_identity(data),
            external_order_id=order,
            quantity=expect_integer(data["quantity"], "quantity", 1),
            time=expect_time(data["time"], "time"),
        )
    try:
        expect_object(data["update"], _CHANGE_KEYS, _CHANGE_KEYS)
        change = _parse_change(data["update"])
    except Invalid as exc:
        raise exc.within("update") from None
    if order != change.operation:
        raise Invalid(f"expected {show(change.operation)} for this update", ("externalOrderId",))
    if expect_integer(data["quantity"], "quantity", -MAX_SEATS) != change.seats:
        raise Invalid(f"expected {change.seats}, the update's seats", ("quantity",))
    return PendingOperation(
        address=address,
        identity=_parse_identity(data),
        external_order_id=order,
        quantity=change.seats,
        time=expect_time(data["time"], "time"),
        update=change,
    )


def _parse_table(data: Any, name: str, parse: Callable[[str, Any], _T]) -> dict[str, _T]:
    if not isinstance(data, dict):
        raise Invalid(f"expected an object, got {show(data)}", (name,))
    table = {}
    for address in sorted(data):
        try:
            if not address:
                raise Invalid('expected a non-empty address, got a string ""')
            table[address] = parse(address, data[address])
        except Invalid as exc:
            raise exc.within(name, address_index(address)) from None
    return table


def parse_parts(lineage: Any, serial: Any, purchases: Any, pending: Any) -> State:
    """A state given in parts, each as the state file holds it (``purchases`` and
    ``pending`` as objects keyed by address), checked as the state file is: the
    PostgreSQL store reads its rows through this, so both refuse the same values."""
    return State(
        lineage=expect_string(lineage, "lineage"),
        serial=expect_integer(serial, "serial", 0, MAX_BIGINT),
        purchases=_parse_table(purchases, "purchases", _parse_purchase),
        pending=_parse_table(pending, "pending", _parse_pending),
    )


def parse_entry(data: Any) -> Write:
    expect_object(data, _ENTRY_KEYS, _ENTRY_REQUIRED)
    address = expect_address(data["address"], "address")
    op = expect_choice(data["op"], "op", OPERATIONS)
    purchase: RecordedPurchase | Keep | None = KEEP
    pending: PendingOperation | Keep | None = KEEP
    try:
        if data.get("purchase") is not None:
            purchase = _parse_purchase(address, data["purchase"])
        elif "purchase" in data:
            purchase = None
    except Invalid as exc:
        raise exc.within("purchase") from None
    try:
        if data.get("pending") is not None:
            pending = _parse_pending(address, data["pending"])
        elif "pending" in data:
            pending = None
    except Invalid as exc:
        raise exc.within("pending") from None
    if purchase is KEEP and pending is KEEP:
        raise Invalid("the entry changes neither a purchase nor a pending entry")
    time = expect_time(data["time"], "time") if "time" in data else None
    moved_from = expect_address(data["from"], "from") if "from" in data else None
    if (moved_from is not None) != (op == "move_purchase"):
        raise Invalid("'from' is given exactly for a move_purchase entry")
    if moved_from == address:
        raise Invalid(f"moves {show(address)} to itself", ("from",))
    return Write(
        lineage=expect_string(data["lineage"], "lineage"),
        serial=expect_integer(data["serial"], "serial", 1, MAX_BIGINT),
        op=op,
        address=address,
        purchase=purchase,
        pending=pending,
        time=time,
        moved_from=moved_from,
    )


def checkout_json(record: CheckoutRecord) -> dict[str, Any]:
    data: dict[str, Any] = {
        "externalOrderId": record.external_order_id,
        "quantity": record.quantity,
        "time": record.time,
    }
    if record.evidence is not None:
        data["evidence"] = record.evidence
    if record.subscription is not None:
        data["subscription"] = record.subscription
    return data


def change_json(change: SubscriptionChange) -> dict[str, Any]:
    return {
        "subscription": change.subscription,
        "field": change.field.value,
        "from": change.before,
        "to": change.after,
    }


def update_json(record: UpdateRecord) -> dict[str, Any]:
    data = {**change_json(record.change), "time": record.time}
    if record.evidence is not None:
        data["evidence"] = record.evidence
    return data


def adjustment_json(adjustment: Adjustment) -> dict[str, Any]:
    return {
        "quantity": adjustment.quantity,
        "time": adjustment.time,
        "source": adjustment.source,
        "evidence": adjustment.evidence,
    }


def purchase_json(purchase: RecordedPurchase) -> dict[str, Any]:
    data = {
        **purchase.identity.as_dict(),
        "quantity": purchase.quantity,
        "checkouts": [checkout_json(c) for c in purchase.checkouts],
    }
    if purchase.adjustments:
        data["adjustments"] = [adjustment_json(a) for a in purchase.adjustments]
    if purchase.subscriptions:
        data["subscriptions"] = list(purchase.subscriptions)
    if purchase.unseen:
        data["unseen"] = list(purchase.unseen)
    if purchase.updates:
        data["updates"] = [update_json(u) for u in purchase.updates]
    return data


def pending_json(op: PendingOperation) -> dict[str, Any]:
    data = {
        **op.identity.as_dict(),
        "externalOrderId": op.external_order_id,
        "quantity": op.quantity,
        "time": op.time,
    }
    if op.update is not None:
        data["update"] = change_json(op.update)
    return data


def entry_line(write: Write) -> str:
    """The journal line of one write (without its newline), checked to read back.

    Raises ``Invalid``, ``TypeError`` or ``ValueError`` when a value is not one the
    format allows: what is written must read back under the reader's own rules. A
    write the ledger made carries its line, made and checked here (``Write.entry``).
    """
    if write.entry is not None:
        return write.entry
    data: dict[str, Any] = {
        "lineage": write.lineage,
        "serial": write.serial,
        "op": write.op,
        "address": write.address,
    }
    if not isinstance(write.purchase, Keep):
        data["purchase"] = None if write.purchase is None else purchase_json(write.purchase)
    if not isinstance(write.pending, Keep):
        data["pending"] = None if write.pending is None else pending_json(write.pending)
    if write.time is not None:
        data["time"] = write.time
    if write.moved_from is not None:
        data["from"] = write.moved_from
    line = json.dumps(data, sort_keys=True, separators=(",", ":"))
    parse_entry(parse_json(line))
    return line
