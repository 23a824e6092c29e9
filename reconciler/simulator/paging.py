"""The list endpoints' answers: the tenant and paging parameters, and one page of items.

``list_reply`` checks a list request's query (tenant, ``page``, ``pageSize``,
``statuses``), builds the listing's items from the ``Ledger`` under its lock
(``listings`` shapes them) and answers one page with ``TotalHits``. It checks
no token and applies no fault (``server`` does both first), and must not import
``reconciler.api`` or ``reconciler.model``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import parse_qs

from reconciler.simulator.ledger import Ledger
from reconciler.simulator.listings import (
    agreement_product_items,
    asset_order_items,
    order_items,
    subscription_items,
)
from reconciler.simulator.wire import Reply, error_body, object_error

DEFAULT_PAGE_SIZE: Final = 50

#: The query parameter naming the customer tenant, per list (matched case-insensitively).
_TENANT_PARAMETERS: Final = {
    "orders": "customertenantid",
    "subscriptions": "customertenantid",
    "asset-orders": "resellercustomerid",
    "agreement-products": "customertenantid",
}

#: Builds one listing's items for a tenant from the (casefolded) query, under the ledger lock.
_Items = Callable[[int, Mapping[str, str]], list[dict[str, Any]]]


def list_reply(ledger: Ledger, endpoint: str, query: str) -> Reply:
    """The answer to a GET of the list ``endpoint`` with the raw ``query`` string."""
    params = {k.casefold(): v[-1] for k, v in parse_qs(query).items()}
    builders: dict[str, _Items] = {
        "orders": lambda tenant, _: order_items(ledger.orders, tenant),
        "subscriptions": lambda tenant, q: subscription_items(
            ledger.subscriptions, tenant, _statuses(q)
        ),
        "asset-orders": lambda tenant, q: asset_order_items(
            ledger.checkouts, tenant, q.get("externalorderid")
        ),
        "agreement-products": lambda _, q: agreement_product_items(
            list(ledger.catalog.values()), q.get("search")
        ),
    }
    return _page(ledger, params, _TENANT_PARAMETERS[endpoint], builders[endpoint])


def _page(ledger: Ledger, query: Mapping[str, str], tenant_parameter: str, items: _Items) -> Reply:
    problems = []
    numbers: dict[str, int] = {}
    for name, default in (
        (tenant_parameter, None),
        ("page", 1),
        ("pagesize", DEFAULT_PAGE_SIZE),
    ):
        value = query.get(name)
        if value is None and default is not None:
            numbers[name] = default
            continue
        try:
            numbers[name] = int(value or "")
            if numbers[name] < 1:
                raise ValueError
        except ValueError:
            problems.append(
                object_error("InvalidValue", f"{name} must be a positive integer", name)
            )
    if problems:
        raise Reply(400, error_body(400, "The request is not valid.", problems))
    if "statuses" in query and _statuses(query) is None:
        problems.append(object_error("InvalidValue", "statuses must be an integer", "statuses"))
        raise Reply(400, error_body(400, "The request is not valid.", problems))
    tenant = numbers[tenant_parameter]
    with ledger.lock:
        if not ledger.has_tenant(tenant):
            raise Reply(404, error_body(404, f"Customer tenant {tenant} was not found."))
        everything = items(tenant, query)
    start = (numbers["page"] - 1) * numbers["pagesize"]
    page = everything[start : start + numbers["pagesize"]]
    return Reply(200, {"Items": page, "TotalHits": len(everything)})


def _statuses(query: Mapping[str, str]) -> int | None:
    """The ``statuses`` flags of a subscriptions query; None when absent or not a number."""
    try:
        return int(query["statuses"])
    except (KeyError, ValueError):
        return None
