"""The apply use case: the refusals that come before any API call, then the run.

``plan_under_lock`` plans against the locked state and refuses pending entries
and stale saved plans; ``preflight`` refuses conflicts and plans over
``--max-seats``; ``run_apply`` does the whole run under the lock and hands the
plan to the executor. Asking the user for approval and every word shown are the
caller's (``ApplyPorts``); this module never prints and raises structured errors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from reconciler import executor, planner
from reconciler.api.orders import ApiClient
from reconciler.commands.plan import DEFAULT_SEAT_LIMIT, OrderBuilder, oversized
from reconciler.errors import (
    PendingError,
    PreflightError,
    PreflightKind,
    Staleness,
    StalePlanError,
)
from reconciler.model import Action, Declarations, Event, Plan, State, targeted
from reconciler.observe import Observations, guard_purchases
from reconciler.outcomes import ApplyRun
from reconciler.state import StateStore, StateWriter


class ClosableClient(ApiClient, Protocol):
    """An API client apply closes when it is done (``CrayonClient`` fits)."""

    def close(self) -> None: ...


class ApplyListener(Protocol):
    """What apply tells as it goes (the CLI's view)."""

    def planned(self, plan: Plan) -> None:
        """The plan apply is about to check and ask about."""

    def starting(self, plan: Plan) -> None:
        """Nothing stands in the plan's way: the first write follows."""

    def event(self, event: Event) -> None:
        """A change started, finished, or a move was made (any thread)."""


@dataclass(frozen=True)
class ApplyRequest:
    """What the user asked apply to do."""

    declarations: Declarations
    targets: tuple[str, ...] = ()
    #: A saved plan (``apply --plan``) and its file; applying it is the approval.
    saved: Plan | None = None
    saved_path: str | None = None
    max_seats: int | None = None
    seat_limit: int = DEFAULT_SEAT_LIMIT
    parallelism: int = 1
    #: Read Cloud-iQ before planning (read before buying).
    refresh: bool = False


@dataclass(frozen=True)
class ApplyPorts:
    """What apply works with: the state, the API, the user, the clock and id source."""

    store: StateStore
    connect: Callable[[], ClosableClient]
    approve: Callable[[Plan], bool]
    listener: ApplyListener
    build_order: OrderBuilder
    new_order_id: Callable[[], str]
    now: Callable[[], str]
    #: How to read Cloud-iQ for a state (``ApplyRequest.refresh``).
    observe: Callable[[State], Observations] | None = None


def staleness(saved: Plan, current: Plan) -> Staleness | None:
    """How ``saved`` differs from ``current`` (made now), or None when it still applies."""
    found = Staleness(
        lineage=(saved.lineage, current.lineage) if saved.lineage != current.lineage else None,
        serial=(saved.serial, current.serial) if saved.serial != current.serial else None,
        declarations=saved.declarations_digest != current.declarations_digest,
    )
    if found != Staleness():
        return found
    if [(c.address, c.action, c.delta) for c in saved.changes] != [
        (c.address, c.action, c.delta) for c in current.changes
    ]:
        return Staleness(changes=True)
    return None


def plan_under_lock(request: ApplyRequest, writer: StateWriter) -> Plan:
    """The plan apply carries out, made against the locked state.

    Refuses a state with pending checkouts (with ``targets``, only targeted ones)
    and a saved plan the state or declarations have moved past. A saved plan is
    planned again for its own targets; other ``targets`` with it are refused.
    """
    targets: Sequence[str] = request.targets
    saved, path = request.saved, request.saved_path or "(saved plan)"
    if saved is not None:
        if targets and tuple(targets) != saved.targets:
            raise StalePlanError(path, Staleness(targets=saved.targets))
        targets = saved.targets
    current = writer.state
    pending = [p for a, p in current.pending.items() if not targets or targeted(a, targets)]
    if pending:
        raise PendingError(pending)
    the_plan = planner.plan(request.declarations, current, targets)
    if saved is not None:
        stale = staleness(saved, the_plan)
        if stale is not None:
            raise StalePlanError(path, stale)
    return the_plan


def preflight(
    the_plan: Plan, *, max_seats: int | None, seat_limit: int = DEFAULT_SEAT_LIMIT
) -> None:
    """Refuse, before any API call, a plan with conflicts or over ``max_seats``, and one
    with a change above the per-purchase ``seat_limit`` unless ``max_seats`` confirms it."""
    summary = the_plan.summary
    if summary.blocked:
        raise PreflightError(PreflightKind.CONFLICTS, count=summary.count(Action.CONFLICT))
    if max_seats is not None and summary.seats > max_seats:
        raise PreflightError(PreflightKind.MAX_SEATS, seats=summary.seats, limit=max_seats)
    big = oversized(the_plan, seat_limit)
    if big and max_seats is None:
        # A typo (an extra zero) must not reach checkout: such an amount is confirmed.
        raise PreflightError(
            PreflightKind.SEAT_LIMIT, seats=summary.seats, limit=seat_limit, oversized=big
        )


def run_apply(request: ApplyRequest, ports: ApplyPorts) -> ApplyRun:
    """Plan under the state lock, refuse what must be refused, ask, then buy.

    ``connect`` is called (and may fail on missing credentials) before
    ``approve``, so nobody approves a run that cannot start. The listener hears of
    the plan before the refusals, and of the start once nothing stands in its way,
    just before the first write.
    """
    with ports.store.lock("reconciler apply") as writer:
        the_plan = plan_under_lock(request, writer)
        if request.refresh and ports.observe is not None:
            # Read before buying: seats Cloud-iQ already holds are a conflict.
            the_plan = guard_purchases(the_plan, ports.observe(writer.state))
        ports.listener.planned(the_plan)
        preflight(the_plan, max_seats=request.max_seats, seat_limit=request.seat_limit)
        if not the_plan.summary.has_purchases:
            # Moves alone spend nothing and need no API connection, but they change the
            # state: like every apply they are approved first.
            if the_plan.moving() and not ports.approve(the_plan):
                return ApplyRun(the_plan, cancelled=True)
            ports.listener.starting(the_plan)
            moved = executor.move(the_plan, writer=writer, on_event=ports.listener.event)
            return ApplyRun(the_plan, moved=moved)
        client = ports.connect()
        try:
            if not ports.approve(the_plan):
                return ApplyRun(the_plan, cancelled=True)
            ports.listener.starting(the_plan)
            moved = executor.move(the_plan, writer=writer, on_event=ports.listener.event)
            result = executor.apply(
                the_plan,
                executor.Collaborators(
                    client=client,
                    writer=writer,
                    build_order=ports.build_order,
                    new_order_id=ports.new_order_id,
                    now=ports.now,
                    on_event=ports.listener.event,
                ),
                parallelism=request.parallelism,
            )
        finally:
            client.close()
    return ApplyRun(the_plan, result, moved=moved)
