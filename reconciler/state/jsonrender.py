"""The state file's text, written by hand.

``render`` gives exactly ``json.dumps(document, sort_keys=True, indent=2)`` plus a
newline (tests compare the two), because ``json`` pretty-prints in pure Python,
which takes seconds for 50,000 purchases. Reading is ``jsonformat``'s. No I/O.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TypeVar

from reconciler.model import (
    STATE_VERSION,
    Adjustment,
    CheckoutRecord,
    PendingOperation,
    RecordedPurchase,
    State,
    SubscriptionChange,
    UpdateRecord,
)
from reconciler.state.jsonformat import (
    ACKNOWLEDGED_KEY,
    JOURNAL_KEY,
    JOURNAL_RUN_KEY,
    JournalMark,
    acknowledged_text,
)

_T = TypeVar("_T")
_quote = json.dumps


def render(state: State, mark: JournalMark | None = None) -> str:
    """The state file's text: exactly ``json.dumps(document, sort_keys=True, indent=2)``
    plus a newline.

    Written out by hand because ``json`` pretty-prints in pure Python, which takes
    seconds for 50,000 purchases; the tests compare the two.
    """
    marker = ""
    if mark is not None:
        marker = f'  "{JOURNAL_KEY}": {_quote(mark.journal)},\n'
        if mark.run is not None:
            # Sorted first, so it sits at a fixed offset in the file's first sector.
            marker = (
                f'  "{ACKNOWLEDGED_KEY}": "{acknowledged_text(mark.acknowledged)}",\n'
                + marker
                + f'  "{JOURNAL_RUN_KEY}": {_quote(mark.run)},\n'
            )
    return (
        "{\n" + marker + f'  "lineage": {_quote(state.lineage)},\n'
        f'  "pending": {_render_table(state.pending, _render_pending)},\n'
        f'  "purchases": {_render_table(state.purchases, _render_purchase)},\n'
        f'  "serial": {state.serial},\n'
        f'  "version": {STATE_VERSION}\n'
        "}\n"
    )


_quote = json.dumps


def _render_table(table: Mapping[str, _T], render_one: Callable[[_T], str]) -> str:
    if not table:
        return "{}"
    rows = ",\n".join(f"    {_quote(a)}: {render_one(table[a])}" for a in sorted(table))
    return "{\n" + rows + "\n  }"


def _render_checkout(record: CheckoutRecord) -> str:
    evidence = ""
    if record.evidence is not None:
        evidence = f'          "evidence": {_quote(record.evidence)},\n'
    subscription = ""
    if record.subscription is not None:
        subscription = f'          "subscription": {record.subscription},\n'
    return (
        "{\n" + evidence + f'          "externalOrderId": {_quote(record.external_order_id)},\n'
        f'          "quantity": {record.quantity},\n'
        + subscription
        + f'          "time": {_quote(record.time)}\n'
        "        }"
    )


def _render_list(values: list[str], indent: str) -> str:
    """A JSON array of already rendered scalars, one per line, as ``json.dumps`` indents."""
    items = ",\n".join(f"{indent}  {v}" for v in values)
    return "[\n" + items + f"\n{indent}]"


def _render_change(change: SubscriptionChange, indent: str, last: bool) -> str:
    tail = "" if last else ","
    return (
        f'{indent}"field": {_quote(change.field.value)},\n'
        f'{indent}"from": {change.before},\n'
        f'{indent}"subscription": {change.subscription},\n'
        f'{indent}"to": {change.after}{tail}\n'
    )


def _render_update(record: UpdateRecord) -> str:
    pad = "          "
    evidence = f'{pad}"evidence": {_quote(record.evidence)},\n' if record.evidence else ""
    change = record.change
    return (
        "{\n" + evidence + f'{pad}"field": {_quote(change.field.value)},\n'
        f'{pad}"from": {change.before},\n'
        f'{pad}"subscription": {change.subscription},\n'
        f'{pad}"time": {_quote(record.time)},\n'
        f'{pad}"to": {change.after}\n'
        "        }"
    )


def _render_adjustment(adjustment: Adjustment) -> str:
    return (
        "{\n"
        f'          "evidence": {_quote(adjustment.evidence)},\n'
        f'          "quantity": {adjustment.quantity},\n'
        f'          "source": {_quote(adjustment.source)},\n'
        f'          "time": {_quote(adjustment.time)}\n'
        "        }"
    )


def _render_purchase(purchase: RecordedPurchase) -> str:
    identity = purchase.identity
    checkouts = "[]"
    if purchase.checkouts:
        items = ",\n".join(f"        {_render_checkout(c)}" for c in purchase.checkouts)
        checkouts = "[\n" + items + "\n      ]"
    adjustments = ""
    if purchase.adjustments:
        items = ",\n".join(f"        {_render_adjustment(a)}" for a in purchase.adjustments)
        adjustments = '      "adjustments": [\n' + items + "\n      ],\n"
    owned = ""
    if purchase.subscriptions:
        ids = _render_list([str(i) for i in purchase.subscriptions], "      ")
        owned = f'      "subscriptions": {ids},\n'
    tail = ""
    if purchase.unseen:
        orders = _render_list([_quote(o) for o in purchase.unseen], "      ")
        tail += f',\n      "unseen": {orders}'
    if purchase.updates:
        items = ",\n".join(f"        {_render_update(u)}" for u in purchase.updates)
        tail += ',\n      "updates": [\n' + items + "\n      ]"
    return (
        "{\n" + adjustments + f'      "billingCycle": {_quote(identity.billing_cycle)},\n'
        f'      "checkouts": {checkouts},\n'
        f'      "customerTenantId": {identity.customer_tenant_id},\n'
        f'      "productId": {_quote(identity.product_id)},\n'
        f'      "quantity": {purchase.quantity},\n'
        f'      "skuId": {_quote(identity.sku_id)},\n'
        + owned
        + f'      "termDuration": {_quote(identity.term_duration)},\n'
        f'      "type": {_quote(identity.type)}' + tail + "\n"
        "    }"
    )


def _render_pending(op: PendingOperation) -> str:
    identity = op.identity
    update = ""
    if op.update is not None:
        update = ',\n      "update": {\n' + _render_change(op.update, "        ", True) + "      }"
    return (
        "{\n"
        f'      "billingCycle": {_quote(identity.billing_cycle)},\n'
        f'      "customerTenantId": {identity.customer_tenant_id},\n'
        f'      "externalOrderId": {_quote(op.external_order_id)},\n'
        f'      "productId": {_quote(identity.product_id)},\n'
        f'      "quantity": {op.quantity},\n'
        f'      "skuId": {_quote(identity.sku_id)},\n'
        f'      "termDuration": {_quote(identity.term_duration)},\n'
        f'      "time": {_quote(op.time)},\n'
        f'      "type": {_quote(identity.type)}' + update + "\n"
        "    }"
    )
