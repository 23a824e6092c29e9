"""The plan use case: declarations against the state, optionally read against
Cloud-iQ and asked of verify.

Never writes the state; calls the API only through the client it is given.
Returns a ``PlanRun``; never words anything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeAlias

from reconciler import planner
from reconciler.errors import ApiError
from reconciler.model import Declarations, Plan, Purchase, State
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
