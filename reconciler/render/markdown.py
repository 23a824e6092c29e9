"""Plans as pull-request comments (``plan --format markdown``).

The first line is a marker a pipeline finds its own comment by; then the
verdict, the money line (when prices are known), what blocks the plan, one
table per customer tenant, what is no longer declared, the whole text plan
folded away, and a footer that ties an approval to one plan (declarations
hash, state lineage and serial, tool version). The comment stays under
``MARKDOWN_LIMIT`` characters (GitHub refuses bodies over 65,536) and says so
when it leaves changes out.

Returns strings; never prints, reads files or decides exit codes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from reconciler import __version__
from reconciler.errors import ConfigProblem
from reconciler.model import ACTIONS, Action, Change, Plan
from reconciler.outcomes import VerifyErrors
from reconciler.render.money import (
    Catalogue,
    change_cost,
    is_commitment,
    money_line,
    name_of,
    plan_cost,
    unit_price,
)
from reconciler.render.text import plan_line, plan_text, resolve_commands, seat_change
from reconciler.render.verdict import Verdict, verdict
from reconciler.render.words import count, offline_note, seats

MARKDOWN_LIMIT = 60_000
MARKER = "crayon-reconciler:plan"
_COMMITMENT_NOTE = (
    "⚠️ **{what}** (a P1Y or P3Y term, software or a reservation, marked ⚠️ below): "
    "{pronoun} cannot be cancelled or reduced once Microsoft's cancellation window "
    "(7 days for new-commerce subscriptions) has passed."
)
#: Room kept for the truncation note.
_NOTE_ROOM = 300


def marker(workspace: str = "default", targets: Sequence[str] = ()) -> str:
    """``<!-- crayon-reconciler:plan workspace=NAME target=A,B -->``, only the parts set."""
    parts = [MARKER]
    if workspace != "default":
        parts.append(f"workspace={workspace}")
    if targets:
        parts.append("target=" + ",".join(targets))
    return f"<!-- {' '.join(parts)} -->"


_ESCAPED = re.compile(r"([\\`*_\[\]|~])")


def text(value: str) -> str:
    """Free text as inline Markdown that renders as written (no emphasis, links,
    HTML or table breaks)."""
    value = " ".join(value.split())
    # Only '<' starts HTML; '&' could start an entity.
    value = value.replace("&", "&amp;").replace("<", "&lt;")
    return _ESCAPED.sub(r"\\\1", value)


_SPAN = re.compile(r"`([^`]+)`")


def prose(value: str) -> str:
    """Free text whose `backtick` spans are code (commands, YAML), the rest as ``text``."""
    value = " ".join(value.split())
    parts = []
    last = 0
    for found in _SPAN.finditer(value):
        parts.append(_spaced(value[last : found.start()]))
        parts.append(code(found.group(1)))
        last = found.end()
    parts.append(_spaced(value[last:]))
    return "".join(parts)


def _spaced(value: str) -> str:
    """``text`` of a piece between code spans, keeping the spaces at its ends."""
    if not value.strip():
        return value
    head = " " if value[0] == " " else ""
    tail = " " if value[-1] == " " else ""
    return head + text(value) + tail


def code(value: str) -> str:
    """A code span that survives any content, also inside a table cell."""
    value = " ".join(value.split()).replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", value)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if longest else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def _heading(found: Verdict, workspace: str) -> str:
    icon = "✅" if found.applicable else "❌"
    where = f" for workspace {code(workspace)}" if workspace != "default" else ""
    return f"### {icon} Plan{where}: **{found.describe()}**"


class _Budget:
    """Characters left for the body; each line costs its length and a newline."""

    def __init__(self, room: int) -> None:
        self.left = room

    def take(self, lines: Sequence[str]) -> bool:
        cost = sum(len(line) + 1 for line in lines)
        if cost > self.left:
            return False
        self.left -= cost
        return True


@dataclass
class _Body:
    budget: _Budget
    lines: list[str] = field(default_factory=list)
    #: Addresses shown in a table or list; the rest count as not shown.
    shown: set[str] = field(default_factory=set)
    cut: bool = False

    def add(self, lines: Sequence[str], address: str | None = None) -> bool:
        """Add ``lines`` if they fit; once something did not, add nothing more."""
        if self.cut or not self.budget.take(lines):
            self.cut = True
            return False
        self.lines.extend(lines)
        if address is not None:
            self.shown.add(address)
        return True

    def section(self, title: Sequence[str], items: Iterable[tuple[str, Sequence[str]]]) -> None:
        """A title and its items; the title only when its first item fits with it."""
        pending_title: Sequence[str] | None = title
        for address, lines in items:
            if pending_title is not None:
                if not self.add([*pending_title, *lines], address):
                    return
                pending_title = None
            elif not self.add(lines, address):
                return
        if pending_title is None:
            self.add([""])


def _product(change: Change, catalogue: Catalogue | None) -> str:
    name = name_of(change.identity, catalogue)
    product = code(change.identity.product)
    return f"{text(name)} {product}" if name else product


def _blockers(
    plan: Plan, verify_errors: VerifyErrors | None, state_flags: str
) -> list[tuple[str, Sequence[str]]]:
    items: list[tuple[str, Sequence[str]]] = []
    for change in plan.changes:
        if change.action is Action.CONFLICT:
            items.append(
                (
                    change.address,
                    [f"- {code(change.address)} conflict: {prose(change.reason or '')}"],
                )
            )
    for change in plan.changes:
        if change.action is Action.PENDING:
            lines = [f"- {code(change.address)} pending: {prose(change.reason or '')}"]
            lines += [
                f"  - {code(command)}" for command in resolve_commands(change.address, state_flags)
            ]
            items.append((change.address, lines))
    for address, issues in sorted((verify_errors or {}).items()):
        if issues:
            lines = [f"- {code(address)} refused by verify:"]
            lines += [f"  - {code(i.code)}: {text(i.description)}" for i in issues]
            items.append((address, lines))
    return items


def _blocker_title(found: Verdict) -> list[str]:
    hints = []
    if found.conflicts:
        hints.append("each conflict says what stands in the way and how to settle it")
    if found.pending:
        hints.append(
            "`reconciler refresh` settles a pending operation once Cloud-iQ shows its outcome; "
            "when it cannot, check it in Crayon Cloud-iQ and run one of its "
            "`reconciler state resolve` commands"
        )
    if found.refused:
        hints.append("the API's verify endpoint refused these orders")
    return [
        "#### Cannot be applied",
        "",
        *(prose(f"{h[0].upper()}{h[1:]}.") for h in hints),
        "",
    ]


_TABLE_HEAD = [
    "| | address | product | type | term | seats | unit price | total | action |",
    "|---|---|---|---|---|---|---|---|---|",
]


def _row(change: Change, catalogue: Catalogue | None, refused: bool) -> str:
    ident = change.identity
    term = f"{ident.term_duration}, {ident.billing_cycle}"
    if is_commitment(ident):
        term += " ⚠️"
    price = unit_price(ident, catalogue)
    unit = price.unit() if price is not None else "price unknown"
    if change.delta:
        cost = change_cost(change, catalogue)
        total = cost.describe() if cost is not None else "price unknown"
        if cost is not None and change.delta > 0:
            total = "+" + total
    else:
        total = "nothing bought"
    action = change.action.value
    if change.moved_from:
        action = f"move from {code(change.moved_from)}" + (" and increase" if change.delta else "")
    elif ACTIONS[change.action].blocks:
        action += " (see above)"
    action += _window(change)
    if change.note and change.action is not Action.MOVE:
        action += f"; {prose(change.note)}"
    if refused:
        action += ", **refused by verify** (see above)"
    cells = [
        ACTIONS[change.action].symbol,
        code(change.address),
        _product(change, catalogue),
        text(ident.type),
        text(term),
        text(seat_change(change)),
        text(unit),
        text(total),
        action,
    ]
    return "| " + " | ".join(cells) + " |"


def _window(change: Change) -> str:
    """The hours left in a reduction's cancellation window, when fewer than 48."""
    if not change.window_ends or not ACTIONS[change.action].removes:
        return ""
    ends = datetime.fromisoformat(change.window_ends.replace("Z", "+00:00"))
    left = (ends - datetime.now(UTC)).total_seconds() / 3600
    if left >= 48:
        return ""
    return f" (⏳ {max(0, int(left))} hours left in the cancellation window)"


def _orphan(change: Change, catalogue: Catalogue | None) -> list[str]:
    return [
        f"- {code(change.address)}: {seats(change.before)} of {_product(change, catalogue)} "
        f"for customer tenant {change.identity.customer_tenant_id}. Nothing is cancelled: "
        f"`removed: [{{address: {change.address}, cancel: false}}]` forgets it, "
        "`cancel: true` cancels its subscriptions."
    ]


def _details(plan_lines: list[str], budget: _Budget) -> list[str]:
    """The whole text plan, folded; cut (and saying so) when it does not fit."""
    longest = max((len(run) for line in plan_lines for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    head = ["<details><summary>Full plan (text)</summary>", "", fence + "text"]
    tail = [fence, "", "</details>", ""]
    whole = [*head, *plan_lines, *tail]
    if budget.take(whole):
        return whole
    cut_note = "[... {} more lines: run `reconciler plan` for the whole plan]"
    room = budget.left - sum(len(line) + 1 for line in [*head, *tail]) - len(cut_note) - 20
    kept: list[str] = []
    for line in plan_lines:
        if room < len(line) + 1:
            break
        kept.append(line)
        room -= len(line) + 1
    if len(kept) < 5:
        return []
    part = [*head, *kept, cut_note.format(len(plan_lines) - len(kept)), *tail]
    return part if budget.take(part) else []


def _head(
    plan: Plan,
    found: Verdict,
    catalogue: Catalogue | None,
    workspace: str,
    offline: str | None = None,
) -> list[str]:
    """What is never cut: the marker, the verdict, the money, the ``Plan:`` line and
    the notes a spender must not miss."""
    head = [marker(workspace, plan.targets), "", _heading(found, workspace), ""]
    if offline is not None:
        head += [f"⚠️ **Cloud-iQ not read** ({text(offline)}): {text(offline_note(offline))}", ""]
    money = money_line(plan_cost(plan, catalogue))
    if money:
        head += [f"**{money}**", ""]
    head += [text(plan_line(plan)), ""]
    buying = plan.buying()
    commitments = sum(1 for c in buying if is_commitment(c.identity))
    if commitments == 1:
        head += [_COMMITMENT_NOTE.format(what="1 change buys a commitment", pronoun="it"), ""]
    elif commitments:
        what = f"{commitments} changes buy commitments"
        head += [_COMMITMENT_NOTE.format(what=what, pronoun="they"), ""]
    if found.verified and buying and not found.refused:
        orders = "the order" if len(buying) == 1 else f"all {len(buying)} orders"
        head += [f"Verified: the API's verify endpoint accepted {orders} (nothing was bought).", ""]
    return head


def plan_markdown(
    plan: Plan,
    *,
    verify_errors: VerifyErrors | None = None,
    catalogue: Catalogue | None = None,
    workspace: str = "default",
    state_flags: str = "",
    tool_version: str = __version__,
    limit: int = MARKDOWN_LIMIT,
    offline: str | None = None,
) -> str:
    """A pull-request comment for ``plan``; see the module docstring.

    ``catalogue`` gives product names and unit prices (codes and "price unknown"
    without it); ``state_flags`` are the options that name the state in the
    suggested ``state resolve`` commands.
    """
    found = verdict(plan, verify_errors)
    head = _head(plan, found, catalogue, workspace, offline)
    footer = [
        "---",
        f"<sub>declarations {code(plan.declarations_digest)} · state lineage "
        f"{code(plan.lineage or '(none)')} serial {plan.serial} · "
        f"crayon-reconciler {text(tool_version)}</sub>",
    ]
    fixed = sum(len(x) + 1 for x in [*head, *footer])
    body = _Body(_Budget(limit - fixed - _NOTE_ROOM))

    shown = [c for c in plan.changes if c.action is not Action.NOOP]
    if not shown:
        body.add(["No changes. Declared purchases match the state.", ""])
    blockers = _blockers(plan, verify_errors, state_flags)
    if blockers:
        body.section(_blocker_title(found), blockers)
    _tenant_tables(body, shown, catalogue, verify_errors)
    orphans = [c for c in shown if c.action is Action.ORPHAN]
    body.section(
        ["#### No longer declared (not cancelled)", ""],
        ((c.address, _orphan(c, catalogue)) for c in orphans),
    )
    unchanged = plan.summary.count(Action.NOOP)
    if unchanged and not body.cut:
        body.add([f"{unchanged} unchanged.", ""])
    if shown and not body.cut:
        lines = plan_text(plan, verify_errors=verify_errors, catalogue=catalogue).splitlines()
        body.lines += _details(lines, body.budget)
    note: list[str] = []
    hidden = len(shown) - len(body.shown & {c.address for c in shown})
    if hidden:
        note = [
            f"_Truncated: {hidden} of {count(len(shown), 'change')} not shown (comment limit "
            f"{limit:,} characters). Run `reconciler plan` for all of them._",
            "",
        ]
    return "\n".join([*head, *body.lines, *note, *footer]) + "\n"


def _tenant_tables(
    body: _Body,
    shown: Sequence[Change],
    catalogue: Catalogue | None,
    verify_errors: VerifyErrors | None,
) -> None:
    """One table per customer tenant of its changes, those needing attention first."""
    refused = {a for a, issues in (verify_errors or {}).items() if issues}
    by_tenant: dict[int, list[Change]] = {}
    for change in shown:
        if change.action is not Action.ORPHAN:
            by_tenant.setdefault(change.identity.customer_tenant_id, []).append(change)
    for tenant in sorted(by_tenant):
        rows = sorted(by_tenant[tenant], key=lambda c: (ACTIONS[c.action].attention, c.address))
        body.section(
            [f"#### Customer tenant {tenant}", "", *_TABLE_HEAD],
            ((c.address, [_row(c, catalogue, c.address in refused)]) for c in rows),
        )


def config_errors_markdown(
    problems: Sequence[ConfigProblem],
    *,
    workspace: str = "default",
    targets: Sequence[str] = (),
    limit: int = MARKDOWN_LIMIT,
) -> str:
    """Invalid declarations as a comment: the marker, the verdict, each located error."""
    noun = count(len(problems), "error")
    head = [
        marker(workspace, targets),
        "",
        f"### ❌ Plan: **cannot be applied: {noun} in the declarations**",
        "",
        "Nothing was planned. Fix these and push again (`reconciler validate` checks "
        "them locally):",
        "",
    ]
    budget = _Budget(limit - sum(len(x) + 1 for x in head) - _NOTE_ROOM)
    items: list[str] = []
    for problem in problems:
        where = f"{problem.path}:{problem.line}:{problem.column}"
        path = f" {code(problem.json_path)}:" if problem.json_path else ""
        item = f"- {code(where)}:{path} {text(problem.message)}"
        if not budget.take([item]):
            break
        items.append(item)
    tail = [""]
    if len(items) < len(problems):
        tail += [
            f"_Truncated: {len(problems) - len(items)} of {noun} not shown (comment limit "
            f"{limit:,} characters). Run `reconciler validate` for all of them._",
            "",
        ]
    return "\n".join([*head, *items, *tail])


def error_markdown(message: str, *, workspace: str = "default", targets: Sequence[str] = ()) -> str:
    """A plan that could not be made (no state, no API) as a comment."""
    body = message[: MARKDOWN_LIMIT // 2]
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return "\n".join(
        [
            marker(workspace, targets),
            "",
            "### ❌ Plan: **cannot be applied: the plan could not be made**",
            "",
            f"{fence}text",
            f"error: {body}",
            fence,
            "",
        ]
    )
