"""``apply --json``: the executor's events as JSON lines on stdout.

Only JSON goes to stdout; the human progress and each change's errors go to
stderr, so a CI log still reads like the text form. Event content is
``render.events``'; this module only times the run and echoes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import click

from reconciler import render
from reconciler.errors import ApiError, ConfigError, ReconcilerError
from reconciler.model import ApplyResult, Event, Plan


class JsonLines:
    """Prints one event per line; ``version`` first, ``apply_complete`` last."""

    def __init__(self) -> None:
        self._started = time.monotonic()
        self.completed = False
        self.emit(render.version_event())

    def emit(self, event: dict[str, Any]) -> None:
        click.echo(render.event_line(event))

    def start(self, plan: Plan) -> None:
        self.emit(render.apply_start_event(plan))

    def on_event(self, event: Event) -> None:
        if event.kind == "started":
            self.emit(render.change_start_event(event.change))
        elif event.kind == "moved":
            self.emit(render.move_event(event.change))
        elif event.kind == "finished" and event.result is not None:
            self.emit(render.change_result_event(event.change, event.result))
            click.echo(render.apply_progress(event.result), err=True)
            for line in event.result.errors:
                click.echo(f"    {line}", err=True)

    def complete(
        self,
        outcome: str,
        *,
        result: ApplyResult | None = None,
        moved: int = 0,
        errors: Sequence[str] = (),
    ) -> None:
        self.completed = True
        self.emit(
            render.apply_complete_event(
                outcome,
                result=result,
                moved=moved,
                elapsed_seconds=time.monotonic() - self._started,
                errors=errors,
            )
        )

    def fail(self, exc: ReconcilerError | click.ClickException) -> None:
        """End with ``apply_complete`` (outcome ``error``) naming why, unless already ended."""
        if self.completed:
            return
        if isinstance(exc, click.ClickException):
            errors = [exc.format_message()]
        elif isinstance(exc, ConfigError):
            errors = [str(problem) for problem in exc.problems]
        elif isinstance(exc, ApiError):
            errors = exc.describe().splitlines()
        else:
            errors = str(exc).splitlines()
        self.complete("error", errors=errors)
