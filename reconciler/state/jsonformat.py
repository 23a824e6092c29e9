"""The state's JSON format: the state file and its journal lines, read and written.

Reading checks every value (``schemas/state.schema.json`` describes the same
rules) and turns documents into the immutable records of ``model``; writing
renders them back byte for byte as ``json.dumps(..., sort_keys=True, indent=2)``
would. Hostile text is refused before it can cost much: a number with more
digits than any value may hold is refused before it is converted, and nesting
too deep to read is an ``Invalid`` like any other problem, never a
``RecursionError``. Every integer has the bounds the PostgreSQL store's columns
have, so no store accepts a record another one refuses.
This module performs no I/O: it turns text into records and records into text.
"""

from __future__ import annotations

import json
import re
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
    SubscriptionChange,
    UpdateField,
    UpdateRecord,
)
from reconciler.state.writes import KEEP, OPERATIONS, Keep, Write

_T = TypeVar("_T")


_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z")
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
_DOCUMENT_KEYS = ("version", "lineage", "serial", "purchases", "pending")
#: Present only while a run writes to the journal (or after one died doing so).
JOURNAL_KEY = "journal"
#: Beside ``journal`` (written by this version): the id of the run that writes the
#: journal, which every line carries, and the serial of its last acknowledged line,
#: a fixed-width string updated in place after each line's fsync (see ``JournalMark``).
JOURNAL_RUN_KEY = "journalRun"
ACKNOWLEDGED_KEY = "acknowledgedSerial"
_ACKNOWLEDGED_WIDTH = 20  # digits: any serial up to 10**20 - 1
_RUN = re.compile(r"[0-9a-f]{16}")
#: A checksummed journal line starts ``{"crc":"<8 hex>",`` and the checksum is the
#: CRC-32 of the line with that member removed: ``{`` + the rest.
_CRC_PREFIX = b'{"crc":"'
_CRC_END = len(_CRC_PREFIX) + 8
_ENTRY_REQUIRED = ("lineage", "serial", "op", "address")
_ENTRY_KEYS = (*_ENTRY_REQUIRED, "purchase", "pending", "time", "from")


#: The largest serial and tenant id (a PostgreSQL bigint), and the largest number of
#: seats one record holds (a PostgreSQL integer).
MAX_BIGINT = 2**63 - 1
MAX_SEATS = 2**31 - 1
#: Digits of the largest value a state holds: a longer number is refused unread.
_MAX_DIGITS = len(str(MAX_BIGINT))
#: Characters of a bad value shown in a message.
_SHOWN = 40

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


class TooLarge(Invalid):
    """Valid JSON that no state holds and that would be costly to read on: a number
    with too many digits, or nesting too deep."""


def show(value: Any) -> str:
    """A short JSON rendering of a bad value, for messages: its first 40 characters as
    ``json.dumps(value, sort_keys=True)`` gives them, computed without rendering (or
    recursing into) more of the value than is shown."""
    kind = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
    }.get(type(value))
    text = ""
    for token in _tokens(value):
        text += token
        if len(text) > _SHOWN:
            text = text[: _SHOWN - 3] + "..."
            break
    return f"{kind} {text}" if kind else text


def _tokens(value: Any) -> Iterator[str]:
    """``json.dumps(value, sort_keys=True)`` piece by piece, lazily."""
    if isinstance(value, dict):
        yield "{"
        for number, key in enumerate(sorted(value, key=str)):
            yield ("" if number == 0 else ", ") + _scalar(key) + ": "
            yield from _tokens(value[key])
        yield "}"
    elif isinstance(value, list):
        yield "["
        for number, item in enumerate(value):
            if number:
                yield ", "
            yield from _tokens(item)
        yield "]"
    else:
        yield _scalar(value)


def _scalar(value: Any) -> str:
    if type(value) is int and value.bit_length() > 64:
        # str() of a huge integer costs time quadratic in its digits (and Python
        # refuses more than 4,300 of them): say how large it is instead.
        return f"<an integer of about {int(value.bit_length() * 0.30103):,} digits>"
    if isinstance(value, str) and len(value) > _SHOWN:
        value = value[: _SHOWN + 1]  # enough to show, and to show that it goes on
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)[:_SHOWN]


def _index(address: str) -> str:
    return f"[{_quoted(address)}]"


def _quoted(text: str) -> str:
    """``text`` as a JSON string for a message, cut after 60 characters."""
    if len(text) <= 60:
        return json.dumps(text)
    return json.dumps(text[:57])[:-1] + '..."'


def _object(value: Any, keys: tuple[str, ...], required: tuple[str, ...]) -> None:
    if not isinstance(value, dict):
        raise Invalid(f"expected an object, got {show(value)}")
    missing = [k for k in required if k not in value]
    if missing:
        raise Invalid(f"missing {', '.join(repr(k) for k in missing)}")
    if len(value) > len(required):
        unknown = sorted(k for k in value if k not in keys)
        if unknown:
            key = unknown[0]
            raise Invalid(
                f"unknown key {key!r}" if len(key) <= 60 else f"unknown key {_quoted(key)}"
            )


def _integer(value: Any, name: str, minimum: int, maximum: int = MAX_SEATS) -> int:
    if type(value) is not int or value < minimum:
        raise Invalid(f"expected an integer >= {minimum}, got {show(value)}", (name,))
    if value > maximum:
        raise Invalid(f"expected an integer <= {maximum}, got {show(value)}", (name,))
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
        customer_tenant_id=_integer(data["customerTenantId"], "customerTenantId", 1, MAX_BIGINT),
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
        subscription=(
            _integer(data["subscription"], "subscription", 1, MAX_BIGINT)
            if "subscription" in data
            else None
        ),
    )


def _parse_change(data: Any) -> SubscriptionChange:
    field = UpdateField(_choice(data["field"], "field", _FIELDS))
    high = 1 if field is UpdateField.AUTO_RENEW else MAX_SEATS
    return SubscriptionChange(
        subscription=_integer(data["subscription"], "subscription", 1, MAX_BIGINT),
        field=field,
        before=_integer(data["from"], "from", 0, high),
        after=_integer(data["to"], "to", 0, high),
    )


def _parse_update(data: Any) -> UpdateRecord:
    _object(data, _UPDATE_KEYS, _UPDATE_REQUIRED)
    return UpdateRecord(
        change=_parse_change(data),
        time=_time(data["time"], "time"),
        evidence=_string(data["evidence"], "evidence") if "evidence" in data else None,
    )


def _parse_ids(data: Any, name: str) -> tuple[int, ...]:
    ids = _parse_list(data, name, lambda v: _integer(v, "", 1, MAX_BIGINT))
    if not ids or len(set(ids)) != len(ids):
        raise Invalid("expected a non-empty array of distinct ids", (name,))
    return ids


def _parse_orders(data: Any, name: str) -> tuple[str, ...]:
    orders = _parse_list(data, name, lambda v: _string(v, ""))
    if not orders or len(set(orders)) != len(orders):
        raise Invalid("expected a non-empty array of distinct externalOrderIds", (name,))
    return orders


def _parse_adjustment(data: Any) -> Adjustment:
    _object(data, _ADJUSTMENT_KEYS, _ADJUSTMENT_KEYS)
    delta = data["quantity"]
    if type(delta) is not int or delta == 0 or abs(delta) > MAX_SEATS:
        raise Invalid(
            f"expected an integer other than 0, from -{MAX_SEATS} to {MAX_SEATS}, "
            f"got {show(delta)}",
            ("quantity",),
        )
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
    updates: tuple[UpdateRecord, ...] = ()
    if "updates" in data:
        updates = _parse_list(data["updates"], "updates", _parse_update)
        if not updates:
            raise Invalid("expected a non-empty array, got an array []", ("updates",))
    # Seats cancelled in the portal or by an update may take a purchase to 0; nothing
    # else can.
    quantity = _integer(data["quantity"], "quantity", 0 if adjustments or updates else 1)
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
    _object(data, _PENDING_KEYS, _PENDING_REQUIRED)
    order = _string(data["externalOrderId"], "externalOrderId")
    if "update" not in data:
        return PendingOperation(
            address=address,
            identity=_parse_identity(data),
            external_order_id=order,
            quantity=_integer(data["quantity"], "quantity", 1),
            time=_time(data["time"], "time"),
        )
    try:
        _object(data["update"], _CHANGE_KEYS, _CHANGE_KEYS)
        change = _parse_change(data["update"])
    except Invalid as exc:
        raise exc.within("update") from None
    if order != change.operation:
        raise Invalid(f"expected {show(change.operation)} for this update", ("externalOrderId",))
    if _integer(data["quantity"], "quantity", -MAX_SEATS) != change.seats:
        raise Invalid(f"expected {change.seats}, the update's seats", ("quantity",))
    return PendingOperation(
        address=address,
        identity=_parse_identity(data),
        external_order_id=order,
        quantity=change.seats,
        time=_time(data["time"], "time"),
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
            raise exc.within(name, _index(address)) from None
    return table


@dataclass(frozen=True)
class JournalMark:
    """What a state file says about the journal beside it (its ``"journal"`` keys).

    ``run`` is the id of the run writing the journal; each of its lines carries it
    and a checksum. ``acknowledged`` is the serial of the run's last acknowledged
    line: written when the file is marked (the state's own serial) and overwritten
    in place, same width, after each line's fsync, so a journal that lost lines the
    file says were acknowledged (a cut copy) is refused. ``run`` is None for a file
    marked by a reconciler that wrote neither (its journal lines carry no checksum).
    """

    journal: str
    run: str | None = None
    acknowledged: int = 0


#: Where the acknowledged serial's digits start in a marked state file (they are
#: the first key, so a long journal name cannot push them out of the first sector).
ACKNOWLEDGED_OFFSET = len(f'{{\n  "{ACKNOWLEDGED_KEY}": "')


def acknowledged_text(serial: int) -> str:
    text = f"{serial:0{_ACKNOWLEDGED_WIDTH}d}"
    if len(text) != _ACKNOWLEDGED_WIDTH:
        raise ValueError(f"serial {serial} does not fit in {_ACKNOWLEDGED_WIDTH} digits")
    return text


def new_run_id() -> str:
    return uuid.uuid4().hex[:16]


def _parse_mark(data: dict[str, Any], serial: int) -> JournalMark | None:
    if JOURNAL_KEY not in data:
        for key in (JOURNAL_RUN_KEY, ACKNOWLEDGED_KEY):
            if key in data:
                raise Invalid(f"{key!r} is only allowed beside {JOURNAL_KEY!r}")
        return None
    journal = _string(data[JOURNAL_KEY], JOURNAL_KEY)
    if JOURNAL_RUN_KEY not in data and ACKNOWLEDGED_KEY not in data:
        return JournalMark(journal)  # marked by a reconciler before journal checksums
    for key in (JOURNAL_RUN_KEY, ACKNOWLEDGED_KEY):
        if key not in data:
            raise Invalid(f"missing {key!r} beside {JOURNAL_RUN_KEY!r}")
    run = data[JOURNAL_RUN_KEY]
    if type(run) is not str or not _RUN.fullmatch(run):
        raise Invalid(f"expected 16 hexadecimal digits, got {show(run)}", (JOURNAL_RUN_KEY,))
    text = data[ACKNOWLEDGED_KEY]
    if (
        type(text) is not str
        or len(text) != _ACKNOWLEDGED_WIDTH
        or not text.isascii()
        or not text.isdigit()
    ):
        raise Invalid(
            f"expected {_ACKNOWLEDGED_WIDTH} decimal digits, got {show(text)}", (ACKNOWLEDGED_KEY,)
        )
    acknowledged = int(text)
    if acknowledged < serial:
        raise Invalid(
            f"serial {acknowledged} is below the file's own serial {serial}", (ACKNOWLEDGED_KEY,)
        )
    return JournalMark(journal, run, acknowledged)


def parse_document(data: dict[str, Any]) -> State:
    """Everything but the version, which the caller checked first."""
    _object(data, (*_DOCUMENT_KEYS, JOURNAL_KEY, JOURNAL_RUN_KEY, ACKNOWLEDGED_KEY), _DOCUMENT_KEYS)
    return parse_parts(data["lineage"], data["serial"], data["purchases"], data["pending"])


def parse_parts(lineage: Any, serial: Any, purchases: Any, pending: Any) -> State:
    """A state given in parts, each as the state file holds it (``purchases`` and
    ``pending`` as objects keyed by address), checked as the state file is: the
    PostgreSQL store reads its rows through this, so both refuse the same values."""
    return State(
        lineage=_string(lineage, "lineage"),
        serial=_integer(serial, "serial", 0, MAX_BIGINT),
        purchases=_parse_table(purchases, "purchases", _parse_purchase),
        pending=_parse_table(pending, "pending", _parse_pending),
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
        serial=_integer(data["serial"], "serial", 1, MAX_BIGINT),
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


def journal_line(write: Write, run: str) -> bytes:
    """The file journal's line of one write, with its newline: the entry, the id of the
    run that writes it and, first, the CRC-32 of the rest, so a damaged or spliced line
    is found. Raises like ``entry_line``."""
    if not _RUN.fullmatch(run):
        raise ValueError(f"not a run id: {run!r}")
    entry = entry_line(write)
    # "run" sorts right before "serial", the one top-level key no nested object has
    # (and a bare quote cannot occur inside a JSON string): the result is what
    # json.dumps(sort_keys=True) gives, without parsing the line again.
    at = entry.index(',"serial":')
    body = f'{entry[:at]},"run":"{run}"{entry[at:]}'.encode()
    return b'%s%08x",%s\n' % (_CRC_PREFIX, zlib.crc32(body), body[1:])


def _checksum_holds(line: bytes) -> bool:
    if not line.startswith(_CRC_PREFIX) or line[_CRC_END : _CRC_END + 2] != b'",':
        return False
    claimed = line[len(_CRC_PREFIX) : _CRC_END]
    return claimed == b"%08x" % zlib.crc32(b"{" + line[_CRC_END + 2 :])


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise Invalid(f"duplicate key {_quoted(key)}")
            seen.add(key)
    return result


def _no_constant(name: str) -> Any:
    raise Invalid(f"{name} is not a JSON value")


def _bounded_integer(text: str) -> int:
    """An integer of the JSON text, refused unconverted when it has more digits than
    any value of a state may have (converting is quadratic in the digits)."""
    if len(text) > _MAX_DIGITS + 1 or len(text.lstrip("-")) > _MAX_DIGITS:
        digits = len(text.lstrip("-"))
        raise TooLarge(
            f"it holds a number of {digits:,} digits; no value of a state has more than "
            f"{_MAX_DIGITS}"
        )
    return int(text)


def parse_json(text: str) -> Any:
    """JSON text as values; an ``Invalid`` for a duplicate key, NaN or Infinity, a
    number too long to be a value of a state, or nesting too deep to read."""
    try:
        return json.loads(
            text,
            object_pairs_hook=_strict_object,
            parse_constant=_no_constant,
            parse_int=_bounded_integer,
        )
    except RecursionError:
        # The decoder recurses once per level and stops at Python's recursion limit;
        # a state nests six levels.
        raise TooLarge("it nests arrays or objects too deeply to be read") from None


def parse_state_file(raw: bytes, name: str) -> tuple[State, JournalMark | None]:
    """A state file's bytes as a State, and what it says of a journal going with it.

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
        what = "is invalid" if isinstance(exc, TooLarge) else "is not valid JSON"
        raise StateError(f"{name} {what}: {exc}") from None
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
        state = parse_document(data)
        return state, _parse_mark(data, state.serial)
    except Invalid as exc:
        raise StateError(f"{name} is invalid: {exc}") from None


@dataclass(frozen=True)
class ParsedJournal:
    """A journal's writes, each with its line number, and the run that wrote them
    (None for lines without a run and checksum, written before journal checksums)."""

    entries: list[tuple[int, Write]]
    run: str | None


def parse_journal(raw: bytes, name: str) -> ParsedJournal:
    """A journal's bytes as its writes, each with its line number.

    An unterminated last line, or a last line that is not valid JSON or fails its
    checksum, is a write a crash cut short (never acknowledged) and is ignored;
    whether acknowledged lines went missing with it is for the caller to check
    against the state file's mark. Anything else wrong is a ``StateError`` naming
    the line: a line that fails its checksum, a line without one (or from another
    run) in a journal whose first line has one.
    """
    lines = raw.split(b"\n")
    # Every write is one line ending in a newline and is acknowledged only after
    # its fsync, so an unterminated last line is a write a crash cut short.
    tail = lines.pop()
    entries: list[tuple[int, Write]] = []
    run: str | None = None
    for number, line in enumerate(lines, 1):
        last = number == len(lines) and not tail
        try:
            data = parse_json(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, Invalid) as exc:
            if last:
                break  # torn last line
            raise StateError(f"{name} line {number} is not valid JSON: {exc}") from None
        checksummed = isinstance(data, dict) and "crc" in data
        if last and (checksummed or run is not None) and not _checksum_holds(line):
            break  # torn last line (what a crash left happens to parse as JSON)
        line_run: str | None = None
        if checksummed:
            del data["crc"]
            line_run = data.pop("run", None)
        try:
            write = parse_entry(data)
        except Invalid as exc:
            raise StateError(f"{name} line {number} is invalid: {exc}") from None
        if checksummed and not _checksum_holds(line):
            raise StateError(
                f"{name} line {number} fails its checksum: the line was changed after it "
                "was written (a damaged copy or disk?), so none of its values can be trusted"
            )
        if number == 1:
            run = line_run if checksummed else None
            if checksummed and (type(run) is not str or not _RUN.fullmatch(run)):
                raise StateError(f"{name} line 1 is invalid: run: expected 16 hex digits")
        elif line_run != run:
            raise StateError(
                f"{name} line {number} was written by "
                + (f"run {line_run}" if line_run else "a reconciler without journal checksums")
                + (f", line 1 by run {run}" if run else ", line 1 without a checksum")
                + ": lines of two journals were put together"
            )
        entries.append((number, write))
    return ParsedJournal(entries, run)
