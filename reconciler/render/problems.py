"""Refusals as the user reads them: the words for every structured error.

The use cases raise records (``PendingError``, ``PreflightError``,
``StalePlanError``, ``RepairRefused``, ...) that say what stands in the way;
this module says it in English, with the commands that help and the state
options (``flags``) to repeat in them. Returns strings; never prints.
"""

from __future__ import annotations

from decimal import Decimal

from reconciler.errors import (
    ApiError,
    ChangeDifference,
    NoHistoryError,
    PendingError,
    PlannedChange,
    PreflightError,
    PreflightKind,
    ReconcilerError,
    RepairRefused,
    StalePlanError,
    UnreviewedPlanError,
)
from reconciler.outcomes import Repair, RepairKind
from reconciler.render.money import Money
from reconciler.render.text import pending_message
from reconciler.render.words import seats


def describe(exc: ReconcilerError, *, flags: str = "") -> str:
    """The message for ``exc`` (without the ``error:`` prefix)."""
    if isinstance(exc, PendingError):
        return pending_message(exc.entries, flags)
    if isinstance(exc, PreflightError):
        return _preflight(exc)
    if isinstance(exc, StalePlanError):
        return _stale(exc)
    if isinstance(exc, UnreviewedPlanError):
        return unreviewed(exc)
    if isinstance(exc, RepairRefused):
        return _refused(exc, flags)
    if isinstance(exc, NoHistoryError):
        return (
            f"{exc.location} is a state file, which keeps no history of writes "
            "(commit it to git for that); a postgresql:// state does"
        )
    if isinstance(exc, ApiError):
        return exc.describe()
    return str(exc)


def _preflight(exc: PreflightError) -> str:
    if exc.kind in _COST_KINDS:
        return _cost(exc)
    if exc.kind is PreflightKind.MAX_SEATS:
        return (
            f"the plan buys {seats(exc.seats)}, more than --max-seats {exc.limit}; "
            "nothing was bought"
        )
    shown = ", ".join(f"{address} ({seats(n)})" for address, n in exc.oversized)
    return (
        f"the plan buys more than {seats(exc.limit)} in one change: {shown}; "
        f"if that is intended, confirm the total with --max-seats {exc.seats} "
        "(the limit is RECONCILER_SEAT_LIMIT); nothing was bought"
    )


_COST_KINDS = frozenset(
    {PreflightKind.MAX_COST, PreflightKind.COST_UNKNOWN, PreflightKind.CURRENCIES}
)


def _cost(exc: PreflightError) -> str:
    limit = f"--max-cost {exc.max_cost}"
    if exc.kind is PreflightKind.COST_UNKNOWN:
        return (
            f"{limit} needs the price of every purchase, and the price of "
            f"{', '.join(exc.unknown)} is unknown (Cloud-iQ's agreement products do not "
            "give it); an unknown price is never counted as 0. Check the price in Cloud-iQ, "
            "then apply without --max-cost or with --target for the others; nothing was bought"
        )
    if exc.kind is PreflightKind.CURRENCIES:
        return (
            f"the purchases are priced in {' and '.join(exc.currencies)}; {limit} is one "
            "amount in one currency: apply each customer tenant on its own with --target; "
            "nothing was bought"
        )
    spent = Money(exc.currencies[0] if exc.currencies else "", exc.cost or Decimal(0))
    return (
        f"the plan's purchases add {spent} (per month; one-time purchases once) for "
        f"{seats(exc.seats)}, more than {limit}; nothing was bought"
    )


def _stale(exc: StalePlanError) -> str:
    found = exc.staleness
    if found.targets is not None:
        shown = " ".join(f"--target {t}" for t in found.targets) or "no --target"
        return (
            f"saved plan {exc.path} was made with {shown}; apply it without --target "
            "or run `reconciler plan` again"
        )
    if found.changes:
        return f"saved plan {exc.path} does not match a fresh plan; run `reconciler plan` again"
    reasons = []
    if found.lineage is not None:
        before, after = found.lineage
        reasons.append(f"state lineage {before or '(none)'} -> {after or '(none)'}")
    if found.serial is not None:
        reasons.append(f"state serial {found.serial[0]} -> {found.serial[1]}")
    if found.declarations:
        reasons.append("declarations changed")
    return f"saved plan {exc.path} is stale ({'; '.join(reasons)}); run `reconciler plan` again"


def planned(change: PlannedChange | None) -> str:
    """``purchase 0 -> 20 seats (+20)``; ``no change`` for an address a plan leaves alone."""
    if change is None:
        return "no change"
    if change.after is None:
        return f"{change.action} of {seats(change.before)}"
    text = f"{change.action} {change.before} -> {seats(change.after)}"
    return f"{text} ({change.delta:+d})" if change.delta else text


def difference(found: ChangeDifference) -> str:
    """``acme/basic: reviewed purchase 0 -> 20 seats (+20); now purchase 0 -> 25 seats (+25)``."""
    return f"{found.address}: reviewed {planned(found.reviewed)}; now {planned(found.now)}"


def _targets(targets: tuple[str, ...]) -> str:
    return " ".join(f"--target {t}" for t in targets) or "no --target"


def unreviewed(exc: UnreviewedPlanError) -> str:
    """Why apply may not go ahead, each difference on its own line, and what to do."""
    lines = [
        f"this plan is not the reviewed plan {exc.path}; nothing may be applied without a "
        "review of what would now be done:"
    ]
    if exc.targets is not None:
        reviewed, now = (_targets(ts) for ts in exc.targets)
        lines.append(f"  reviewed with {reviewed}; now planned with {now}")
    lines += [f"  {difference(found)}" for found in exc.differences]
    lines.append(
        "Get a new review: push to the pull request (or run its plan again) so that the "
        "comment shows this plan, have it approved, then merge again"
    )
    return "\n".join(lines)


def _refused(exc: RepairRefused, flags: str) -> str:
    address, where = exc.address, exc.where
    if exc.reason == "pending":
        return (
            f"{address} has a pending checkout; resolve it first with "
            f"`reconciler state resolve {address} --purchased|--not-purchased{flags}`"
        )
    if exc.reason == "not-recorded":
        return f"{address} is not recorded in {where}"
    if exc.reason == "already-recorded":
        return f"{address} is already in the state {where}"
    if exc.reason == "not-declared":
        return f"{address} is not declared in {where}; declare it first"
    if exc.reason == "no-pending":
        return f"{address} has no pending checkout in {where}"
    return str(exc)


def question(repair: Repair) -> str:
    """What a hand repair asks before it writes."""
    if repair.kind is RepairKind.MOVE:
        return f"Move {repair.address} ({seats(repair.seats)}) to {repair.target}?"
    if repair.kind is RepairKind.REMOVE:
        return f"Forget {repair.address} ({seats(repair.seats)})?"
    return f"Record {seats(repair.seats)} at {repair.address} as already bought?"
