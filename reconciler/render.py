"""Plans, states and results -> text, JSON and Markdown strings.

Renders only: returns strings and never prints, reads files or decides exit
codes. Colour is plain ANSI, added only when the caller asks for it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from reconciler.model import (
    Action,
    ApplyResult,
    Change,
    ChangeResult,
    Identity,
    Outcome,
    Plan,
    State,
    Summary,
)

PLAN_FORMAT_VERSION = 1
MARKDOWN_LIMIT = 60_000

_SYMBOLS = {
    Action.PURCHASE: "+",
    Action.INCREASE: "~",
    Action.CONFLICT: "!",
    Action.PENDING: "?",
    Action.ORPHAN: "-",
    Action.NOOP: " ",
    Action.MOVE: ">",
}
_COLOURS = {
    Action.PURCHASE: "32",  # green
    Action.INCREASE: "33",  # yellow
    Action.CONFLICT: "31;1",  # bold red
    Action.PENDING: "35",  # magenta
    Action.ORPHAN: "31",  # red
    Action.NOOP: "0",
    Action.MOVE: "36",  # cyan
}
#: The order of the Markdown table: what needs attention first.
_ATTENTION = {Action.CONFLICT: 0, Action.PENDING: 1}


class Issue(Protocol):
    """A verify error as rendered (``api.orders.LineError`` fits)."""

    @property
    def code(self) -> str: ...
    @property
    def description(self) -> str: ...


VerifyErrors = Mapping[str, Sequence[Issue]]


def paint(text: str, code: str, color: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if color and code != "0" else text


def seats(n: int) -> str:
    return f"{n} seat{'s' if n != 1 else ''}"


def summary_line(summary: Summary) -> str:
    conflicts = "conflict" if summary.conflicts == 1 else "conflicts"
    # Said only when there are moves, so plans without them read as they always did.
    moves = f"{summary.to_move} to move, " if summary.to_move else ""
    return (
        f"Plan: {moves}{summary.to_purchase} to purchase (+{summary.purchase_seats} seats), "
        f"{summary.to_increase} to increase (+{summary.increase_seats} seats), "
        f"{summary.conflicts} {conflicts}, {summary.pending} pending."
    )


def plan_line(plan: Plan) -> str:
    """The ``Plan:`` line; a targeted plan says so, so a reviewer sees it is partial."""
    line = summary_line(plan.summary)
    if plan.targets:
        line += f" (targeted: {len(plan.changes)} of {plan.addresses} addresses)"
    return line


def describe_identity(identity: Identity) -> str:
    return (
        f"tenant {identity.customer_tenant_id}, {identity.product}, "
        f"{identity.billing_cycle} {identity.term_duration} {identity.type}"
    )


def _seat_change(change: Change) -> str:
    after = "-" if change.after is None else str(change.after)
    text = f"{change.before} -> {after} seats"
    return f"{text} (+{change.delta})" if change.delta else text


def plan_text(plan: Plan, *, color: bool = False, verify_errors: VerifyErrors | None = None) -> str:
    """The human plan: a block per change (noops counted), then the ``Plan:`` line."""
    lines: list[str] = []
    shown = [c for c in plan.changes if c.action is not Action.NOOP]
    for change in shown:
        code = _COLOURS[change.action]
        head = f"  {_SYMBOLS[change.action]} {change.address}"
        lines.append(paint(head, code, color) + f"  {change.action.value}, {_seat_change(change)}")
        lines.append(f"      {describe_identity(change.identity)}")
        if change.moved_from:
            lines.append(f"      moved from {change.moved_from} (a state write; nothing bought)")
        if change.reason:
            lines.append(f"      {change.reason}")
        for issue in (verify_errors or {}).get(change.address, ()):
            lines.append(paint(f"      verify: {issue.code}: {issue.description}", "31", color))
    summary = plan.summary
    if not shown:
        lines.append("No changes. Declared purchases match the state.")
    else:
        lines.append("")
    if summary.noop:
        lines.append(f"{summary.noop} unchanged.")
    if summary.orphans:
        lines.append(
            f"{summary.orphans} recorded but no longer declared (never cancelled; "
            "`reconciler state rm ADDR` forgets one)."
        )
    lines.append(plan_line(plan))
    return "\n".join(lines)


def change_dict(change: Change, verify_errors: VerifyErrors | None = None) -> dict[str, Any]:
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
    if verify_errors is not None:
        data["verify_errors"] = [
            {"code": issue.code, "description": issue.description}
            for issue in verify_errors.get(change.address, ())
        ]
    return data


def summary_dict(summary: Summary) -> dict[str, int]:
    data = {
        "purchase": summary.to_purchase,
        "purchase_seats": summary.purchase_seats,
        "increase": summary.to_increase,
        "increase_seats": summary.increase_seats,
        "noop": summary.noop,
        "conflict": summary.conflicts,
        "orphan": summary.orphans,
        "pending": summary.pending,
        "seats": summary.seats,
    }
    if summary.to_move:
        data["move"] = summary.to_move
    return data


def plan_dict(plan: Plan, verify_errors: VerifyErrors | None = None) -> dict[str, Any]:
    """The machine form of a plan; ``schemas/plan.schema.json`` describes it."""
    data = {
        "format_version": PLAN_FORMAT_VERSION,
        "lineage": plan.lineage,
        "serial": plan.serial,
        "declarations_digest": plan.declarations_digest,
        "changes": [change_dict(c, verify_errors) for c in plan.changes],
        "summary": summary_dict(plan.summary),
    }
    if plan.targets:
        data["targets"] = list(plan.targets)
        data["addresses"] = plan.addresses
    return data


def plan_json(plan: Plan, verify_errors: VerifyErrors | None = None) -> str:
    return json.dumps(plan_dict(plan, verify_errors), indent=2, sort_keys=True)


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
        )
        for c in data["changes"]
    )
    return Plan(
        changes=changes,
        lineage=data["lineage"],
        serial=data["serial"],
        declarations_digest=data["declarations_digest"],
        targets=tuple(data.get("targets", ())),
        addresses=data.get("addresses", 0),
    )


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def plan_markdown(
    plan: Plan, *, verify_errors: VerifyErrors | None = None, limit: int = MARKDOWN_LIMIT
) -> str:
    """For pull-request comments: the ``Plan:`` line, then a table, attention first."""
    head = [f"**{plan_line(plan)}**", ""]
    rows = sorted(
        (c for c in plan.changes if c.action is not Action.NOOP),
        key=lambda c: (_ATTENTION.get(c.action, 2), c.address),
    )
    if not rows:
        head.append("No changes. Declared purchases match the state.")
        return "\n".join(head) + "\n"
    head += [
        "| | address | customer tenant | product/sku | term | seats | action |",
        "|---|---|---|---|---|---|---|",
    ]
    body: list[str] = []
    for change in rows:
        ident = change.identity
        note = f" ({change.reason})" if change.reason else ""
        if change.moved_from:
            note = f" from `{change.moved_from}`{note}"
        for issue in (verify_errors or {}).get(change.address, ()):
            note += f" verify: {issue.code}: {issue.description};"
        body.append(
            "| "
            + " | ".join(
                _md_cell(cell)
                for cell in (
                    _SYMBOLS[change.action].strip() or " ",
                    f"`{change.address}`",
                    str(ident.customer_tenant_id),
                    ident.product,
                    f"{ident.billing_cycle} {ident.term_duration}",
                    _seat_change(change),
                    change.action.value + note,
                )
            )
            + " |"
        )
    noop = plan.summary.noop
    tail = [""] + ([f"{noop} unchanged."] if noop else [])
    text = "\n".join(head)
    used = len(text) + sum(len(t) + 1 for t in tail) + 200  # room for the truncation note
    kept: list[str] = []
    for row in body:
        if used + len(row) + 1 > limit:
            break
        kept.append(row)
        used += len(row) + 1
    if len(kept) < len(body):
        tail.append(
            f"_Truncated: {len(body) - len(kept)} of {len(body)} changes not shown "
            f"(comment limit {limit:,} characters). Run `reconciler plan` for all of them._"
        )
    return "\n".join([text, *kept, *tail]) + "\n"


def state_text(state: State) -> str:
    """`reconciler show`: recorded purchases, then pending operations."""
    if not state.purchases and not state.pending:
        return "The state is empty: nothing recorded, nothing pending."
    lines = []
    for address in sorted(state.purchases):
        rec = state.purchases[address]
        lines.append(f"{address}  {seats(rec.quantity)}  {describe_identity(rec.identity)}")
        for co in rec.checkouts:
            lines.append(f"    {co.time}  +{co.quantity}  {co.external_order_id}")
    if state.pending:
        lines.append("")
        lines.append("Pending (outcome unknown; see `reconciler state resolve`):")
        for address in sorted(state.pending):
            op = state.pending[address]
            lines.append(
                f"  ? {address}  {seats(op.quantity)}  {op.external_order_id}  since {op.time}"
            )
    total = sum(p.quantity for p in state.purchases.values())
    lines.append("")
    count = len(state.purchases)
    lines.append(
        f"{count} purchase{'s' if count != 1 else ''} recorded ({seats(total)}), "
        f"{len(state.pending)} pending. Serial {state.serial}."
    )
    return "\n".join(lines)


def state_dict(state: State) -> dict[str, Any]:
    return {
        "lineage": state.lineage,
        "serial": state.serial,
        "purchases": {
            address: {
                **rec.identity.as_dict(),
                "quantity": rec.quantity,
                "checkouts": [
                    {"externalOrderId": c.external_order_id, "quantity": c.quantity, "time": c.time}
                    for c in rec.checkouts
                ],
            }
            for address, rec in sorted(state.purchases.items())
        },
        "pending": {
            address: {
                **op.identity.as_dict(),
                "externalOrderId": op.external_order_id,
                "quantity": op.quantity,
                "time": op.time,
            }
            for address, op in sorted(state.pending.items())
        },
    }


_OUTCOME_COLOURS = {
    Outcome.PURCHASED: "32",
    Outcome.FAILED: "31;1",
    Outcome.PENDING: "35",
    Outcome.SKIPPED: "33",
}


def apply_progress(result: ChangeResult, *, color: bool = False) -> str:
    """One line as a change completes: address, seats, result, duration."""
    outcome = paint(f"{result.outcome.value:<9}", _OUTCOME_COLOURS[result.outcome], color)
    return f"  {outcome} {result.address}  +{result.seats}  ({result.seconds:.1f}s)"


def apply_table(result: ApplyResult) -> str:
    """The result of every change apply attempted, as a table."""
    if not result.results:
        return "Nothing to buy."
    width = max(len("address"), *(len(r.address) for r in result.results))
    lines = [f"{'address':<{width}}  {'seats':>6}  {'result':<9}  externalOrderId"]
    for r in result.results:
        lines.append(
            f"{r.address:<{width}}  {'+' + str(r.seats):>6}  {r.outcome.value:<9}  "
            f"{r.external_order_id or '-'}"
        )
    return "\n".join(lines)


def apply_summary(result: ApplyResult) -> str:
    line = (
        f"Apply complete: {result.count(Outcome.PURCHASED)} purchased "
        f"(+{result.seats_bought} seats), {result.count(Outcome.FAILED)} failed, "
        f"{result.count(Outcome.PENDING)} pending."
    )
    skipped = result.count(Outcome.SKIPPED)
    if skipped:
        line += f" {skipped} not started."
    if result.interrupted:
        line += " Interrupted."
    return line


#: The state path commands use when none is given; hints leave it out.
DEFAULT_STATE = "reconciler.state.json"


def pending_message(current: State, flags: str = "") -> str:
    """Why nothing is bought while checkouts are pending, and how to settle each.

    ``flags`` are the options that name the state in the suggested commands.
    """
    lines = [
        f"the state has {len(current.pending)} pending checkout(s) whose outcome is unknown; "
        "nothing will be bought until each is resolved.",
        "Check each order in Crayon Cloud-iQ by its externalOrderId, then run one of:",
    ]
    for address, op in sorted(current.pending.items()):
        lines.append(f"  {address}: {seats(op.quantity)}, externalOrderId {op.external_order_id}")
        lines.append(f"    reconciler state resolve {address} --purchased{flags}")
        lines.append(f"    reconciler state resolve {address} --not-purchased{flags}")
    return "\n".join(lines)
