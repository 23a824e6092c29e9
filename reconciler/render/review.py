"""What a pipeline posts where people review: the apply result on the pull request, the
drift issue, the line that ties a comment to its run and commit, and the outputs a
workflow reads.

Built from what the commands already print for machines: ``apply --json`` event lines
and saved plans (``plan --out``), never from the terminal text. Returns strings and
dicts; never prints, reads files or talks to a forge (``reconciler.forge`` does).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from reconciler.render.markdown import code, text
from reconciler.render.money import Money
from reconciler.render.words import count, seats

#: The first line of the apply result comment, found and updated by it.
APPLY_MARKER = "<!-- crayon-reconciler:apply -->"
_PLAN_MARKER = "<!-- crayon-reconciler:plan"
DRIFT_TITLE = "Licences: Cloud-iQ differs from the declarations"

_OUTCOME_HEADINGS = {
    "applied": "✅ Apply: **applied**",
    "failed": "❌ Apply: **failed**",
    "cancelled": "❌ Apply: **cancelled**",
    "error": "❌ Apply: **refused or stopped; nothing more was done**",
}


def provenance(run_url: str | None, commit: str | None) -> str:
    """``<sub>Posted by [this run](URL) for commit `abc1234`.</sub>``: which pipeline
    run wrote a comment, and for which commit; empty when neither is known."""
    parts = []
    if run_url:
        parts.append(f"[this run]({run_url.replace(')', '%29')})")
    if commit:
        parts.append(f"commit {code(commit[:12])}")
    if not parts:
        return ""
    return f"<sub>Posted by {' for '.join(parts)}.</sub>"


def with_provenance(body: str, run_url: str | None, commit: str | None) -> str:
    """``body`` with the provenance line appended (after a blank line)."""
    line = provenance(run_url, commit)
    return f"{body.rstrip(chr(10))}\n\n{line}\n" if line else body


def _moneys(items: Sequence[Mapping[str, Any]]) -> str:
    return " + ".join(str(Money(m["currency"], Decimal(m["amount"]))) for m in items)


def cost_text(cost: Mapping[str, Any] | None) -> str | None:
    """``+20 seats, about EUR 112.00 per month, EUR 1,344.00 committed for 12 months``
    from the JSON form of a cost (``plan --json``, the apply events); None when no
    price of it is known."""
    if not cost or not (cost["per_month"] or cost["once"] or cost["committed"]):
        return None
    parts = [f"+{seats(cost['seats'])}"]
    if cost["per_month"]:
        parts.append(f"about {_moneys(cost['per_month'])} per month")
    for item in cost["committed"]:
        parts.append(f"{_moneys([item])} committed for {item['months']} months")
    if cost["once"]:
        parts.append(f"{_moneys(cost['once'])} once")
    if cost["price_unknown"]:
        parts.append(f"price unknown for {count(len(cost['price_unknown']), 'change')}")
    return ", ".join(parts)


def monthly(cost: Mapping[str, Any] | None) -> str:
    """``EUR 112.00`` (``EUR 5.00 + USD 3.00``): the cost per month, '' when unknown."""
    return _moneys(cost["per_month"]) if cost and cost["per_month"] else ""


#: Lines of a log a comment quotes at most (its end).
LOG_LINES = 60


def apply_markdown(
    events: Sequence[Mapping[str, Any]], *, exit_code: int, log: str | None = None
) -> str:
    """The apply result as a pull-request comment, from ``apply --json`` events: the
    outcome, the cost of what was bought, each change's result and every error. When
    apply reported nothing (it was not reached: the plan was not the reviewed one, or
    the job failed before), the end of ``log`` says why."""
    complete = next((e for e in reversed(events) if e.get("type") == "apply_complete"), None)
    lines = [APPLY_MARKER, ""]
    if complete is None:
        lines += [
            "### ❌ Apply: **did not run**",
            "",
            f"The job ended ({exit_code}) before `reconciler apply` reported a result: "
            "nothing was bought by it.",
            "",
        ]
        shown = (log or "").strip("\n").splitlines()[-LOG_LINES:]
        if shown:
            fence = "`" * max(3, 1 + max(len(r) for r in _runs("\n".join(shown))))
            lines += [f"{fence}text", *shown, fence, ""]
        else:
            lines += ["The job's log says why.", ""]
        return "\n".join(lines)
    lines += [f"### {_OUTCOME_HEADINGS.get(complete['outcome'], complete['outcome'])}", ""]
    summary = [
        f"{complete['purchased']} purchased (+{seats(complete['seats'])})",
        f"{complete.get('updated', 0)} updated",
        f"{complete['failed']} failed",
        f"{complete['pending']} pending",
    ]
    if complete["skipped"]:
        summary.append(f"{complete['skipped']} not started")
    if complete["moved"]:
        summary.append(f"{complete['moved']} state writes")
    lines += [text(", ".join(summary) + "."), ""]
    money = cost_text(complete.get("cost"))
    if money:
        lines += [f"**Bought: {text(money)}**", ""]
    lines += _results(events) + _errors(events)
    if complete["pending"]:
        lines += [
            "A pending change's outcome is unknown: the next apply settles it once Cloud-iQ "
            "shows it (`reconciler refresh` does so at once); nothing is bought twice.",
            "",
        ]
    return "\n".join(lines)


_RESULTS = frozenset({"change_complete", "change_failed", "change_pending"})


def _results(events: Sequence[Mapping[str, Any]]) -> list[str]:
    """A table of each change's result, with the order id Cloud-iQ knows it by."""
    results = [e for e in events if e.get("type") in _RESULTS]
    if not results:
        return []
    lines = ["| address | action | seats | result | externalOrderId |", "|---|---|---|---|---|"]
    for event in results:
        order = event.get("external_order_id")
        lines.append(
            f"| {code(event['address'])} | {text(event['action'])} | {event['seats']:+d} "
            f"| {text(event['outcome'])} | {code(order) if order else '-'} |"
        )
    return [*lines, ""]


def _errors(events: Sequence[Mapping[str, Any]]) -> list[str]:
    found = [(e.get("address"), message) for e in events for message in e.get("errors", ())]
    if not found:
        return []
    lines = ["#### What went wrong", ""]
    for address, message in found:
        where = f"{code(address)}: " if address else ""
        lines.append(f"- {where}{text(message)}")
    return [*lines, ""]


def _runs(value: str) -> list[str]:
    return re.findall(r"`+", value) or [""]


def drift_marker(plan_markdown: str) -> str:
    """``<!-- crayon-reconciler:drift -->`` (with the plan marker's workspace and
    targets): the first line of the drift issue, one issue per workspace and targets."""
    first = plan_markdown.split("\n", 1)[0]
    if first.startswith(_PLAN_MARKER):
        return "<!-- crayon-reconciler:drift" + first[len(_PLAN_MARKER) :]
    return "<!-- crayon-reconciler:drift -->"


def drift_markdown(plan_markdown: str, *, exit_code: int) -> str:
    """The drift issue's description: what the scheduled plan found (its comment, under
    the drift marker), and what to do about it."""
    marker = drift_marker(plan_markdown)
    body = plan_markdown.split("\n", 1)[1] if plan_markdown.startswith("<!--") else plan_markdown
    if exit_code == 1:
        lead = (
            "The scheduled plan could not be made, or cannot be applied as it is "
            "(a conflict, a pending operation): nothing will be applied until it is "
            "settled. Its output follows."
        )
    else:
        lead = (
            "The scheduled plan found changes: Cloud-iQ, the state or the declarations moved "
            "apart since the last apply (seats changed in the Cloud-iQ portal, a merge not "
            "applied yet). Either merge a change of the declarations that accepts what "
            "Cloud-iQ shows, or let the next apply restore what is declared. This issue is "
            "updated by every scheduled run and closed by the first that finds nothing to do."
        )
    return "\n".join([marker, "", lead, "", body.strip("\n"), ""])


def drift_resolved() -> str:
    """The comment a drift issue is closed with."""
    return "The scheduled plan finds nothing to do any more: Cloud-iQ matches the declarations."


def plan_outputs(saved: Mapping[str, Any] | None, exit_code: int) -> dict[str, str]:
    """A workflow's outputs of a plan: ``exit-code``, ``verdict`` (``ready``,
    ``no_changes``, ``blocked``, or ``error`` when no plan was made), ``seats`` and
    ``monthly-cost`` (empty when unknown), from the saved plan."""
    if saved is None:
        return {"exit-code": str(exit_code), "verdict": "error", "seats": "0", "monthly-cost": ""}
    return {
        "exit-code": str(exit_code),
        "verdict": str(saved["verdict"]["status"]),
        "seats": str(saved["summary"]["seats"]),
        "monthly-cost": monthly(saved.get("cost")),
    }


def apply_outputs(events: Sequence[Mapping[str, Any]], exit_code: int) -> dict[str, str]:
    """A workflow's outputs of an apply: ``verdict`` is the outcome of ``apply_complete``
    (``applied``, ``failed``, ``cancelled``, ``error``), ``seats`` those added and
    ``monthly-cost`` what they cost per month."""
    complete = next((e for e in reversed(events) if e.get("type") == "apply_complete"), None)
    if complete is None:
        return {"exit-code": str(exit_code), "verdict": "error", "seats": "0", "monthly-cost": ""}
    return {
        "exit-code": str(exit_code),
        "verdict": str(complete["outcome"]),
        "seats": str(complete["seats"]),
        "monthly-cost": monthly(complete.get("cost")),
    }
