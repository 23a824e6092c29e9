"""What every executor kind works with: ``Run`` (the collaborators, the halt flag,
the events, the write recording a result) and ``describe``.

The kinds (``checkout``, ``update``) import this module; the driver (``run``)
imports them and this. Never prints; reports through ``on_event``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from reconciler.api.orders import ApiClient, OrderJson
from reconciler.api.records import SubscriptionUpdater
from reconciler.errors import ApiError, AuthenticationError, FailureKind
from reconciler.model import (
    Change,
    ChangeResult,
    Event,
    Executor,
    Outcome,
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


#: The algorithm of one executor kind: carry out one change in a run.
Kind = Callable[["Run", Change], ChangeResult]


class Run:
    """One apply: the shared halt flag, and the algorithm of each executor kind (``kinds``).

    With ``overlap`` (parallelism 1) the write that records a checkout's 204 is made
    on a helper thread while the next change is verified; that change waits for it
    (``settle_previous``) before it writes its own pending entry, so each result is
    still durable before the next checkout is sent.
    """

    def __init__(
        self,
        parts: Collaborators,
        kinds: Mapping[Executor, Kind],
        *,
        overlap: bool = False,
    ) -> None:
        self.client = parts.client
        self.writer = parts.writer
        self.build_order = parts.build_order
        self.new_order_id = parts.new_order_id
        self.now = parts.now
        self.on_event = parts.on_event
        self.halt = threading.Event()
        self._events = threading.Lock()
        self._kinds = kinds
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
