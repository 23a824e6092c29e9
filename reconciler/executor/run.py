"""One apply's driver: dispatch per executor kind, and the pool of workers for
``--parallelism`` under an adaptive limit.

Never prints; reports through ``on_event``.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait

from reconciler.executor.checkout import checkout
from reconciler.executor.context import Collaborators, Kind, Run
from reconciler.executor.update import update
from reconciler.model import (
    ApplyResult,
    Change,
    ChangeResult,
    Event,
    Executor,
    Outcome,
    Plan,
)


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


#: The algorithm of each executor kind that calls the API.
KINDS: Mapping[Executor, Kind] = {Executor.CHECKOUT: checkout, Executor.UPDATE: update}


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
        run = Run(parts, KINDS, overlap=True)
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
        run = Run(parts, KINDS)
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
