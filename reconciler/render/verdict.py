"""Whether a plan can be applied, in one record every format shows the same way.

Pure: reads a plan and verify's answers; must not print or decide exit codes
(``outcomes.PlanRun.exit_code`` does, by the same rule).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.model import ACTIONS, BLOCKING_ACTIONS, Action, Plan
from reconciler.outcomes import VerifyErrors
from reconciler.render.words import count


@dataclass(frozen=True)
class Verdict:
    """What blocks a plan: changes of blocking actions, orders verify refused."""

    #: Changes per blocking action (conflicts, pending); only actions that have some.
    blocking: Mapping[Action, int]
    refused: int
    #: Whether apply would buy or change anything.
    has_changes: bool
    #: Whether the plan was asked of the API's verify endpoint.
    verified: bool = False
    #: Whether Cloud-iQ was read for the plan (None: not said).
    refreshed: bool | None = field(default=None)

    @property
    def conflicts(self) -> int:
        return self.blocking.get(Action.CONFLICT, 0)

    @property
    def pending(self) -> int:
        return self.blocking.get(Action.PENDING, 0)

    @property
    def applicable(self) -> bool:
        return not (any(self.blocking.values()) or self.refused)

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
        from reconciler.render.text import phrase

        parts = [
            phrase(info, self.blocking[action], 0)
            for action, info in ACTIONS.items()
            if self.blocking.get(action)
        ]
        if self.refused:
            parts.append(f"{count(self.refused, 'order')} refused by verify")
        return "cannot be applied: " + ", ".join(parts)


def verdict(plan: Plan, verify_errors: VerifyErrors | None = None) -> Verdict:
    summary = plan.summary
    refused = sum(1 for errors in (verify_errors or {}).values() if errors)
    return Verdict(
        blocking={a: summary.count(a) for a in BLOCKING_ACTIONS if summary.count(a)},
        refused=refused,
        has_changes=summary.has_changes,
        verified=verify_errors is not None,
    )
