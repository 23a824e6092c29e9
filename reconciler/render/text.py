"""Plans, states and apply results as the text a person reads in a terminal.

Returns strings and never prints; colour is plain ANSI, added only when the
caller asks for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from reconciler.model import (
    ACTIONS,
    Action,
    ActionInfo,
    ApplyResult,
    Change,
    ChangeResult,
    Identity,
    Outcome,
    PendingOperation,
    Plan,
    State,
    SubscriptionChange,
    Summary,
    UpdateField,
)
from reconciler.outcomes import ApplyRun, VerifyErrors
from reconciler.render.money import (
    Catalogue,
    commitment_warning,
    money_line,
    name_of,
    plan_cost,
    price_line,
)
from reconciler.render.words import count, describe_identity, paint, seats


def symbol(action: Action) -> str:
    return ACTIONS[action].symbol


def phrase(info: ActionInfo, n: int, seat_count: int) -> str:
    """An action's count in the ``Plan:`` line, from its row of the action table."""
    singular, _, plural = info.phrase.partition("|")
    template = singular if n == 1 or not plural else plural
    return template.format(n=n, seats=seats(abs(seat_count)))


def summary_line(summary: Summary) -> str:
    """``Plan: 2 to purchase (+32 seats), 1 to increase (+6 seats), 0 conflicts, 0 pending.``

    Every action the table marks ``always_summarised`` is said, the others only
    when the plan has some; in the table's order.
    """
    parts = [
        phrase(info, summary.count(action), summary.seats_of(action))
        for action, info in ACTIONS.items()
        if action is not Action.NOOP and (info.always_summarised or summary.count(action))
    ]
    return f"Plan: {', '.join(parts)}."


def plan_line(plan: Plan) -> str:
    """The ``Plan:`` line; a targeted plan says so, so a reviewer sees it is partial."""
    line = summary_line(plan.summary)
    if plan.targets:
        whole = count(plan.addresses, "address", "addresses")
        line += f" (targeted: {len(plan.changes)} of {whole})"
    return line


def seat_change(change: Change) -> str:
    """``0 -> 20 seats (+20)``, ``30 -> 25 seats (-5)``; an orphan's seats, which stay
    bought; a cancelled or forgotten address's."""
    if change.action is Action.CANCEL:
        return f"{seats(change.before)} -> 0, cancelled"
    if change.action is Action.FORGET:
        return f"{seats(change.before)}, forgotten (not cancelled)"
    if change.after is None:
        return f"{seats(change.before)}, no longer declared (not cancelled)"
    text = f"{change.before} -> {seats(change.after)}"
    return f"{text} ({change.delta:+d})" if change.delta else text


def step_text(step: SubscriptionChange) -> str:
    """``subscription 500001: 30 -> 25 seats``, ``... cancelled``, ``... auto-renew off``."""
    if step.field is UpdateField.CANCEL:
        return f"subscription {step.subscription}: cancelled ({seats(step.before)})"
    if step.field is UpdateField.AUTO_RENEW:
        return f"subscription {step.subscription}: auto-renew {'on' if step.after else 'off'}"
    return f"subscription {step.subscription}: {step.before} -> {seats(step.after)}"


def change_details(change: Change) -> list[str]:
    """The lines under a change's head: subscriptions, PUTs, window, notes."""
    lines = []
    if change.steps:
        lines += [f"PUT {step_text(step)}" for step in change.steps]
    elif change.subscriptions and change.action is not Action.NOOP:
        label = "subscription" if len(change.subscriptions) == 1 else "subscriptions"
        lines.append(f"{label} {', '.join(str(i) for i in change.subscriptions)}")
    if change.window_ends and change.action is not Action.CONFLICT:
        lines.append(f"cancellation window ends {change.window_ends}")
    elif change.window_ends:
        lines.append(f"renewal {change.window_ends}")
    if change.note:
        lines.append(change.note)
    elif change.moved_from:
        lines.append(f"moved from {change.moved_from} (a state write; nothing bought)")
    if change.reason:
        lines.append(change.reason)
    return lines


def written(change: Change) -> str:
    """What a state write made (apply's progress)."""
    if change.action is Action.MOVE:
        return f"Moved {change.moved_from} to {change.address} in the state."
    if change.action is Action.ADOPT:
        ids = ", ".join(str(i) for i in change.subscriptions)
        return f"Adopted subscriptions {ids} at {change.address} in the state."
    return f"Forgot {change.address} in the state (nothing cancelled)."


def _identity_line(change: Change, catalogue: Catalogue | None) -> str:
    text = describe_identity(change.identity)
    name = name_of(change.identity, catalogue)
    if name:
        product = change.identity.product
        text = text.replace(f", {product},", f", {name} ({product}),", 1)
    return text


def plan_text(
    plan: Plan,
    *,
    color: bool = False,
    verify_errors: VerifyErrors | None = None,
    catalogue: Catalogue | None = None,
    money: bool = False,
) -> str:
    """The human plan: a block per change (noops counted), then the ``Plan:`` line.

    With a ``catalogue``: product names; with ``money`` too (the terminal; the
    pull-request comment's table gives them itself) each change's price and cost, the
    plan's money line and the warning about commitments."""
    lines: list[str] = []
    shown = [c for c in plan.changes if c.action is not Action.NOOP]
    # A plan of thousands of purchases names a few hundred identities.
    described: dict[Identity, str] = {}
    for change in shown:
        info = ACTIONS[change.action]
        head = f"  {info.symbol} {change.address}"
        lines.append(
            paint(head, info.colour, color) + f"  {change.action.value}, {seat_change(change)}"
        )
        identity = described.get(change.identity)
        if identity is None:
            identity = described[change.identity] = _identity_line(change, catalogue)
        lines.append(f"      {identity}")
        price = price_line(change, catalogue) if catalogue is not None and money else None
        if price is not None:
            lines.append(f"      {price}")
        lines += [f"      {line}" for line in change_details(change)]
        for issue in (verify_errors or {}).get(change.address, ()):
            lines.append(paint(f"      verify: {issue.code}: {issue.description}", "31", color))
    summary = plan.summary
    if not shown:
        lines.append("No changes. Declared purchases match the state.")
    else:
        lines.append("")
    if summary.count(Action.NOOP):
        lines.append(f"{summary.count(Action.NOOP)} unchanged.")
    if summary.count(Action.ORPHAN):
        lines.append(
            f"{summary.count(Action.ORPHAN)} recorded but no longer declared (nothing is "
            "cancelled; a `removed:` entry forgets or cancels one)."
        )
    if catalogue is not None and money:
        lines += money_lines(plan, catalogue)
    lines.append(plan_line(plan))
    return "\n".join(lines)


def approval_lines(plan: Plan, catalogue: Catalogue | None) -> list[str]:
    """What a person approves besides the plan: the seats and what they cost per month
    (or that the price is unknown), and the commitments."""
    lines = money_lines(plan, catalogue)
    if plan.buying() and not (lines and lines[0].startswith("Cost:")):
        lines.insert(0, f"Cost: +{seats(plan.summary.seats)}, price unknown.")
    return lines


def approval_question(plan: Plan, catalogue: Catalogue | None) -> str:
    """What apply asks: ``approval_lines``, then the question."""
    question = (
        "Do you want to buy these licences?"
        if plan.buying()
        else "Do you want to make these changes?"
    )
    return "\n".join([*approval_lines(plan, catalogue), question])


def done_changes(plan: Plan, result: ApplyResult) -> Plan:
    """The part of ``plan`` apply carried out: the changes whose result is purchased or
    updated."""
    done = {r.address for r in result.results if r.outcome in (Outcome.PURCHASED, Outcome.UPDATED)}
    return replace(plan, changes=tuple(c for c in plan.changes if c.address in done))


def result_money_line(plan: Plan, result: ApplyResult, catalogue: Catalogue | None) -> str | None:
    """``Cost of what was bought: +20 seats, about EUR 112.00 per month.``; None when no
    price of it is known."""
    money = money_line(plan_cost(done_changes(plan, result), catalogue))
    return f"Cost of what was bought: {money}." if money else None


def money_lines(plan: Plan, catalogue: Catalogue | None) -> list[str]:
    """``Cost: +20 seats, about EUR 112.00 per month`` when a price of what the plan
    buys is known, and the warning about commitments when it buys any."""
    lines = []
    money = money_line(plan_cost(plan, catalogue))
    if money:
        lines.append(f"Cost: {money}.")
    warning = commitment_warning(plan)
    if warning:
        lines.append(f"Commitment: {warning}.")
    return lines


def state_text(state: State) -> str:
    """`reconciler show`: recorded purchases, then pending operations."""
    if not state.purchases and not state.pending:
        return "The state is empty: nothing recorded, nothing pending."
    lines = []
    for address in sorted(state.purchases):
        rec = state.purchases[address]
        lines.append(f"{address}  {seats(rec.quantity)}  {describe_identity(rec.identity)}")
        for co in rec.checkouts:
            settled = f"  (settled by refresh: {co.evidence})" if co.evidence else ""
            lines.append(f"    {co.time}  +{co.quantity}  {co.external_order_id}{settled}")
        for adj in rec.adjustments:
            lines.append(
                f"    {adj.time}  {adj.quantity:+d}  adjusted by {adj.source}: {adj.evidence}"
            )
        for upd in rec.updates:
            how = f"  (settled: {upd.evidence})" if upd.evidence else ""
            lines.append(f"    {upd.time}  {upd.change.seats:+d}  PUT {step_text(upd.change)}{how}")
        if rec.subscriptions:
            owned = ", ".join(str(i) for i in rec.subscriptions)
            lines.append(f"    subscriptions: {owned}")
        if rec.unseen:
            lines.append(f"    not yet listed by Cloud-iQ: {', '.join(rec.unseen)}")
    if state.pending:
        lines.append("")
        lines.append("Pending (outcome unknown; `reconciler refresh` settles what the API shows):")
        for address in sorted(state.pending):
            op = state.pending[address]
            what = step_text(op.update) if op.update is not None else seats(op.quantity)
            lines.append(f"  ? {address}  {what}  {op.external_order_id}  since {op.time}")
    total = sum(p.quantity for p in state.purchases.values())
    lines.append("")
    lines.append(
        f"{count(len(state.purchases), 'purchase')} recorded ({seats(total)}), "
        f"{len(state.pending)} pending. Serial {state.serial}."
    )
    return "\n".join(lines)


_OUTCOME_COLOURS = {
    Outcome.PURCHASED: "32",
    Outcome.UPDATED: "32",
    Outcome.FAILED: "31;1",
    Outcome.PENDING: "35",
    Outcome.SKIPPED: "33",
}


def apply_progress(result: ChangeResult, *, color: bool = False) -> str:
    """One line as a change completes: address, seats, result, duration."""
    outcome = paint(f"{result.outcome.value:<9}", _OUTCOME_COLOURS[result.outcome], color)
    return f"  {outcome} {result.address}  {result.seats:+d}  ({result.seconds:.1f}s)"


def apply_table(result: ApplyResult) -> str:
    """The result of every change apply attempted, as a table."""
    if not result.results:
        return "Nothing to buy."
    width = max(len("address"), *(len(r.address) for r in result.results))
    lines = [f"{'address':<{width}}  {'seats':>6}  {'result':<9}  externalOrderId"]
    for r in result.results:
        lines.append(
            f"{r.address:<{width}}  {r.seats:>+6d}  {r.outcome.value:<9}  "
            f"{r.external_order_id or '-'}"
        )
    return "\n".join(lines)


def apply_summary(result: ApplyResult, *, conflicts: int = 0) -> str:
    """``Apply complete: ...`` when the run succeeds, ``Apply failed: ...`` when it exits 1
    (a change failed or is pending, or the plan has ``conflicts``)."""
    head = "Apply complete" if result.ok and not conflicts else "Apply failed"
    bought = sum(r.seats for r in result.results if r.outcome is Outcome.PURCHASED)
    updated = ""
    if result.count(Outcome.UPDATED):
        net = sum(r.seats for r in result.results if r.outcome is Outcome.UPDATED)
        updated = f"{result.count(Outcome.UPDATED)} updated ({net:+d} seats), "
    line = (
        f"{head}: {result.count(Outcome.PURCHASED)} purchased "
        f"(+{seats(bought)}), {updated}{result.count(Outcome.FAILED)} failed, "
        f"{result.count(Outcome.PENDING)} pending."
    )
    skipped = result.count(Outcome.SKIPPED)
    if skipped:
        line += f" {skipped} not started."
    if conflicts:
        line += f" {count(conflicts, 'conflict')}."
    if result.interrupted:
        line += " Interrupted."
    return line


def apply_outcome(run: ApplyRun) -> list[str]:
    """What apply did, after a blank line: the per-change table, the summary and what
    was bought cost (none when apply never reached the API)."""
    if run.result is None:
        return []
    lines = ["", apply_table(run.result), apply_summary(run.result, conflicts=len(run.conflicts))]
    spent = result_money_line(run.plan, run.result, run.prices)
    return lines if spent is None else [*lines, spent]


def apply_leftovers(run: ApplyRun) -> list[str]:
    """What apply left undone and why (stderr): conflicts, the changes they held back,
    operations still pending."""
    lines = []
    if run.conflicts:
        tenants = sorted({c.identity.customer_tenant_id for c in run.conflicts})
        lines.append(
            f"error: the plan has {count(len(run.conflicts), 'conflict')} "
            f"({', '.join(c.address for c in run.conflicts)}); nothing was bought or changed "
            f"for customer {'tenant' if len(tenants) == 1 else 'tenants'} "
            f"{', '.join(map(str, tenants))}. "
            "Each conflict says what stands in the way and how to settle it"
        )
    if run.held_back:
        lines.append(
            f"  not made: {', '.join(c.address for c in run.held_back)} (same customer tenant "
            "as a conflict)"
        )
    return lines


def pending_message(
    entries: Sequence[PendingOperation],
    flags: str = "",
    found: Mapping[str, str] | None = None,
) -> str:
    """Why nothing is done at these addresses while their operations are pending, what
    Cloud-iQ shows of each (``found``, by address; None: it was not read), and how
    to settle each: ``reconciler refresh`` first, ``state resolve`` when the API
    cannot tell.

    ``flags`` are the options that name the state in the suggested commands.
    """
    waiting = count(len(entries), "pending operation")
    lines = [
        f"the state has {waiting} whose outcome is unknown; nothing is done at "
        f"{'its address' if len(entries) == 1 else 'their addresses'} until each is settled."
    ]
    for op in sorted(entries, key=lambda e: e.address):
        what = (
            f"update {op.external_order_id}"
            if op.update is not None
            else f"{seats(op.quantity)}, externalOrderId {op.external_order_id}"
        )
        lines.append(f"  {op.address}: {what} (since {op.time})")
        shown = found.get(op.address) if found is not None else None
        if shown is not None:
            lines.append(f"    Cloud-iQ shows: {shown}")
        elif found is None:
            lines.append("    Cloud-iQ was not read")
        lines.append(
            f"    `reconciler refresh{flags}` settles it once the API shows its outcome; "
            "if it cannot, check it in Crayon Cloud-iQ, then run one of:"
        )
        lines.extend(f"    {command}" for command in resolve_commands(op.address, flags))
    return "\n".join(lines)


def resolve_commands(address: str, flags: str = "") -> tuple[str, str]:
    """The two ``state resolve`` commands that settle a pending checkout."""
    return (
        f"reconciler state resolve {address} --purchased{flags}",
        f"reconciler state resolve {address} --not-purchased{flags}",
    )
