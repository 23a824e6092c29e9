"""The refresh use case: read Cloud-iQ back, show what it says, record what it proves.

``read_cloud`` reads, for every customer tenant the declarations and the state
name, the active subscriptions and, for pending entries, the processed orders
and the asset orders of their externalOrderIds, and hands them to
``observe``. ``run_refresh`` does that under the state lock and, after
approval, writes what the API proves: pending checkouts it shows were made are
recorded as checkouts with their evidence, those it shows failed are dropped,
and drift is recorded as adjustments (never as checkouts). ``ProductLookup`` looks
up product names and prices once per tenant for a run.

Never buys: it calls no verify and no checkout, only the read endpoints. Never
prints, reads the environment or builds a client: the caller passes ``connect``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from reconciler.api.reads import STATUS_ACTIVE, ApiReader, AssetOrder, CatalogEntry, ProcessedOrder
from reconciler.model import CheckoutRecord, Declarations, Identity, State
from reconciler.observe import (
    Observations,
    ProductInfo,
    Proof,
    Readings,
    catalogue_for,
    observe,
    tenants_of,
)
from reconciler.outcomes import RefreshRun
from reconciler.state import StateStore


class ClosableReader(ApiReader, Protocol):
    """An API reader refresh closes when it is done (``CrayonClient`` fits)."""

    def close(self) -> None: ...


def read_cloud(
    reader: ApiReader,
    declarations: Declarations,
    state: State,
    *,
    tenants: Sequence[int] | None = None,
) -> Observations:
    """What Cloud-iQ shows for ``tenants`` (default: every tenant declared or recorded),
    held against the state. Reads only; raises ``ApiError`` when a read fails."""
    wanted = list(tenants) if tenants is not None else tenants_of(declarations, state)
    subscriptions = {t: reader.read_subscriptions(t, statuses=STATUS_ACTIVE) for t in wanted}
    orders: dict[int, list[ProcessedOrder]] = {}
    assets: dict[str, list[AssetOrder]] = {}
    for pending in state.pending.values():
        tenant = pending.identity.customer_tenant_id
        if tenant not in orders:
            orders[tenant] = reader.read_processed_orders(tenant)
        assets[pending.external_order_id] = reader.find_asset_orders(
            tenant, pending.external_order_id
        )
    return observe(declarations, state, Readings(subscriptions, orders, assets))


class ProductLookup:
    """Product names and unit prices per identity, each tenant's agreement products
    read once per run (``plan --refresh`` and ``--verify``)."""

    def __init__(self, reader: ApiReader) -> None:
        self._reader = reader
        self._entries: dict[int, list[CatalogEntry]] = {}

    def lookup(self, identities: Iterable[Identity]) -> dict[Identity, ProductInfo]:
        wanted = list(identities)
        for tenant in sorted({i.customer_tenant_id for i in wanted}):
            if tenant not in self._entries:
                self._entries[tenant] = self._reader.read_agreement_products(tenant)
        return catalogue_for(wanted, self._entries)


def has_writes(observations: Observations) -> bool:
    """Whether refresh would write anything for these observations."""
    return bool(observations.settled or observations.writable_drift)


def run_refresh(
    declarations: Declarations,
    store: StateStore,
    *,
    connect: Callable[[], ClosableReader],
    show: Callable[[Observations], None],
    approve: Callable[[], bool],
    now: Callable[[], str],
) -> RefreshRun:
    """Read under the state lock, show the findings, ask, then write what is proven.

    Settled checkouts are written before adjustments: an adjustment is refused
    at an address whose checkout is still pending.
    """
    with store.lock("reconciler refresh") as writer:
        reader = connect()
        try:
            observations = read_cloud(reader, declarations, writer.state)
        finally:
            reader.close()
        show(observations)
        if not has_writes(observations):
            return RefreshRun(observations)
        if not approve():
            return RefreshRun(observations, cancelled=True)
        settled, dropped = [], []
        for found in observations.settled:
            pending = found.pending
            if found.proof is Proof.PURCHASED:
                record = CheckoutRecord(
                    pending.external_order_id, pending.quantity, pending.time, found.text
                )
                writer.record_checkout(pending.address, pending.identity, record)
                settled.append(found)
            else:
                writer.remove_pending(pending.address)
                dropped.append(found)
        adjusted = []
        for drift in observations.writable_drift:
            assert drift.target is not None
            writer.adjust_quantity(drift.target, drift.delta, now(), drift.evidence())
            adjusted.append(drift)
    return RefreshRun(observations, tuple(settled), tuple(dropped), tuple(adjusted))
