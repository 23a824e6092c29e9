"""The PostgreSQL state's tables: every row it reads and writes.

The SQL of ``PostgresStateStore`` lives here (the schema's migrations are
``pgschema``'s) so that the store itself only connects, locks and
fences. Each function works inside the caller's transaction; none commits, locks
or decides anything.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from reconciler.errors import StateError
from reconciler.model import (
    IDENTITY_FIELDS,
    Adjustment,
    CheckoutRecord,
    PendingOperation,
    RecordedPurchase,
    State,
    UpdateRecord,
)
from reconciler.state.jsonrecords import entry_line, parse_parts
from reconciler.state.jsonvalues import Invalid
from reconciler.state.pgschema import (
    SCHEMA,
    schema_version,
)
from reconciler.state.writes import Keep, Write

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "apply_write",
    "has_rows",
    "insert_adjustments",
    "insert_checkouts",
    "insert_history",
    "insert_pending",
    "insert_purchase",
    "insert_purchase_row",
    "insert_updates",
    "read_state",
]

#: Where each list row (checkouts, adjustments, updates) of an address was read,
#: by table and address: its positions, in the order read, to name a refused row.
_Positions = dict[tuple[str, str], list[int]]
#: Rows of one list table as the state file holds them, by address.
_Lists = dict[str, list[dict[str, Any]]]


def insert_history(
    conn: psycopg.Connection[Any], workspace: str, entries: list[dict[str, Any]]
) -> None:
    """History rows as ``PostgresStateStore.history`` returns them, kept as they were."""
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {SCHEMA}.history (workspace, serial, op, address, entry, written_at, "
            "run) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [
                (
                    workspace,
                    e["serial"],
                    e["op"],
                    e["address"],
                    json.dumps(e["entry"]),
                    e["written_at"],
                    json.dumps(e["run"]),
                )
                for e in entries
            ],
        )


def has_rows(conn: psycopg.Connection[Any], workspace: str) -> bool:
    """Whether a workspace holds any purchase or pending entry."""
    for table in ("purchases", "pending"):
        found = conn.execute(
            f"SELECT 1 FROM {SCHEMA}.{table} WHERE workspace = %s LIMIT 1", (workspace,)
        ).fetchone()
        if found:
            return True
    return False


def read_state(
    conn: psycopg.Connection[Any], workspace: str, lineage: Any, serial: Any, location: str
) -> State:
    """Every row of a workspace, as a State, each value checked as the state file's are.

    A row edited by hand into a value the file format refuses (a billing cycle it does
    not know, a tenant below 1, a time that is no UTC time, an empty lineage) is a
    ``StateError`` naming the workspace, the table and the row.
    """
    # A database an older reconciler set up, not yet upgraded by a locked run, has no
    # adjustments and no evidence.
    version = schema_version(conn)
    current = version >= 2
    owning = version >= 3
    positions: _Positions = {}
    checkouts = _read_checkouts(conn, workspace, positions, current=current, owning=owning)
    updates = _read_updates(conn, workspace, positions) if owning else {}
    adjustments = _read_adjustments(conn, workspace, positions) if current else {}
    purchases = _read_purchases(conn, workspace, checkouts, adjustments, updates, owning=owning)
    pending = _read_pending(conn, workspace, owning=owning)
    try:
        return parse_parts(lineage, serial, purchases, pending)
    except Invalid as exc:
        raise StateError(_invalid_row(exc, workspace, location, positions)) from None


def _read_checkouts(
    conn: psycopg.Connection[Any],
    workspace: str,
    positions: _Positions,
    *,
    current: bool,
    owning: bool,
) -> _Lists:
    evidence = "evidence" if current else "NULL"
    made = "subscription" if owning else "NULL"
    checkouts: _Lists = {}
    for address, position, order, quantity, at, said, sub in conn.execute(
        f"SELECT address, position, external_order_id, quantity, time, {evidence}, {made} "
        f"FROM {SCHEMA}.checkouts WHERE workspace = %s ORDER BY address, position",
        (workspace,),
    ):
        record = {"externalOrderId": order, "quantity": quantity, "time": at}
        if said is not None:
            record["evidence"] = said
        if sub is not None:
            record["subscription"] = sub
        checkouts.setdefault(address, []).append(record)
        positions.setdefault(("checkouts", address), []).append(position)
    return checkouts


def _read_updates(conn: psycopg.Connection[Any], workspace: str, positions: _Positions) -> _Lists:
    updates: _Lists = {}
    for address, position, sub, field, before, after, at, said in conn.execute(
        f"SELECT address, position, subscription, field, before, after, time, evidence "
        f"FROM {SCHEMA}.updates WHERE workspace = %s ORDER BY address, position",
        (workspace,),
    ):
        update = {"subscription": sub, "field": field, "from": before, "to": after, "time": at}
        if said is not None:
            update["evidence"] = said
        updates.setdefault(address, []).append(update)
        positions.setdefault(("updates", address), []).append(position)
    return updates


def _read_adjustments(
    conn: psycopg.Connection[Any], workspace: str, positions: _Positions
) -> _Lists:
    adjustments: _Lists = {}
    for address, position, delta, at, source, said in conn.execute(
        f"SELECT address, position, quantity, time, source, evidence "
        f"FROM {SCHEMA}.adjustments WHERE workspace = %s ORDER BY address, position",
        (workspace,),
    ):
        adjustment = {"quantity": delta, "time": at, "source": source, "evidence": said}
        adjustments.setdefault(address, []).append(adjustment)
        positions.setdefault(("adjustments", address), []).append(position)
    return adjustments


def _read_purchases(
    conn: psycopg.Connection[Any],
    workspace: str,
    checkouts: _Lists,
    adjustments: _Lists,
    updates: _Lists,
    *,
    owning: bool,
) -> dict[str, dict[str, Any]]:
    purchases: dict[str, dict[str, Any]] = {}
    lists = "subscriptions, unseen" if owning else "'{}'::bigint[], '{}'::text[]"
    for address, *identity, quantity, owned, unseen in conn.execute(
        f"SELECT address, customer_tenant_id, product_id, sku_id, billing_cycle, "
        f"term_duration, type, quantity, {lists} FROM {SCHEMA}.purchases WHERE workspace = %s "
        "ORDER BY address",
        (workspace,),
    ):
        purchase = {
            **dict(zip(IDENTITY_FIELDS, identity, strict=True)),
            "quantity": quantity,
            "checkouts": checkouts.get(address, []),
        }
        if address in adjustments:
            purchase["adjustments"] = adjustments[address]
        if address in updates:
            purchase["updates"] = updates[address]
        if owned:
            purchase["subscriptions"] = list(owned)
        if unseen:
            purchase["unseen"] = list(unseen)
        purchases[address] = purchase
    return purchases


def _read_pending(
    conn: psycopg.Connection[Any], workspace: str, *, owning: bool
) -> dict[str, dict[str, Any]]:
    pending: dict[str, dict[str, Any]] = {}
    changes = (
        "update_subscription, update_field, update_before, update_after"
        if owning
        else "NULL, NULL, NULL, NULL"
    )
    for address, *identity, order, quantity, at, sub, field, before, after in conn.execute(
        f"SELECT address, customer_tenant_id, product_id, sku_id, billing_cycle, "
        f"term_duration, type, external_order_id, quantity, time, {changes} "
        f"FROM {SCHEMA}.pending WHERE workspace = %s ORDER BY address",
        (workspace,),
    ):
        entry = {
            **dict(zip(IDENTITY_FIELDS, identity, strict=True)),
            "externalOrderId": order,
            "quantity": quantity,
            "time": at,
        }
        if sub is not None:
            entry["update"] = {"subscription": sub, "field": field, "from": before, "to": after}
        pending[address] = entry
    return pending


def _invalid_row(
    exc: Invalid,
    workspace: str,
    location: str,
    positions: _Positions,
) -> str:
    """Which row of which table holds the value the state format refused, and why."""
    path = list(exc.path)
    table, row = "workspaces", f"name {json.dumps(workspace)}"
    if path and path[0] in ("purchases", "pending") and len(path) > 1:
        table = path.pop(0)
        address = path.pop(0)[1:-1]  # '["acme/a"]' -> '"acme/a"'
        row = f"workspace {json.dumps(workspace)}, address {address}"
        if (
            table == "purchases"
            and len(path) > 1
            and path[0]
            in (
                "checkouts",
                "adjustments",
                "updates",
            )
        ):
            table = path.pop(0)
            index = int(path.pop(0)[1:-1])
            numbers = positions.get((table, json.loads(address)), [])
            position = numbers[index] if index < len(numbers) else index
            row += f", position {position}"
    field = Invalid(exc.message, tuple(path))
    return (
        f"the state at {location} has a row this reconciler refuses, in table "
        f"{SCHEMA}.{table} ({row}): {field}. Was it edited by hand? Put the value right, "
        "or restore the row from the state history"
    )


def insert_purchase(
    conn: psycopg.Connection[Any], workspace: str, purchase: RecordedPurchase
) -> None:
    insert_purchase_row(conn, workspace, purchase)
    insert_checkouts(conn, workspace, purchase.address, purchase.checkouts, start=0)
    insert_adjustments(conn, workspace, purchase.address, purchase.adjustments, start=0)
    insert_updates(conn, workspace, purchase.address, purchase.updates, start=0)


def insert_purchase_row(
    conn: psycopg.Connection[Any], workspace: str, purchase: RecordedPurchase
) -> None:
    i = purchase.identity
    conn.execute(
        f"INSERT INTO {SCHEMA}.purchases (workspace, address, customer_tenant_id, "
        "product_id, sku_id, billing_cycle, term_duration, type, quantity, subscriptions, "
        "unseen) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (workspace, address) DO UPDATE SET "
        "customer_tenant_id = EXCLUDED.customer_tenant_id, product_id = EXCLUDED.product_id, "
        "sku_id = EXCLUDED.sku_id, billing_cycle = EXCLUDED.billing_cycle, "
        "term_duration = EXCLUDED.term_duration, type = EXCLUDED.type, "
        "quantity = EXCLUDED.quantity, subscriptions = EXCLUDED.subscriptions, "
        "unseen = EXCLUDED.unseen",
        (
            workspace,
            purchase.address,
            i.customer_tenant_id,
            i.product_id,
            i.sku_id,
            i.billing_cycle,
            i.term_duration,
            i.type,
            purchase.quantity,
            list(purchase.subscriptions),
            list(purchase.unseen),
        ),
    )


def _insert_list_rows(
    conn: psycopg.Connection[Any],
    table: str,
    columns: str,
    workspace: str,
    address: str,
    rows: list[tuple[Any, ...]],
    start: int,
) -> None:
    """Append one address's list rows (checkouts, adjustments) from position ``start``."""
    if not rows[start:]:
        return
    marks = ", ".join(["%s"] * (3 + len(rows[0])))
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {SCHEMA}.{table} (workspace, address, position, {columns}) "
            f"VALUES ({marks})",
            [(workspace, address, n, *row) for n, row in enumerate(rows[start:], start)],
        )


def insert_checkouts(
    conn: psycopg.Connection[Any],
    workspace: str,
    address: str,
    checkouts: tuple[CheckoutRecord, ...],
    *,
    start: int,
) -> None:
    rows = [
        (c.external_order_id, c.quantity, c.time, c.evidence, c.subscription) for c in checkouts
    ]
    columns = "external_order_id, quantity, time, evidence, subscription"
    _insert_list_rows(conn, "checkouts", columns, workspace, address, rows, start)


def insert_adjustments(
    conn: psycopg.Connection[Any],
    workspace: str,
    address: str,
    adjustments: tuple[Adjustment, ...],
    *,
    start: int,
) -> None:
    rows = [(a.quantity, a.time, a.source, a.evidence) for a in adjustments]
    _insert_list_rows(
        conn, "adjustments", "quantity, time, source, evidence", workspace, address, rows, start
    )


def insert_updates(
    conn: psycopg.Connection[Any],
    workspace: str,
    address: str,
    updates: tuple[UpdateRecord, ...],
    *,
    start: int,
) -> None:
    rows = [
        (
            u.change.subscription,
            u.change.field.value,
            u.change.before,
            u.change.after,
            u.time,
            u.evidence,
        )
        for u in updates
    ]
    columns = "subscription, field, before, after, time, evidence"
    _insert_list_rows(conn, "updates", columns, workspace, address, rows, start)


def insert_pending(conn: psycopg.Connection[Any], workspace: str, op: PendingOperation) -> None:
    i = op.identity
    change = op.update
    conn.execute(
        f"INSERT INTO {SCHEMA}.pending (workspace, address, customer_tenant_id, product_id, "
        "sku_id, billing_cycle, term_duration, type, external_order_id, quantity, time, "
        "update_subscription, update_field, update_before, update_after) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            workspace,
            op.address,
            i.customer_tenant_id,
            i.product_id,
            i.sku_id,
            i.billing_cycle,
            i.term_duration,
            i.type,
            op.external_order_id,
            op.quantity,
            op.time,
            change.subscription if change else None,
            change.field.value if change else None,
            change.before if change else None,
            change.after if change else None,
        ),
    )


def apply_write(conn: psycopg.Connection[Any], ws: str, write: Write, run: str) -> None:
    """Every row one ledger write changes; the caller wraps it in a fenced transaction."""
    if write.moved_from is not None:
        # A move is one transaction: the old rows go (their checkouts cascade)
        # before the new address gets the purchase with every checkout.
        conn.execute(
            f"DELETE FROM {SCHEMA}.purchases WHERE workspace = %s AND address = %s",
            (ws, write.moved_from),
        )
    if write.purchase is None:
        conn.execute(
            f"DELETE FROM {SCHEMA}.purchases WHERE workspace = %s AND address = %s",
            (ws, write.address),
        )
    elif not isinstance(write.purchase, Keep):
        _write_purchase(conn, ws, write, write.purchase)
    if write.pending is None:
        conn.execute(
            f"DELETE FROM {SCHEMA}.pending WHERE workspace = %s AND address = %s",
            (ws, write.address),
        )
    elif not isinstance(write.pending, Keep):
        insert_pending(conn, ws, write.pending)
    conn.execute(
        f"UPDATE {SCHEMA}.workspaces SET serial = %s, lineage = %s WHERE name = %s",
        (write.serial, write.lineage, ws),
    )
    conn.execute(
        f"INSERT INTO {SCHEMA}.history (workspace, serial, op, address, entry, run) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (ws, write.serial, write.op, write.address, entry_line(write), run),
    )


def _write_purchase(
    conn: psycopg.Connection[Any], ws: str, write: Write, purchase: RecordedPurchase
) -> None:
    """The purchase a write leaves at its address: its row, and the list rows it adds."""
    # Checkouts and adjustments only grow at an address: insert the rows after
    # those already there (all of them at a new address).
    before = conn.execute(
        f"SELECT (SELECT count(*) FROM {SCHEMA}.checkouts "
        "WHERE workspace = %s AND address = %s), "
        f"(SELECT count(*) FROM {SCHEMA}.adjustments WHERE workspace = %s AND address = %s), "
        f"(SELECT count(*) FROM {SCHEMA}.updates WHERE workspace = %s AND address = %s)",
        (ws, write.address, ws, write.address, ws, write.address),
    ).fetchone()
    known = int(before[0]) if before else 0
    adjusted = int(before[1]) if before else 0
    updated = int(before[2]) if before else 0
    if (
        known > len(purchase.checkouts)
        or adjusted > len(purchase.adjustments)
        or updated > len(purchase.updates)
    ):
        for table in ("checkouts", "adjustments", "updates"):
            conn.execute(
                f"DELETE FROM {SCHEMA}.{table} WHERE workspace = %s AND address = %s",
                (ws, write.address),
            )
        known = adjusted = updated = 0
    insert_purchase_row(conn, ws, purchase)
    if write.op == "link_subscriptions":
        # Checkouts whose subscription became known: their rows get it in place.
        with conn.cursor() as cur:
            cur.executemany(
                f"UPDATE {SCHEMA}.checkouts SET subscription = %s WHERE workspace = %s "
                "AND address = %s AND position = %s AND subscription IS DISTINCT FROM %s",
                [
                    (c.subscription, ws, write.address, n, c.subscription)
                    for n, c in enumerate(purchase.checkouts[:known])
                    if c.subscription is not None
                ],
            )
    insert_checkouts(conn, ws, write.address, purchase.checkouts, start=known)
    insert_adjustments(conn, ws, write.address, purchase.adjustments, start=adjusted)
    insert_updates(conn, ws, write.address, purchase.updates, start=updated)
