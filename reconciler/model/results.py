"""What apply did: an outcome per change, progress events, the result of a run.

Data only; no I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from reconciler.model.plans import Change


class Outcome(enum.StrEnum):
    PURCHASED = "purchased"
    #: The subscriptions were updated (seats lowered or raised, cancelled, renewal set).
    UPDATED = "updated"
    FAILED = "failed"
    PENDING = "pending"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class ChangeResult:
    address: str
    seats: int
    outcome: Outcome
    seconds: float = 0.0
    external_order_id: str | None = None
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class Event:
    """Progress: ``started`` when a change begins, ``finished`` with its result,
    ``moved`` when a move has been written; ``throttled`` when the number of changes
    apply runs at once was lowered to ``concurrency`` after the API answered
    ``change``'s call with 429 (with ``retry_after``), ``recovered`` when it was
    raised again as ``change`` completed."""

    kind: str
    change: Change
    result: ChangeResult | None = None
    concurrency: int | None = None
    retry_after: float | None = None


@dataclass(frozen=True)
class ApplyResult:
    results: tuple[ChangeResult, ...]
    interrupted: bool = False

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome is outcome)

    @property
    def seats_bought(self) -> int:
        """Seats added: bought by checkout, or raised by update."""
        return sum(
            r.seats
            for r in self.results
            if r.outcome is Outcome.PURCHASED or (r.outcome is Outcome.UPDATED and r.seats > 0)
        )

    @property
    def seats_removed(self) -> int:
        """Seats taken away by updates (decreases, cancellations), as a positive number."""
        return -sum(r.seats for r in self.results if r.outcome is Outcome.UPDATED and r.seats < 0)

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(
            r.outcome in (Outcome.PURCHASED, Outcome.UPDATED) for r in self.results
        )
