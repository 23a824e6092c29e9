"""The plan use case: declarations against the state, optionally read against
Cloud-iQ and asked of verify.

Never writes the state; calls the API only through the client it is given.
Returns a ``PlanRun``; never words anything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeAlias

from reconciler import planner
from reconciler.errors import ApiError, ChangeDifference, PlannedChange, UnreviewedPlanError
from reconciler.model import Action, Change, Declarations, Plan, Purchase, State
from reconciler.outcomes import PlanRun, VerifyErrors, orphans_of

if TYPE_CHECKING:  # a plan without --verify or --refresh loads neither
    from reconciler.api.orders import ApiClient, LineError, OrderJson
    from reconciler.observe import Observations

OrderBuilder: TypeAlias = "Callable[[Purchase, int, str], OrderJson]"

#: Seats one change may buy before apply wants the total confirmed with --max-seats.
DEFAULT_SEAT_LIMIT = 10_000


def run_plan(
    declarations: Declarations,
    state: State,
    *,
    verify: Callable[[Plan], VerifyErrors] | None = None,
    targets: Sequence[str] = (),
    observe: Callable[[Declarations, State, Sequence[str]], Observations] | None = None,
    seat_limit: int = DEFAULT_SEAT_LIMIT,
    offline: str | None = None,
) -> PlanRun:
    """Plan ``declarations`` against ``state`` (only ``targets`` when given); with
    ``observe``, against what Cloud-iQ shows (``offline`` says why it is not read);
    with ``verify``, ask the API's verify endpoint about the plan."""
    observations = observe(declarations, state, targets) if observe is not None else None
    the_plan = planner.plan(declarations, state, targets, observations)
    verify_errors = verify(the_plan) if verify is not None else None
    return PlanRun(
        the_plan,
        state,
        verify_errors,
        orphans_of(the_plan),
        observations,
        oversized=oversized(the_plan, seat_limit),
        seat_limit=seat_limit,
        offline=offline if observations is None else None,
    )


def verify_plan(
    the_plan: Plan,
    client: ApiClient,
    *,
    build_order: OrderBuilder,
    new_order_id: Callable[[], str],
) -> Mapping[str, Sequence[LineError]]:
    """Ask the API's verify endpoint about every purchase and increase (never checkout).

    A refusal of one order is shown with it; anything else (credentials,
    connection, server errors) stops the plan.
    """
    from reconciler.api.orders import LineError

    found: dict[str, list[LineError]] = {}
    for change in the_plan.buying():
        if change.steps:
            continue  # an increase by update sends no order
        assert change.purchase is not None
        order = build_order(change.purchase, change.delta, new_order_id())
        try:
            found[change.address] = list(client.verify(order).errors)
        except ApiError as exc:
            if not exc.refused:
                raise
            code = exc.error_code or str(exc.status)
            found[change.address] = [LineError(-1, code, exc.api_message or str(exc), {})]
    return found


def oversized(the_plan: Plan, seat_limit: int) -> tuple[tuple[str, int], ...]:
    """The buying changes above the per-purchase sanity limit, as (address, seats)."""
    return tuple((c.address, c.delta) for c in the_plan.buying() if c.delta > seat_limit)


def _reviewable(plan: Plan) -> dict[str, PlannedChange]:
    """What a reviewer approves of a plan, by address: every change but the unchanged."""

    def seen(change: Change) -> PlannedChange:
        return PlannedChange(change.action.value, change.before, change.delta, change.after)

    return {c.address: seen(c) for c in plan.changes if c.action is not Action.NOOP}


def reviewed_differences(reviewed: Plan, current: Plan) -> tuple[ChangeDifference, ...]:
    """The addresses whose change differs between ``reviewed`` and ``current``: another
    action, other seats to add or take, other seats to start from, or a change only
    one of them has. Empty when apply would do exactly what was reviewed."""
    before, now = _reviewable(reviewed), _reviewable(current)
    return tuple(
        ChangeDifference(address, before.get(address), now.get(address))
        for address in sorted(before.keys() | now.keys())
        if before.get(address) != now.get(address)
    )


def expect_reviewed(reviewed: Plan, current: Plan, path: str) -> None:
    """Refuse (``UnreviewedPlanError``) a plan whose changes are not exactly the reviewed
    plan's, or that was made for other ``--target`` values."""
    targets = (reviewed.targets, current.targets) if reviewed.targets != current.targets else None
    differences = reviewed_differences(reviewed, current)
    if differences or targets is not None:
        raise UnreviewedPlanError(path, differences, targets)
