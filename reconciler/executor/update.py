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

from typing import TYPE_CHECKING

from reconciler.api.records import SubscriptionDetail
from reconciler.errors import ApiError, FailureKind
from reconciler.executor.run import describe
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
    from reconciler.executor.run import Run

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

    def failed(*errors: str) -> ChangeResult:
        run.writer.remove_pending(change.address)
        return ChangeResult(
            change.address, change.delta, Outcome.FAILED, 0.0, step.operation, errors
        )

    def pending(*errors: str) -> ChangeResult:
        run.halt.set()
        return ChangeResult(
            change.address, change.delta, Outcome.PENDING, 0.0, step.operation, errors
        )

    def done(evidence: str | None) -> None:
        run.writer.record_update(change.address, UpdateRecord(step, run.now(), evidence))

    run.writer.add_pending(
        PendingOperation(
            change.address, change.identity, step.operation, step.seats, run.now(), update=step
        )
    )
    try:
        current = run.client.get_subscription(step.subscription)
    except ApiError as exc:
        run.halt_if_hopeless(exc)
        return failed(*describe(exc))
    found = value(current, step.field)
    if found == step.after:
        done(f"subscription {step.subscription} already had {step.after} when read")
        return None
    if found != step.before:
        return failed(
            f"subscription {step.subscription} has {_shown(found)}, not {step.before} as "
            "planned: someone changed it, so nothing was sent; plan again"
        )
    for _ in range(1 + RESENDS):
        try:
            answered = put(run.client, current, step)
        except ApiError as exc:
            if exc.kind is not FailureKind.AMBIGUOUS:
                run.halt_if_hopeless(exc)
                return failed(*describe(exc))
            try:
                current = run.client.get_subscription(step.subscription)
            except ApiError as again:
                return pending(*describe(exc), *describe(again))
            found = value(current, step.field)
            if found == step.after:
                done(f"read back after a lost answer: subscription {step.subscription} has {found}")
                return None
            if found != step.before:
                return pending(
                    *describe(exc),
                    f"read back: subscription {step.subscription} has {_shown(found)}, neither "
                    f"{step.before} nor {step.after}: someone else changed it",
                )
            if exc.status is None:
                # No answer: the PUT may still arrive, and carries every field as it was;
                # sent again and followed by this change's next step, it could undo that.
                return pending(
                    *describe(exc),
                    f"read back: subscription {step.subscription} still has {step.before}, but "
                    "the update got no answer and may still arrive; the next run reads it back",
                )
            continue  # answered, not made: the same absolute values are safe to send again
        if value(answered, step.field) != step.after:
            return pending(
                f"the API answered the update of subscription {step.subscription} with "
                f"{_shown(value(answered, step.field))}, not {step.after}"
            )
        done(None)
        return None
    return failed(
        f"the update of subscription {step.subscription} was not made after {1 + RESENDS} "
        "attempts whose answers were lost"
    )


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
