"""Plans as JSON (``plan --json``, saved plans) and back; the state as JSON (``show --json``).

``schemas/plan.schema.json`` describes the form; docs/reference/plan-format.md
says what each key means and what changed from ``format_version`` 1 to 2: the
actions ``decrease``, ``cancel``, ``update``, ``adopt`` and ``forget``; ``delta``
negative for fewer seats; per change the ``subscriptions`` it owns, the ``steps``
(subscription updates) apply makes and ``window_ends``; whether Cloud-iQ was
read (``cloud``). Saved plans of format 1 are still read.
Returns strings and dicts; never prints or reads files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from reconciler.model import (
    ACTIONS,
    BUYING_ACTIONS,
    Action,
    Change,
    Identity,
    Plan,
    State,
    SubscriptionChange,
    Summary,
    UpdateField,
)
from reconciler.outcomes import VerifyErrors
from reconciler.render.money import Catalogue, Money, name_of, plan_cost, unit_price
from reconciler.render.verdict import verdict
from reconciler.state.jsonrecords import change_json, pending_json, purchase_json

PLAN_FORMAT_VERSION = 2


def _money(money: Money) -> dict[str, str]:
    # A string, not a JSON number: a float would turn 0.10 into 0.1000000000000000055.
    return {"amount": format(money.amount, "f"), "currency": money.currency}


def change_dict(
    change: Change,
    verify_errors: VerifyErrors | None = None,
    catalogue: Catalogue | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "address": change.address,
        "action": change.action.value,
        "before": change.before,
        "after": change.after,
        "delta": change.delta,
        "identity": change.identity.as_dict(),
        "reason": change.reason,
    }
    if change.moved_from is not None:
        data["from"] = change.moved_from
    if change.subscriptions:
        data["subscriptions"] = list(change.subscriptions)
    if change.steps:
        data["steps"] = [change_json(step) for step in change.steps]
    if change.window_ends is not None:
        data["window_ends"] = change.window_ends
    if change.note is not None:
        data["note"] = change.note
    if change.cloud:
        data["cloud"] = True
    if verify_errors is not None:
        data["verify_errors"] = [
            {"code": issue.code, "description": issue.description}
            for issue in verify_errors.get(change.address, ())
        ]
    if catalogue is not None:
        price = unit_price(change.identity, catalogue)
        data["product_name"] = name_of(change.identity, catalogue)
        data["unit_price"] = _money(price) if price is not None else None
    return data


#: Actions the summary always counts (the first form of the plan JSON had these).
_ALWAYS_COUNTED = frozenset(
    {Action.PURCHASE, Action.INCREASE, Action.NOOP, Action.CONFLICT, Action.ORPHAN, Action.PENDING}
)


def summary_dict(summary: Summary) -> dict[str, int]:
    """Changes per action (``purchase``: 2), seats per buying action
    (``purchase_seats``: 32), and the seats bought in all (``seats``); an action the
    first form did not have is counted only when the plan has some."""
    data: dict[str, int] = {}
    for action in ACTIONS:
        n = summary.count(action)
        if n or action in _ALWAYS_COUNTED:
            data[action.value] = n
        if action in BUYING_ACTIONS:
            data[f"{action.value}_seats"] = summary.seats_of(action)
        elif ACTIONS[action].removes and n:
            data[f"{action.value}_seats"] = -summary.seats_of(action)
    data["seats"] = summary.seats
    if summary.removed_seats:
        data["removed_seats"] = summary.removed_seats
    return data


def cost_dict(plan: Plan, catalogue: Catalogue) -> dict[str, Any]:
    cost = plan_cost(plan, catalogue)
    return {
        "seats": cost.seats,
        "per_month": [_money(m) for m in cost.per_month],
        "once": [_money(m) for m in cost.once],
        "committed": [{**_money(m), "months": months} for months, m in cost.committed],
        "price_unknown": list(cost.unknown),
        "removed": cost.removed,
    }


def plan_dict(
    plan: Plan,
    verify_errors: VerifyErrors | None = None,
    catalogue: Catalogue | None = None,
) -> dict[str, Any]:
    """The machine form of a plan; ``schemas/plan.schema.json`` describes it."""
    found = verdict(plan, verify_errors)
    data: dict[str, Any] = {
        "format_version": PLAN_FORMAT_VERSION,
        "lineage": plan.lineage,
        "serial": plan.serial,
        "declarations_digest": plan.declarations_digest,
        "changes": [change_dict(c, verify_errors, catalogue) for c in plan.changes],
        "summary": summary_dict(plan.summary),
        "verdict": {
            "status": found.status,
            "applicable": found.applicable,
            "text": found.describe(),
            "conflicts": found.conflicts,
            "pending": found.pending,
            "verify_refused": found.refused,
        },
    }
    if plan.targets:
        data["targets"] = list(plan.targets)
        data["addresses"] = plan.addresses
    data["cloud"] = (
        {"read": True, "tenants": list(plan.read_tenants)}
        if plan.read_tenants is not None
        else {"read": False}
    )
    if catalogue is not None:
        data["cost"] = cost_dict(plan, catalogue)
    return data


def plan_json(
    plan: Plan,
    verify_errors: VerifyErrors | None = None,
    catalogue: Catalogue | None = None,
) -> str:
    """``plan --json``: one line, keys sorted (``jq`` indents it for a person). Without
    ``indent`` the C encoder writes it, four times faster than the pure one."""
    return json.dumps(plan_dict(plan, verify_errors, catalogue), sort_keys=True)


def parse_change(data: Mapping[str, Any]) -> SubscriptionChange:
    """A step of a saved plan (already checked against the schema)."""
    return SubscriptionChange(
        int(data["subscription"]), UpdateField(data["field"]), int(data["from"]), int(data["to"])
    )


def plan_from_dict(data: Mapping[str, Any]) -> Plan:
    """A plan back from ``plan_dict`` output (already checked against the schema)."""
    changes = tuple(
        Change(
            address=c["address"],
            action=Action(c["action"]),
            before=c["before"],
            after=c["after"],
            delta=c["delta"],
            identity=Identity.from_dict(c["identity"]),
            reason=c.get("reason"),
            moved_from=c.get("from"),
            subscriptions=tuple(c.get("subscriptions", ())),
            steps=tuple(parse_change(step) for step in c.get("steps", ())),
            window_ends=c.get("window_ends"),
            note=c.get("note"),
            cloud=bool(c.get("cloud", False)),
        )
        for c in data["changes"]
    )
    return Plan(
        changes=changes,
        lineage=data["lineage"],
        serial=data["serial"],
        digest_source=data["declarations_digest"],
        targets=tuple(data.get("targets", ())),
        addresses=data.get("addresses", 0),
        read_tenants=(
            tuple(data["cloud"].get("tenants", ())) if data.get("cloud", {}).get("read") else None
        ),
    )


def state_dict(state: State) -> dict[str, Any]:
    """``reconciler show --json``: the recorded purchases and pending operations, each
    in the state file's own form."""
    return {
        "lineage": state.lineage,
        "serial": state.serial,
        "purchases": {a: purchase_json(p) for a, p in sorted(state.purchases.items())},
        "pending": {a: pending_json(p) for a, p in sorted(state.pending.items())},
    }
