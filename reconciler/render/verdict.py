"""Whether a plan can be applied, in one record every format shows the same way.

Pure: reads a plan and verify's answers; must not print or decide exit codes
(``commands.plan.PlanRun.exit_code`` does, by the same rule).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from reconciler.model import Plan
from reconciler.render.words import count


class Issue(Protocol):
    """A verify error as rendered (``api.orders.LineError`` fits)."""

    @property
    def code(self) -> str: ...
    @property
    def description(self) -> str: ...


VerifyErrors = Mapping[str, Sequence[Issue]]


@dataclass(frozen=True)
class Verdict:
    """What blocks a plan: conflicts, pending checkouts, orders verify refused."""

    conflicts: int
    pending: int
    refused: int
    #: Whether apply would buy or move anything.
    has_changes: bool
    #: Whether the plan was asked of the API's verify endpoint.
    verified: bool = False

    @property
    def applicable(self) -> bool:
        return not (self.conflicts or self.pending or self.refused)

    @property
    def status(self) -> str:
        """``blocked``, ``ready`` or ``no_changes``: the machine form."""
        if not self.applicable:
            return "blocked"
        return "ready" if self.has_changes else "no_changes"

    def describe(self) -> str:
        """``ready to apply``, ``no changes`` or ``cannot be applied: 2 conflicts, 1 pending``."""
        if self.applicable:
            return "ready to apply" if self.has_changes else "no changes"
        parts = []
        if self.conflicts:
            parts.append(count(self.conflicts, "conflict"))
        if self.pending:
            parts.append(f"{self.pending} pending")
        if self.refused:
            parts.append(f"{count(self.refused, 'order')} refused by verify")
        return "cannot be applied: " + ", ".join(parts)


def verdict(plan: Plan, verify_errors: VerifyErrors | None = None) -> Verdict:
    summary = plan.summary
    refused = sum(1 for errors in (verify_errors or {}).values() if errors)
    return Verdict(
        conflicts=summary.conflicts,
        pending=summary.pending,
        refused=refused,
        has_changes=summary.has_changes,
        verified=verify_errors is not None,
    )
