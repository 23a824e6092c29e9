"""Carry out a plan's moves, then its purchases and increases, each exactly once.

``move`` makes the plan's moves as state writes only (no API call), before
anything is bought; a move that adds seats is then bought like an increase.

``apply`` runs every change that calls the API, dispatched on the change's
executor kind (the action table's ``Executor``). The checkout kind, in address
order: build the order with a fresh externalOrderId, verify it, record a
``pending`` entry durably, check out the order exactly as verify returned it,
then on 204 record the seats and clear the pending entry in one durable write.
A definitive failure clears the pending entry; an ambiguous one keeps it and
stops every change not yet started.

This module never prints and never decides exit codes: it reports progress
through ``on_event`` and returns an ``ApplyResult``. It makes no HTTP call but
through the client and writes no state but through the writer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from reconciler.api.orders import ApiClient, OrderJson
from reconciler.errors import ApiError, AuthenticationError, FailureKind
from reconciler.model import (
    ACTIONS,
    ApplyResult,
    Change,
    ChangeResult,
    CheckoutRecord,
    Event,
    Executor,
    Outcome,
    PendingOperation,
    Plan,
    Purchase,
)
from reconciler.state import StateWriter

OrderBuilder = Callable[[Purchase, int, str], OrderJson]


def _describe(exc: ApiError) -> tuple[str, ...]:
    return tuple(exc.describe().splitlines())


def _ignore(event: Event) -> None:
    pass


@dataclass(frozen=True)
class Collaborators:
    """What a run works with: the API, the locked state, and where orders, ids,
    times and progress come from."""

    client: ApiClient
    writer: StateWriter
    build_order: OrderBuilder
    new_order_id: Callable[[], str]
    now: Callable[[], str]
    on_event: Callable[[Event], None] = _ignore


def executor_of(change: Change) -> Executor:
    """How apply carries out ``change`` (a move that adds seats buys them by checkout)."""
    if change.spends:
        return Executor.CHECKOUT
    return ACTIONS[change.action].executor


#: The executor kinds that call the API (``apply``); state writes are ``move``'s.
API_KINDS = frozenset({Executor.CHECKOUT})


class _Run:
    """One apply: the shared halt flag and the algorithm of each executor kind."""

    def __init__(self, parts: Collaborators) -> None:
        self.client = parts.client
        self.writer = parts.writer
        self.build_order = parts.build_order
        self.new_order_id = parts.new_order_id
        self.now = parts.now
        self.on_event = parts.on_event
        self.halt = threading.Event()
        self._events = threading.Lock()
        self._kinds: Mapping[Executor, Callable[[Change], ChangeResult]] = {
            Executor.CHECKOUT: self._checkout,
        }

    def emit(self, event: Event) -> None:
        with self._events:
            self.on_event(event)

    def run_one(self, change: Change) -> ChangeResult:
        if self.halt.is_set():
            return ChangeResult(change.address, change.delta, Outcome.SKIPPED)
        self.emit(Event("started", change))
        started = time.monotonic()
        try:
            result = self._kinds[executor_of(change)](change)
        except BaseException:
            # A bug, a state write that failed, Ctrl-C: whatever was in flight may
            # have been bought, so nothing new may start.
            self.halt.set()
            raise
        result = ChangeResult(
            result.address,
            result.seats,
            result.outcome,
            time.monotonic() - started,
            result.external_order_id,
            result.errors,
        )
        self.emit(Event("finished", change, result))
        return result

    def _halt_if_hopeless(self, exc: ApiError) -> None:
        """Stop starting changes when no later one can succeed either: the
        credentials were refused, or the API stayed unreachable through retries."""
        if isinstance(exc, AuthenticationError) or exc.kind is FailureKind.RETRYABLE:
            self.halt.set()

    def _checkout(self, change: Change) -> ChangeResult:
        purchase = change.purchase
        assert purchase is not None, "buying changes always carry their declaration"
        order_id = self.new_order_id()

        def failed(*errors: str) -> ChangeResult:
            return ChangeResult(change.address, change.delta, Outcome.FAILED, 0.0, order_id, errors)

        order = self.build_order(purchase, change.delta, order_id)
        try:
            verified = self.client.verify(order)
        except ApiError as exc:
            self._halt_if_hopeless(exc)
            return failed(*_describe(exc))
        if not verified.ok:
            return failed(*(f"verify: {e.code}: {e.description}" for e in verified.errors))
        if self.halt.is_set():  # an ambiguous checkout elsewhere: start nothing new
            return ChangeResult(change.address, change.delta, Outcome.SKIPPED)

        self.writer.add_pending(
            PendingOperation(change.address, change.identity, order_id, change.delta, self.now())
        )
        try:
            self.client.checkout(verified)
        except ApiError as exc:
            if exc.kind is FailureKind.AMBIGUOUS:
                self.halt.set()
                return ChangeResult(
                    change.address,
                    change.delta,
                    Outcome.PENDING,
                    0.0,
                    order_id,
                    _describe(exc),
                )
            # Definitive, or provably never reached the server: nothing was bought.
            self.writer.remove_pending(change.address)
            self._halt_if_hopeless(exc)
            return failed(*_describe(exc))
        self.writer.record_checkout(
            change.address, change.identity, CheckoutRecord(order_id, change.delta, self.now())
        )
        return ChangeResult(change.address, change.delta, Outcome.PURCHASED, 0.0, order_id)


def move(
    plan: Plan,
    *,
    writer: StateWriter,
    on_event: Callable[[Event], None] = lambda event: None,
) -> tuple[Change, ...]:
    """Move each recorded purchase the plan moves, with its checkouts; returns the moves.

    The caller holds the state lock and has refused plans with conflicts; call
    it before ``apply``, so a move's added seats are recorded at the new address.
    Each move made is reported as a ``moved`` event.
    """
    moves = plan.moving()
    for change in moves:
        assert change.moved_from is not None, "a move always names its source"
        writer.move_purchase(change.moved_from, change.address)
        on_event(Event("moved", change))
    return moves


def calling(plan: Plan) -> tuple[Change, ...]:
    """The changes of ``plan`` that call the API, in address order."""
    return tuple(c for c in plan.changes if executor_of(c) in API_KINDS)


def apply(plan: Plan, parts: Collaborators, *, parallelism: int = 1) -> ApplyResult:
    """Carry out every change of ``plan`` that calls the API; see the module docstring.

    The caller holds the state lock, has made the plan's moves and has refused
    plans with conflicts or pending entries. With ``parallelism`` 1 each result is
    recorded before the next change starts; with more, up to that many run at once.
    """
    run = _Run(parts)
    writer = parts.writer
    changes = list(calling(plan))
    results: dict[str, ChangeResult] = {}
    interrupted = False
    if parallelism <= 1:
        try:
            for change in changes:
                results[change.address] = run.run_one(change)
        except KeyboardInterrupt:
            interrupted = True
    else:
        interrupted = _run_parallel(run, changes, parallelism, results)
    pending = writer.state.pending

    def unfinished(change: Change) -> ChangeResult:
        # Interrupted in flight: its checkout may have been sent (pending) or not.
        op = pending.get(change.address)
        if op is None:
            return ChangeResult(change.address, change.delta, Outcome.SKIPPED)
        return ChangeResult(
            change.address, change.delta, Outcome.PENDING, 0.0, op.external_order_id
        )

    ordered = tuple(results.get(c.address) or unfinished(c) for c in changes)
    return ApplyResult(ordered, interrupted)


def _run_parallel(
    run: _Run, changes: Sequence[Change], parallelism: int, results: dict[str, ChangeResult]
) -> bool:
    """Run changes on a pool; on Ctrl-C start nothing new and let in-flight ones finish."""
    interrupted = False
    with ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="apply") as pool:
        futures: dict[Future[ChangeResult], Change] = {
            pool.submit(run.run_one, change): change for change in changes
        }
        remaining = set(futures)
        while remaining:
            try:
                done, remaining = wait(remaining, return_when=FIRST_COMPLETED)
            except KeyboardInterrupt:
                interrupted = True
                run.halt.set()
                continue
            for future in done:
                try:
                    results[futures[future].address] = future.result()
                except BaseException:
                    run.halt.set()  # queued changes return at once as skipped
                    raise
    return interrupted
