"""One apply's run: its collaborators, the halt flag, dispatch per executor kind,
and the pool of workers for ``--parallelism``.

Never prints; reports through ``on_event``.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
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


class AdaptiveLimit:
    """How many changes may be in flight: AIMD on the API's 429 answers.

    Starts at ``ceiling`` (``--parallelism``). A 429 (reported through ``throttled``)
    halves the limit, at most once per ``hold`` seconds or per the Retry-After it came
    with, so that the answers of requests already in flight count as one signal.
    The limit grows back by one for every ``hold`` seconds without a 429 (checked as
    changes complete), never past ``ceiling``: a rate limit is counted in seconds,
    so growing by the round trip, as TCP does, would only run into it again at once.
    Both return the new whole limit when it changed, else None. Thread-safe.
    """

    def __init__(
        self,
        ceiling: int,
        *,
        hold: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ceiling = max(1, ceiling)
        self._limit = self.ceiling
        self._in_flight = 0
        self._hold = hold
        self._clock = clock
        self._calm_from = -float("inf")
        self._cond = threading.Condition()

    @property
    def limit(self) -> int:
        with self._cond:
            return self._limit

    def acquire(self) -> None:
        """Wait for a free slot (interruptible by Ctrl-C in the main thread)."""
        with self._cond:
            while self._in_flight >= self._limit:
                self._cond.wait(0.5)
            self._in_flight += 1

    def release(self, *, completed: bool) -> int | None:
        """A change ended; one that ``completed`` after a calm ``hold`` raises the limit."""
        with self._cond:
            self._in_flight -= 1
            changed = None
            if completed and self._limit < self.ceiling:
                now = self._clock()
                if now >= self._calm_from + self._hold:
                    self._calm_from = now
                    self._limit += 1
                    changed = self._limit
            self._cond.notify_all()
            return changed

    def throttled(self, retry_after: float | None) -> int | None:
        """The API answered 429: halve the limit, once per burst of such answers."""
        with self._cond:
            now = self._clock()
            if now < self._calm_from:
                return None
            self._calm_from = now + max(self._hold, retry_after or 0.0)
            halved = max(1, self._limit // 2)
            changed = halved if halved != self._limit else None
            self._limit = halved
            return changed


class Run:
    """One apply: the shared halt flag and the algorithm of each executor kind.

    With ``overlap`` (parallelism 1) the write that records a checkout's 204 is made
    on a helper thread while the next change is verified; that change waits for it
    (``settle_previous``) before it writes its own pending entry, so each result is
    still durable before the next checkout is sent.
    """

    def __init__(self, parts: Collaborators, *, overlap: bool = False) -> None:
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
        self._current = threading.local()
        self._recorder = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="record") if overlap else None
        )
        self._write_later: Callable[[], None] | None = None
        self._tail: Future[ChangeResult] | None = None
        #: Results whose final write was made on the helper thread.
        self.recorded: dict[str, ChangeResult] = {}

    def emit(self, event: Event) -> None:
        with self._events:
            self.on_event(event)

    @property
    def current(self) -> Change | None:
        """The change this thread is carrying out."""
        change: Change | None = getattr(self._current, "change", None)
        return change

    def run_one(self, change: Change) -> ChangeResult | None:
        """Carry out ``change``; None when its final write was left to the helper
        thread (overlap), whose result ``settle_previous`` collects."""
        if self.halt.is_set():
            return ChangeResult(change.address, change.delta, Outcome.SKIPPED)
        if change.executor is not Executor.CHECKOUT:
            self.settle_previous()
        self.emit(Event("started", change))
        started = time.monotonic()
        self._current.change = change
        try:
            result = self._kinds[change.executor](self, change)
        except BaseException:
            # A bug, a state write that failed, Ctrl-C: whatever was in flight may
            # have taken effect, so nothing new may start.
            self.halt.set()
            self._write_later = None
            raise
        finally:
            self._current.change = None
        later, self._write_later = self._write_later, None
        if later is not None and self._recorder is not None:
            self._tail = self._recorder.submit(self._record, later, change, started, result)
            return None
        return self._finished(change, started, result)

    def record(self, write: Callable[[], None]) -> None:
        """Make the write that records a change's result: now, or with ``overlap``
        on the helper thread once the kind returns."""
        if self._recorder is None:
            write()
        else:
            self._write_later = write

    def settle_previous(self) -> None:
        """Wait until the previous change's final write is durable (overlap); raises
        what that write raised."""
        tail, self._tail = self._tail, None
        if tail is not None:
            result = tail.result()
            self.recorded[result.address] = result

    def close(self) -> None:
        """Wait for the helper thread's last write (overlap) and stop it."""
        if self._recorder is not None:
            try:
                self.settle_previous()
            finally:
                self._recorder.shutdown(wait=True)

    def _record(
        self, write: Callable[[], None], change: Change, started: float, result: ChangeResult
    ) -> ChangeResult:
        try:
            write()
        except BaseException:
            self.halt.set()
            raise
        return self._finished(change, started, result)

    def _finished(self, change: Change, started: float, result: ChangeResult) -> ChangeResult:
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
    next checkout is sent (the next change is verified meanwhile); with more, up to
    that many run at once, fewer while the API answers 429 (``AdaptiveLimit``).
    """
    changes = list(calling(plan))
    results: dict[str, ChangeResult] = {}
    interrupted = False
    if parallelism <= 1:
        run = Run(parts, overlap=True)
        try:
            try:
                for change in changes:
                    done = run.run_one(change)
                    if done is not None:
                        results[change.address] = done
            except KeyboardInterrupt:
                interrupted = True
        finally:
            run.close()
        results.update(run.recorded)
    else:
        run = Run(parts)
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
    """Run changes on a pool, as many at once as the adaptive limit allows; on Ctrl-C
    start nothing new and let in-flight ones finish."""
    limit = AdaptiveLimit(parallelism)
    watch = _watch_throttling(run, limit)
    interrupted = False
    failure: list[BaseException] = []
    futures: list[Future[ChangeResult | None]] = []

    def done(change: Change, future: Future[ChangeResult | None]) -> None:
        error = future.exception()
        result = None if error is not None else future.result()
        raised = limit.release(completed=result is not None and result.outcome in _COMPLETED)
        if raised is not None:
            run.emit(Event("recovered", change, concurrency=raised))
        if error is not None:
            run.halt.set()  # changes not yet started return at once as skipped
            failure.append(error)
        elif result is not None:
            results[change.address] = result

    try:
        with ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="apply") as pool:
            for change in changes:
                try:
                    if not run.halt.is_set():
                        limit.acquire()
                except KeyboardInterrupt:
                    interrupted = True
                    run.halt.set()
                if run.halt.is_set():
                    skipped = run.run_one(change)
                    assert skipped is not None
                    results[change.address] = skipped
                    continue
                future = pool.submit(run.run_one, change)
                future.add_done_callback(functools.partial(done, change))
                futures.append(future)
            interrupted = _wait_all(run, futures) or interrupted
    finally:
        if watch is not None:
            watch(None)
    if failure:
        raise failure[0]
    return interrupted


def _watch_throttling(run: Run, limit: AdaptiveLimit) -> Callable[..., None] | None:
    """Have the client report each 429 to ``limit``; returns how to stop that (None
    for a client that cannot report them: it runs at --parallelism throughout)."""

    def throttled(retry_after: float | None) -> None:
        # Called by the client on the worker thread whose call was answered 429.
        lowered = limit.throttled(retry_after)
        change = run.current
        if lowered is not None and change is not None:
            run.emit(Event("throttled", change, concurrency=lowered, retry_after=retry_after))

    watch: Callable[..., None] | None = getattr(run.client, "watch_throttling", None)
    if watch is not None:
        watch(throttled)
    return watch


def _wait_all(run: Run, futures: Sequence[Future[ChangeResult | None]]) -> bool:
    """Wait for every change in flight; True when Ctrl-C came meanwhile."""
    interrupted = False
    while True:
        try:
            wait(futures)
            return interrupted
        except KeyboardInterrupt:
            interrupted = True
            run.halt.set()


_COMPLETED = frozenset({Outcome.PURCHASED, Outcome.UPDATED})
