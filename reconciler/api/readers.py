"""The list endpoints of a ``CrayonClient``: every page, and the typed reads.

``ListReader`` pages a list endpoint to the end (``_pages``) and turns the items
into ``reconciler.api.records`` through the pure ``reconciler.api.reads``
parsers. Every request goes through the ``send`` it is given: the client's one
request method (token, 401 answer, retries). This module must not send
anything itself, must not classify a failure, and must not print or log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import requests

from reconciler.api.failures import Endpoint
from reconciler.api.jsonread import ci_get
from reconciler.api.reads import (
    AssetOrder,
    CatalogEntry,
    ProcessedOrder,
    Subscription,
    parse_agreement_products,
    parse_asset_orders,
    parse_processed_orders,
    parse_subscriptions,
)
from reconciler.api.settings import (
    AGREEMENT_PRODUCTS_PATH,
    ASSET_ORDERS_PATH,
    ORDERS_PATH,
    SUBSCRIPTIONS_PATH,
    ApiSettings,
)
from reconciler.api.transport import ApiRequest, RequestsTransport
from reconciler.errors import ApiError, FailureKind

PAGE_SIZE: Final = 100
MAX_PAGES: Final = 10_000
_T = TypeVar("_T")


class ListReader:
    """Reads the list endpoints through ``send``; as thread-safe as ``send`` is."""

    def __init__(
        self,
        settings: ApiSettings,
        transport: RequestsTransport,
        send: Callable[[ApiRequest], requests.Response],
        page_size: int = PAGE_SIZE,
    ) -> None:
        self._settings = settings
        self._transport = transport
        self._errors = transport.errors
        self._send = send
        self._page_size = page_size

    def list_orders(self, customer_tenant_id: int) -> list[dict[str, Any]]:
        """Every processed purchase order of one customer tenant (all pages), as JSON."""
        return self._pages("list orders", ORDERS_PATH, {"customerTenantId": customer_tenant_id})

    def list_subscriptions(self, customer_tenant_id: int) -> list[dict[str, Any]]:
        """Every subscription of one customer tenant (all pages), as JSON."""
        filters = {"customerTenantId": customer_tenant_id}
        return self._pages("list subscriptions", SUBSCRIPTIONS_PATH, filters)

    def read_subscriptions(
        self, customer_tenant_id: int, *, statuses: int | None = None
    ) -> list[Subscription]:
        """The tenant's subscriptions, those with a status flag in ``statuses`` if given
        (``reads.STATUS_ACTIVE`` for the ones holding seats)."""
        operation = "read subscriptions"
        filters: dict[str, Any] = {"customerTenantId": customer_tenant_id}
        if statuses is not None:
            filters["statuses"] = statuses
        items = self._pages(operation, SUBSCRIPTIONS_PATH, filters)
        return self._parsed(
            operation,
            SUBSCRIPTIONS_PATH,
            lambda: parse_subscriptions(items, tenant=customer_tenant_id, statuses=statuses),
        )

    def read_processed_orders(self, customer_tenant_id: int) -> list[ProcessedOrder]:
        """Every processed purchase order line of the tenant, oldest first as the API lists them."""
        operation = "read processed orders"
        items = self._pages(operation, ORDERS_PATH, {"customerTenantId": customer_tenant_id})
        return self._parsed(
            operation, ORDERS_PATH, lambda: parse_processed_orders(items, tenant=customer_tenant_id)
        )

    def find_asset_orders(
        self, customer_tenant_id: int, external_order_id: str
    ) -> list[AssetOrder]:
        """The tenant's asset orders whose externalOrderId is exactly ``external_order_id``."""
        operation = "find asset orders"
        filters = {"ResellerCustomerId": customer_tenant_id, "ExternalOrderId": external_order_id}
        items = self._pages(operation, ASSET_ORDERS_PATH, filters, paging=("Page", "PageSize"))
        return self._parsed(
            operation,
            ASSET_ORDERS_PATH,
            lambda: parse_asset_orders(
                items, tenant=customer_tenant_id, external_order_id=external_order_id
            ),
        )

    def read_agreement_products(
        self, customer_tenant_id: int, search: str | None = None
    ) -> list[CatalogEntry]:
        """The products (names, unit prices) the tenant may buy, matching ``search`` if given."""
        operation = "read agreement products"
        filters: dict[str, Any] = {"CustomerTenantId": customer_tenant_id}
        if search:
            filters["Search"] = search
        items = self._pages(
            operation, AGREEMENT_PRODUCTS_PATH, filters, paging=("Page", "PageSize")
        )
        return self._parsed(
            operation, AGREEMENT_PRODUCTS_PATH, lambda: parse_agreement_products(items)
        )

    def _parsed(self, operation: str, path: str, parse: Callable[[], list[_T]]) -> list[_T]:
        """``parse()``, its ApiError (an item it cannot read) given the operation and URL."""
        try:
            return parse()
        except ApiError as error:
            raise self._errors.make(
                f"{operation}: {error}",
                FailureKind.DEFINITIVE,
                "GET",
                self._settings.base_url + path,
            ) from None

    def _pages(
        self,
        operation: str,
        path: str,
        filters: Mapping[str, Any],
        *,
        paging: tuple[str, str] = ("page", "pageSize"),
    ) -> list[dict[str, Any]]:
        """Every item of a list endpoint: pages from 1 until ``TotalHits`` or a short page.

        Takes ``{Items, TotalHits}`` and a bare array alike. A page that repeats the
        one before means the server ignores ``page``: a bare array longer than a page
        is then the whole list; anything else is refused rather than read partly or
        twice.
        """
        page_name, size_name = paging
        size = self._page_size
        items: list[dict[str, Any]] = []
        previous: list[Any] | None = None
        for page in range(1, MAX_PAGES + 1):
            params = {**filters, page_name: page, size_name: size}
            request = ApiRequest(operation, Endpoint.READ, "GET", path, params=params)
            response = self._send(request)
            data = self._transport.read_json(response, operation)
            paged = isinstance(data, dict)
            page_items = ci_get(data, "Items") if paged else data
            total = ci_get(data, "TotalHits") if paged else None
            if not isinstance(page_items, list) or not all(isinstance(i, dict) for i in page_items):
                raise self._errors.bad_answer(
                    f"{operation}: the API answered without a list of Items", response
                )
            if not page_items:
                return items
            if page_items == previous:
                if not paged and len(page_items) > size:
                    return items
                raise self._errors.bad_answer(
                    f"{operation}: the API answered page {page} with the items of page "
                    f"{page - 1}; it does not page as documented",
                    response,
                )
            items.extend(page_items)
            previous = page_items
            if isinstance(total, int) and not isinstance(total, bool):
                if len(items) >= total:
                    return items
            elif len(page_items) < size:
                return items
        raise self._errors.make(
            f"{operation}: more than {MAX_PAGES} pages",
            FailureKind.DEFINITIVE,
            "GET",
            self._settings.base_url + path,
        )
