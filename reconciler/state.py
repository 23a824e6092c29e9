"""state: the recorded purchases and pending operations, kept in a JSON file.

``StateStore`` is the role the rest of the reconciler codes against;
``JsonFileStateStore`` keeps the state in ``reconciler.state.json`` (CONTRACT
section 8). This module must not talk to the API, read declarations or print;
it imports nothing outside the standard library.

How a write survives a crash, and why it stays cheap
----------------------------------------------------
Rewriting the whole JSON file after every 204 would make each durable write cost
as much as the state is large. So a locked writer appends one JSON line per write
to ``<state>.journal`` (lineage, the new serial, the operation and the records it
leaves behind at one address) and fsyncs it: a write is acknowledged once its
line is on disk. When the lock is released the full JSON file is rewritten once
(temp file, fsync, rename, fsync of the directory) and only then is the journal
deleted. A crash at any instant leaves the old JSON plus a journal that holds
every acknowledged write; ``load`` replays it, and the next ``lock`` compacts it.

``load`` reads the journal *before* the JSON file, so a compaction that runs
concurrently can only make the JSON file newer than the journal it read (its
entries are then skipped by serial), never lose entries.

Locking uses ``flock`` on ``<state>.lock``: the kernel drops it when its holder
dies, even by SIGKILL, so a dead run never blocks the next one. The lock file is
never deleted (deleting it would race with ``flock``).
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import fcntl
import getpass
import json
import os
import re
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from reconciler.errors import StateError, StateLockedError
from reconciler.model import (
    BILLING_CYCLES,
    PURCHASE_TYPES,
    STATE_VERSION,
    TERM_DURATIONS,
    CheckoutRecord,
    Identity,
    PendingOperation,
    RecordedPurchase,
    State,
)

_T = TypeVar("_T")

__all__ = [
    "JsonFileStateStore",
    "StateStore",
    "StateWriter",
    "utc_now",
]


def utc_now() -> str:
    """The current time as the state records it: UTC ISO-8601, e.g. ``2026-11-26T19:00:00Z``."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class StateWriter(Protocol):
    """Writes to a locked state; every method is one durable write. Thread-safe."""

    @property
    def state(self) -> State:
        """The current state, including every write made so far."""
        ...

    def add_pending(self, op: PendingOperation) -> None:
        """Record a checkout whose outcome is not known yet (one per address)."""
        ...

    def record_checkout(self, address: str, identity: Identity, record: CheckoutRecord) -> None:
        """Add a successful checkout's seats to ``address`` and drop its pending entry."""
        ...

    def remove_pending(self, address: str) -> None:
        """Forget the pending entry of ``address``."""
        ...

    def remove_purchase(self, address: str) -> None:
        """Forget the recorded purchase at ``address``."""
        ...

    def import_purchase(self, address: str, identity: Identity, quantity: int, time: str) -> None:
        """Record seats bought outside the reconciler (no checkout record)."""
        ...


class StateStore(Protocol):
    """Where the state lives."""

    @property
    def location(self) -> str:
        """The state's path as shown to users."""
        ...

    def load(self) -> State:
        """The current state. Never takes or waits for the lock."""
        ...

    def lock(self, command: str) -> AbstractContextManager[StateWriter]:
        """Hold the state's exclusive lock for a run of ``command``; fails at once if held."""
        ...


# --- reading and checking records ---------------------------------------------

_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z")
_IDENTITY_KEYS = (
    "customerTenantId",
    "productId",
    "skuId",
    "billingCycle",
    "termDuration",
    "type",
)
_PURCHASE_KEYS = (*_IDENTITY_KEYS, "quantity", "checkouts")
_CHECKOUT_KEYS = ("externalOrderId", "quantity", "time")
_PENDING_KEYS = (*_IDENTITY_KEYS, "externalOrderId", "quantity", "time")
_DOCUMENT_KEYS = ("version", "lineage", "serial", "purchases", "pending")
#: Present only while a run writes to the journal (or after one died doing so).
_JOURNAL_KEY = "journal"
_OPERATIONS = (
    "add_pending",
    "record_checkout",
    "remove_pending",
    "remove_purchase",
    "import_purchase",
)
_ENTRY_REQUIRED = ("lineage", "serial", "op", "address")
_ENTRY_KEYS = (*_ENTRY_REQUIRED, "purchase", "pending", "time")


_BILLING_CYCLES = tuple(BILLING_CYCLES)
_PURCHASE_TYPES = tuple(PURCHASE_TYPES)


class _Invalid(Exception):
    """A value in a state document is not what the format allows.

    The path is built while the exception travels up, so reading a valid state
    (the common case, 50,000 purchases and more) builds no path strings at all.
    """

    def __init__(self, message: str, path: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def within(self, *segments: str) -> _Invalid:
        return _Invalid(self.message, (*segments, *self.path))

    def __str__(self) -> str:
        where = ""
        for segment in self.path:
            where += segment if segment.startswith("[") or not where else "." + segment
        return f"{where}: {self.message}" if where else self.message


def _show(value: Any) -> str:
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
        raise _Invalid(f"expected an object, got {_show(value)}")
    missing = [k for k in required if k not in value]
    if missing:
        raise _Invalid(f"missing {', '.join(repr(k) for k in missing)}")
    if len(value) > len(required):
        unknown = sorted(k for k in value if k not in keys)
        if unknown:
            raise _Invalid(f"unknown key {unknown[0]!r}")


def _integer(value: Any, name: str, minimum: int) -> int:
    if type(value) is not int or value < minimum:
        raise _Invalid(f"expected an integer >= {minimum}, got {_show(value)}", (name,))
    return value


def _string(value: Any, name: str) -> str:
    if type(value) is not str or not value:
        raise _Invalid(f"expected a non-empty string, got {_show(value)}", (name,))
    return value


def _choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if type(value) is not str or value not in choices:
        raise _Invalid(f"expected one of {', '.join(choices)}, got {_show(value)}", (name,))
    return value


def _time(value: Any, name: str) -> str:
    if type(value) is not str or not _TIME.fullmatch(value):
        raise _Invalid(
            f"expected a UTC time like 2026-11-26T19:00:00Z, got {_show(value)}", (name,)
        )
    return value


def _address(value: Any, name: str) -> str:
    if type(value) is not str or not value:
        raise _Invalid(f"expected a non-empty address, got {_show(value)}", (name,))
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
    _object(data, _CHECKOUT_KEYS, _CHECKOUT_KEYS)
    return CheckoutRecord(
        external_order_id=_string(data["externalOrderId"], "externalOrderId"),
        quantity=_integer(data["quantity"], "quantity", 1),
        time=_time(data["time"], "time"),
    )


def _parse_purchase(address: str, data: Any) -> RecordedPurchase:
    _object(data, _PURCHASE_KEYS, _PURCHASE_KEYS)
    identity = _parse_identity(data)
    quantity = _integer(data["quantity"], "quantity", 1)
    checkouts = data["checkouts"]
    if not isinstance(checkouts, list):
        raise _Invalid(f"expected an array, got {_show(checkouts)}", ("checkouts",))
    records = []
    for number, item in enumerate(checkouts):
        try:
            records.append(_parse_checkout(item))
        except _Invalid as exc:
            raise exc.within("checkouts", f"[{number}]") from None
    return RecordedPurchase(
        address=address, identity=identity, quantity=quantity, checkouts=tuple(records)
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
        raise _Invalid(f"expected an object, got {_show(data)}", (name,))
    table = {}
    for address in sorted(data):
        try:
            if not address:
                raise _Invalid('expected a non-empty address, got a string ""')
            table[address] = parse(address, data[address])
        except _Invalid as exc:
            raise exc.within(name, _index(address)) from None
    return table


def _parse_document(data: dict[str, Any]) -> State:
    """Everything but the version, which the caller checked first."""
    _object(data, (*_DOCUMENT_KEYS, _JOURNAL_KEY), _DOCUMENT_KEYS)
    if _JOURNAL_KEY in data:
        _string(data[_JOURNAL_KEY], _JOURNAL_KEY)
    return State(
        lineage=_string(data["lineage"], "lineage"),
        serial=_integer(data["serial"], "serial", 0),
        purchases=_parse_table(data["purchases"], "purchases", _parse_purchase),
        pending=_parse_table(data["pending"], "pending", _parse_pending),
    )


class _Keep(enum.Enum):
    """A journal entry leaves this table unchanged at its address."""

    KEEP = "keep"


_KEEP = _Keep.KEEP


@dataclass(frozen=True)
class _JournalEntry:
    """One write: after it, the address holds ``purchase`` and ``pending`` (None = none)."""

    lineage: str
    serial: int
    op: str
    address: str
    purchase: RecordedPurchase | _Keep | None
    pending: PendingOperation | _Keep | None


def _parse_entry(data: Any) -> _JournalEntry:
    _object(data, _ENTRY_KEYS, _ENTRY_REQUIRED)
    address = _address(data["address"], "address")
    op = _choice(data["op"], "op", _OPERATIONS)
    purchase: RecordedPurchase | _Keep | None = _KEEP
    pending: PendingOperation | _Keep | None = _KEEP
    try:
        if data.get("purchase") is not None:
            purchase = _parse_purchase(address, data["purchase"])
        elif "purchase" in data:
            purchase = None
    except _Invalid as exc:
        raise exc.within("purchase") from None
    try:
        if data.get("pending") is not None:
            pending = _parse_pending(address, data["pending"])
        elif "pending" in data:
            pending = None
    except _Invalid as exc:
        raise exc.within("pending") from None
    if purchase is _KEEP and pending is _KEEP:
        raise _Invalid("the entry changes neither a purchase nor a pending entry")
    if "time" in data:
        _time(data["time"], "time")
    return _JournalEntry(
        lineage=_string(data["lineage"], "lineage"),
        serial=_integer(data["serial"], "serial", 1),
        op=op,
        address=address,
        purchase=purchase,
        pending=pending,
    )


def _checkout_json(record: CheckoutRecord) -> dict[str, Any]:
    return {
        "externalOrderId": record.external_order_id,
        "quantity": record.quantity,
        "time": record.time,
    }


def _purchase_json(purchase: RecordedPurchase) -> dict[str, Any]:
    return {
        **purchase.identity.as_dict(),
        "quantity": purchase.quantity,
        "checkouts": [_checkout_json(c) for c in purchase.checkouts],
    }


def _pending_json(op: PendingOperation) -> dict[str, Any]:
    return {
        **op.identity.as_dict(),
        "externalOrderId": op.external_order_id,
        "quantity": op.quantity,
        "time": op.time,
    }


def _render(state: State, journal: str | None = None) -> str:
    """The state file's text: exactly ``json.dumps(document, sort_keys=True, indent=2)``
    plus a newline.

    Written out by hand because ``json`` pretty-prints in pure Python, which takes
    seconds for 50,000 purchases; the tests compare the two.
    """
    marker = f'  "{_JOURNAL_KEY}": {_quote(journal)},\n' if journal is not None else ""
    return (
        "{\n" + marker + f'  "lineage": {_quote(state.lineage)},\n'
        f'  "pending": {_render_table(state.pending, _render_pending)},\n'
        f'  "purchases": {_render_table(state.purchases, _render_purchase)},\n'
        f'  "serial": {state.serial},\n'
        f'  "version": {STATE_VERSION}\n'
        "}\n"
    )


_quote = json.dumps


def _render_table(table: Mapping[str, _T], render: Callable[[_T], str]) -> str:
    if not table:
        return "{}"
    rows = ",\n".join(f"    {_quote(a)}: {render(table[a])}" for a in sorted(table))
    return "{\n" + rows + "\n  }"


def _render_checkout(record: CheckoutRecord) -> str:
    return (
        "{\n"
        f'          "externalOrderId": {_quote(record.external_order_id)},\n'
        f'          "quantity": {record.quantity},\n'
        f'          "time": {_quote(record.time)}\n'
        "        }"
    )


def _render_purchase(purchase: RecordedPurchase) -> str:
    identity = purchase.identity
    checkouts = "[]"
    if purchase.checkouts:
        items = ",\n".join(f"        {_render_checkout(c)}" for c in purchase.checkouts)
        checkouts = "[\n" + items + "\n      ]"
    return (
        "{\n"
        f'      "billingCycle": {_quote(identity.billing_cycle)},\n'
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
                raise _Invalid(f"duplicate key {json.dumps(key)}")
            seen.add(key)
    return result


def _no_constant(name: str) -> Any:
    raise _Invalid(f"{name} is not a JSON value")


def _parse_json(text: str) -> Any:
    return json.loads(text, object_pairs_hook=_strict_object, parse_constant=_no_constant)


# --- the tables a state is made of --------------------------------------------


class _Tables:
    """A mutable state: what replay builds and a writer updates in O(1) per write."""

    def __init__(self, state: State) -> None:
        self.lineage = state.lineage
        self.serial = state.serial
        self.purchases: dict[str, RecordedPurchase] = dict(state.purchases)
        self.pending: dict[str, PendingOperation] = dict(state.pending)

    def apply(self, entry: _JournalEntry) -> None:
        if entry.purchase is None:
            self.purchases.pop(entry.address, None)
        elif not isinstance(entry.purchase, _Keep):
            self.purchases[entry.address] = entry.purchase
        if entry.pending is None:
            self.pending.pop(entry.address, None)
        elif not isinstance(entry.pending, _Keep):
            self.pending[entry.address] = entry.pending
        self.lineage = entry.lineage
        self.serial = entry.serial

    def freeze(self) -> State:
        return State(
            lineage=self.lineage,
            serial=self.serial,
            purchases=dict(sorted(self.purchases.items())),
            pending=dict(sorted(self.pending.items())),
        )


# --- files ---------------------------------------------------------------------


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _replace_atomically(path: Path, text: str) -> None:
    """Write ``path`` so that a crash leaves either its old or its new content."""
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        try:
            with contextlib.suppress(FileNotFoundError):
                os.fchmod(fd, os.stat(path).st_mode & 0o7777)
            _write_all(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_directory(path.parent)


@dataclass(frozen=True)
class _Holder:
    pid: int | None
    host: str | None
    command: str | None
    started: str | None


def _read_holder(fd: int) -> _Holder | None:
    try:
        data = json.loads(os.pread(fd, 65536, 0).decode("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None

    def text(name: str) -> str | None:
        value = data.get(name)
        return value if isinstance(value, str) else None

    pid = data.get("pid")
    return _Holder(
        pid=pid if type(pid) is int else None,
        host=text("host"),
        command=text("command"),
        started=text("started"),
    )


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return str(os.getuid())


class JsonFileStateStore:
    """The state in a JSON file, with its journal and lock file beside it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._display = os.fspath(path)
        # Through a symlink, write the file it points to (a rename would replace the
        # link) and lock beside that file, so every path to one state shares one lock.
        self._path = Path(os.path.realpath(path))
        self._journal = self._path.with_name(self._path.name + ".journal")
        self._lock_path = self._path.with_name(self._path.name + ".lock")

    @property
    def location(self) -> str:
        return self._display

    @property
    def journal_location(self) -> str:
        return os.fspath(self._journal)

    @property
    def lock_location(self) -> str:
        return os.fspath(self._lock_path)

    def load(self) -> State:
        return self._load_tables()[0].freeze()

    def lock(self, command: str) -> AbstractContextManager[StateWriter]:
        return self._locked(command)

    # -- reading --

    def _load_tables(self) -> tuple[_Tables, int, bool]:
        """The replayed state, the JSON file's own serial, and whether a journal exists."""
        for _ in range(3):
            # The journal first: see the module docstring.
            entries, journal_exists = self._read_journal()
            base, marked = self._read_file()
            if journal_exists or not marked:
                break
            if self._journal.exists():
                continue  # a run started between the two reads: read both again
            raise StateError(
                f"state file {self._display} was being written by a run that did not finish, "
                f"and its journal {self.journal_location} is missing: the state file alone "
                "lacks that run's last purchases and pending checkouts, and planning from it "
                "could buy them again. Put the journal file back beside the state file (keep "
                "both when a pipeline saves the state). If it is lost for good, check the "
                'orders in Crayon Cloud-iQ, then delete the "journal" line from the state '
                "file and record what was bought with `reconciler state import`."
            )
        tables = _Tables(base)
        applying = False
        for line, entry in entries:
            where = f"state journal {self.journal_location} line {line}"
            if tables.lineage and entry.lineage != tables.lineage:
                raise StateError(
                    f"{where} belongs to another state (lineage {entry.lineage}; state file "
                    f"{self._display} has lineage {tables.lineage}); move one of them away"
                )
            if entry.serial <= tables.serial and not applying:
                continue  # already in the JSON file (a compaction ran)
            if entry.serial != tables.serial + 1:
                raise StateError(
                    f"{where} has serial {entry.serial} but serial {tables.serial + 1} "
                    f"was expected; the journal does not continue state file {self._display}"
                )
            tables.apply(entry)
            applying = True
        return tables, base.serial, journal_exists

    def _read_file(self) -> tuple[State, bool]:
        """The JSON file's state, and whether it says a journal goes with it."""
        name = f"state file {self._display}"
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            return State(lineage="", serial=0), False
        except OSError as exc:
            raise StateError(f"cannot read {name}: {exc.strerror or exc}") from exc
        if not raw.strip():
            raise StateError(f"{name} is empty; it is not a state this reconciler wrote")
        try:
            data = _parse_json(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise StateError(f"{name} is not valid UTF-8 (byte {exc.start})") from None
        except json.JSONDecodeError as exc:
            raise StateError(
                f"{name} is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
            ) from None
        except _Invalid as exc:
            raise StateError(f"{name} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise StateError(f"{name} is invalid: expected an object, got {_show(data)}")
        # The version decides how to read the rest, so it is checked before anything else.
        if "version" not in data:
            raise StateError(f"{name} is invalid: it has no version")
        version = data["version"]
        if type(version) is not int or version < 1:
            raise StateError(f"{name} is invalid: version: expected 1, got {_show(version)}")
        if version > STATE_VERSION:
            raise StateError(
                f"{name} was written by a newer reconciler (version {version}); upgrade to read it"
            )
        try:
            return _parse_document(data), _JOURNAL_KEY in data
        except _Invalid as exc:
            raise StateError(f"{name} is invalid: {exc}") from None

    def _read_journal(self) -> tuple[list[tuple[int, _JournalEntry]], bool]:
        name = f"state journal {self.journal_location}"
        try:
            raw = self._journal.read_bytes()
        except FileNotFoundError:
            return [], False
        except OSError as exc:
            raise StateError(f"cannot read {name}: {exc.strerror or exc}") from exc
        lines = raw.split(b"\n")
        # Every write is one line ending in a newline and is acknowledged only after
        # its fsync, so an unterminated or unreadable last line is a write that a crash
        # cut short: it was never acknowledged and is ignored.
        tail = lines.pop()
        entries: list[tuple[int, _JournalEntry]] = []
        for number, line in enumerate(lines, 1):
            try:
                data = _parse_json(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError, _Invalid) as exc:
                if number == len(lines) and not tail:
                    break  # torn last line
                raise StateError(f"{name} line {number} is not valid JSON: {exc}") from None
            try:
                entries.append((number, _parse_entry(data)))
            except _Invalid as exc:
                raise StateError(f"{name} line {number} is invalid: {exc}") from None
        return entries, True

    # -- writing --

    @contextlib.contextmanager
    def _locked(self, command: str) -> Iterator[StateWriter]:
        fd = self._acquire(command)
        try:
            tables, file_serial, journal_exists = self._load_tables()
            if journal_exists:
                # A run died before compacting: finish its work before adding ours.
                self._compact(tables, rewrite=tables.serial != file_serial)
            writer = _JsonFileStateWriter(self, tables)
            try:
                yield writer
            except BaseException as exc:
                try:
                    writer._close()
                except StateError as close_error:
                    exc.add_note(str(close_error))
                raise
            writer._close()
        finally:
            self._release(fd)

    def _acquire(self, command: str) -> int:
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StateError(
                f"cannot open lock file {self.lock_location}: {exc.strerror or exc}"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise StateLockedError(self._locked_message(holder)) from None
        except OSError as exc:
            os.close(fd)
            raise StateError(f"cannot lock {self.lock_location}: {exc.strerror or exc}") from exc
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": command,
            "user": _current_user(),
            "started": utc_now(),
        }
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info, sort_keys=True) + "\n").encode("utf-8"), 0)
        except OSError:
            pass  # the lock holds without its description; others just cannot name us
        return fd

    def _locked_message(self, holder: _Holder | None) -> str:
        hint = "another run is in progress; wait for it to finish"
        if holder is None or holder.pid is None:
            return f"state is locked by another process (lock file {self.lock_location}): {hint}"
        details = ", ".join(
            part
            for part in (
                f"command {holder.command!r}" if holder.command else "",
                f"since {holder.started}" if holder.started else "",
            )
            if part
        )
        host = f" on host {holder.host}" if holder.host else ""
        details = f" ({details})" if details else ""
        return f"state is locked by pid {holder.pid}{host}{details}: {hint}"

    def _release(self, fd: int) -> None:
        try:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _create_journal(self, state: State) -> int:
        """Open a new journal, then mark the state file as having one.

        The mark makes a state file that is later saved or copied without its
        journal refuse to load, instead of silently missing the journal's writes.
        The journal exists before the mark, so a crash between the two leaves an
        empty journal, never a mark without one.
        """
        fd = os.open(
            self._journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666
        )
        try:
            _fsync_directory(self._path.parent)
            _replace_atomically(self._path, _render(state, journal=self._journal.name))
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _compact(self, tables: _Tables, *, rewrite: bool) -> None:
        """Put everything in the JSON file, then drop the journal."""
        try:
            if rewrite:
                _replace_atomically(self._path, _render(tables.freeze()))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._journal)
            _fsync_directory(self._path.parent)
        except OSError as exc:
            raise StateError(
                f"cannot write state file {self._display}: {exc.strerror or exc}; every "
                f"write is kept in {self.journal_location} and the next run finishes it"
            ) from exc


class _JsonFileStateWriter:
    """The StateWriter of a locked JsonFileStateStore."""

    def __init__(self, store: JsonFileStateStore, tables: _Tables) -> None:
        self._store = store
        self._tables = tables
        self._start_serial = tables.serial
        # A state that was never written gets its lineage with its first write.
        self._lineage = tables.lineage or str(uuid.uuid4())
        self._mutex = threading.Lock()
        self._journal_fd: int | None = None
        self._snapshot: State | None = None
        self._closed = False
        self._failure: str | None = None

    @property
    def state(self) -> State:
        with self._mutex:
            if self._snapshot is None:
                self._snapshot = self._tables.freeze()
            return self._snapshot

    def add_pending(self, op: PendingOperation) -> None:
        with self._mutex:
            self._check_usable()
            existing = self._tables.pending.get(op.address)
            if existing is not None:
                raise StateError(
                    f"{op.address} already has a pending operation (externalOrderId "
                    f"{existing.external_order_id}); resolve it before starting another"
                )
            self._commit("add_pending", op.address, pending=op)

    def record_checkout(self, address: str, identity: Identity, record: CheckoutRecord) -> None:
        with self._mutex:
            self._check_usable()
            existing = self._tables.purchases.get(address)
            if existing is None:
                purchase = RecordedPurchase(
                    address=address,
                    identity=identity,
                    quantity=record.quantity,
                    checkouts=(record,),
                )
            else:
                if existing.identity != identity:
                    fields = ", ".join(existing.identity.differences(identity))
                    raise StateError(
                        f"cannot record checkout {record.external_order_id} for {address}: "
                        f"the recorded purchase has a different {fields}"
                    )
                if any(c.external_order_id == record.external_order_id for c in existing.checkouts):
                    raise StateError(
                        f"checkout {record.external_order_id} is already recorded for {address}"
                    )
                purchase = replace(
                    existing,
                    quantity=existing.quantity + record.quantity,
                    checkouts=(*existing.checkouts, record),
                )
            pending = None if address in self._tables.pending else _KEEP
            self._commit("record_checkout", address, purchase=purchase, pending=pending)

    def remove_pending(self, address: str) -> None:
        with self._mutex:
            self._check_usable()
            if address not in self._tables.pending:
                raise StateError(f"{address} has no pending operation in {self._store.location}")
            self._commit("remove_pending", address, pending=None)

    def remove_purchase(self, address: str) -> None:
        with self._mutex:
            self._check_usable()
            if address not in self._tables.purchases:
                raise StateError(f"{address} is not recorded in {self._store.location}")
            self._commit("remove_purchase", address, purchase=None)

    def import_purchase(self, address: str, identity: Identity, quantity: int, time: str) -> None:
        with self._mutex:
            self._check_usable()
            existing = self._tables.purchases.get(address)
            if existing is not None:
                raise StateError(
                    f"{address} is already recorded in {self._store.location} "
                    f"({existing.quantity} seats); remove it first to import it again"
                )
            purchase = RecordedPurchase(address=address, identity=identity, quantity=quantity)
            self._commit("import_purchase", address, purchase=purchase, time=time)

    # -- internals (called with the mutex held, except _close) --

    def _check_usable(self) -> None:
        if self._closed:
            raise StateError(
                f"the lock on {self._store.location} was released; this writer cannot write"
            )
        if self._failure is not None:
            raise StateError(
                f"an earlier write to {self._store.location} failed ({self._failure}); "
                "no further writes are made in this run"
            )

    def _commit(
        self,
        op: str,
        address: str,
        *,
        purchase: RecordedPurchase | _Keep | None = _KEEP,
        pending: PendingOperation | _Keep | None = _KEEP,
        time: str | None = None,
    ) -> None:
        data: dict[str, Any] = {
            "lineage": self._lineage,
            "serial": self._tables.serial + 1,
            "op": op,
            "address": address,
        }
        if not isinstance(purchase, _Keep):
            data["purchase"] = None if purchase is None else _purchase_json(purchase)
        if not isinstance(pending, _Keep):
            data["pending"] = None if pending is None else _pending_json(pending)
        if time is not None:
            data["time"] = time
        try:
            # What is written must read back: check it with the reader's own rules.
            line = json.dumps(data, sort_keys=True, separators=(",", ":"))
            entry = _parse_entry(_parse_json(line))
        except (_Invalid, TypeError, ValueError) as exc:
            raise StateError(f"cannot record {op} of {address!r}: {exc}") from None
        self._append((line + "\n").encode("utf-8"))
        self._tables.apply(entry)
        self._snapshot = None

    def _append(self, data: bytes) -> None:
        try:
            if self._journal_fd is None:
                marked = replace(self._tables.freeze(), lineage=self._lineage)
                self._journal_fd = self._store._create_journal(marked)
            _write_all(self._journal_fd, data)
            os.fsync(self._journal_fd)
        except OSError as exc:
            # After a failed write or fsync the journal's tail is unknown: stop writing.
            self._failure = exc.strerror or str(exc)
            raise StateError(
                f"cannot write state journal {self._store.journal_location}: {self._failure}"
            ) from exc

    def _close(self) -> None:
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            journal_created = self._journal_fd is not None
            if self._journal_fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._journal_fd)
                self._journal_fd = None
            written = self._tables.serial != self._start_serial
            if written or journal_created:
                self._store._compact(self._tables, rewrite=written)
