"""The list endpoints' answers: the scope and paging parameters, and one page of items.

``list_reply`` checks a list request's query (customer tenant or organisation,
``page``, ``pageSize``, ``statuses``; names matched ignoring case), builds the
listing's items from the ``SimulatedCloud`` under its lock (``listings`` shapes
them; a list that lags shows only the records past its lag,
``SimulatedCloud.lags``) and answers one page, as ``{"Items": [...],
"TotalHits": n}`` or, in the ``bare`` list shape, as the array alone (as the
published document declares the lists). ``max_page_size`` caps the page size
below what a client asks for, as a server may. It checks no token and applies
no fault (``server`` does both first), and must not import ``reconciler.api``
or ``reconciler.model``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final, TypeVar
from urllib.parse import parse_qs

from reconciler.simulator.cloud import SimulatedCloud
from reconciler.simulator.listings import (
    OrderRecord,
    agreement_product_items,
    asset_order_items,
    order_items,
    subscription_items,
)
from reconciler.simulator.orders import RecordedCheckout
from reconciler.simulator.subscriptions import ORGANIZATION_ID, SubscriptionRecord
from reconciler.simulator.wire import Reply, error_body, object_error

DEFAULT_PAGE_SIZE: Final = 50

#: Per list: the query parameter naming the customer tenant, and whether the
#: organisation may stand for all its tenants (None: the tenant may be left out).
_SCOPES: Final[Mapping[str, tuple[str, bool | None]]] = {
    "orders": ("customertenantid", False),
    "subscriptions": ("customertenantid", True),
    "asset-orders": ("resellercustomerid", None),
    "agreement-products": ("customertenantid", True),
}

#: Builds one listing's items for some tenants from the (casefolded) query, under the lock.
_Items = Callable[[set[int], Mapping[str, str]], list[dict[str, Any]]]


def list_reply(
    cloud: SimulatedCloud,
    endpoint: str,
    query: str,
    *,
    shape: str = "envelope",
    max_page_size: int | None = None,
) -> Reply:
    """The answer to a GET of the list ``endpoint`` with the raw ``query`` string."""
    params = {k.casefold(): v[-1] for k, v in parse_qs(query).items()}
    builders: dict[str, _Items] = {
        "orders": lambda tenants, _: [
            item
            for tenant in sorted(tenants)
            for item in order_items(_listed(cloud, "orders", cloud.orders), tenant)
        ],
        "subscriptions": lambda tenants, q: subscription_items(
            _listed(cloud, "subscriptions", cloud.subscriptions), tenants, _statuses(q)
        ),
        "asset-orders": lambda tenants, q: asset_order_items(
            _listed(cloud, "asset-orders", cloud.checkouts), tenants, q.get("externalorderid")
        ),
        "agreement-products": lambda _, q: agreement_product_items(
            list(cloud.catalog.values()), q.get("search")
        ),
    }
    tenant_parameter, by_organization = _SCOPES[endpoint]
    problems: list[dict[str, Any]] = []
    tenant = _positive(params, tenant_parameter, problems)
    organization = _positive(params, "organizationid", problems)
    page = _positive(params, "page", problems) or 1
    size = _positive(params, "pagesize", problems) or DEFAULT_PAGE_SIZE
    if "statuses" in params and _statuses(params) is None:
        problems.append(object_error("InvalidValue", "statuses must be an integer", "statuses"))
    if not problems and tenant is None and organization is None and by_organization is not None:
        wanted = f"{tenant_parameter}" + (" or organizationid" if by_organization else "")
        problems.append(object_error("Required", f"{wanted} is required", tenant_parameter))
    if not problems and tenant is None and organization is not None and by_organization is False:
        problems.append(
            object_error("Required", f"{tenant_parameter} is required", tenant_parameter)
        )
    if problems:
        raise Reply(400, error_body(400, "The request is not valid.", problems))
    if organization is not None and organization != ORGANIZATION_ID:
        raise Reply(404, error_body(404, f"Organization {organization} was not found."))
    with cloud.lock:
        if tenant is not None and not cloud.has_tenant(tenant):
            raise Reply(404, error_body(404, f"Customer tenant {tenant} was not found."))
        tenants = {tenant} if tenant is not None else cloud.tenants
        everything = builders[endpoint](tenants, params)
    if max_page_size is not None:
        size = min(size, max_page_size)
    start = (page - 1) * size
    items = everything[start : start + size]
    if shape == "bare":
        return Reply(200, items)
    return Reply(200, {"Items": items, "TotalHits": len(everything)})


_Record = TypeVar("_Record", SubscriptionRecord, RecordedCheckout, OrderRecord)


def _listed(cloud: SimulatedCloud, listing: str, records: list[_Record]) -> list[_Record]:
    """The ``records`` the list shows now: those past its lag (``ListLags``)."""
    return [r for r in records if cloud.lags.listed(listing, _created(r))]


def _created(record: SubscriptionRecord | RecordedCheckout | OrderRecord) -> datetime | str:
    if isinstance(record, SubscriptionRecord):
        return record.created
    if isinstance(record, RecordedCheckout):
        return record.time
    return record.created


def _positive(params: Mapping[str, str], name: str, problems: list[dict[str, Any]]) -> int | None:
    """The query parameter ``name`` as a positive integer; None when absent (or wrong,
    which adds to ``problems``)."""
    value = params.get(name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        problems.append(object_error("InvalidValue", f"{name} must be a positive integer", name))
        return None
    return number


def _statuses(query: Mapping[str, str]) -> int | None:
    """The ``statuses`` flags of a subscriptions query; None when absent or not a number."""
    try:
        return int(query["statuses"])
    except (KeyError, ValueError):
        return None
