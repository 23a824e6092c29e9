"""The plan use case: declarations against the state, optionally read against
Cloud-iQ (``--refresh``) and asked of verify.

Never writes the state; calls the API only through the client it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

from reconciler import planner
from reconciler.errors import ApiError
from reconciler.model import Action, Declarations, Plan, Purchase, State

if TYPE_CHECKING:  # a plan without --verify or --refresh loads neither
    from reconciler.api.orders import ApiClient, LineError, OrderJson
    from reconciler.observe import Observations

OrderBuilder: TypeAlias = "Callable[[Purchase, int, str], OrderJson]"
VerifyErrors: TypeAlias = "Mapping[str, Sequence[LineError]]"


@dataclass(frozen=True)
class PlanRun:
    """A plan, the state it was made against, and what verify said (when asked)."""

    plan: Plan
    state: State
    verify_errors: VerifyErrors | None = None
    orphans: tuple[str, ...] = field(default=())
    #: With ``--refresh``: what Cloud-iQ showed against the state.
    observations: Observations | None = None

    @property
    def refused_by_verify(self) -> list[str]:
        """The addresses whose order verify refused, sorted."""
        return sorted(a for a, errors in (self.verify_errors or {}).items() if errors)

    def exit_code(self, *, detailed: bool) -> int:
        """1 when apply would refuse (conflicts, pending, verify errors); with
        ``detailed``, 2 when there is something to buy or move; else 0."""
        summary = self.plan.summary
        if summary.blocked or self.refused_by_verify:
            return 1
        return 2 if detailed and summary.has_changes else 0


def run_plan(
    declarations: Declarations,
    state: State,
    *,
    verify: Callable[[Plan], VerifyErrors] | None = None,
    targets: Sequence[str] = (),
    observe: Callable[[Declarations, State], Observations] | None = None,
) -> PlanRun:
    """Plan ``declarations`` against ``state`` (only ``targets`` when given); with
    ``observe`` (``--refresh``), read Cloud-iQ and refuse purchases of seats it already
    holds; with ``verify``, ask it about the plan."""
    the_plan = planner.plan(declarations, state, targets)
    observations = observe(declarations, state) if observe is not None else None
    if observations is not None:
        from reconciler.observe import guard_purchases

        the_plan = guard_purchases(the_plan, observations)
    orphans = tuple(c.address for c in the_plan.changes if c.action is Action.ORPHAN)
    verify_errors = verify(the_plan) if verify is not None else None
    return PlanRun(the_plan, state, verify_errors, orphans, observations)


def verify_plan(
    the_plan: Plan,
    client: ApiClient,
    *,
    build_order: OrderBuilder,
    new_order_id: Callable[[], str],
) -> dict[str, list[LineError]]:
    """Ask the API's verify endpoint about every purchase and increase (never checkout).

    A refusal of one order is shown with it; anything else (credentials,
    connection, server errors) stops the plan.
    """
    found: dict[str, list[LineError]] = {}
    for change in the_plan.buying():
        assert change.purchase is not None
        order = build_order(change.purchase, change.delta, new_order_id())
        try:
            found[change.address] = list(client.verify(order).errors)
        except ApiError as exc:
            if not exc.refused:
                raise
            from reconciler.api.orders import LineError

            code = exc.error_code or str(exc.status)
            found[change.address] = [LineError(-1, code, exc.api_message or str(exc), {})]
    return found


#: Seats one change may buy before apply wants the total confirmed with --max-seats.
DEFAULT_SEAT_LIMIT = 10_000


def oversized(the_plan: Plan, seat_limit: int) -> list[tuple[str, int]]:
    """The buying changes above the per-purchase sanity limit, as (address, seats)."""
    return [(c.address, c.delta) for c in the_plan.buying() if c.delta > seat_limit]
