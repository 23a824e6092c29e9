"""One apply's run: its collaborators, the halt flag, dispatch per executor kind,
and the pool of workers for ``--parallelism``.

Never prints; reports through ``on_event``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Protocol

from reconciler.api.orders import ApiClient, OrderJson
from reconciler.api.records import SubscriptionUpdater
from reconciler.errors import ApiError, AuthenticationError, FailureKind
from reconciler.model import (
    ApplyResult,
    Change,
    ChangeResult,
    Event,
    Executor,
    Outcome,
    Plan,
    Purchase,
)
from reconciler.state import StateWriter

OrderBuilder = Callable[[Purchase, int, str], OrderJson]


class Client(ApiClient, SubscriptionUpdater, Protocol):
    """Everything apply calls: verify and checkout, and subscription updates."""


def _ignore(event: Event) -> None:
    pass


@dataclass(frozen=True)
class Collaborators:
    """What a run works with: the API, the locked state, and where orders, ids,
    times and progress come from."""

    client: Client
    writer: StateWriter
    build_order: OrderBuilder
    new_order_id: Callable[[], str]
    now: Callable[[], str]
    on_event: Callable[[Event], None] = _ignore


def describe(exc: ApiError) -> tuple[str, ...]:
    return tuple(exc.describe().splitlines())


class Run:
    """One apply: the shared halt flag and the algorithm of each executor kind."""

    def __init__(self, parts: Collaborators) -> None:
        from reconciler.executor.checkout import checkout
        from reconciler.executor.update import update

        self.client = parts.client
        self.writer = parts.writer
        self.build_order = parts.build_order
        self.new_order_id = parts.new_order_id
        self.now = parts.now
        self.on_event = parts.on_event
        self.halt = threading.Event()
        self._events = threading.Lock()
        self._kinds: Mapping[Executor, Callable[[Run, Change], ChangeResult]] = {
            Executor.CHECKOUT: checkout,
            Executor.UPDATE: update,
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
            result = self._kinds[change.executor](self, change)
        except BaseException:
            # A bug, a state write that failed, Ctrl-C: whatever was in flight may
            # have taken effect, so nothing new may start.
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

    def halt_if_hopeless(self, exc: ApiError) -> None:
        """Stop starting changes when no later one can succeed either: the
        credentials were refused, or the API stayed unreachable through retries."""
        if isinstance(exc, AuthenticationError) or exc.kind is FailureKind.RETRYABLE:
            self.halt.set()


#: The executor kinds that call the API (``apply``); state writes are ``write_state``'s.
API_KINDS = frozenset({Executor.CHECKOUT, Executor.UPDATE})


def calling(plan: Plan) -> tuple[Change, ...]:
    """The changes of ``plan`` that call the API, in address order."""
    return tuple(c for c in plan.changes if c.executor in API_KINDS)


def apply(plan: Plan, parts: Collaborators, *, parallelism: int = 1) -> ApplyResult:
    """Carry out every change of ``plan`` that calls the API; see the package docstring.

    The caller holds the state lock, has made the plan's state writes and has refused
    plans with conflicts. With ``parallelism`` 1 each result is recorded before the
    next change starts; with more, up to that many run at once.
    """
    run = Run(parts)
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
    pending = parts.writer.state.pending

    def unfinished(change: Change) -> ChangeResult:
        # Interrupted in flight: its order or update may have been sent (pending) or not.
        op = pending.get(change.address)
        if op is None:
            return ChangeResult(change.address, change.delta, Outcome.SKIPPED)
        return ChangeResult(
            change.address, change.delta, Outcome.PENDING, 0.0, op.external_order_id
        )

    ordered = tuple(results.get(c.address) or unfinished(c) for c in changes)
    return ApplyResult(ordered, interrupted)


def _run_parallel(
    run: Run, changes: Sequence[Change], parallelism: int, results: dict[str, ChangeResult]
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
