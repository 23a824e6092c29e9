"""Builders and readers of state files: what ``apply`` and the repairs would have written.

The writes go through ``JsonFileStateStore``'s locked writer, as every command's do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from reconciler.model import CheckoutRecord, Identity, PendingOperation
from reconciler.state import JsonFileStateStore
from tests.support.paths import schema
from tests.support.records import BASIC
from tests.support.times import T0


def record(
    state: Path, address: str, quantity: int, identity: Identity = BASIC, order: str | None = None
) -> None:
    """Record a checkout that got its 204, as apply would."""
    checkout = CheckoutRecord(order or f"order-{address}-{quantity}", quantity, T0)
    with JsonFileStateStore(state).lock("test") as writer:
        writer.record_checkout(address, identity, checkout)


def add_pending(
    state: Path, address: str, quantity: int, order: str, identity: Identity = BASIC
) -> None:
    """Record a checkout of unknown outcome, as apply does before sending it."""
    with JsonFileStateStore(state).lock("test") as writer:
        writer.add_pending(PendingOperation(address, identity, order, quantity, T0))


def state_json(state: Path) -> dict[str, Any]:
    """The state file's document, as it is on disk (a journal beside it is not applied)."""
    data: dict[str, Any] = json.loads(state.read_text(encoding="utf-8"))
    return data


def read_state_file(state: Path) -> dict[str, Any]:
    """The state file's document, checked against the state schema."""
    data = state_json(state)
    jsonschema.validate(data, schema("state"))
    return data


def journal(state: Path) -> Path:
    """The journal beside a state file."""
    return state.with_name(state.name + ".journal")


def lock_file(state: Path) -> Path:
    """The lock file beside a state file."""
    return state.with_name(state.name + ".lock")
