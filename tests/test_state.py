"""Tests of reconciler.state: the JSON file store, its journal and its lock."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import reconciler
from reconciler.errors import StateError, StateLockedError
from reconciler.model import CheckoutRecord, Identity, PendingOperation, RecordedPurchase, State
from reconciler.state import JsonFileStateStore, utc_now

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "schemas" / "state.schema.json").read_text(encoding="utf-8"))
T0 = "2026-11-26T19:00:00Z"
T1 = "2026-11-27T08:30:00Z"
IDENTITY = Identity(
    customer_tenant_id=111111,
    product_id="CFQ7TTC0LF8R",
    sku_id="0010",
    billing_cycle="monthly",
    term_duration="P1M",
)
OTHER = Identity(
    customer_tenant_id=222222,
    product_id="CFQ7TTC0LH18",
    sku_id="0001",
    billing_cycle="annual",
    term_duration="P1Y",
    type="software",
)


def pending(
    address: str, order: str, quantity: int, identity: Identity = IDENTITY
) -> PendingOperation:
    return PendingOperation(
        address=address, identity=identity, external_order_id=order, quantity=quantity, time=T0
    )


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "reconciler.state.json"


@pytest.fixture
def store(path: Path) -> JsonFileStateStore:
    """A store whose state was created, as `reconciler init` does: serial 0, a lineage."""
    created = JsonFileStateStore(path)
    assert created.create() is True
    return created


MISSING = "no state at {path}; run 'reconciler init' to start an empty one"


def journal(path: Path) -> Path:
    return path.with_name(path.name + ".journal")


# --- subprocesses that crash or hold the lock --------------------------------

_WRITER_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from reconciler.model import CheckoutRecord, Identity, PendingOperation
    from reconciler.state import JsonFileStateStore

    identity = Identity(111111, "CFQ7TTC0LF8R", "0010", "monthly", "P1M")
    t0 = "2026-11-26T19:00:00Z"
    store = JsonFileStateStore(sys.argv[1])
    with store.lock("reconciler apply") as writer:
        writer.import_purchase("acme/imported", identity, 3, t0)
        writer.add_pending(PendingOperation("acme/a", identity, "ord-1", 5, t0))
        writer.record_checkout("acme/a", identity, CheckoutRecord("ord-1", 5, t0))
        writer.add_pending(PendingOperation("acme/b", identity, "ord-2", 2, t0))
        if sys.argv[2] == "exit":
            os._exit(0)  # a crash: no compaction, no unlock
        print("ready", flush=True)
        time.sleep(60)
    """
)

#: What the writer script leaves in a state that held only "acme/old".
AFTER_SCRIPT_PURCHASES = {
    "acme/imported": RecordedPurchase("acme/imported", IDENTITY, 3),
    "acme/a": RecordedPurchase(
        "acme/a", IDENTITY, 5, (CheckoutRecord("ord-1", 5, T0),), unseen=("ord-1",)
    ),
}
AFTER_SCRIPT_PENDING = {"acme/b": pending("acme/b", "ord-2", 2)}


def start_writer(path: Path, mode: str) -> subprocess.Popen[str]:
    package_root = Path(reconciler.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(package_root), *sys.path[1:]])}
    return subprocess.Popen(
        [sys.executable, "-c", _WRITER_SCRIPT, str(path), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def seed(store: JsonFileStateStore) -> None:
    """A compacted state at serial 1 holding acme/old."""
    with store.lock("test") as writer:
        writer.import_purchase("acme/old", OTHER, 1, T0)


@pytest.fixture
def crashed(store: JsonFileStateStore, path: Path) -> bytes:
    """A run that made four writes after a seeded state and died without compacting.

    Returns the state file as the crashed run left it: the seeded state, marked as
    having a journal.
    """
    seed(store)
    before = path.read_bytes()
    proc = start_writer(path, "exit")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    after = path.read_bytes()
    assert unmarked(after) == before
    return after


def unmarked(data: bytes) -> bytes:
    """A state file's bytes without the lines that say a journal goes with it (its
    acknowledged serial, its name and the run writing it)."""
    lines = data.split(b"\n")
    assert re.fullmatch(rb'  "acknowledgedSerial": "[0-9]{20}",', lines[1]), lines[1]
    assert lines[2].startswith(b'  "journal": "reconciler.state.json.journal",'), lines[2]
    assert re.fullmatch(rb'  "journalRun": "[0-9a-f]{16}",', lines[3]), lines[3]
    return b"\n".join(lines[:1] + lines[4:])


def expected_after_script(lineage: str) -> State:
    purchases = {"acme/old": RecordedPurchase("acme/old", OTHER, 1), **AFTER_SCRIPT_PURCHASES}
    return State(
        lineage=lineage,
        serial=5,
        purchases=dict(sorted(purchases.items())),
        pending=AFTER_SCRIPT_PENDING,
    )


# --- reading ------------------------------------------------------------------


def test_missing_file_is_refused_by_load_and_lock_and_creates_nothing(
    path: Path, tmp_path: Path
) -> None:
    """A missing state must never read as "nothing bought yet"."""
    store = JsonFileStateStore(path)
    assert store.exists() is False
    with pytest.raises(StateError) as caught:
        store.load()
    assert str(caught.value) == MISSING.format(path=path)
    with pytest.raises(StateError) as caught, store.lock("reconciler apply"):
        pytest.fail("locked a state that does not exist")
    assert str(caught.value) == MISSING.format(path=path)
    # No state file, no lock file, no journal, no temp file.
    assert files(tmp_path) == []
    assert store.exists() is False


def test_missing_file_is_refused_by_the_path_as_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StateError) as caught:
        JsonFileStateStore("reconciler.state.json").load()
    assert str(caught.value) == MISSING.format(path="reconciler.state.json")
    assert files(tmp_path) == []


def test_create_writes_an_empty_state_at_serial_0_with_a_new_lineage(
    path: Path, tmp_path: Path
) -> None:
    store = JsonFileStateStore(path)
    assert store.create() is True
    assert store.exists() is True
    state = store.load()
    assert uuid.UUID(state.lineage).version == 4
    assert state == State(lineage=state.lineage, serial=0)
    text = path.read_text(encoding="utf-8")
    document = {"version": 1, "lineage": state.lineage, "serial": 0, "purchases": {}, "pending": {}}
    assert text == json.dumps(document, sort_keys=True, indent=2) + "\n"
    jsonschema.Draft202012Validator(SCHEMA).validate(json.loads(text))
    # Only the state file: creating it takes no lock and starts no journal.
    assert files(tmp_path) == [path.name]


def test_create_changes_nothing_when_a_state_exists(store: JsonFileStateStore, path: Path) -> None:
    with store.lock("reconciler apply") as writer:
        writer.import_purchase("acme/a", IDENTITY, 2, T0)
    before = path.read_bytes()
    assert store.create() is False
    assert JsonFileStateStore(path).create() is False
    assert path.read_bytes() == before


def test_location_is_the_path_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert JsonFileStateStore("reconciler.state.json").location == "reconciler.state.json"
    assert JsonFileStateStore(tmp_path / "x.json").location == str(tmp_path / "x.json")


def test_lock_without_writes_writes_no_state(
    store: JsonFileStateStore, path: Path, tmp_path: Path
) -> None:
    before = path.read_bytes()
    created = store.load()
    assert created == State(lineage=created.lineage, serial=0)
    with store.lock("reconciler apply") as writer:
        assert writer.state == created
    assert files(tmp_path) == ["reconciler.state.json", "reconciler.state.json.lock"]
    assert path.read_bytes() == before
    assert store.load() == created


# --- writing ------------------------------------------------------------------


def test_every_write_kind_round_trips(store: JsonFileStateStore, path: Path) -> None:
    with store.lock("reconciler apply") as writer:
        writer.add_pending(pending("acme/a", "ord-1", 5))
        assert writer.state.pending == {"acme/a": pending("acme/a", "ord-1", 5)}
        writer.record_checkout("acme/a", IDENTITY, CheckoutRecord("ord-1", 5, T0))
        writer.add_pending(pending("acme/b", "ord-2", 2, OTHER))
        writer.remove_pending("acme/b")
        writer.import_purchase("acme/c", OTHER, 7, T0)
        writer.record_checkout("acme/c", OTHER, CheckoutRecord("ord-3", 2, T1))
        writer.import_purchase("acme/d", IDENTITY, 1, T0)
        writer.remove_purchase("acme/d")
        writer.add_pending(pending("acme/e", "ord-4", 4))
        during = writer.state
        # Readers see every acknowledged write while the run still holds the lock.
        assert store.load() == during

    lineage = during.lineage
    expected = State(
        lineage=lineage,
        serial=9,
        purchases={
            "acme/a": RecordedPurchase(
                "acme/a", IDENTITY, 5, (CheckoutRecord("ord-1", 5, T0),), unseen=("ord-1",)
            ),
            "acme/c": RecordedPurchase(
                "acme/c", OTHER, 9, (CheckoutRecord("ord-3", 2, T1),), unseen=("ord-3",)
            ),
        },
        pending={"acme/e": pending("acme/e", "ord-4", 4)},
    )
    assert during == expected
    assert store.load() == expected
    assert not journal(path).exists()
    with store.lock("reconciler plan") as writer:
        assert writer.state == expected


def test_record_checkout_adds_seats_keeps_history_and_clears_pending(
    store: JsonFileStateStore,
) -> None:
    with store.lock("reconciler apply") as writer:
        writer.record_checkout("acme/a", IDENTITY, CheckoutRecord("ord-1", 5, T0))
    with store.lock("reconciler apply") as writer:
        writer.add_pending(pending("acme/a", "ord-2", 3))
        serial = writer.state.serial
        writer.record_checkout("acme/a", IDENTITY, CheckoutRecord("ord-2", 3, T1))
        # One write: seats added and pending removed together.
        assert writer.state.serial == serial + 1
    state = store.load()
    assert state.pending == {}
    assert state.purchases["acme/a"] == RecordedPurchase(
        "acme/a",
        IDENTITY,
        8,
        (CheckoutRecord("ord-1", 5, T0), CheckoutRecord("ord-2", 3, T1)),
        unseen=("ord-1", "ord-2"),
    )


def test_file_format_is_exact_and_matches_the_schema(store: JsonFileStateStore, path: Path) -> None:
    with store.lock("reconciler apply") as writer:
        writer.record_checkout("acme/b", IDENTITY, CheckoutRecord("ord-1", 5, T0))
        writer.import_purchase("acme/a", OTHER, 2, T1)
        writer.add_pending(pending("acme/b", "ord-2", 1))
        lineage = writer.state.lineage
    text = path.read_text(encoding="utf-8")
    document = {
        "version": 1,
        "lineage": lineage,
        "serial": 3,
        "purchases": {
            "acme/a": {**OTHER.as_dict(), "quantity": 2, "checkouts": []},
            "acme/b": {
                **IDENTITY.as_dict(),
                "quantity": 5,
                "checkouts": [{"externalOrderId": "ord-1", "quantity": 5, "time": T0}],
                "unseen": ["ord-1"],
            },
        },
        "pending": {
            "acme/b": {**IDENTITY.as_dict(), "externalOrderId": "ord-2", "quantity": 1, "time": T0}
        },
    }
    assert text == json.dumps(document, sort_keys=True, indent=2) + "\n"
    assert text.startswith('{\n  "lineage": ')
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.Draft202012Validator(SCHEMA).validate(json.loads(text))


def test_file_text_is_json_dumps_for_any_strings(store: JsonFileStateStore, path: Path) -> None:
    odd = Identity(
        customer_tenant_id=7,
        product_id='Prod "ü€" \\ tab\t',
        sku_id="\u2028\U0001f600",
        billing_cycle="triennial",
        term_duration="P3Y",
        type="reservation",
    )
    with store.lock("reconciler apply") as writer:
        writer.import_purchase('acme/"odd"\\ü', odd, 1, T0)
        for n in range(3):
            writer.record_checkout("acme/many", odd, CheckoutRecord(f"ord-\n{n}", n + 1, T1))
        writer.add_pending(pending('acme/"odd"\\ü', "ord-é", 2, odd))
        expected = writer.state
    text = path.read_text(encoding="utf-8")
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=2) + "\n"
    assert text.isascii()
    assert store.load() == expected


def test_schema_describes_every_property_and_allows_nothing_else() -> None:
    def walk(node: Any, where: str) -> Iterator[str]:
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                if node.get("additionalProperties") is not False:
                    yield f"{where}: additionalProperties is not false"
                for name, sub in node["properties"].items():
                    if "description" not in sub:
                        yield f"{where}.{name}: no description"
            for key, value in node.items():
                yield from walk(value, f"{where}/{key}")

    assert list(walk(SCHEMA, "#")) == []


def test_serial_counts_writes_and_lineage_is_set_once(store: JsonFileStateStore) -> None:
    created = store.load().lineage
    with store.lock("reconciler apply") as writer:
        for serial, address in enumerate(["acme/a", "acme/b", "acme/c"], 1):
            writer.import_purchase(address, IDENTITY, 1, T0)
            assert writer.state.serial == serial
        lineage = writer.state.lineage
    assert uuid.UUID(lineage).version == 4
    assert lineage == created  # set by create, never by a write
    assert store.load().serial == 3
    with store.lock("reconciler state rm") as writer:
        writer.remove_purchase("acme/a")
        writer.remove_purchase("acme/b")
    state = store.load()
    assert (state.lineage, state.serial) == (lineage, 5)
    assert JsonFileStateStore(store.location).load().lineage == lineage


def test_new_states_get_different_lineages(tmp_path: Path) -> None:
    lineages = set()
    for name in ("one.json", "two.json"):
        store = JsonFileStateStore(tmp_path / name)
        store.create()
        with store.lock("x") as writer:
            writer.import_purchase("acme/a", IDENTITY, 1, T0)
        lineages.add(store.load().lineage)
    assert len(lineages) == 2


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda w: w.remove_pending("acme/x"), "acme/x has no pending operation in {path}"),
        (lambda w: w.remove_purchase("acme/x"), "acme/x is not recorded in {path}"),
        (
            lambda w: w.import_purchase("acme/a", IDENTITY, 1, T0),
            "acme/a is already recorded in {path} (5 seats); remove it first to import it again",
        ),
        (
            lambda w: w.add_pending(pending("acme/p", "ord-9", 1)),
            "acme/p already has a pending operation (externalOrderId ord-2); "
            "resolve it before starting another",
        ),
        (
            lambda w: w.record_checkout("acme/a", OTHER, CheckoutRecord("ord-7", 1, T0)),
            "cannot record checkout ord-7 for acme/a: the recorded purchase has a different "
            "customerTenantId, productId, skuId, billingCycle, termDuration, type",
        ),
        (
            lambda w: w.record_checkout("acme/a", IDENTITY, CheckoutRecord("ord-1", 5, T0)),
            "checkout ord-1 is already recorded for acme/a",
        ),
        (
            lambda w: w.import_purchase("acme/n", IDENTITY, 0, T0),
            "cannot record import_purchase of 'acme/n': purchase.quantity: "
            "expected an integer >= 1, got 0",
        ),
        (
            lambda w: w.import_purchase("acme/n", IDENTITY, 1, "2026-11-26 19:00"),
            "cannot record import_purchase of 'acme/n': time: "
            'expected a UTC time like 2026-11-26T19:00:00Z, got a string "2026-11-26 19:00"',
        ),
        (
            lambda w: w.record_checkout("", IDENTITY, CheckoutRecord("ord-8", 1, T0)),
            "cannot record record_checkout of '': address: "
            'expected a non-empty address, got a string ""',
        ),
    ],
)
def test_misuse_is_a_state_error_and_writes_nothing(
    store: JsonFileStateStore, path: Path, call: Any, message: str
) -> None:
    with store.lock("reconciler apply") as writer:
        writer.record_checkout("acme/a", IDENTITY, CheckoutRecord("ord-1", 5, T0))
        writer.add_pending(pending("acme/p", "ord-2", 1))
        before = writer.state
        with pytest.raises(StateError) as caught:
            call(writer)
        assert str(caught.value) == message.format(path=path)
        assert writer.state == before
    assert store.load() == before


def test_writer_refuses_writes_after_the_lock_is_released(store: JsonFileStateStore) -> None:
    with store.lock("reconciler apply") as writer:
        pass
    with pytest.raises(StateError, match="was released; this writer cannot write"):
        writer.import_purchase("acme/a", IDENTITY, 1, T0)


def test_utc_now_is_a_utc_iso_time() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", utc_now())


# --- bad files are refused and never overwritten --------------------------------

_VALID = {
    "version": 1,
    "lineage": "3e1c2f3a-0000-4000-8000-000000000000",
    "serial": 2,
    "purchases": {"acme/a": {**IDENTITY.as_dict(), "quantity": 5, "checkouts": []}},
    "pending": {},
}


def _variant(**changes: Any) -> bytes:
    return json.dumps({**_VALID, **changes}, indent=2).encode()


def _purchase_variant(**changes: Any) -> bytes:
    purchase = {**_VALID["purchases"]["acme/a"], **changes}  # type: ignore[index]
    return _variant(purchases={"acme/a": purchase})


BAD_FILES = [
    pytest.param(
        b'{\n  "version": 1,\n    x\n}\n',
        "is not valid JSON (line 3, column 5): Expecting property name enclosed in double quotes",
        id="not-json",
    ),
    pytest.param(
        _variant()[:60],
        "is not valid JSON (line 3, column 14): Unterminated string starting at",
        id="truncated",
    ),
    pytest.param(b"", "is empty; it is not a state this reconciler wrote", id="empty"),
    pytest.param(b"\xff\xfe{}", "is not valid UTF-8 (byte 0)", id="binary"),
    pytest.param(
        _variant(version=2),
        "was written by a newer reconciler (version 2); upgrade to read it",
        id="newer-version",
    ),
    pytest.param(
        b'{"version": 7, "purchases": "a format we do not know"}',
        "was written by a newer reconciler (version 7); upgrade to read it",
        id="newer-version-other-shape",
    ),
    pytest.param(b"[1, 2]", "is invalid: expected an object, got an array [1, 2]", id="array"),
    pytest.param(b'{"serial": 1}', "is invalid: it has no version", id="no-version"),
    pytest.param(
        _variant(version="1"), 'is invalid: version: expected 1, got a string "1"', id="version-str"
    ),
    pytest.param(
        _variant(serial="3"),
        'is invalid: serial: expected an integer >= 0, got a string "3"',
        id="serial-str",
    ),
    pytest.param(
        _variant(serial=True),
        "is invalid: serial: expected an integer >= 0, got a boolean true",
        id="serial-bool",
    ),
    pytest.param(
        _variant(purchases=[]),
        "is invalid: purchases: expected an object, got an array []",
        id="purchases-array",
    ),
    pytest.param(
        _purchase_variant(quantity="5"),
        'is invalid: purchases["acme/a"].quantity: expected an integer >= 1, got a string "5"',
        id="quantity-str",
    ),
    pytest.param(
        _purchase_variant(checkouts=[{"externalOrderId": "o", "quantity": 1}]),
        "is invalid: purchases[\"acme/a\"].checkouts[0]: missing 'time'",
        id="checkout-no-time",
    ),
    pytest.param(
        _purchase_variant(billingCycle="weekly"),
        'is invalid: purchases["acme/a"].billingCycle: expected one of monthly, annual, none, '
        'one-time, triennial, got a string "weekly"',
        id="bad-enum",
    ),
    pytest.param(_variant(extra=1), "is invalid: unknown key 'extra'", id="unknown-key"),
    pytest.param(
        _variant(pending={"acme/a": {"quantity": 1}}),
        "is invalid: pending[\"acme/a\"]: missing 'customerTenantId', 'productId', 'skuId', "
        "'billingCycle', 'termDuration', 'type', 'externalOrderId', 'time'",
        id="pending-incomplete",
    ),
    pytest.param(
        b'{"version": 1, "version": 1}',
        'is not valid JSON: duplicate key "version"',
        id="duplicate-key",
    ),
    pytest.param(
        _variant(serial=2**63),
        "is invalid: serial: expected an integer <= 9223372036854775807, got 9223372036854775808",
        id="serial-above-bigint",
    ),
    pytest.param(
        _purchase_variant(quantity=2**31),
        'is invalid: purchases["acme/a"].quantity: expected an integer <= 2147483647, '
        "got 2147483648",
        id="quantity-above-integer",
    ),
    pytest.param(
        _purchase_variant(customerTenantId=2**63),
        'is invalid: purchases["acme/a"].customerTenantId: expected an integer <= '
        "9223372036854775807, got 9223372036854775808",
        id="tenant-above-bigint",
    ),
    pytest.param(
        _purchase_variant(
            quantity=2**31 - 2,
            adjustments=[{"quantity": -(2**31), "time": T0, "source": "r", "evidence": "e"}],
        ),
        'is invalid: purchases["acme/a"].adjustments[0].quantity: expected an integer other '
        "than 0, from -2147483647 to 2147483647, got -2147483648",
        id="adjustment-below-integer",
    ),
]

#: Valid JSON no state holds, each costly to read on: refused before it is converted
#: or recursed into, with an error naming the file (never a ValueError or RecursionError).
HOSTILE_FILES = [
    pytest.param(
        _variant(serial=2**70),
        "is invalid: it holds a number of 22 digits; no value of a state has more than 19",
        id="serial-2**70",
    ),
    pytest.param(
        _variant().replace(b'"serial": 2', b'"serial": ' + b"7" * 5000),
        "is invalid: it holds a number of 5,000 digits; no value of a state has more than 19",
        id="5000-digit-serial",
    ),
    pytest.param(
        _variant().replace(b'"quantity": 5', b'"quantity": -' + b"1" * 20),
        "is invalid: it holds a number of 20 digits; no value of a state has more than 19",
        id="20-digit-negative-quantity",
    ),
    pytest.param(
        b"[" * 100_000 + b"]" * 100_000,
        "is invalid: it nests arrays or objects too deeply to be read",
        id="deep-array",
    ),
    pytest.param(
        _variant().replace(
            b'"pending": {}', b'"pending": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_000
        ),
        "is invalid: it nests arrays or objects too deeply to be read",
        id="deep-pending",
    ),
    pytest.param(
        _variant(pending=[[[[[[[[[[["x" * 100_000]]]]]]]]]]]),
        "is invalid: pending: expected an object, got an array "
        + json.dumps([[[[[[[[[[["x" * 40]]]]]]]]]]])[:37]
        + "...",
        id="long-value-shown-short",
    ),
    pytest.param(
        _variant(**{"k" * 100_000: 1}),
        'is invalid: unknown key "' + "k" * 57 + '..."',
        id="long-unknown-key-shown-short",
    ),
    pytest.param(
        _variant(purchases={"a" * 100_000: {"quantity": 1}}),
        'is invalid: purchases["' + "a" * 57 + "...\"]: missing 'customerTenantId', "
        "'productId', 'skuId', 'billingCycle', 'termDuration', 'type', 'checkouts'",
        id="long-address-shown-short",
    ),
]


@pytest.mark.parametrize(("content", "message"), BAD_FILES + HOSTILE_FILES)
def test_bad_state_file_is_refused_by_name_and_left_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reconciler.state.json").write_bytes(content)
    store = JsonFileStateStore("reconciler.state.json")
    expected = f"state file reconciler.state.json {message}"
    with pytest.raises(StateError) as caught:
        store.load()
    assert str(caught.value) == expected
    with pytest.raises(StateError) as caught, store.lock("reconciler apply"):
        pytest.fail("locked a bad state")
    assert str(caught.value) == expected
    assert (tmp_path / "reconciler.state.json").read_bytes() == content
    assert files(tmp_path) == ["reconciler.state.json", "reconciler.state.json.lock"]


def _json_documents(params: list[Any]) -> list[Any]:
    documents = []
    for param in params:
        try:
            document = json.loads(param.values[0])
        except ValueError:
            continue  # not JSON at all: nothing for a schema to say
        if param.id != "duplicate-key":  # json.loads keeps the last value; only the reader sees it
            documents.append(pytest.param(document, id=param.id))
    return documents


@pytest.mark.parametrize("document", _json_documents(BAD_FILES))
def test_schema_refuses_what_the_reader_refuses(document: Any) -> None:
    assert list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(document))


def test_schema_accepts_the_valid_hand_written_file() -> None:
    assert not list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(_VALID))


# --- crashes: the journal ------------------------------------------------------


def test_acknowledged_writes_survive_a_crash_and_the_next_lock_compacts(
    store: JsonFileStateStore, path: Path, crashed: bytes
) -> None:
    # The crashed run never compacted: its writes are only in the journal.
    assert path.read_bytes() == crashed
    assert journal(path).exists()
    lineage = json.loads(crashed)["lineage"]
    expected = expected_after_script(lineage)
    assert store.load() == expected

    with store.lock("reconciler apply") as writer:
        assert writer.state == expected
        # Compacted on lock: the JSON file alone holds everything now.
        assert not journal(path).exists()
        assert json.loads(path.read_text())["serial"] == 5
    assert store.load() == expected
    jsonschema.Draft202012Validator(SCHEMA).validate(json.loads(path.read_text()))


def test_crash_of_a_new_state_before_any_compaction(store: JsonFileStateStore, path: Path) -> None:
    created = store.load().lineage
    proc = start_writer(path, "exit")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    # Only the journal mark was written to the state file: serial 0, nothing recorded.
    marked = json.loads(path.read_text())
    assert (marked["journal"], marked["serial"], marked["purchases"]) == (journal(path).name, 0, {})
    assert marked["lineage"] == created
    state = store.load()
    assert state.serial == 4
    assert state.lineage == created
    assert state.purchases == AFTER_SCRIPT_PURCHASES
    with store.lock("reconciler apply"):
        pass
    assert json.loads(path.read_text())["lineage"] == state.lineage
    assert store.load() == state


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param(b'{"address":"acme/c","lineage":', id="cut-mid-line"),
        pytest.param(b"\x00" * 64, id="allocated-never-written"),
        pytest.param(b"{not json}\n", id="complete-but-unreadable"),
    ],
)
def test_torn_last_journal_line_is_ignored(
    store: JsonFileStateStore, path: Path, crashed: bytes, tail: bytes
) -> None:
    expected = expected_after_script(json.loads(crashed)["lineage"])
    with journal(path).open("ab") as f:
        f.write(tail)
    assert store.load() == expected
    with store.lock("reconciler apply") as writer:
        assert writer.state == expected
        writer.import_purchase("acme/new", IDENTITY, 1, T0)
    assert store.load().serial == 6
    assert not journal(path).exists()


def _bad_journal_cases() -> list[Any]:
    def garbage_middle(lines: list[bytes]) -> list[bytes]:
        return [lines[0], b"garbage", *lines[2:]]

    def gap(lines: list[bytes]) -> list[bytes]:
        return [lines[0], *lines[2:]]

    def wrong_type(lines: list[bytes]) -> list[bytes]:
        entry = json.loads(lines[1])
        entry["serial"] = "3"
        return [lines[0], json.dumps(entry).encode(), *lines[2:]]

    return [
        pytest.param(garbage_middle, "line 2 is not valid JSON: Expecting value", id="garbage"),
        pytest.param(
            gap,
            "line 2 has serial 4 but serial 3 was expected; the journal does not continue "
            "state file {path}",
            id="gap",
        ),
        pytest.param(
            wrong_type,
            'line 2 is invalid: serial: expected an integer >= 1, got a string "3"',
            id="wrong-type",
        ),
    ]


@pytest.mark.parametrize(("edit", "message"), _bad_journal_cases())
def test_bad_journal_line_in_the_middle_is_refused_and_left_untouched(
    store: JsonFileStateStore, path: Path, crashed: bytes, edit: Any, message: str
) -> None:
    lines = journal(path).read_bytes().split(b"\n")[:-1]
    assert len(lines) == 4
    content = b"\n".join(edit(lines)) + b"\n"
    journal(path).write_bytes(content)
    expected = f"state journal {journal(path)} " + message.format(path=path)
    with pytest.raises(StateError) as caught:
        store.load()
    assert str(caught.value).startswith(expected)
    with pytest.raises(StateError), store.lock("reconciler apply"):
        pytest.fail("locked a bad journal")
    assert journal(path).read_bytes() == content
    assert path.read_bytes() == crashed


def test_journal_of_another_lineage_is_refused(
    store: JsonFileStateStore, path: Path, crashed: bytes
) -> None:
    other = json.loads(crashed)
    old_lineage, other["lineage"] = other["lineage"], str(uuid.uuid4())
    path.write_text(json.dumps(other, sort_keys=True, indent=2) + "\n")
    with pytest.raises(StateError) as caught:
        store.load()
    assert str(caught.value) == (
        f"state journal {journal(path)} line 1 belongs to another state (lineage {old_lineage}; "
        f"state file {path} has lineage {other['lineage']}); move one of them away"
    )


def test_stale_journal_left_by_a_crash_after_compaction_is_dropped(
    store: JsonFileStateStore, path: Path, crashed: bytes
) -> None:
    stale = journal(path).read_bytes()
    with store.lock("reconciler apply"):
        pass
    compacted = path.read_bytes()
    # As if the run died between the rename and deleting the journal.
    journal(path).write_bytes(stale)
    assert store.load() == expected_after_script(json.loads(crashed)["lineage"])
    with store.lock("reconciler apply"):
        pass
    assert path.read_bytes() == compacted
    assert not journal(path).exists()


def test_failed_rename_leaves_the_previous_file_intact(
    store: JsonFileStateStore, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(store)
    before = path.read_bytes()

    def refuse(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    def run() -> None:
        with store.lock("reconciler apply") as writer:
            writer.import_purchase("acme/new", IDENTITY, 4, T0)
            monkeypatch.setattr(os, "replace", refuse)

    with pytest.raises(StateError) as caught:
        run()
    assert str(caught.value) == (
        f"cannot write state file {path}: No space left on device; every write is kept in "
        f"{journal(path)} and the next run finishes it"
    )
    monkeypatch.undo()
    assert unmarked(path.read_bytes()) == before
    assert files(path.parent) == [path.name, journal(path).name, path.name + ".lock"]
    assert store.load().purchases["acme/new"].quantity == 4  # the journal still has it

    with store.lock("reconciler apply"):
        pass
    assert json.loads(path.read_text())["purchases"]["acme/new"]["quantity"] == 4
    assert not journal(path).exists()


def test_failed_compaction_does_not_hide_the_runs_own_error(
    store: JsonFileStateStore, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(src: Any, dst: Any) -> None:
        raise OSError(5, "Input/output error")

    def run() -> None:
        with store.lock("reconciler apply") as writer:
            writer.import_purchase("acme/new", IDENTITY, 4, T0)
            monkeypatch.setattr(os, "replace", refuse)
            raise RuntimeError("the run failed")

    with pytest.raises(RuntimeError, match="the run failed") as caught:
        run()
    assert caught.value.__notes__ == [
        f"cannot write state file {path}: Input/output error; every write is kept in "
        f"{journal(path)} and the next run finishes it"
    ]
    monkeypatch.undo()
    assert store.load().purchases["acme/new"].quantity == 4


def test_error_inside_the_lock_still_compacts(store: JsonFileStateStore, path: Path) -> None:
    def run() -> None:
        with store.lock("reconciler apply") as writer:
            writer.import_purchase("acme/a", IDENTITY, 2, T0)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run()
    assert json.loads(path.read_text())["serial"] == 1
    assert not journal(path).exists()


def test_failed_journal_write_stops_the_writer(
    store: JsonFileStateStore, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(fd: int) -> None:
        raise OSError(5, "Input/output error")

    def run() -> None:
        with store.lock("reconciler apply") as writer:
            writer.import_purchase("acme/a", IDENTITY, 2, T0)
            monkeypatch.setattr(os, "fsync", fail)
            with pytest.raises(StateError, match=r"cannot write state journal .*: Input/output"):
                writer.import_purchase("acme/b", IDENTITY, 2, T0)
            monkeypatch.undo()
            with pytest.raises(StateError, match=r"an earlier write to .* failed \(Input/output"):
                writer.import_purchase("acme/c", IDENTITY, 2, T0)
            assert writer.state.serial == 1

    # The failed line may be on disk (only its fsync failed): the run does not compact
    # the state from its tables, which lack it, and leaves the journal to the next run.
    with pytest.raises(StateError, match="was not compacted after a failed write"):
        run()
    assert journal(path).exists()
    state = store.load()
    assert "acme/c" not in state.purchases
    assert state.purchases["acme/a"].quantity == 2
    with store.lock("next"):
        pass
    assert not journal(path).exists()
    assert store.load() == state


# --- locking --------------------------------------------------------------------


def test_second_lock_fails_at_once_naming_the_holder(store: JsonFileStateStore, path: Path) -> None:
    with store.lock("reconciler apply"):
        lock_file = path.with_name(path.name + ".lock")
        holder = json.loads(lock_file.read_text())
        assert sorted(holder) == ["command", "host", "pid", "started", "user"]
        with pytest.raises(StateLockedError) as caught, store.lock("reconciler state rm"):
            pytest.fail("locked twice")
        assert str(caught.value) == (
            f"state is locked by pid {os.getpid()} on host {socket.gethostname()} "
            f"(command 'reconciler apply', since {holder['started']}): "
            "another run is in progress; wait for it to finish, or give --lock-timeout "
            "DURATION (e.g. 10m) to wait for it"
        )
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", holder["started"])
    # Released, not deleted: the next run locks it again.
    assert lock_file.exists()
    with store.lock("reconciler state rm"):
        pass


def test_lock_of_another_process_blocks_until_it_is_killed(
    store: JsonFileStateStore, path: Path
) -> None:
    seed(store)
    proc = start_writer(path, "hold")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n", proc.stderr.read() if proc.stderr else ""
        # Reading never waits for the lock, and sees the holder's acknowledged writes.
        assert store.load() == expected_after_script(store.load().lineage)

        started = time.monotonic()
        with pytest.raises(StateLockedError) as caught, store.lock("reconciler apply"):
            pytest.fail("locked while another process holds the lock")
        assert time.monotonic() - started < 1
        assert str(caught.value).startswith(
            f"state is locked by pid {proc.pid} on host {socket.gethostname()} "
            "(command 'reconciler apply', since "
        )
        assert str(caught.value).endswith(
            ": another run is in progress; wait for it to finish, or give --lock-timeout "
            "DURATION (e.g. 10m) to wait for it"
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    with store.lock("reconciler apply") as writer:
        assert writer.state == expected_after_script(writer.state.lineage)
    assert not journal(path).exists()


# --- concurrency -----------------------------------------------------------------


def test_concurrent_record_checkout_from_eight_threads(
    store: JsonFileStateStore, path: Path
) -> None:
    threads_count, writes = 8, 25
    barrier = threading.Barrier(threads_count)
    errors: list[BaseException] = []

    with store.lock("reconciler apply") as writer:

        def work(thread: int) -> None:
            try:
                barrier.wait()
                for n in range(writes):
                    record = CheckoutRecord(f"t{thread}-{n}", thread + 1, T0)
                    writer.record_checkout(f"acme/{n % 3}", IDENTITY, record)
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        during = writer.state

    assert errors == []
    state = store.load()
    assert state == during
    assert state.serial == threads_count * writes
    total = sum(p.quantity for p in state.purchases.values())
    assert total == writes * sum(range(1, threads_count + 1))
    for purchase in state.purchases.values():
        assert purchase.quantity == sum(c.quantity for c in purchase.checkouts)
    assert sum(len(p.checkouts) for p in state.purchases.values()) == threads_count * writes


def test_readers_see_a_consistent_growing_state_during_writes_and_compactions(
    store: JsonFileStateStore,
) -> None:
    done = threading.Event()
    problems: list[str] = []
    loads = 0

    def read() -> None:
        nonlocal loads
        last = 0
        while not done.is_set():
            try:
                state = store.load()
            except StateError as exc:
                problems.append(str(exc))
                return
            loads += 1
            seats = state.purchases["acme/a"].quantity if state.purchases else 0
            if seats != state.serial or state.serial < last:
                problems.append(f"serial {state.serial} after {last} with {seats} seats")
            last = state.serial

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for session in range(6):
            with store.lock("reconciler apply") as writer:
                for n in range(8):
                    writer.record_checkout(
                        "acme/a", IDENTITY, CheckoutRecord(f"{session}-{n}", 1, T0)
                    )
    finally:
        done.set()
        reader.join()
    assert problems == []
    assert loads > 0
    assert store.load().serial == 48


def test_every_write_is_fsynced_before_it_returns(
    store: JsonFileStateStore, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        real_fsync(fd)
        try:
            is_journal = os.path.samestat(os.fstat(fd), journal(path).stat())
        except FileNotFoundError:
            is_journal = False
        if is_journal:
            synced.append(os.fstat(fd).st_size)

    monkeypatch.setattr(os, "fsync", spy)
    with store.lock("reconciler apply") as writer:
        for n in range(3):
            writer.import_purchase(f"acme/{n}", IDENTITY, 1, T0)
            # The journal was fsynced with this write's line in it before the call returned.
            assert synced[-1] == journal(path).stat().st_size
        assert len(synced) == 3


def test_load_reads_the_journal_before_the_json_file(store: JsonFileStateStore) -> None:
    """A compaction between load's two reads must not lose the journal's writes."""
    seed(store)
    with store.lock("reconciler apply") as writer:
        writer.import_purchase("acme/new", IDENTITY, 2, T0)
        first_read: list[str] = []
        read_journal, read_file = store._read_journal, store._read_file

        def journal_then_compact() -> Any:
            result = read_journal()
            first_read.append("journal")
            writer.finish()  # type: ignore[attr-defined]  # the run compacts right now
            return result

        def file_then_compact() -> Any:
            result = read_file()
            first_read.append("file")
            writer.finish()  # type: ignore[attr-defined]
            return result

        store._read_journal = journal_then_compact  # type: ignore[method-assign]
        store._read_file = file_then_compact  # type: ignore[method-assign]
        state = store.load()
        del store._read_journal, store._read_file
    assert first_read[0] == "journal"
    assert state.serial == 2
    assert "acme/new" in state.purchases


# --- the journal mark and symlinks ---------------------------------------------------


def test_state_file_saved_without_its_journal_refuses_to_load(
    store: JsonFileStateStore, path: Path, crashed: bytes, tmp_path: Path
) -> None:
    """A pipeline that keeps only the JSON file of a killed run must not plan from it."""
    elsewhere = tmp_path / "copy"
    elsewhere.mkdir()
    (elsewhere / path.name).write_bytes(crashed)
    copy = JsonFileStateStore(elsewhere / path.name)
    with pytest.raises(StateError, match=r"its journal .* is missing"):
        copy.load()
    with pytest.raises(StateError, match=r"its journal .* is missing"), copy.lock("apply"):
        pytest.fail("locked a state whose journal is missing")
    assert (elsewhere / path.name).read_bytes() == crashed
    jsonschema.Draft202012Validator(SCHEMA).validate(json.loads(crashed))


def test_journal_mark_is_set_during_a_run_and_gone_after(
    store: JsonFileStateStore, path: Path
) -> None:
    seed(store)
    with store.lock("reconciler apply") as writer:
        assert "journal" not in json.loads(path.read_text())  # no write yet
        writer.import_purchase("acme/new", IDENTITY, 2, T0)
        assert json.loads(path.read_text())["journal"] == journal(path).name
        assert store.load().purchases["acme/new"].quantity == 2
    assert "journal" not in json.loads(path.read_text())
    assert not journal(path).exists()


def test_writes_through_a_symlink_reach_the_real_file_under_one_lock(
    store: JsonFileStateStore, path: Path, tmp_path: Path
) -> None:
    seed(store)
    link = tmp_path / "link.json"
    link.symlink_to(path)
    via_link = JsonFileStateStore(link)
    with via_link.lock("reconciler apply") as writer:
        writer.import_purchase("acme/new", IDENTITY, 2, T0)
        with pytest.raises(StateLockedError), store.lock("reconciler apply"):
            pytest.fail("two paths to one state took two locks")
    assert link.is_symlink()
    assert store.load().purchases["acme/new"].quantity == 2
    assert via_link.location == str(link)


# --- hostile state files through every command --------------------------------------

_DECLARED = {
    "version": 1,
    "purchases": [
        {"name": "acme/a", "quantity": 5, **IDENTITY.as_dict()},
        {"name": "acme/n", "quantity": 1, **IDENTITY.as_dict()},
    ],
}

#: Every command that reads a file state, with what it needs besides ``--state``.
_COMMANDS = [
    ("plan", "{decl}"),
    ("plan", "{decl}", "--json"),
    ("apply", "{decl}", "--auto-approve"),
    ("show",),
    ("show", "--json"),
    ("state", "list"),
    ("state", "show", "acme/a"),
    ("state", "pull"),
    ("state", "rm", "acme/a", "-y"),
    ("state", "mv", "acme/a", "acme/b", "-y"),
    ("state", "import", "acme/n", "--quantity", "1", "--config", "{decl}", "-y"),
    ("state", "resolve", "acme/a", "--purchased"),
    ("state", "migrate", "--to", "{copy}"),
]


@pytest.mark.parametrize(
    "content",
    [pytest.param(p.values[0], id=str(p.id)) for p in HOSTILE_FILES],
)
def test_every_command_refuses_a_hostile_state_file_by_name(tmp_path: Path, content: bytes) -> None:
    from click.testing import CliRunner

    from reconciler.cli import cli

    decl = tmp_path / "decl.yaml"
    decl.write_text(json.dumps(_DECLARED), encoding="utf-8")
    state = tmp_path / "reconciler.state.json"
    state.write_bytes(content)
    message = next(str(p.values[1]) for p in HOSTILE_FILES if p.values[0] == content)
    for command in _COMMANDS:
        args = [a.format(decl=decl, copy=tmp_path / "copy.json") for a in command]
        result = CliRunner().invoke(cli, [*args, "--state", str(state)])
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            args,
            result.exception,
        )
        assert (result.exit_code, result.stdout) == (1, ""), (args, result.output)
        assert result.stderr == f"error: state file {state} {message}\n", args
        assert state.read_bytes() == content
        # No journal, copy or temp file left behind; only the lock file of a locked run.
        assert files(tmp_path) in (
            ["decl.yaml", "reconciler.state.json"],
            ["decl.yaml", "reconciler.state.json", "reconciler.state.json.lock"],
        ), args


def test_a_write_past_the_largest_serial_is_refused_and_starts_no_journal(
    tmp_path: Path,
) -> None:
    from click.testing import CliRunner

    from reconciler.cli import cli

    path = tmp_path / "reconciler.state.json"
    path.write_bytes(_variant(serial=2**63 - 1))
    before = path.read_bytes()
    result = CliRunner().invoke(cli, ["state", "rm", "acme/a", "-y", "--state", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1
    assert result.stderr == (
        "error: cannot record remove_purchase of 'acme/a': serial: expected an integer <= "
        "9223372036854775807, got 9223372036854775808\n"
    )
    assert path.read_bytes() == before
    assert files(tmp_path) == ["reconciler.state.json", "reconciler.state.json.lock"]
