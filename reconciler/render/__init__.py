"""Plans, states and results -> text, JSON and Markdown strings.

Renders only: returns strings and never prints, reads files or decides exit
codes. Colour is plain ANSI, added only when the caller asks for it.

    words      counts in correct English, colour, an identity in a line
    verdict    whether a plan can be applied (``Verdict``)
    problems   the words for structured errors (pending, preflight, stale, repairs)
    repairs    what ``init`` and the ``state`` commands say when done
    money      product names and prices from a caller's catalogue (``CatalogueEntry``)
    text       the terminal forms: plan, state, apply progress and summary
    jsonplan   ``plan --json`` and saved plans, and back; ``show --json``
    markdown   the pull-request comment
    events     ``apply --json`` lines
    refresh    what Cloud-iQ shows: drift, unmanaged subscriptions, evidence, imports
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.lazy import lazy_exports

if TYPE_CHECKING:
    from reconciler.render.events import (
        EVENTS_FORMAT_VERSION,
        apply_complete_event,
        apply_start_event,
        change_result_event,
        change_start_event,
        concurrency_event,
        held_back_event,
        move_event,
        refresh_event,
        version_event,
    )
    from reconciler.render.events import line as event_line
    from reconciler.render.jsonplan import (
        PLAN_FORMAT_VERSION,
        change_dict,
        plan_dict,
        plan_from_dict,
        plan_json,
        state_dict,
        summary_dict,
    )
    from reconciler.render.markdown import (
        MARKDOWN_LIMIT,
        config_errors_markdown,
        error_markdown,
        marker,
        plan_markdown,
    )
    from reconciler.render.money import Catalogue, CatalogueEntry, Money, is_commitment
    from reconciler.render.text import (
        apply_leftovers,
        apply_outcome,
        apply_progress,
        apply_summary,
        apply_table,
        approval_lines,
        approval_question,
        money_lines,
        pending_message,
        plan_line,
        plan_text,
        resolve_commands,
        result_money_line,
        state_text,
        summary_line,
        written,
    )
    from reconciler.render.verdict import Verdict
    from reconciler.render.words import (
        DEFAULT_STATE,
        count,
        describe_identity,
        offline_note,
        paint,
        seats,
    )

__all__ = [
    "DEFAULT_STATE",
    "EVENTS_FORMAT_VERSION",
    "MARKDOWN_LIMIT",
    "PLAN_FORMAT_VERSION",
    "Catalogue",
    "CatalogueEntry",
    "Money",
    "Verdict",
    "apply_complete_event",
    "apply_leftovers",
    "apply_outcome",
    "apply_progress",
    "apply_start_event",
    "apply_summary",
    "apply_table",
    "approval_lines",
    "approval_question",
    "change_dict",
    "change_result_event",
    "change_start_event",
    "concurrency_event",
    "config_errors_markdown",
    "count",
    "describe_identity",
    "error_markdown",
    "event_line",
    "held_back_event",
    "is_commitment",
    "marker",
    "money_lines",
    "move_event",
    "offline_note",
    "paint",
    "pending_message",
    "plan_dict",
    "plan_from_dict",
    "plan_json",
    "plan_line",
    "plan_markdown",
    "plan_text",
    "refresh_event",
    "resolve_commands",
    "result_money_line",
    "seats",
    "state_dict",
    "state_text",
    "summary_dict",
    "summary_line",
    "version_event",
    "written",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "EVENTS_FORMAT_VERSION": "events",
        "apply_complete_event": "events",
        "apply_start_event": "events",
        "change_result_event": "events",
        "change_start_event": "events",
        "concurrency_event": "events",
        "held_back_event": "events",
        "event_line": "events:line",
        "move_event": "events",
        "refresh_event": "events",
        "version_event": "events",
        "PLAN_FORMAT_VERSION": "jsonplan",
        "change_dict": "jsonplan",
        "plan_dict": "jsonplan",
        "plan_from_dict": "jsonplan",
        "plan_json": "jsonplan",
        "state_dict": "jsonplan",
        "summary_dict": "jsonplan",
        "MARKDOWN_LIMIT": "markdown",
        "config_errors_markdown": "markdown",
        "error_markdown": "markdown",
        "marker": "markdown",
        "plan_markdown": "markdown",
        "Catalogue": "money",
        "CatalogueEntry": "money",
        "Money": "money",
        "is_commitment": "money",
        "apply_leftovers": "text",
        "apply_outcome": "text",
        "apply_progress": "text",
        "apply_summary": "text",
        "apply_table": "text",
        "approval_lines": "text",
        "approval_question": "text",
        "money_lines": "text",
        "result_money_line": "text",
        "pending_message": "text",
        "plan_line": "text",
        "plan_text": "text",
        "resolve_commands": "text",
        "state_text": "text",
        "summary_line": "text",
        "written": "text",
        "Verdict": "verdict",
        "DEFAULT_STATE": "words",
        "count": "words",
        "describe_identity": "words",
        "offline_note": "words",
        "paint": "words",
        "seats": "words",
    },
)
