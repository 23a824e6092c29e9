"""Plans, states and results -> text, JSON and Markdown strings.

Renders only: returns strings and never prints, reads files or decides exit
codes. Colour is plain ANSI, added only when the caller asks for it.

    words      counts in correct English, colour, an identity in a line
    verdict    whether a plan can be applied (``Verdict``), verify's errors
    money      product names and prices from a caller's catalogue (``CatalogueEntry``)
    text       the terminal forms: plan, state, apply progress and summary
    jsonplan   ``plan --json`` and saved plans, and back; ``show --json``
    markdown   the pull-request comment
    events     ``apply --json`` lines
    refresh    what Cloud-iQ shows: drift, unmanaged subscriptions, evidence, imports
"""

from __future__ import annotations

from reconciler.render.events import (
    EVENTS_FORMAT_VERSION,
    apply_complete_event,
    apply_start_event,
    change_result_event,
    change_start_event,
    move_event,
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
    apply_progress,
    apply_summary,
    apply_table,
    pending_message,
    plan_line,
    plan_text,
    resolve_commands,
    state_text,
    summary_line,
)
from reconciler.render.verdict import Issue, Verdict, VerifyErrors, verdict
from reconciler.render.words import DEFAULT_STATE, count, describe_identity, paint, seats

__all__ = [
    "DEFAULT_STATE",
    "EVENTS_FORMAT_VERSION",
    "MARKDOWN_LIMIT",
    "PLAN_FORMAT_VERSION",
    "Catalogue",
    "CatalogueEntry",
    "Issue",
    "Money",
    "Verdict",
    "VerifyErrors",
    "apply_complete_event",
    "apply_progress",
    "apply_start_event",
    "apply_summary",
    "apply_table",
    "change_dict",
    "change_result_event",
    "change_start_event",
    "config_errors_markdown",
    "count",
    "describe_identity",
    "error_markdown",
    "event_line",
    "is_commitment",
    "marker",
    "move_event",
    "paint",
    "pending_message",
    "plan_dict",
    "plan_from_dict",
    "plan_json",
    "plan_line",
    "plan_markdown",
    "plan_text",
    "resolve_commands",
    "seats",
    "state_dict",
    "state_text",
    "summary_dict",
    "summary_line",
    "verdict",
    "version_event",
]
