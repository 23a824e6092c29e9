"""Read before buying: a purchase Cloud-iQ already holds unaccounted seats of
becomes a conflict.

Pure: it must not read the API or the state; it only rewrites changes of a
``Plan`` from ``Observations`` the caller made.
"""

from __future__ import annotations

from dataclasses import replace

from reconciler.model import BUYING_ACTIONS, Action, Change, Plan
from reconciler.observe.drift import Observations, describe_subscriptions


def guard_purchases(plan: Plan, observations: Observations) -> Plan:
    """``plan`` with every buying change whose identity Cloud-iQ already holds
    unaccounted seats of turned into a conflict (unless the purchase acknowledges it).

    A lost, truncated or misplaced state then cannot buy the same licences again.
    """
    changes = tuple(_guard(change, observations) for change in plan.changes)
    return replace(plan, changes=changes) if changes != plan.changes else plan


def _guard(change: Change, observations: Observations) -> Change:
    buying = change.action in BUYING_ACTIONS or (change.action is Action.MOVE and change.delta > 0)
    desired = change.purchase
    if not buying or desired is None or desired.allow_additional_subscription:
        return change
    extra = observations.unaccounted(change.identity)
    if extra.seats <= 0:
        return change
    tenant = change.identity.customer_tenant_id
    held = f"{extra.seats} active seats ({describe_subscriptions(extra.subscriptions)})"
    if change.action is Action.PURCHASE:
        reason = (
            f"Cloud-iQ already holds {held} of this identity that no recorded address "
            f"accounts for; buying would add a second subscription. Adopt them with "
            f"`reconciler import --tenant {tenant}`, or set `allowAdditionalSubscription: "
            "true` on this purchase if a second subscription is wanted"
        )
    else:
        reason = (
            f"Cloud-iQ holds {held} of this identity, {extra.seats} more than recorded; "
            "run `reconciler refresh` to record them and plan again, or set "
            "`allowAdditionalSubscription: true` on this purchase to buy anyway"
        )
    if change.moved_from is not None:
        reason = f"moved from {change.moved_from}: {reason}"
    return replace(
        change,
        action=Action.CONFLICT,
        delta=0,
        reason=reason,
        moved_from=None,
    )
