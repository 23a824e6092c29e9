"""The terminal: the plan, apply's progress and results, the state.

Colour only when the console has it. Words from ``render``; writes through the
console it is given and never decides an exit code.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler import render
from reconciler.errors import ConfigError, ConfigProblem, ReconcilerError
from reconciler.model import Event, PendingOperation, Plan, State
from reconciler.outcomes import ApplyRun, PlanRun, RefreshRun
from reconciler.render.money import Catalogue
from reconciler.views.base import Console, PlanContext, PlanDiagnostics


class TextPlanView(PlanDiagnostics):
    """The plan as blocks of text, then the ``Plan:`` line."""

    def plan(self, run: PlanRun, catalogue: Catalogue | None, context: PlanContext) -> None:
        color = self.console.color
        text = render.plan_text(
            run.plan,
            color=color,
            verify_errors=run.verify_errors,
            catalogue=catalogue,
            money=True,
        )
        if run.observations is not None:
            from reconciler.render import refresh as render_refresh

            seen = render_refresh.observations_text(
                run.observations, catalogue=catalogue, color=color
            )
            text += "\n\n" + seen
        self.console.out(text)
        if run.offline is not None:
            self.console.err(f"note: {render.offline_note(run.offline)}")
        self.explain(run, context)

    def failure(self, exc: ReconcilerError, context: PlanContext) -> None:
        """Nothing on stdout: the error boundary says it on stderr."""


def plan_view(console: Console) -> TextPlanView:
    return TextPlanView(console)


def state_text(state: State) -> str:
    return render.state_text(state)


class TextApplyView:
    """Apply on the terminal: the plan, a line per finished change, the results."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._asked = False
        self._prices: Catalogue | None = None

    def planned(self, plan: Plan) -> None:
        color = self.console.color
        self.console.out(render.plan_text(plan, color=color))

    def refreshed(self, run: RefreshRun) -> None:
        from reconciler.render import refresh as render_refresh

        self.console.out(render_refresh.refresh_result(run))

    def question(self, plan: Plan, prices: Catalogue | None) -> str:
        self._asked = True
        return render.approval_question(plan, prices)

    def starting(self, plan: Plan, prices: Catalogue | None) -> None:
        """The cost, when nobody was asked (``--auto-approve``, a saved plan): a log
        shows what the run is about to spend before it spends it."""
        self._prices = prices
        if not self._asked:
            for line in render.approval_lines(plan, prices):
                self.console.out(line)

    def event(self, event: Event) -> None:
        if event.kind == "written":
            self.console.out(render.written(event.change))
        elif event.kind == "finished" and event.result is not None:
            self.console.out(render.apply_progress(event.result, color=self.console.color))
            for line in event.result.errors:
                self.console.err(f"    {line}")

    def cancelled(self) -> None:
        self.console.err("Apply cancelled; nothing was bought.")

    def finished(self, run: ApplyRun, pending: Sequence[PendingOperation], flags: str) -> None:
        for line in render.apply_outcome(run):
            self.console.out(line)
        for line in render.apply_leftovers(run):
            self.console.err(line)
        if pending:
            self.console.err(render.pending_message(pending, flags, run.findings))

    def failed(self, exc: ReconcilerError | Exception) -> None:
        pass


def apply_view(console: Console) -> TextApplyView:
    return TextApplyView(console)


class TextValidateView:
    """``OK: ...`` on stdout; the problems, one a line, and their count on stderr."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def valid(self, purchases: int, files: int) -> None:
        from reconciler.render.validation import valid_line

        self.console.out(valid_line(purchases, files))

    def invalid(self, problems: Sequence[ConfigProblem]) -> None:
        self.console.err(str(ConfigError(problems)))


def validate_view(console: Console) -> TextValidateView:
    return TextValidateView(console)
