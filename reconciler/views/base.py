"""The roles every format's views play, and what all formats share.

``Console`` is where a view writes (the CLI passes one over click); ``PlanView``
and ``ApplyView`` are the roles a format implements; ``PlanDiagnostics`` holds
the plan's warnings and errors on stderr, which read the same whatever format
stdout has. Words come from ``render`` only; must not import click, a store or
a client.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from reconciler import render
from reconciler.errors import ConfigProblem, ReconcilerError
from reconciler.model import Action, Event, PendingOperation, Plan
from reconciler.outcomes import ApplyRun, PlanRun, RefreshRun
from reconciler.render.money import Catalogue


class Console(Protocol):
    """Where views write: ``out`` to stdout, ``err`` to stderr."""

    @property
    def color(self) -> bool:
        """Whether stdout is a terminal that shows colour (and the user allows it)."""
        ...

    def out(self, text: str, *, nl: bool = True) -> None: ...

    def err(self, text: str) -> None: ...


@dataclass(frozen=True)
class PlanContext:
    """What a plan view needs to know beyond the plan: where the state is and how
    commands it suggests must name it."""

    workspace: str = "default"
    targets: tuple[str, ...] = ()
    #: The options that name the state in a command suggested on the terminal.
    flags: str = ""
    #: The same for a pull-request comment (a database URL stays out of it).
    comment_flags: str = ""
    #: Who holds the state's lock while the plan shows pending entries (or None).
    holder: str | None = None


class PlanView(Protocol):
    """``reconciler plan`` (and ``show --plan``) in one format."""

    def plan(self, run: PlanRun, catalogue: Catalogue | None, context: PlanContext) -> None:
        """The plan on stdout, then its diagnostics on stderr."""

    def failure(self, exc: ReconcilerError, context: PlanContext) -> None:
        """The plan could not be made (the error itself follows on stderr)."""

    def saved(self, path: str) -> None:
        """The plan was saved to ``path`` for ``apply --plan``."""


class ApplyView(Protocol):
    """``reconciler apply`` in one format; it is also the run's listener."""

    def planned(self, plan: Plan) -> None: ...

    def refreshed(self, run: RefreshRun) -> None:
        """What apply recorded from Cloud-iQ before planning."""

    def question(self, plan: Plan, prices: Catalogue | None) -> str:
        """What apply asks before it buys: the seats, their cost, the commitments."""
        ...

    def starting(self, plan: Plan, prices: Catalogue | None) -> None: ...

    def event(self, event: Event) -> None: ...

    def cancelled(self) -> None: ...

    def finished(self, run: ApplyRun, pending: Sequence[PendingOperation], flags: str) -> None:
        """The run is over: its results, and the entries it left pending."""

    def failed(self, exc: ReconcilerError | Exception) -> None:
        """The run stopped with an error (shown on stderr by the CLI's error boundary)."""


class ValidateView(Protocol):
    """``reconciler validate`` in one format."""

    def valid(self, purchases: int, files: int) -> None: ...

    def invalid(self, problems: Sequence[ConfigProblem]) -> None:
        """The problems, each at its place (the exit code is 1)."""


class PlanDiagnostics:
    """The plan's warnings and errors on stderr: oversized changes, orphans, pending
    entries (and whether a running apply holds them), conflicts, verify's answers."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def warn(self, message: str) -> None:
        self.console.err(f"warning: {message}")

    def explain(self, run: PlanRun, context: PlanContext) -> None:
        summary = run.plan.summary
        for address, n in run.oversized:
            self.warn(
                f"{address} buys {render.seats(n)} in one change, more than the sanity limit "
                f"of {render.seats(run.seat_limit)} (RECONCILER_SEAT_LIMIT): apply will want "
                f"the total confirmed with --max-seats {summary.seats}"
            )
        if run.orphans:
            self.warn(
                f"{render.count(len(run.orphans), 'recorded purchase')} no longer declared: "
                f"{', '.join(run.orphans)}. "
                "Nothing is cancelled unless a `removed:` entry says so (`cancel: false` "
                "forgets the address, `cancel: true` cancels its subscriptions)."
            )
        pending = summary.count(Action.PENDING)
        if pending and context.holder is not None:
            # Resolving a checkout that a running apply still waits for would be wrong.
            in_flight = len(run.state.pending)
            verb, them = ("is", "it") if in_flight == 1 else ("are", "them")
            self.console.err(
                f"error: an apply holds the lock on the state ({context.holder}); its "
                f"{render.count(in_flight, 'in-flight checkout')} {verb} pending for that "
                "reason and it records each outcome itself. Wait for it to finish, then plan "
                f"again; do not resolve {them} while it runs"
            )
        elif pending:
            entries = list(run.state.pending.values())
            seen = run.observations
            found = {a: e.text for a, e in seen.evidence.items()} if seen is not None else None
            self.console.err(f"error: {render.pending_message(entries, context.flags, found)}")
        refused = run.refused_by_verify
        if summary.blocked:
            conflicts = render.count(summary.count(Action.CONFLICT), "conflict")
            pending_changes = render.count(pending, "pending change")
            also = (
                f"; verify refused {render.count(len(refused), 'order')}: {', '.join(refused)}"
                if refused
                else ""
            )
            self.console.err(
                f"error: the plan has {conflicts} and {pending_changes}; "
                f"apply would refuse it{also}"
            )
        elif refused:
            self.console.err(
                f"error: verify refused {render.count(len(refused), 'order')}: {', '.join(refused)}"
            )
        elif run.verify_errors is not None:
            checked = len(run.plan.buying())
            if checked:
                self.console.err(
                    f"Verified {render.count(checked, 'change')} with the API's verify endpoint: "
                    "no errors (nothing was bought)."
                )
            else:
                self.console.err("Nothing to verify: the plan buys nothing.")

    def saved(self, path: str) -> None:
        self.console.err(f"Saved the plan to {path}. Apply it with: reconciler apply --plan {path}")
