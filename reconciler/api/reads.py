"""What Cloud-iQ lists, read: the pure parse functions and the paged list reader.

    parse_subscription(s)       GET /api/v1/subscriptions/           -> Subscription
    parse_subscription_detail   GET /api/v1/subscriptions/{id}       -> SubscriptionDetail
    parse_processed_order(s)    GET /api/v1/purchaserequest/orders/  -> ProcessedOrder
    parse_asset_order(s)        GET /api/v1/assets/orders/           -> AssetOrder
    parse_agreement_product(s)  GET /api/v1/agreementproducts/       -> CatalogEntry
    ListReader                  every page of a list endpoint, within bounds, parsed

``parse_*`` are pure functions from the JSON the API answered to the records of
``reconciler.api.records``. An item that ``items`` cannot read makes the list
functions raise a DEFINITIVE ``ApiError`` naming the item (position and id)
and the field, or, with ``skip_unreadable``, leave it out and name it in the
``Listing``'s ``unreadable`` (a caller that does so must treat whatever the item
may hold as unknown: a skipped subscription is not "no seats"). Agreement
products are always read that way, and a product whose price alone is
unreadable keeps its name with the price unknown. Every list is also checked
against its query: items of another customer tenant (or, for subscriptions,
outside the asked statuses; for asset orders, with another externalOrderId)
are left out, so a server that ignored a filter cannot make another tenant's
seats count or another order pass for proof.

``ListReader`` reads each list endpoint to its end through ``paging.Pager``
(its bounds and its refusals are described there) and parses every page as it
arrives. One item is read by ``reconciler.api.items``.

This module must not import ``requests``, must do no I/O of its own (the page
source does) and must not decide how a failed call counts (``failures`` does).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from reconciler.api.fields import Fields, definitive, malformed, shown
from reconciler.api.items import (
    parse_agreement_product,
    parse_asset_order,
    parse_processed_order,
    parse_subscription,
    split_part_number,
    status_code,
    subscription_status,
)
from reconciler.api.paging import Pager
from reconciler.api.records import (
    AssetOrder,
    CatalogEntry,
    Listing,
    ProcessedOrder,
    Subscription,
    UnreadableItem,
)
from reconciler.api.settings import (
    AGREEMENT_PRODUCTS_PATH,
    ASSET_ORDERS_PATH,
    ORDERS_PATH,
    SUBSCRIPTIONS_PATH,
)
from reconciler.errors import ApiError

__all__ = [
    "ListReader",
    "parse_agreement_products",
    "parse_asset_orders",
    "parse_processed_orders",
    "parse_subscriptions",
]

_T = TypeVar("_T")


# --------------------------------------------------------------------------- lists


def parse_subscriptions(
    items: Sequence[Any],
    *,
    tenant: int,
    statuses: int | None = None,
    skip_unreadable: bool = False,
    first: int = 0,
) -> Listing[Subscription]:
    """The subscriptions of ``tenant`` among ``items`` (those whose status is in
    ``statuses``); ``first`` is the position of ``items[0]`` in the whole list."""

    def wanted(tenant_id: int | None, status: str | None) -> bool:
        return (tenant_id is None or tenant_id == tenant) and (
            statuses is None or status is None or (status_code(status) & statuses) != 0
        )

    def hints(item: Any) -> tuple[UnreadableItem, bool]:
        f = Fields(item)
        found = UnreadableItem(
            position=0,
            problem="",
            item_id=_try(lambda: f.reference("Id")),
            customer_tenant_id=_try(lambda: f.integer("CustomerTenant.Id")),
            product=_try(lambda: _product(f.text("PartNumber") or f.text("Product.PartNumber"))),
        )
        return found, wanted(found.customer_tenant_id, _try(lambda: subscription_status(f)))

    records = _each(
        items,
        lambda item: parse_subscription(item, tenant=tenant),
        hints,
        skip_unreadable=skip_unreadable,
        first=first,
    )
    return _kept(records, lambda s: wanted(s.customer_tenant_id, s.status))


def parse_processed_orders(
    items: Sequence[Any], *, tenant: int, skip_unreadable: bool = False, first: int = 0
) -> Listing[ProcessedOrder]:
    """The processed order lines of ``tenant`` (the items carry no tenant of their own)."""

    def hints(item: Any) -> tuple[UnreadableItem, bool]:
        f = Fields(item)
        found = UnreadableItem(
            position=0,
            problem="",
            item_id=_try(lambda: f.reference("OrderReferenceId")),
            customer_tenant_id=tenant,
            product=_try(lambda: _product(f.text("CatalogId"))),
        )
        return found, True

    return _each(
        items,
        lambda item: parse_processed_order(item, tenant=tenant),
        hints,
        skip_unreadable=skip_unreadable,
        first=first,
    )


def parse_asset_orders(
    items: Sequence[Any],
    *,
    tenant: int,
    external_order_id: str,
    skip_unreadable: bool = False,
    first: int = 0,
) -> Listing[AssetOrder]:
    """The asset orders of ``tenant`` whose externalOrderId is exactly ``external_order_id``."""

    def hints(item: Any) -> tuple[UnreadableItem, bool]:
        f = Fields(item)
        reference = _try(lambda: f.text("externalOrderId") or None)
        found = UnreadableItem(
            position=0,
            problem="",
            item_id=reference,
            customer_tenant_id=_try(lambda: f.integer("resellerCustomerId")),
        )
        ours = found.customer_tenant_id in (None, tenant) and reference in (
            None,
            external_order_id,
        )
        return found, ours

    records = _each(
        items,
        lambda item: parse_asset_order(item, tenant=tenant),
        hints,
        skip_unreadable=skip_unreadable,
        first=first,
    )
    return _kept(
        records,
        lambda order: (
            order.customer_tenant_id == tenant and order.external_order_id == external_order_id
        ),
    )


def parse_agreement_products(items: Sequence[Any], *, first: int = 0) -> Listing[CatalogEntry]:
    """Every agreement product that can be read; one whose price alone cannot be read
    is kept with the price unknown. Both kinds are named in ``unreadable``."""
    listing: Listing[CatalogEntry] = Listing()
    for index, item in enumerate(items):
        try:
            listing.append(parse_agreement_product(_mapping(item)))
            continue
        except ApiError as error:
            problem = str(error)
        found = _with_problem(_catalog_hints(item), problem, position=first + index)
        try:
            entry = parse_agreement_product(_mapping(item), prices=False)
        except ApiError:
            listing.unreadable += (found,)
            continue
        listing.append(entry)
        listing.unreadable += (_with_problem(found, f"{problem}; its price is unknown"),)
    return listing


def _catalog_hints(item: Any) -> UnreadableItem:
    if not isinstance(item, Mapping):
        return UnreadableItem(0, "")
    f = Fields(item)
    return UnreadableItem(
        position=0,
        problem="",
        item_id=_try(lambda: f.reference("productVariant.id")),
        product=_try(lambda: _product(f.text("productVariant.partNumber"))),
    )


def _each(
    items: Sequence[Any],
    parse: Callable[[Mapping[str, Any]], _T],
    hints: Callable[[Any], tuple[UnreadableItem, bool]],
    *,
    skip_unreadable: bool,
    first: int,
) -> Listing[_T]:
    """``parse`` of every item; an unreadable one raises, or is named and skipped.

    ``hints`` reads what it can of an unreadable item and says whether the item
    may belong to the query at all (one of another tenant is simply not ours).
    """
    listing: Listing[_T] = Listing()
    for index, item in enumerate(items):
        try:
            listing.append(parse(_mapping(item)))
            continue
        except ApiError as error:
            problem = str(error)
        found, relevant = (UnreadableItem(0, ""), True)
        if isinstance(item, Mapping):
            found, relevant = hints(item)
        if not relevant:
            continue
        found = _with_problem(found, problem, position=first + index)
        if not skip_unreadable:
            raise definitive(str(found)) from None
        listing.unreadable += (found,)
    return listing


def _kept(listing: Listing[_T], keep: Callable[[_T], bool]) -> Listing[_T]:
    return Listing((record for record in listing if keep(record)), listing.unreadable)


def _mapping(item: Any) -> Mapping[str, Any]:
    if not isinstance(item, Mapping):
        raise malformed("", f"expected an object, got {shown(item)}")
    return item


def _with_problem(
    found: UnreadableItem, problem: str, position: int | None = None
) -> UnreadableItem:
    return UnreadableItem(
        position=found.position if position is None else position,
        problem=problem,
        item_id=found.item_id,
        customer_tenant_id=found.customer_tenant_id,
        product=found.product,
    )


def _try(read: Callable[[], _T]) -> _T | None:
    """What ``read`` gives, or None when the field it reads is unreadable too."""
    try:
        return read()
    except ApiError:
        return None


def _product(part_number: str) -> str | None:
    if not part_number:
        return None
    product_id, sku_id = split_part_number(part_number, "")
    return f"{product_id}:{sku_id}"


# --------------------------------------------------------------------------- paging


class ListReader(Pager):
    """Reads the list endpoints through a ``PageSource``: every page, within bounds,
    parsed. As thread-safe as the source is."""

    # ----------------------------------------------------------------- raw lists

    def list_orders(self, customer_tenant_id: int) -> list[dict[str, Any]]:
        """Every processed purchase order of one customer tenant (all pages), as JSON."""
        filters = {"customerTenantId": customer_tenant_id}
        return self._objects("list orders", ORDERS_PATH, filters)

    def list_subscriptions(self, customer_tenant_id: int) -> list[dict[str, Any]]:
        """Every subscription of one customer tenant (all pages), as JSON."""
        filters = {"customerTenantId": customer_tenant_id}
        return self._objects("list subscriptions", SUBSCRIPTIONS_PATH, filters)

    # ----------------------------------------------------------------- typed reads

    def read_subscriptions(
        self,
        customer_tenant_id: int,
        *,
        statuses: int | None = None,
        skip_unreadable: bool = False,
    ) -> Listing[Subscription]:
        """The tenant's subscriptions, those with a status flag in ``statuses`` if given
        (``STATUS_ACTIVE`` for the ones holding seats)."""
        filters: dict[str, Any] = {"customerTenantId": customer_tenant_id}
        if statuses is not None:
            filters["statuses"] = statuses
        return self._read(
            "read subscriptions",
            SUBSCRIPTIONS_PATH,
            filters,
            lambda items, first: parse_subscriptions(
                items,
                tenant=customer_tenant_id,
                statuses=statuses,
                skip_unreadable=skip_unreadable,
                first=first,
            ),
        )

    def read_processed_orders(
        self, customer_tenant_id: int, *, skip_unreadable: bool = False
    ) -> Listing[ProcessedOrder]:
        """Every processed purchase order line of the tenant, oldest first as the API lists them."""
        return self._read(
            "read processed orders",
            ORDERS_PATH,
            {"customerTenantId": customer_tenant_id},
            lambda items, first: parse_processed_orders(
                items, tenant=customer_tenant_id, skip_unreadable=skip_unreadable, first=first
            ),
        )

    def find_asset_orders(
        self, customer_tenant_id: int, external_order_id: str, *, skip_unreadable: bool = False
    ) -> Listing[AssetOrder]:
        """The tenant's asset orders whose externalOrderId is exactly ``external_order_id``."""
        filters = {"ResellerCustomerId": customer_tenant_id, "ExternalOrderId": external_order_id}
        return self._read(
            "find asset orders",
            ASSET_ORDERS_PATH,
            filters,
            lambda items, first: parse_asset_orders(
                items,
                tenant=customer_tenant_id,
                external_order_id=external_order_id,
                skip_unreadable=skip_unreadable,
                first=first,
            ),
            paging=("Page", "PageSize"),
        )

    def read_agreement_products(
        self, customer_tenant_id: int, search: str | None = None
    ) -> Listing[CatalogEntry]:
        """The products (names, unit prices) the tenant may buy, matching ``search`` if given."""
        filters: dict[str, Any] = {"CustomerTenantId": customer_tenant_id}
        if search:
            filters["Search"] = search
        return self._read(
            "read agreement products",
            AGREEMENT_PRODUCTS_PATH,
            filters,
            lambda items, first: parse_agreement_products(items, first=first),
            paging=("Page", "PageSize"),
        )

    # ----------------------------------------------------------------- pages parsed

    def _read(
        self,
        operation: str,
        path: str,
        filters: Mapping[str, Any],
        parse: Callable[[list[Any], int], Listing[_T]],
        *,
        paging: tuple[str, str] = ("page", "pageSize"),
    ) -> Listing[_T]:
        """Every page parsed as it arrives; an unreadable item is refused with the URL."""
        listing: Listing[_T] = Listing()
        for first, items in self.pages(operation, path, filters, paging=paging):
            try:
                listing.add(parse(items, first))
            except ApiError as error:
                raise self._source.refuse(operation, path, f"{operation}: {error}") from None
        return listing

    def _objects(
        self, operation: str, path: str, filters: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for first, items in self.pages(operation, path, filters):
            for index, item in enumerate(items):
                if not isinstance(item, dict):
                    raise self._source.refuse(
                        operation,
                        path,
                        f"{operation}: item {first + index}: expected an object, got {shown(item)}",
                    )
                found.append(item)
        return found
