"""The apply use case: the refusals that come before any API call, then the run.

``plan_under_lock`` plans against the locked state and refuses pending entries
and stale saved plans; ``preflight`` refuses conflicts and plans over
``--max-seats``; ``check_cost`` refuses a plan over ``--max-cost`` (or one whose
price is unknown) after reading prices, before anything is sent; ``run_apply``
does the whole run under the lock and hands the plan to the executor. Asking the
user for approval and every word shown are the caller's (``ApplyPorts``); this
module never prints and raises structured errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Protocol

from reconciler import executor, planner
from reconciler.commands.plan import DEFAULT_SEAT_LIMIT, OrderBuilder, oversized
from reconciler.commands.refresh import CloudReader, ProductLookup, read_cloud, record_findings
from reconciler.errors import (
    ApiError,
    PendingError,
    PreflightError,
    PreflightKind,
    Staleness,
    StalePlanError,
)
from reconciler.executor.context import Client
from reconciler.model import (
    ACTIONS,
    Action,
    Change,
    Declarations,
    Event,
    Identity,
    Plan,
    State,
    targeted,
)
from reconciler.observe import Observations, ProductInfo, observe
from reconciler.outcomes import ApplyRun, RefreshRun
from reconciler.state import StateStore, StateWriter


class ClosableClient(Client, CloudReader, Protocol):
    """An API client apply reads through and closes when it is done (``CrayonClient``
    fits)."""

    def close(self) -> None: ...


#: Product names and unit prices by identity, as apply read them (each may be unknown).
Prices = Mapping[Identity, ProductInfo]


class ApplyListener(Protocol):
    """What apply tells as it goes (the CLI's view)."""

    def planned(self, plan: Plan) -> None:
        """The plan apply is about to check and ask about."""

    def refreshed(self, run: RefreshRun) -> None:
        """What apply recorded from Cloud-iQ before planning."""

    def starting(self, plan: Plan, prices: Prices | None) -> None:
        """Nothing stands in the plan's way: the first write follows (``prices``: what
        its seats cost, when apply could read them)."""

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
    #: ``--max-cost``: the most the purchases may add, per month (one-time ones once),
    #: in the catalogue's currency.
    max_cost: Decimal | None = None
    seat_limit: int = DEFAULT_SEAT_LIMIT
    parallelism: int = 1
    #: Read Cloud-iQ before planning: settle pending entries, record what each address
    #: owns, plan against its seats, and refuse to buy seats it already holds.
    refresh: bool = True


@dataclass(frozen=True)
class ApplyPorts:
    """What apply works with: the state, the API, the user, the clock and id source."""

    store: StateStore
    connect: Callable[[], ClosableClient]
    #: Asked with the plan and its prices (None: not read) before anything is sent.
    approve: Callable[[Plan, Prices | None], bool]
    listener: ApplyListener
    build_order: OrderBuilder
    new_order_id: Callable[[], str]
    now: Callable[[], str]


def staleness(saved: Plan, current: Plan) -> Staleness | None:
    """How ``saved`` differs from ``current`` (made now), or None when it still applies:
    other declarations, or other changes (what Cloud-iQ shows moved: other seats
    before, another action or another number of seats)."""
    if saved.declarations_digest != current.declarations_digest:
        return Staleness(declarations=True)

    def key(c: Change) -> tuple[str, Action, int, int]:
        return (c.address, c.action, c.delta, c.before if c.action is not Action.NOOP else 0)

    if [key(c) for c in saved.changes] != [key(c) for c in current.changes]:
        return Staleness(changes=True)
    return None


def check_saved(request: ApplyRequest, state: State) -> tuple[str, ...]:
    """The targets a run plans for; refuses a saved plan made against another state
    (before this run's refresh writes anything) or with other targets."""
    saved, path = request.saved, request.saved_path or "(saved plan)"
    if saved is None:
        return request.targets
    if request.targets and request.targets != saved.targets:
        raise StalePlanError(path, Staleness(targets=saved.targets))
    found = Staleness(
        lineage=(saved.lineage, state.lineage) if saved.lineage != state.lineage else None,
        serial=(saved.serial, state.serial) if saved.serial != state.serial else None,
        declarations=saved.declarations_digest != request.declarations.digest(),
    )
    if found != Staleness():
        raise StalePlanError(path, found)
    return saved.targets


def plan_under_lock(
    request: ApplyRequest,
    writer: StateWriter,
    targets: Sequence[str],
    cloud: Observations | None = None,
) -> Plan:
    """The plan apply carries out, made against the locked state (as refresh left it).

    Offline (``cloud`` None), pending entries are refused before anything else: only
    the API can tell their outcome. A saved plan must match the plan made now.
    """
    current = writer.state
    if cloud is None:
        pending = [p for a, p in current.pending.items() if not targets or targeted(a, targets)]
        if pending:
            raise PendingError(pending)
    the_plan = planner.plan(request.declarations, current, targets, cloud)
    saved = request.saved
    if saved is not None:
        stale = staleness(saved, the_plan)
        if stale is not None and stale.changes:
            raise StalePlanError(request.saved_path or "(saved plan)", stale)
    return the_plan


def held_back(the_plan: Plan) -> tuple[Plan, tuple[Change, ...]]:
    """The plan apply carries out, and the changes it holds back: every change of a
    customer tenant that has a conflict (a reviewer sees a tenant's changes as one;
    other tenants go ahead). Conflicts themselves change nothing either way."""
    blocked = {
        c.identity.customer_tenant_id for c in the_plan.changes if c.action is Action.CONFLICT
    }
    if not blocked:
        return the_plan, ()
    kept, held = [], []
    for change in the_plan.changes:
        if change.identity.customer_tenant_id in blocked and change.action is not Action.CONFLICT:
            if ACTIONS[change.action].changes:
                held.append(change)
            continue
        kept.append(change)
    return replace(the_plan, changes=tuple(kept)), tuple(held)


def preflight(
    the_plan: Plan, *, max_seats: int | None, seat_limit: int = DEFAULT_SEAT_LIMIT
) -> None:
    """Refuse, before anything is sent, a plan over ``max_seats``, and one with a change
    above the per-purchase ``seat_limit`` unless ``max_seats`` confirms it."""
    summary = the_plan.summary
    if max_seats is not None and summary.seats > max_seats:
        raise PreflightError(PreflightKind.MAX_SEATS, seats=summary.seats, limit=max_seats)
    big = oversized(the_plan, seat_limit)
    if big and max_seats is None:
        # A typo (an extra zero) must not reach checkout: such an amount is confirmed.
        raise PreflightError(
            PreflightKind.SEAT_LIMIT, seats=summary.seats, limit=seat_limit, oversized=big
        )


def purchase_cost(plan: Plan, prices: Prices | None) -> tuple[dict[str, Decimal], tuple[str, ...]]:
    """What the plan's purchases add, per currency (per month for a subscription, the
    whole price once for a one-time purchase), and the buying addresses whose price is
    unknown (never counted as 0)."""
    totals: dict[str, Decimal] = {}
    unknown = []
    for change in plan.buying():
        info = prices.get(change.identity) if prices is not None else None
        if info is None or info.unit_price is None:
            unknown.append(change.address)
            continue
        currency = (info.currency or "").upper()
        totals[currency] = totals.get(currency, Decimal(0)) + info.unit_price * change.delta
    return totals, tuple(unknown)


def check_cost(plan: Plan, prices: Prices | None, max_cost: Decimal | None) -> None:
    """Refuse, before anything is sent, a plan whose purchases add more than
    ``max_cost``, or whose cost cannot be held against it: a price unknown, or prices
    in more than one currency."""
    if max_cost is None:
        return
    totals, unknown = purchase_cost(plan, prices)
    if unknown:
        raise PreflightError(PreflightKind.COST_UNKNOWN, max_cost=max_cost, unknown=unknown)
    if len(totals) > 1:
        raise PreflightError(
            PreflightKind.CURRENCIES, max_cost=max_cost, currencies=tuple(sorted(totals))
        )
    for currency, amount in totals.items():
        if amount > max_cost:
            raise PreflightError(
                PreflightKind.MAX_COST,
                seats=plan.summary.seats,
                max_cost=max_cost,
                cost=amount,
                currencies=(currency,),
            )


def read_prices(plan: Plan, client: ClosableClient) -> Prices | None:
    """Names and unit prices of what the plan adds or takes away; None when the API
    cannot give them (they only inform, unless ``--max-cost`` needs them)."""
    identities = [c.identity for c in plan.changes if c.delta and ACTIONS[c.action].changes]
    if not identities:
        return None
    try:
        return ProductLookup(client).lookup(identities)
    except ApiError:
        return None


def run_apply(request: ApplyRequest, ports: ApplyPorts) -> ApplyRun:
    """Read Cloud-iQ and record what it proves, plan under the state lock, refuse what
    must be refused, ask, then carry the plan out.

    With ``refresh`` the client is connected first (reads need it): the pending
    entries the API settles and the subscriptions each address owns are recorded
    before planning, so a killed run needs no person. Without, ``connect`` is called
    (and may fail on missing credentials) before ``approve``, so nobody approves a
    run that cannot start.
    """
    with ports.store.lock("reconciler apply") as writer:
        targets = check_saved(request, writer.state)
        client: ClosableClient | None = None
        try:
            refreshed = None
            cloud = None
            if request.refresh:
                client = ports.connect()
                refreshed, cloud = _refresh(request, ports, writer, client, targets)
            the_plan = plan_under_lock(request, writer, targets, cloud)
            ports.listener.planned(the_plan)
            doing, held = held_back(the_plan)
            preflight(doing, max_seats=request.max_seats, seat_limit=request.seat_limit)
            findings = {a: e.text for a, e in cloud.evidence.items()} if cloud is not None else None
            done = ApplyRun(the_plan, refreshed=refreshed, held_back=held, findings=findings)
            calling = executor.calling(doing)
            if not calling and not executor.writing(doing):
                return done
            if calling and client is None:
                client = ports.connect()
            prices = read_prices(doing, client) if calling and client is not None else None
            check_cost(doing, prices, request.max_cost)
            done = replace(done, prices=prices)
            if not ports.approve(doing, prices):
                return replace(done, cancelled=True)
            ports.listener.starting(doing, prices)
            written = executor.write_state(
                doing, writer=writer, now=ports.now, on_event=ports.listener.event
            )
            result = None
            if calling:
                assert client is not None
                result = executor.apply(
                    doing, _collaborators(ports, client, writer), parallelism=request.parallelism
                )
        finally:
            if client is not None:
                client.close()
    return replace(done, result=result, moved=written)


def _collaborators(
    ports: ApplyPorts, client: ClosableClient, writer: StateWriter
) -> executor.Collaborators:
    return executor.Collaborators(
        client=client,
        writer=writer,
        build_order=ports.build_order,
        new_order_id=ports.new_order_id,
        now=ports.now,
        on_event=ports.listener.event,
    )


def _refresh(
    request: ApplyRequest,
    ports: ApplyPorts,
    writer: StateWriter,
    client: ClosableClient,
    targets: Sequence[str],
) -> tuple[RefreshRun | None, Observations]:
    """Read Cloud-iQ for the tenants the run touches and record what it proves; the
    observations of the state as it then is (nothing left for refresh to write)."""
    readings = read_cloud(client, request.declarations, writer.state, targets=targets)
    found = observe(request.declarations, writer.state, readings)
    if not found.has_writes:
        return None, found
    done = record_findings(writer, found, ports.now())
    ports.listener.refreshed(done)
    return done, observe(request.declarations, writer.state, readings)
