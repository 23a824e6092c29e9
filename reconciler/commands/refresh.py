"""The refresh use case: read Cloud-iQ back, show what it says, record what it proves.

``read_cloud`` reads, for the customer tenants a run touches, every
subscription (in every status), and for pending checkouts the processed orders
and their asset orders, and for checkouts whose subscription is not listed yet
their asset orders. ``record_findings`` writes what the readings prove: pending
entries settled (recorded as made, with their evidence, or dropped), the
subscriptions each address owns, and seats changed outside this tool as
adjustments. ``run_refresh`` does that under the state lock after approval;
apply does it before it plans. ``ProductLookup`` looks up product names and
prices once per tenant for a run.

Never buys: it calls no verify, checkout or update, only the read endpoints.
Never prints, reads the environment or builds a client: the caller passes
``connect``.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from reconciler.api.records import (
    ApiReader,
    AssetOrder,
    CatalogEntry,
    ProcessedOrder,
    Subscription,
)
from reconciler.errors import ApiError, AuthenticationError, FailureKind
from reconciler.model import Declarations, Identity, State, targeted
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
from reconciler.state import StateStore, StateWriter


class CloudReader(ApiReader, Protocol):
    """An API reader that knows how far the API's clock is from ours."""

    @property
    def clock_skew(self) -> datetime.timedelta | None: ...


class ClosableReader(CloudReader, Protocol):
    """An API reader refresh closes when it is done (``CrayonClient`` fits)."""

    def close(self) -> None: ...


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def read_cloud(
    reader: CloudReader,
    declarations: Declarations,
    state: State,
    *,
    tenants: Sequence[int] | None = None,
    targets: Sequence[str] = (),
    clock: Callable[[], datetime.datetime] = _utc_now,
) -> Readings:
    """What Cloud-iQ shows for ``tenants`` (default: every tenant the declarations or the
    state name for ``targets``). Reads only. A tenant the API refuses to list (unknown,
    not this account's) is named in ``Readings.refused``; any other failure raises
    ``ApiError``."""
    wanted = list(tenants) if tenants is not None else tenants_of(declarations, state, targets)
    subscriptions, unreadable, refused = _read_lists(reader, wanted)
    orders: dict[int, list[ProcessedOrder]] = {}
    assets: dict[str, list[AssetOrder]] = {}
    for pending in state.pending.values():
        tenant = pending.identity.customer_tenant_id
        if pending.is_update or tenant not in subscriptions:
            continue
        if targets and not targeted(pending.address, targets):
            continue
        if tenant not in orders:
            orders[tenant] = reader.read_processed_orders(tenant)
        assets[pending.external_order_id] = reader.find_asset_orders(
            tenant, pending.external_order_id
        )
    readings = Readings(
        subscriptions,
        orders,
        dict(assets),
        now=_server_now(reader, clock),
        clock_skew=reader.clock_skew,
        unreadable=unreadable,
        refused=refused,
    )
    # Checkouts whose subscription the list cannot tell: ask their asset orders.
    found = observe(declarations, state, readings)
    for seen in found.seats.values():
        tenant = seen.identity.customer_tenant_id
        for checkout in seen.unseen:
            order_id = checkout.external_order_id
            if order_id not in assets:
                assets[order_id] = reader.find_asset_orders(tenant, order_id)
    if len(assets) == len(readings.asset_orders):
        return readings
    return dataclasses.replace(readings, asset_orders=assets)


def _read_lists(
    reader: CloudReader, tenants: Sequence[int]
) -> tuple[dict[int, Sequence[Subscription]], dict[int, tuple[str, ...]], dict[int, str]]:
    """Each tenant's subscriptions, the items of its list that could not be read, and
    the tenants the API refused to list, with its reason."""
    subscriptions: dict[int, Sequence[Subscription]] = {}
    unreadable: dict[int, tuple[str, ...]] = {}
    refused: dict[int, str] = {}
    # The first tenant is read alone (it gets the token, or finds the credentials
    # refused once), the others at once (reads only; each waits on the API, not the
    # CPU); the answers are taken in order, so a failure is the first tenant's. An item
    # that cannot be read is named, and its tenant's seats are in doubt: nothing is
    # bought for that tenant (read before buying cannot prove none).
    with ThreadPoolExecutor(max_workers=max(1, min(_READERS, len(tenants)))) as pool:
        reads = []
        for tenant in tenants:
            reads.append(pool.submit(reader.read_subscriptions, tenant, skip_unreadable=True))
            first = reads[0].exception() if len(reads) == 1 else None
            if first is not None and not _refuses_tenant(first):
                break
    for tenant, read in zip(tenants, reads, strict=False):
        try:
            listing = read.result()
        except ApiError as exc:
            if not _refuses_tenant(exc):
                raise
            refused[tenant] = exc.api_message or str(exc)
            continue
        subscriptions[tenant] = listing
        if listing.unreadable:
            unreadable[tenant] = tuple(str(item) for item in listing.unreadable)
    return subscriptions, unreadable, refused


def _refuses_tenant(exc: BaseException) -> bool:
    """Whether a list read's failure refuses that one tenant (not us, not the API)."""
    return (
        isinstance(exc, ApiError)
        and not isinstance(exc, AuthenticationError)
        and exc.kind is FailureKind.DEFINITIVE
        and exc.status in _REFUSED_READS
        and exc.method == "GET"  # the token request (a POST) refuses us, not it
    )


#: Tenants whose subscriptions are read at once.
_READERS = 8

#: Statuses of a list read that refuse that one tenant (unknown, or not this account's).
_REFUSED_READS = frozenset({400, 403, 404})


def _server_now(reader: CloudReader, clock: Callable[[], datetime.datetime]) -> datetime.datetime:
    return clock() + (reader.clock_skew or datetime.timedelta(0))


class ProductLookup:
    """Product names and unit prices per identity, each tenant's agreement products
    read once per run (plan and ``--verify``)."""

    def __init__(self, reader: ApiReader) -> None:
        self._reader = reader
        self._entries: dict[int, list[CatalogEntry]] = {}

    def lookup(self, identities: Iterable[Identity]) -> dict[Identity, ProductInfo]:
        wanted = list(identities)
        for tenant in sorted({i.customer_tenant_id for i in wanted}):
            if tenant not in self._entries:
                self._entries[tenant] = self._reader.read_agreement_products(tenant)
        return catalogue_for(wanted, self._entries)


def record_findings(writer: StateWriter, observations: Observations, now: str) -> RefreshRun:
    """Write what ``observations`` prove, in an order every write's rules accept:
    pending entries settled first (an adjustment is refused at an address whose
    operation is pending), then the subscriptions each address owns, then the
    adjustments."""
    settled, dropped = [], []
    for found in observations.settled:
        op = found.pending
        if found.proof is Proof.PURCHASED and op.is_update:
            writer.record_update(op.address, found.update_record())
            settled.append(found)
        elif found.proof is Proof.PURCHASED:
            writer.record_checkout(op.address, op.identity, found.record())
            settled.append(found)
        else:
            writer.remove_pending(op.address)
            dropped.append(found)
    links = observations.links
    for address in sorted({link.address for link in links}):
        mine = [(link.subscription, link.order) for link in links if link.address == address]
        writer.link_subscriptions(address, mine)
    for drift in observations.drift:
        writer.adjust_quantity(drift.address, drift.delta, now, drift.evidence())
    return RefreshRun(observations, tuple(settled), tuple(dropped), observations.drift, links=links)


def run_refresh(
    declarations: Declarations,
    store: StateStore,
    *,
    connect: Callable[[], ClosableReader],
    show: Callable[[Observations], None],
    approve: Callable[[], bool],
    now: Callable[[], str],
    targets: Sequence[str] = (),
) -> RefreshRun:
    """Read under the state lock, show the findings, ask, then write what is proven."""
    with store.lock("reconciler refresh") as writer:
        reader = connect()
        try:
            readings = read_cloud(reader, declarations, writer.state, targets=targets)
        finally:
            reader.close()
        observations = observe(declarations, writer.state, readings)
        show(observations)
        if not observations.has_writes:
            return RefreshRun(observations)
        if not approve():
            return RefreshRun(observations, cancelled=True)
        return record_findings(writer, observations, now())
