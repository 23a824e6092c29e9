"""``plan --format markdown``: the pull-request comment a pipeline posts.

stdout holds the whole comment, also when the plan cannot be made (invalid
declarations, no state, the API unreachable), so a pipeline that posts stdout
never leaves an old comment standing. Words from ``render``.
"""

from __future__ import annotations

from reconciler import render
from reconciler.errors import ApiError, ConfigError, ReconcilerError
from reconciler.outcomes import PlanRun
from reconciler.render.money import Catalogue
from reconciler.render.problems import describe
from reconciler.views.base import Console, PlanContext, PlanDiagnostics


class MarkdownPlanView(PlanDiagnostics):
    """The plan as a pull-request comment (marker first, under 60,000 characters)."""

    def plan(self, run: PlanRun, catalogue: Catalogue | None, context: PlanContext) -> None:
        text = render.plan_markdown(
            run.plan,
            verify_errors=run.verify_errors,
            catalogue=catalogue,
            workspace=context.workspace,
            state_flags=context.comment_flags,
            offline=run.offline,
        )
        if run.observations is not None:
            from reconciler.render import refresh as render_refresh

            text = render_refresh.add_markdown(text, run.observations, catalogue=catalogue)
        self.console.out(text, nl=False)
        self.explain(run, context)

    def failure(self, exc: ReconcilerError, context: PlanContext) -> None:
        """The reason belongs in the comment too: the pipeline posts stdout."""
        if isinstance(exc, ConfigError):
            text = render.config_errors_markdown(
                exc.problems, workspace=context.workspace, targets=context.targets
            )
        else:
            message = exc.describe() if isinstance(exc, ApiError) else describe(exc)
            text = render.error_markdown(
                message, workspace=context.workspace, targets=context.targets
            )
        self.console.out(text, nl=False)


def plan_view(console: Console) -> MarkdownPlanView:
    return MarkdownPlanView(console)
