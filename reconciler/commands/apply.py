"""The apply use case: the refusals that come before any API call, then the run.

``plan_under_lock`` plans against the locked state and refuses pending entries
and stale saved plans; ``preflight`` refuses conflicts and plans over
``--max-seats``; ``run_apply`` does the whole run under the lock and hands the
plan to the executor. Asking the user
for approval is the CLI's; this module never prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from reconciler import executor, planfile, planner, render
from reconciler.api.orders import ApiClient
from reconciler.commands.plan import OrderBuilder
from reconciler.errors import PlanError
from reconciler.model import ApplyResult, Declarations, Event, Plan
from reconciler.state import StateStore, StateWriter


def plan_under_lock(
    declarations: Declarations,
    writer: StateWriter,
    *,
    state_flag: str,
    saved: Plan | None = None,
    saved_path: str | None = None,
) -> Plan:
    """The plan apply carries out, made against the locked state.

    Refuses a state with pending checkouts (naming each and the commands that
    settle it) and a saved plan the state or declarations have moved past.
    """
    current = writer.state
    if current.pending:
        raise PlanError(render.pending_message(current, state_flag))
    the_plan = planner.plan(declarations, current)
    if saved is not None and saved_path is not None:
        planfile.check_fresh(saved, the_plan, saved_path)
    return the_plan


def preflight(the_plan: Plan, *, max_seats: int | None) -> None:
    """Refuse, before any API call, a plan with conflicts or over ``max_seats``."""
    summary = the_plan.summary
    if summary.conflicts:
        raise PlanError(
            f"the plan has {summary.conflicts} conflict(s); nothing was bought. "
            "Fix the declarations (a purchase cannot be undone or changed in place)"
        )
    if max_seats is not None and summary.seats > max_seats:
        raise PlanError(
            f"the plan buys {summary.seats} seats, more than --max-seats {max_seats}; "
            "nothing was bought"
        )


class ClosableClient(ApiClient, Protocol):
    """An API client apply closes when it is done (``CrayonClient`` fits)."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class ApplyRun:
    """What an apply did: its plan and, when it bought, the executor's result."""

    plan: Plan
    result: ApplyResult | None = None
    cancelled: bool = False


def run_apply(
    declarations: Declarations,
    store: StateStore,
    *,
    state_flag: str,
    saved: Plan | None,
    saved_path: str | None,
    max_seats: int | None,
    show_plan: Callable[[Plan], None],
    connect: Callable[[], ClosableClient],
    approve: Callable[[], bool],
    build_order: OrderBuilder,
    new_order_id: Callable[[], str],
    now: Callable[[], str],
    on_event: Callable[[Event], None],
    parallelism: int,
) -> ApplyRun:
    """Plan under the state lock, refuse what must be refused, ask, then buy.

    ``connect`` is called (and may fail on missing credentials) before
    ``approve``, so nobody approves a run that cannot start.
    """
    with store.lock("reconciler apply") as writer:
        the_plan = plan_under_lock(
            declarations, writer, state_flag=state_flag, saved=saved, saved_path=saved_path
        )
        show_plan(the_plan)
        preflight(the_plan, max_seats=max_seats)
        if not the_plan.summary.has_purchases:
            return ApplyRun(the_plan)
        client = connect()
        try:
            if not approve():
                return ApplyRun(the_plan, cancelled=True)
            result = executor.apply(
                the_plan,
                client=client,
                writer=writer,
                build_order=build_order,
                new_order_id=new_order_id,
                now=now,
                on_event=on_event,
                parallelism=parallelism,
            )
        finally:
            client.close()
    return ApplyRun(the_plan, result)
