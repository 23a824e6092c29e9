"""The apply use case: the refusals that come before any API call, then the run.

``plan_under_lock`` plans against the locked state and refuses pending entries
and stale saved plans; ``preflight`` refuses conflicts and plans over
``--max-seats``; ``run_apply`` does the whole run under the lock and hands the
plan to the executor. Asking the user
for approval is the CLI's; this module never prints.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from reconciler import executor, planfile, planner, render
from reconciler.api.orders import ApiClient
from reconciler.commands.plan import DEFAULT_SEAT_LIMIT, OrderBuilder, oversized
from reconciler.errors import PlanError
from reconciler.model import ApplyResult, Change, Declarations, Event, Plan, State, targeted
from reconciler.observe import Observations, guard_purchases
from reconciler.state import StateStore, StateWriter


def plan_under_lock(
    declarations: Declarations,
    writer: StateWriter,
    *,
    state_flags: str,
    saved: Plan | None = None,
    saved_path: str | None = None,
    targets: Sequence[str] = (),
) -> Plan:
    """The plan apply carries out, made against the locked state.

    Refuses a state with pending checkouts (naming each and the commands that
    settle it; with ``targets``, only targeted ones) and a saved plan the state
    or declarations have moved past. A saved plan is planned again for its own
    targets; other ``targets`` with it are refused.
    """
    if saved is not None:
        if targets and tuple(targets) != saved.targets:
            shown = " ".join(f"--target {t}" for t in saved.targets) or "no --target"
            raise PlanError(
                f"saved plan {saved_path} was made with {shown}; apply it without --target "
                "or run `reconciler plan` again"
            )
        targets = saved.targets
    current = writer.state
    pending = {a: p for a, p in current.pending.items() if not targets or targeted(a, targets)}
    if pending:
        raise PlanError(render.pending_message(replace(current, pending=pending), state_flags))
    the_plan = planner.plan(declarations, current, targets)
    if saved is not None and saved_path is not None:
        planfile.check_fresh(saved, the_plan, saved_path)
    return the_plan


def preflight(
    the_plan: Plan, *, max_seats: int | None, seat_limit: int = DEFAULT_SEAT_LIMIT
) -> None:
    """Refuse, before any API call, a plan with conflicts or over ``max_seats``, and one
    with a change above the per-purchase ``seat_limit`` unless ``max_seats`` confirms it."""
    summary = the_plan.summary
    if summary.conflicts:
        raise PlanError(
            f"the plan has {render.count(summary.conflicts, 'conflict')}; nothing was bought. "
            "Fix the declarations (a purchase cannot be undone or changed in place)"
        )
    if max_seats is not None and summary.seats > max_seats:
        raise PlanError(
            f"the plan buys {render.seats(summary.seats)}, more than --max-seats {max_seats}; "
            "nothing was bought"
        )
    big = oversized(the_plan, seat_limit)
    if big and max_seats is None:
        # A typo (an extra zero) must not reach checkout: such an amount is confirmed.
        shown = ", ".join(f"{address} ({render.seats(n)})" for address, n in big)
        raise PlanError(
            f"the plan buys more than {render.seats(seat_limit)} in one change: {shown}; "
            f"if that is intended, confirm the total with --max-seats {summary.seats} "
            "(the limit is RECONCILER_SEAT_LIMIT); nothing was bought"
        )


class ClosableClient(ApiClient, Protocol):
    """An API client apply closes when it is done (``CrayonClient`` fits)."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class ApplyRun:
    """What an apply did: its plan, the moves it made and, when it bought, the
    executor's result."""

    plan: Plan
    result: ApplyResult | None = None
    cancelled: bool = False
    moved: tuple[Change, ...] = ()


def run_apply(
    declarations: Declarations,
    store: StateStore,
    *,
    state_flags: str,
    saved: Plan | None,
    saved_path: str | None,
    max_seats: int | None,
    seat_limit: int = DEFAULT_SEAT_LIMIT,
    show_plan: Callable[[Plan], None],
    connect: Callable[[], ClosableClient],
    approve: Callable[[], bool],
    build_order: OrderBuilder,
    new_order_id: Callable[[], str],
    now: Callable[[], str],
    on_event: Callable[[Event], None],
    parallelism: int,
    targets: Sequence[str] = (),
    on_start: Callable[[Plan], None] = lambda plan: None,
    observe: Callable[[State], Observations] | None = None,
) -> ApplyRun:
    """Plan under the state lock, refuse what must be refused, ask, then buy.

    ``connect`` is called (and may fail on missing credentials) before
    ``approve``, so nobody approves a run that cannot start. ``on_start`` hears
    of the plan once nothing stands in its way, just before the first write.
    ``observe`` (``--refresh``) reads Cloud-iQ for the locked state before the plan
    is shown, so a purchase of seats Cloud-iQ already holds is refused as a conflict.
    """
    with store.lock("reconciler apply") as writer:
        the_plan = plan_under_lock(
            declarations,
            writer,
            state_flags=state_flags,
            saved=saved,
            saved_path=saved_path,
            targets=targets,
        )
        if observe is not None:
            # Read before buying (--refresh): seats Cloud-iQ already holds are a conflict.
            the_plan = guard_purchases(the_plan, observe(writer.state))
        show_plan(the_plan)
        preflight(the_plan, max_seats=max_seats, seat_limit=seat_limit)
        if not the_plan.summary.has_purchases:
            # Moves alone spend nothing and need no API connection, but they change the
            # state: like every apply they are approved first (CONTRACT section 5).
            if the_plan.moving() and not approve():
                return ApplyRun(the_plan, cancelled=True)
            on_start(the_plan)
            moved = executor.move(the_plan, writer=writer, on_event=on_event)
            return ApplyRun(the_plan, moved=moved)
        client = connect()
        try:
            if not approve():
                return ApplyRun(the_plan, cancelled=True)
            on_start(the_plan)
            moved = executor.move(the_plan, writer=writer, on_event=on_event)
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
    return ApplyRun(the_plan, result, moved=moved)
