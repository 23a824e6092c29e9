"""``apply --json``: what apply does, as one JSON object per line (docs/reference/events.md).

Types, in the order a run emits them: ``version``; ``refresh`` when apply recorded
what it read from Cloud-iQ; ``apply_start``; per state write (a forgotten address,
a move, an adoption) a ``change_complete`` with outcome ``forgotten``, ``moved`` or
``adopted``; per change that calls the API a ``change_start``, then
``change_complete`` (outcome ``purchased`` or ``updated``), ``change_failed``
(``failed``, or ``skipped`` when apply stopped starting new changes after it
began this one) or ``change_pending`` (the outcome is unknown); per change held
back by a conflict of its customer tenant a ``change_failed`` (``skipped``); last
``apply_complete``. At ``--parallelism`` 1 the next change's ``change_start`` may
come before the previous change's ``change_complete`` (its verify overlaps the
write recording that 204); ``change_complete`` lines stay in address order. With
more, ``concurrency`` says when the number of changes run at once was lowered
after a 429 or raised again. ``schemas/apply-events.schema.json`` describes each.
Builds dicts and lines; never prints.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from reconciler import __version__
from reconciler.model import ACTIONS, Action, ApplyResult, Change, ChangeResult, Outcome, Plan
from reconciler.outcomes import RefreshRun
from reconciler.render.jsonplan import cost_dict
from reconciler.render.money import Catalogue
from reconciler.render.text import done_changes

EVENTS_FORMAT_VERSION = 1

_RESULT_TYPES = {
    Outcome.PURCHASED: "change_complete",
    Outcome.UPDATED: "change_complete",
    Outcome.FAILED: "change_failed",
    Outcome.SKIPPED: "change_failed",
    Outcome.PENDING: "change_pending",
}
_NOT_STARTED = (
    "not checked out: apply stopped starting new changes (an earlier checkout's outcome "
    "is unknown, or the API cannot be reached)"
)


def line(event: dict[str, Any]) -> str:
    """One event as one line of JSON (keys sorted)."""
    return json.dumps(event, sort_keys=True)


def version_event(tool_version: str = __version__) -> dict[str, Any]:
    return {"type": "version", "reconciler": tool_version, "format_version": EVENTS_FORMAT_VERSION}


def apply_start_event(plan: Plan, prices: Catalogue | None = None) -> dict[str, Any]:
    """What the run is about to do: the seats it buys and the changes it makes, and with
    ``prices``, what they cost (``cost``, as in ``plan --json``)."""
    changes = {c.address for c in plan.changes if ACTIONS[c.action].changes}
    event: dict[str, Any] = {
        "type": "apply_start",
        "changes": len(changes),
        "seats": plan.summary.seats,
        "lineage": plan.lineage,
        "serial": plan.serial,
        "targets": list(plan.targets),
    }
    if prices is not None:
        event["cost"] = cost_dict(plan, prices)
    return event


def change_start_event(change: Change) -> dict[str, Any]:
    return {
        "type": "change_start",
        "address": change.address,
        "action": change.action.value,
        "seats": change.delta,
    }


def concurrency_event(
    change: Change, limit: int, *, lowered: bool, retry_after: float | None = None
) -> dict[str, Any]:
    """Apply now runs at most ``limit`` changes at once: ``lowered`` after the API
    answered ``change``'s call with 429 (``retry_after``: its Retry-After in seconds,
    or None without one), or raised again when ``change`` completed."""
    return {
        "type": "concurrency",
        "address": change.address,
        "limit": limit,
        "reason": "throttled" if lowered else "recovered",
        "retry_after": retry_after,
    }


def change_result_event(change: Change, result: ChangeResult) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": _RESULT_TYPES[result.outcome],
        "address": result.address,
        "action": change.action.value,
        "seats": result.seats,
        "external_order_id": result.external_order_id,
        "elapsed_seconds": round(result.seconds, 3),
        "outcome": result.outcome.value,
    }
    if change.steps:
        event["subscriptions"] = sorted({s.subscription for s in change.steps})
    if result.outcome not in (Outcome.PURCHASED, Outcome.UPDATED):
        errors = list(result.errors)
        if result.outcome is Outcome.SKIPPED and not errors:
            errors = [_NOT_STARTED]
        event["errors"] = errors
    return event


#: The outcome of each state write, by action.
_WRITTEN = {Action.MOVE: "moved", Action.ADOPT: "adopted", Action.FORGET: "forgotten"}


def move_event(change: Change) -> dict[str, Any]:
    """A state write made (a move, an adoption, a forgotten address): nothing is sent
    to the API (seats a move or adoption adds follow as a change of the same address)."""
    event: dict[str, Any] = {
        "type": "change_complete",
        "address": change.address,
        "action": change.action.value,
        "seats": 0,
        "external_order_id": None,
        "elapsed_seconds": 0.0,
        "outcome": _WRITTEN.get(change.action, "written"),
    }
    if change.moved_from is not None:
        event["from"] = change.moved_from
    if change.action is Action.ADOPT:
        event["subscriptions"] = list(change.subscriptions)
    return event


def apply_complete_event(
    outcome: str,
    *,
    result: ApplyResult | None = None,
    moved: int = 0,
    elapsed_seconds: float = 0.0,
    errors: Sequence[str] = (),
    plan: Plan | None = None,
    prices: Catalogue | None = None,
) -> dict[str, Any]:
    """The end: ``outcome`` is ``applied`` (exit 0), ``failed`` (a change failed,
    is pending or was not started; exit 1), ``cancelled`` or ``error`` (apply
    refused or stopped before or while buying; exit 1, ``errors`` says why). With the
    ``plan`` and its ``prices``: what the changes made cost (``cost``)."""
    results = result.results if result is not None else ()
    event: dict[str, Any] = {
        "type": "apply_complete",
        "outcome": outcome,
        "purchased": sum(1 for r in results if r.outcome is Outcome.PURCHASED),
        "updated": sum(1 for r in results if r.outcome is Outcome.UPDATED),
        "failed": sum(1 for r in results if r.outcome is Outcome.FAILED),
        "pending": sum(1 for r in results if r.outcome is Outcome.PENDING),
        "skipped": sum(1 for r in results if r.outcome is Outcome.SKIPPED),
        "moved": moved,
        "seats": result.seats_bought if result is not None else 0,
        "seats_removed": result.seats_removed if result is not None else 0,
        "elapsed_seconds": round(elapsed_seconds, 3),
    }
    if errors or outcome == "error":
        event["errors"] = list(errors)
    if plan is not None and prices is not None and result is not None:
        event["cost"] = cost_dict(done_changes(plan, result), prices)
    return event


def refresh_event(run: RefreshRun) -> dict[str, Any]:
    """What apply recorded from Cloud-iQ before planning."""
    return {
        "type": "refresh",
        "settled": len(run.settled),
        "dropped": len(run.dropped),
        "linked": len(run.links),
        "adjusted": len(run.adjusted),
    }


def held_back_event(change: Change) -> dict[str, Any]:
    """A change not made because its customer tenant has a conflict in the plan."""
    tenant = change.identity.customer_tenant_id
    return {
        "type": "change_failed",
        "address": change.address,
        "action": change.action.value,
        "seats": change.delta,
        "external_order_id": None,
        "elapsed_seconds": 0.0,
        "outcome": "skipped",
        "errors": [f"not made: customer tenant {tenant} has a conflict in this plan"],
    }
