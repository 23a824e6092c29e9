"""The PostgreSQL state's schema: its versioned migrations, applied once each, in order.

``MIGRATIONS`` is the schema's whole history; ``migrate`` applies what a database
lacks (under the caller's migration lock) and a database a newer reconciler
migrated further is refused. Each function works inside the caller's
transaction; none commits, locks, or reads or writes a state's rows (that is
``pgrows``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reconciler.errors import StateError

if TYPE_CHECKING:
    import psycopg

SCHEMA = "reconciler"

#: Versioned migrations: each applied once, in order, recorded in schema_migrations.
MIGRATIONS: tuple[str, ...] = (
    f"""
    CREATE TABLE {SCHEMA}.workspaces (
        name text PRIMARY KEY,
        lineage text NOT NULL,
        serial bigint NOT NULL DEFAULT 0 CHECK (serial >= 0),
        lock_epoch bigint NOT NULL DEFAULT 0,
        lock_holder jsonb,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE {SCHEMA}.purchases (
        workspace text NOT NULL REFERENCES {SCHEMA}.workspaces (name) ON DELETE CASCADE,
        address text NOT NULL,
        customer_tenant_id bigint NOT NULL,
        product_id text NOT NULL,
        sku_id text NOT NULL,
        billing_cycle text NOT NULL,
        term_duration text NOT NULL,
        type text NOT NULL,
        quantity integer NOT NULL CHECK (quantity >= 1),
        PRIMARY KEY (workspace, address)
    );
    CREATE TABLE {SCHEMA}.checkouts (
        workspace text NOT NULL,
        address text NOT NULL,
        position integer NOT NULL,
        external_order_id text NOT NULL,
        quantity integer NOT NULL CHECK (quantity >= 1),
        time text NOT NULL,
        PRIMARY KEY (workspace, address, position),
        FOREIGN KEY (workspace, address) REFERENCES {SCHEMA}.purchases (workspace, address)
            ON DELETE CASCADE
    );
    CREATE TABLE {SCHEMA}.pending (
        workspace text NOT NULL REFERENCES {SCHEMA}.workspaces (name) ON DELETE CASCADE,
        address text NOT NULL,
        customer_tenant_id bigint NOT NULL,
        product_id text NOT NULL,
        sku_id text NOT NULL,
        billing_cycle text NOT NULL,
        term_duration text NOT NULL,
        type text NOT NULL,
        external_order_id text NOT NULL,
        quantity integer NOT NULL CHECK (quantity >= 1),
        time text NOT NULL,
        PRIMARY KEY (workspace, address)
    );
    CREATE TABLE {SCHEMA}.history (
        workspace text NOT NULL REFERENCES {SCHEMA}.workspaces (name) ON DELETE CASCADE,
        serial bigint NOT NULL,
        op text NOT NULL,
        address text NOT NULL,
        entry jsonb NOT NULL,
        written_at timestamptz NOT NULL DEFAULT now(),
        run jsonb NOT NULL,
        PRIMARY KEY (workspace, serial)
    );
    """,
    # 2: refresh. Adjustments (seats changed in the portal) in each purchase's history,
    # the evidence of a checkout refresh settled, and purchases of 0 seats (every seat
    # cancelled in the portal, as adjustments record).
    f"""
    CREATE TABLE {SCHEMA}.adjustments (
        workspace text NOT NULL,
        address text NOT NULL,
        position integer NOT NULL,
        quantity integer NOT NULL CHECK (quantity <> 0),
        time text NOT NULL,
        source text NOT NULL,
        evidence text NOT NULL,
        PRIMARY KEY (workspace, address, position),
        FOREIGN KEY (workspace, address) REFERENCES {SCHEMA}.purchases (workspace, address)
            ON DELETE CASCADE
    );
    ALTER TABLE {SCHEMA}.checkouts ADD COLUMN evidence text;
    ALTER TABLE {SCHEMA}.purchases DROP CONSTRAINT purchases_quantity_check;
    ALTER TABLE {SCHEMA}.purchases ADD CONSTRAINT purchases_quantity_check
        CHECK (quantity >= 0);
    """,
    # 3: Cloud-iQ as the truth. The subscriptions each address owns, the checkouts whose
    # subscription is not listed yet, the subscription a checkout made, the updates of
    # subscriptions that took effect, and pending updates (whose seats may be fewer).
    f"""
    ALTER TABLE {SCHEMA}.purchases ADD COLUMN subscriptions bigint[] NOT NULL DEFAULT '{{}}';
    ALTER TABLE {SCHEMA}.purchases ADD COLUMN unseen text[] NOT NULL DEFAULT '{{}}';
    ALTER TABLE {SCHEMA}.checkouts ADD COLUMN subscription bigint;
    CREATE TABLE {SCHEMA}.updates (
        workspace text NOT NULL,
        address text NOT NULL,
        position integer NOT NULL,
        subscription bigint NOT NULL,
        field text NOT NULL,
        before integer NOT NULL,
        after integer NOT NULL,
        time text NOT NULL,
        evidence text,
        PRIMARY KEY (workspace, address, position),
        FOREIGN KEY (workspace, address) REFERENCES {SCHEMA}.purchases (workspace, address)
            ON DELETE CASCADE
    );
    ALTER TABLE {SCHEMA}.pending ADD COLUMN update_subscription bigint;
    ALTER TABLE {SCHEMA}.pending ADD COLUMN update_field text;
    ALTER TABLE {SCHEMA}.pending ADD COLUMN update_before integer;
    ALTER TABLE {SCHEMA}.pending ADD COLUMN update_after integer;
    ALTER TABLE {SCHEMA}.pending DROP CONSTRAINT pending_quantity_check;
    ALTER TABLE {SCHEMA}.pending ADD CONSTRAINT pending_quantity_check
        CHECK (quantity >= 1 OR update_subscription IS NOT NULL);
    """,
)


def migrate(conn: psycopg.Connection[Any], display: str) -> None:
    """Create the schema and apply every migration not applied yet (caller holds the
    migration lock); refuse a database set up by a newer reconciler."""
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_migrations "
        "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    applied = {row[0] for row in conn.execute(f"SELECT version FROM {SCHEMA}.schema_migrations")}
    for version, sql in enumerate(MIGRATIONS, 1):
        if version in applied:
            continue
        conn.execute(sql)
        conn.execute(f"INSERT INTO {SCHEMA}.schema_migrations (version) VALUES (%s)", (version,))
    newest = max(applied, default=0)
    if newest > len(MIGRATIONS):
        raise StateError(
            f"the database at {display} was set up by a newer reconciler "
            f"(schema version {newest}); upgrade to use it"
        )


def schema_version(conn: psycopg.Connection[Any]) -> int:
    """The newest migration applied (0 when the schema was never created)."""
    exists = conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.schema_migrations",)).fetchone()
    if exists is None or exists[0] is None:
        return 0
    found = conn.execute(f"SELECT max(version) FROM {SCHEMA}.schema_migrations").fetchone()
    return int(found[0]) if found and found[0] is not None else 0


def refuse_newer_schema(conn: psycopg.Connection[Any], display: str) -> None:
    """Refuse a database whose schema a newer reconciler migrated past what we know."""
    found = conn.execute(f"SELECT max(version) FROM {SCHEMA}.schema_migrations").fetchone()
    newest = found[0] if found and found[0] is not None else 0
    if newest > len(MIGRATIONS):
        raise StateError(
            f"the database at {display} was set up by a newer reconciler "
            f"(schema version {newest}); upgrade to use it"
        )
