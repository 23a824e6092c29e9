"""The state's JSON format: the state file and its journal lines, read and written.

Reading checks every value (CONTRACT section 8, ``schemas/state.schema.json``)
and turns documents into the immutable records of ``model``; writing renders
them back byte for byte as ``json.dumps(..., sort_keys=True, indent=2)`` would.
This module performs no I/O: it turns text into records and records into text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from reconciler.errors import StateError
from reconciler.model import (
    BILLING_CYCLES,
    IDENTITY_FIELDS,
    PURCHASE_TYPES,
    STATE_VERSION,
    TERM_DURATIONS,
    Adjustment,
    CheckoutRecord,
    Identity,
    PendingOperation,
    RecordedPurchase,
    State,
)
from reconciler.state.writes import KEEP, OPERATIONS, Keep, Write

_T = TypeVar("_T")


_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z")
_PURCHASE_REQUIRED = (*IDENTITY_FIELDS, "quantity", "checkouts")
#: ``adjustments`` (seats changed in the portal, written by refresh) is present only
#: when there is one, so a state without any keeps its exact text.
_PURCHASE_KEYS = (*_PURCHASE_REQUIRED, "adjustments")
_CHECKOUT_REQUIRED = ("externalOrderId", "quantity", "time")
#: ``evidence`` only on a checkout refresh settled from what the API showed.
_CHECKOUT_KEYS = (*_CHECKOUT_REQUIRED, "evidence")
_ADJUSTMENT_KEYS = ("quantity", "time", "source", "evidence")
_PENDING_KEYS = (*IDENTITY_FIELDS, "externalOrderId", "quantity", "time")
_DOCUMENT_KEYS = ("version", "lineage", "serial", "purchases", "pending")
#: Present only while a run writes to the journal (or after one died doing so).
JOURNAL_KEY = "journal"
_ENTRY_REQUIRED = ("lineage", "serial", "op", "address")
_ENTRY_KEYS = (*_ENTRY_REQUIRED, "purchase", "pending", "time", "from")


_BILLING_CYCLES = tuple(BILLING_CYCLES)
_PURCHASE_TYPES = tuple(PURCHASE_TYPES)


class Invalid(Exception):
    """A value in a state document is not what the format allows.

    The path is built while the exception travels up, so reading a valid state
    (the common case, 50,000 purchases and more) builds no path strings at all.
    """

    def __init__(self, message: str, path: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def within(self, *segments: str) -> Invalid:
        return Invalid(self.message, (*segments, *self.path))

    def __str__(self) -> str:
        where = ""
        for segment in self.path:
            where += segment if segment.startswith("[") or not where else "." + segment
        return f"{where}: {self.message}" if where else self.message


def show(value: Any) -> str:
    """A short JSON rendering of a bad value, for messages."""
    kind = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
    }.get(type(value))
    text = json.dumps(value, sort_keys=True)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{kind} {text}" if kind else text


def _index(address: str) -> str:
    return f"[{json.dumps(address)}]"


def _object(value: Any, keys: tuple[str, ...], required: tuple[str, ...]) -> None:
    if not isinstance(value, dict):
        raise Invalid(f"expected an object, got {show(value)}")
    missing = [k for k in required if k not in value]
    if missing:
        raise Invalid(f"missing {', '.join(repr(k) for k in missing)}")
    if len(value) > len(required):
        unknown = sorted(k for k in value if k not in keys)
        if unknown:
            raise Invalid(f"unknown key {unknown[0]!r}")


def _integer(value: Any, name: str, minimum: int) -> int:
    if type(value) is not int or value < minimum:
        raise Invalid(f"expected an integer >= {minimum}, got {show(value)}", (name,))
    return value


def _string(value: Any, name: str) -> str:
    if type(value) is not str or not value:
        raise Invalid(f"expected a non-empty string, got {show(value)}", (name,))
    return value


def _choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if type(value) is not str or value not in choices:
        raise Invalid(f"expected one of {', '.join(choices)}, got {show(value)}", (name,))
    return value


def _time(value: Any, name: str) -> str:
    if type(value) is not str or not _TIME.fullmatch(value):
        raise Invalid(f"expected a UTC time like 2026-11-26T19:00:00Z, got {show(value)}", (name,))
    return value


def _address(value: Any, name: str) -> str:
    if type(value) is not str or not value:
        raise Invalid(f"expected a non-empty address, got {show(value)}", (name,))
    return value


def _parse_identity(data: dict[str, Any]) -> Identity:
    return Identity(
        customer_tenant_id=_integer(data["customerTenantId"], "customerTenantId", 1),
        product_id=_string(data["productId"], "productId"),
        sku_id=_string(data["skuId"], "skuId"),
        billing_cycle=_choice(data["billingCycle"], "billingCycle", _BILLING_CYCLES),
        term_duration=_choice(data["termDuration"], "termDuration", TERM_DURATIONS),
        type=_choice(data["type"], "type", _PURCHASE_TYPES),
    )


def _parse_checkout(data: Any) -> CheckoutRecord:
    _object(data, _CHECKOUT_KEYS, _CHECKOUT_REQUIRED)
    return CheckoutRecord(
        external_order_id=_string(data["externalOrderId"], "externalOrderId"),
        quantity=_integer(data["quantity"], "quantity", 1),
        time=_time(data["time"], "time"),
        evidence=_string(data["evidence"], "evidence") if "evidence" in data else None,
    )


def _parse_adjustment(data: Any) -> Adjustment:
    _object(data, _ADJUSTMENT_KEYS, _ADJUSTMENT_KEYS)
    delta = data["quantity"]
    if type(delta) is not int or delta == 0:
        raise Invalid(f"expected an integer other than 0, got {show(delta)}", ("quantity",))
    return Adjustment(
        quantity=delta,
        time=_time(data["time"], "time"),
        source=_string(data["source"], "source"),
        evidence=_string(data["evidence"], "evidence"),
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
    _object(data, _PURCHASE_KEYS, _PURCHASE_REQUIRED)
    identity = _parse_identity(data)
    adjustments: tuple[Adjustment, ...] = ()
    if "adjustments" in data:
        adjustments = _parse_list(data["adjustments"], "adjustments", _parse_adjustment)
        if not adjustments:
            # Written only when there is one: an empty list would not render back.
            raise Invalid("expected a non-empty array, got an array []", ("adjustments",))
    # Seats cancelled in the portal may take a purchase to 0; nothing else can.
    quantity = _integer(data["quantity"], "quantity", 0 if adjustments else 1)
    checkouts = _parse_list(data["checkouts"], "checkouts", _parse_checkout)
    return RecordedPurchase(
        address=address,
        identity=identity,
        quantity=quantity,
        checkouts=checkouts,
        adjustments=adjustments,
    )


def _parse_pending(address: str, data: Any) -> PendingOperation:
    _object(data, _PENDING_KEYS, _PENDING_KEYS)
    return PendingOperation(
        address=address,
        identity=_parse_identity(data),
        external_order_id=_string(data["externalOrderId"], "externalOrderId"),
        quantity=_integer(data["quantity"], "quantity", 1),
        time=_time(data["time"], "time"),
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
            raise exc.within(name, _index(address)) from None
    return table


def parse_document(data: dict[str, Any]) -> State:
    """Everything but the version, which the caller checked first."""
    _object(data, (*_DOCUMENT_KEYS, JOURNAL_KEY), _DOCUMENT_KEYS)
    if JOURNAL_KEY in data:
        _string(data[JOURNAL_KEY], JOURNAL_KEY)
    return State(
        lineage=_string(data["lineage"], "lineage"),
        serial=_integer(data["serial"], "serial", 0),
        purchases=_parse_table(data["purchases"], "purchases", _parse_purchase),
        pending=_parse_table(data["pending"], "pending", _parse_pending),
    )


def parse_entry(data: Any) -> Write:
    _object(data, _ENTRY_KEYS, _ENTRY_REQUIRED)
    address = _address(data["address"], "address")
    op = _choice(data["op"], "op", OPERATIONS)
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
    time = _time(data["time"], "time") if "time" in data else None
    moved_from = _address(data["from"], "from") if "from" in data else None
    if (moved_from is not None) != (op == "move_purchase"):
        raise Invalid("'from' is given exactly for a move_purchase entry")
    if moved_from == address:
        raise Invalid(f"moves {show(address)} to itself", ("from",))
    return Write(
        lineage=_string(data["lineage"], "lineage"),
        serial=_integer(data["serial"], "serial", 1),
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
    return data


def pending_json(op: PendingOperation) -> dict[str, Any]:
    return {
        **op.identity.as_dict(),
        "externalOrderId": op.external_order_id,
        "quantity": op.quantity,
        "time": op.time,
    }


def entry_line(write: Write) -> str:
    """The journal line of one write (without its newline), checked to read back.

    Raises ``Invalid``, ``TypeError`` or ``ValueError`` when a value is not one the
    format allows: what is written must read back under the reader's own rules.
    """
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


def render(state: State, journal: str | None = None) -> str:
    """The state file's text: exactly ``json.dumps(document, sort_keys=True, indent=2)``
    plus a newline.

    Written out by hand because ``json`` pretty-prints in pure Python, which takes
    seconds for 50,000 purchases; the tests compare the two.
    """
    marker = f'  "{JOURNAL_KEY}": {_quote(journal)},\n' if journal is not None else ""
    return (
        "{\n" + marker + f'  "lineage": {_quote(state.lineage)},\n'
        f'  "pending": {_render_table(state.pending, _render_pending)},\n'
        f'  "purchases": {_render_table(state.purchases, _render_purchase)},\n'
        f'  "serial": {state.serial},\n'
        f'  "version": {STATE_VERSION}\n'
        "}\n"
    )


_quote = json.dumps


def _render_table(table: Mapping[str, _T], render_one: Callable[[_T], str]) -> str:
    if not table:
        return "{}"
    rows = ",\n".join(f"    {_quote(a)}: {render_one(table[a])}" for a in sorted(table))
    return "{\n" + rows + "\n  }"


def _render_checkout(record: CheckoutRecord) -> str:
    evidence = ""
    if record.evidence is not None:
        evidence = f'          "evidence": {_quote(record.evidence)},\n'
    return (
        "{\n" + evidence + f'          "externalOrderId": {_quote(record.external_order_id)},\n'
        f'          "quantity": {record.quantity},\n'
        f'          "time": {_quote(record.time)}\n'
        "        }"
    )


def _render_adjustment(adjustment: Adjustment) -> str:
    return (
        "{\n"
        f'          "evidence": {_quote(adjustment.evidence)},\n'
        f'          "quantity": {adjustment.quantity},\n'
        f'          "source": {_quote(adjustment.source)},\n'
        f'          "time": {_quote(adjustment.time)}\n'
        "        }"
    )


def _render_purchase(purchase: RecordedPurchase) -> str:
    identity = purchase.identity
    checkouts = "[]"
    if purchase.checkouts:
        items = ",\n".join(f"        {_render_checkout(c)}" for c in purchase.checkouts)
        checkouts = "[\n" + items + "\n      ]"
    adjustments = ""
    if purchase.adjustments:
        items = ",\n".join(f"        {_render_adjustment(a)}" for a in purchase.adjustments)
        adjustments = '      "adjustments": [\n' + items + "\n      ],\n"
    return (
        "{\n" + adjustments + f'      "billingCycle": {_quote(identity.billing_cycle)},\n'
        f'      "checkouts": {checkouts},\n'
        f'      "customerTenantId": {identity.customer_tenant_id},\n'
        f'      "productId": {_quote(identity.product_id)},\n'
        f'      "quantity": {purchase.quantity},\n'
        f'      "skuId": {_quote(identity.sku_id)},\n'
        f'      "termDuration": {_quote(identity.term_duration)},\n'
        f'      "type": {_quote(identity.type)}\n'
        "    }"
    )


def _render_pending(op: PendingOperation) -> str:
    identity = op.identity
    return (
        "{\n"
        f'      "billingCycle": {_quote(identity.billing_cycle)},\n'
        f'      "customerTenantId": {identity.customer_tenant_id},\n'
        f'      "externalOrderId": {_quote(op.external_order_id)},\n'
        f'      "productId": {_quote(identity.product_id)},\n'
        f'      "quantity": {op.quantity},\n'
        f'      "skuId": {_quote(identity.sku_id)},\n'
        f'      "termDuration": {_quote(identity.term_duration)},\n'
        f'      "time": {_quote(op.time)},\n'
        f'      "type": {_quote(identity.type)}\n'
        "    }"
    )


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise Invalid(f"duplicate key {json.dumps(key)}")
            seen.add(key)
    return result


def _no_constant(name: str) -> Any:
    raise Invalid(f"{name} is not a JSON value")


def parse_json(text: str) -> Any:
    return json.loads(text, object_pairs_hook=_strict_object, parse_constant=_no_constant)


def parse_state_file(raw: bytes, name: str) -> tuple[State, bool]:
    """A state file's bytes as a State, and whether the file says a journal goes with it.

    ``name`` names the file in messages; every problem is a ``StateError``.
    """
    if not raw.strip():
        raise StateError(f"{name} is empty; it is not a state this reconciler wrote")
    try:
        data = parse_json(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise StateError(f"{name} is not valid UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise StateError(
            f"{name} is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
        ) from None
    except Invalid as exc:
        raise StateError(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise StateError(f"{name} is invalid: expected an object, got {show(data)}")
    # The version decides how to read the rest, so it is checked before anything else.
    if "version" not in data:
        raise StateError(f"{name} is invalid: it has no version")
    version = data["version"]
    if type(version) is not int or version < 1:
        raise StateError(f"{name} is invalid: version: expected 1, got {show(version)}")
    if version > STATE_VERSION:
        raise StateError(
            f"{name} was written by a newer reconciler (version {version}); upgrade to read it"
        )
    try:
        return parse_document(data), JOURNAL_KEY in data
    except Invalid as exc:
        raise StateError(f"{name} is invalid: {exc}") from None


def parse_journal(raw: bytes, name: str) -> list[tuple[int, Write]]:
    """A journal's bytes as its writes, each with its line number.

    An unterminated or unreadable last line is a write a crash cut short (never
    acknowledged) and is ignored; anything else unreadable is a ``StateError``.
    """
    lines = raw.split(b"\n")
    # Every write is one line ending in a newline and is acknowledged only after
    # its fsync, so an unterminated or unreadable last line is a write that a crash
    # cut short: it was never acknowledged and is ignored.
    tail = lines.pop()
    entries: list[tuple[int, Write]] = []
    for number, line in enumerate(lines, 1):
        try:
            data = parse_json(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, Invalid) as exc:
            if number == len(lines) and not tail:
                break  # torn last line
            raise StateError(f"{name} line {number} is not valid JSON: {exc}") from None
        try:
            entries.append((number, parse_entry(data)))
        except Invalid as exc:
            raise StateError(f"{name} line {number} is invalid: {exc}") from None
    return entries
