"""The checkout kind: buy one change's seats exactly once.

Build the order with a fresh externalOrderId, verify it, record a ``pending``
entry durably, check out the order exactly as verify returned it, then on 204
record the seats and clear the pending entry in one durable write (at parallelism 1
made while the next change is verified, and durable before that change writes its
pending entry: ``Run.record``, ``Run.settle_previous``). A definitive
failure clears the pending entry; an ambiguous one keeps it and stops every
change not yet started.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.errors import ApiError, FailureKind
from reconciler.executor.context import describe
from reconciler.model import Change, ChangeResult, CheckoutRecord, Outcome, PendingOperation

if TYPE_CHECKING:
    from reconciler.executor.context import Run


def checkout(run: Run, change: Change) -> ChangeResult:
    purchase = change.purchase
    assert purchase is not None, "buying changes always carry their declaration"
    order_id = run.new_order_id()

    def failed(*errors: str) -> ChangeResult:
        return ChangeResult(change.address, change.delta, Outcome.FAILED, 0.0, order_id, errors)

    order = run.build_order(purchase, change.delta, order_id)
    try:
        verified = run.client.verify(order)
    except ApiError as exc:
        run.halt_if_hopeless(exc)
        return failed(*describe(exc))
    if not verified.ok:
        return failed(*(f"verify: {e.code}: {e.description}" for e in verified.errors))
    # With overlap (parallelism 1) the previous change's 204 may still be being
    # recorded: it is durable before this change writes or sends anything more.
    run.settle_previous()
    if run.halt.is_set():  # an ambiguous operation elsewhere: start nothing new
        return ChangeResult(change.address, change.delta, Outcome.SKIPPED)

    run.writer.add_pending(
        PendingOperation(change.address, change.identity, order_id, change.delta, run.now())
    )
    try:
        run.client.checkout(verified)
    except ApiError as exc:
        if exc.kind is FailureKind.AMBIGUOUS:
            run.halt.set()
            return ChangeResult(
                change.address, change.delta, Outcome.PENDING, 0.0, order_id, describe(exc)
            )
        # Definitive, or provably never reached the server: nothing was bought.
        run.writer.remove_pending(change.address)
        run.halt_if_hopeless(exc)
        return failed(*describe(exc))
    record = CheckoutRecord(order_id, change.delta, run.now())
    run.record(lambda: run.writer.record_checkout(change.address, change.identity, record))
    return ChangeResult(change.address, change.delta, Outcome.PURCHASED, 0.0, order_id)
