"""The update kind: PUT an address's subscriptions, each change exactly once.

Per subscription, in the plan's order: record a ``pending`` entry
``{subscription, from, to}`` durably, GET the subscription and compare (another
value than ``from`` means someone changed it: nothing is sent, the change
fails), PUT it whole with the one field changed, and record the result, which
clears the pending entry. After a lost answer the subscription is read back:
``to`` means done; ``from`` means the PUT may be sent again (its values are
absolute) when the API answered it (a 5xx, an unreadable answer), but when no
answer came at all (a timeout, a broken connection) it may still be on its way, a
whole subscription that would undo whatever is changed after it lands, so the
entry stays pending and the run stops, and the next run reads it back again;
anything else stays pending for a person. A refusal (a 4xx: for instance seats
outside the cancellation window) clears the pending entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from reconciler.api.records import SubscriptionDetail
from reconciler.errors import ApiError, FailureKind
from reconciler.executor.context import describe
from reconciler.model import (
    Change,
    ChangeResult,
    Outcome,
    PendingOperation,
    SubscriptionChange,
    UpdateField,
    UpdateRecord,
)

if TYPE_CHECKING:
    from reconciler.api.records import SubscriptionUpdater
    from reconciler.executor.context import Run

#: How often an update is sent again when reading it back shows it was not made.
RESENDS = 2


def update(run: Run, change: Change) -> ChangeResult:
    """Make every step of ``change``; the first that fails or stays pending ends it."""
    last = ""
    for step in change.steps:
        if run.halt.is_set():
            return ChangeResult(change.address, change.delta, Outcome.SKIPPED, 0.0, last or None)
        last = step.operation
        stopped = _step(run, change, step)
        if stopped is not None:
            return stopped
    return ChangeResult(change.address, change.delta, Outcome.UPDATED, 0.0, last or None)


def _step(run: Run, change: Change, step: SubscriptionChange) -> ChangeResult | None:
    """One PUT, exactly once; None when it took effect (and is recorded)."""
    return _Step(run, change, step).make()


@dataclass(frozen=True)
class _Step:
    """One PUT of one change: pending first, read and compare, send, read back."""

    run: Run
    change: Change
    step: SubscriptionChange

    def make(self) -> ChangeResult | None:
        run, change, step = self.run, self.change, self.step
        run.writer.add_pending(
            PendingOperation(
                change.address, change.identity, step.operation, step.seats, run.now(), update=step
            )
        )
        try:
            current = run.client.get_subscription(step.subscription)
        except ApiError as exc:
            run.halt_if_hopeless(exc)
            return self.failed(*describe(exc))
        found = value(current, step.field)
        if found == step.after:
            self.done(f"subscription {step.subscription} already had {step.after} when read")
            return None
        if found != step.before:
            return self.failed(
                f"subscription {step.subscription} has {_shown(found)}, not {step.before} as "
                "planned: someone changed it, so nothing was sent; plan again"
            )
        return self.send(current)

    def send(self, current: SubscriptionDetail) -> ChangeResult | None:
        """PUT ``current`` changed; after a lost answer read it back, and send again only
        when it shows the change was not made."""
        run, step = self.run, self.step
        for _ in range(1 + RESENDS):
            try:
                answered = put(run.client, current, step)
            except ApiError as exc:
                if exc.kind is not FailureKind.AMBIGUOUS:
                    run.halt_if_hopeless(exc)
                    return self.failed(*describe(exc))
                try:
                    current = run.client.get_subscription(step.subscription)
                except ApiError as again:
                    return self.pending(*describe(exc), *describe(again))
                found = value(current, step.field)
                if found == step.after:
                    self.done(
                        f"read back after a lost answer: subscription {step.subscription} "
                        f"has {found}"
                    )
                    return None
                if found != step.before:
                    return self.pending(
                        *describe(exc),
                        f"read back: subscription {step.subscription} has {_shown(found)}, "
                        f"neither {step.before} nor {step.after}: someone else changed it",
                    )
                if exc.status is None:
                    # No answer: the PUT may still arrive, and carries every field as it
                    # was; sent again and followed by this change's next step, it could
                    # undo that step.
                    return self.pending(
                        *describe(exc),
                        f"read back: subscription {step.subscription} still has "
                        f"{step.before}, but the update got no answer and may still arrive; "
                        "the next run reads it back",
                    )
                continue  # answered, not made: the same absolute values are safe to send again
            if value(answered, step.field) != step.after:
                return self.pending(
                    f"the API answered the update of subscription {step.subscription} with "
                    f"{_shown(value(answered, step.field))}, not {step.after}"
                )
            self.done(None)
            return None
        return self.failed(
            f"the update of subscription {step.subscription} was not made after "
            f"{1 + RESENDS} attempts whose answers were lost"
        )

    def failed(self, *errors: str) -> ChangeResult:
        self.run.writer.remove_pending(self.change.address)
        return self._result(Outcome.FAILED, errors)

    def pending(self, *errors: str) -> ChangeResult:
        self.run.halt.set()
        return self._result(Outcome.PENDING, errors)

    def done(self, evidence: str | None) -> None:
        record = UpdateRecord(self.step, self.run.now(), evidence)
        self.run.writer.record_update(self.change.address, record)

    def _result(self, outcome: Outcome, errors: tuple[str, ...]) -> ChangeResult:
        change = self.change
        return ChangeResult(change.address, change.delta, outcome, 0.0, self.step.operation, errors)


def value(detail: SubscriptionDetail, field: UpdateField) -> int | None:
    """What ``field`` is on ``detail``, as a step compares it (None: cannot be told)."""
    if field is UpdateField.CANCEL:
        return detail.quantity if detail.active else 0
    if field is UpdateField.AUTO_RENEW:
        return None if detail.auto_renew is None else int(detail.auto_renew)
    return detail.quantity if detail.active else None


def put(
    client: SubscriptionUpdater, current: SubscriptionDetail, step: SubscriptionChange
) -> SubscriptionDetail:
    if step.field is UpdateField.CANCEL:
        return client.cancel_subscription(current)
    if step.field is UpdateField.AUTO_RENEW:
        return client.update_subscription(current, auto_renew=bool(step.after))
    return client.update_subscription(current, quantity=step.after)


def _shown(found: int | None) -> str:
    return "a value that cannot be read" if found is None else str(found)
