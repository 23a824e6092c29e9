"""Machine output: ``plan --json``, ``show --json`` and ``apply --json``'s event lines.

Only JSON goes to stdout; the human progress and each change's errors go to
stderr, so a CI log still reads like the text form. Forms from ``render``; this
module only times the run and writes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from reconciler import render
from reconciler.errors import ApiError, ConfigError, ConfigProblem, ReconcilerError
from reconciler.model import Event, PendingOperation, Plan, State
from reconciler.outcomes import ApplyRun, PlanRun, RefreshRun
from reconciler.render.money import Catalogue
from reconciler.render.problems import describe
from reconciler.views.base import Console, PlanContext, PlanDiagnostics


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True)


def one_line(data: Any) -> str:
    """Keys sorted, on one line: without ``indent`` the C encoder writes it, four times
    faster than the pure one (``jq .`` indents it for a person)."""
    return json.dumps(data, sort_keys=True)


class JsonPlanView(PlanDiagnostics):
    """The plan as one JSON document (``schemas/plan.schema.json``)."""

    def plan(self, run: PlanRun, catalogue: Catalogue | None, context: PlanContext) -> None:
        data = render.plan_dict(run.plan, run.verify_errors, catalogue)
        if run.offline is not None:
            data["cloud"]["reason"] = run.offline
        if run.observations is not None:
            from reconciler.render import refresh as render_refresh

            data = render_refresh.add_observations(data, run.observations)
        self.console.out(one_line(data))
        self.explain(run, context)

    def failure(self, exc: ReconcilerError, context: PlanContext) -> None:
        """Nothing on stdout: a script reads the exit code and stderr."""


def plan_view(console: Console) -> JsonPlanView:
    return JsonPlanView(console)


def state_json(state: State) -> str:
    return dumps(render.state_dict(state))


class JsonApplyView:
    """One event per line; ``version`` first, ``apply_complete`` last."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._started = time.monotonic()
        self.completed = False
        self.emit(render.version_event())

    def emit(self, event: dict[str, Any]) -> None:
        self.console.out(render.event_line(event))

    def planned(self, plan: Plan) -> None:
        self.console.err(render.plan_text(plan))

    def refreshed(self, run: RefreshRun) -> None:
        from reconciler.render import refresh as render_refresh

        self.emit(render.refresh_event(run))
        self.console.err(render_refresh.refresh_result(run))

    def question(self, plan: Plan, prices: Catalogue | None) -> str:
        return render.approval_question(plan, prices)

    def starting(self, plan: Plan, prices: Catalogue | None) -> None:
        self.emit(render.apply_start_event(plan, prices))

    def event(self, event: Event) -> None:
        if event.kind == "started":
            self.emit(render.change_start_event(event.change))
        elif event.kind == "written":
            self.emit(render.move_event(event.change))
            self.console.err(render.written(event.change))
        elif event.kind in ("throttled", "recovered") and event.concurrency is not None:
            lowered = event.kind == "throttled"
            self.emit(
                render.concurrency_event(
                    event.change, event.concurrency, lowered=lowered, retry_after=event.retry_after
                )
            )
        elif event.kind == "finished" and event.result is not None:
            self.emit(render.change_result_event(event.change, event.result))
            self.console.err(render.apply_progress(event.result))
            for line in event.result.errors:
                self.console.err(f"    {line}")

    def _complete(
        self,
        outcome: str,
        *,
        run: ApplyRun | None = None,
        errors: Sequence[str] = (),
    ) -> None:
        self.completed = True
        self.emit(
            render.apply_complete_event(
                outcome,
                result=run.result if run is not None else None,
                moved=len(run.moved) if run is not None else 0,
                plan=run.plan if run is not None else None,
                prices=run.prices if run is not None else None,
                elapsed_seconds=time.monotonic() - self._started,
                errors=errors,
            )
        )

    def cancelled(self) -> None:
        self.console.err("Apply cancelled; nothing was bought.")
        self._complete("cancelled")

    def finished(self, run: ApplyRun, pending: Sequence[PendingOperation], flags: str) -> None:
        for change in run.held_back:
            self.emit(render.held_back_event(change))
        for line in render.apply_outcome(run):
            self.console.err(line)
        for line in render.apply_leftovers(run):
            self.console.err(line)
        if pending:
            self.console.err(render.pending_message(pending, flags, run.findings))
        self._complete("applied" if run.ok else "failed", run=run)

    def failed(self, exc: ReconcilerError | Exception) -> None:
        """End with ``apply_complete`` (outcome ``error``) naming why, unless already ended."""
        if self.completed:
            return
        if isinstance(exc, ConfigError):
            errors = [str(problem) for problem in exc.problems]
        elif isinstance(exc, ApiError):
            errors = exc.describe().splitlines()
        elif isinstance(exc, ReconcilerError):
            errors = describe(exc).splitlines()
        else:
            errors = str(exc).splitlines()
        self._complete("error", errors=errors)


def apply_view(console: Console) -> JsonApplyView:
    return JsonApplyView(console)


class JsonValidateView:
    """One JSON document on stdout, valid or not."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def valid(self, purchases: int, files: int) -> None:
        from reconciler.render.validation import validation_dict

        self.console.out(dumps(validation_dict((), purchases=purchases, files=files)))

    def invalid(self, problems: Sequence[ConfigProblem]) -> None:
        from reconciler.render.validation import validation_dict

        self.console.out(dumps(validation_dict(problems)))


def validate_view(console: Console) -> JsonValidateView:
    return JsonValidateView(console)
