"""The Crayon Cloud-iQ API client: token, verify, checkout, the reads, and updates.

The typed reads (``read_subscriptions``, ``read_processed_orders``,
``find_asset_orders``, ``read_agreement_products``) and the raw ``list_*`` calls
are delegated to ``reconciler.api.reads.ListReader``, which pages to the end
(within bounds) and turns the items into ``reconciler.api.records``; it gets
its pages through this client. ``get_subscription`` reads one subscription;
``update_subscription`` PUTs it back whole with only the asked fields changed
(matched case-insensitively, so the key casing the API used is kept).

Cancelling: ``cancel_subscription`` PUTs the subscription with ``Status``
Suspended (2) and its quantity unchanged, the way Crayon documents stopping a
subscription through Update subscription; a quantity of 0 is never sent.
Assumed, not documented: that the API answers such a PUT with the subscription
no longer active, and refuses (4xx) a cancellation or a reduction outside
Microsoft's cancellation window.

Every call is an ``ApiRequest`` that goes through ``reconciler.api.calls.Caller``
(the bounded retries, the shared token and the one answer to a 401, described
there), which sends it through ``reconciler.api.transport`` (the HTTP seam: timeouts,
headers, the clock skew read from every answer's ``Date``, and ``requests``'
exceptions and non-2xx answers turned into ``ApiError``s classified by
``reconciler.api.failures``, whose docstring has the table). This module must
not print, must not log, must never turn TLS verification off, must never put a
secret (client secret, password, access token) into a message, a repr or an
exception, and must not classify a failure itself.

``checkout`` refuses locally (DEFINITIVE, nothing sent) an order whose verify
answer has errors. A 2xx without the expected JSON body is DEFINITIVE (a
checkout's 2xx body is ignored), except for an update, which was applied or not:
its unreadable answer is AMBIGUOUS.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from types import TracebackType
from typing import Any, Final, Self

import requests

from reconciler.api.calls import Caller
from reconciler.api.failures import Endpoint
from reconciler.api.fields import ci_key
from reconciler.api.items import parse_subscription_detail
from reconciler.api.orders import OrderJson, VerifiedOrder, legacy_order, read_verified
from reconciler.api.paging import MAX_ITEMS, MAX_PAGES, PAGE_SIZE
from reconciler.api.reads import ListReader
from reconciler.api.records import (
    STATUS_SUSPENDED,
    AssetOrder,
    CatalogEntry,
    Listing,
    ProcessedOrder,
    Subscription,
    SubscriptionDetail,
)
from reconciler.api.settings import ApiSettings, RetryPolicy, subscription_path
from reconciler.api.transport import ApiRequest, RequestsTransport
from reconciler.errors import ApiError, FailureKind

_DEFAULT_RETRY: Final = RetryPolicy()


class CrayonClient:
    """Talks to the Crayon API; safe to share between the threads of one pool.

    ``session`` is used as given when passed (its adapters decide pooling and
    must not retry on their own) and is then the caller's to close.
    ``page_size`` is the ``pageSize`` the list calls ask for; ``max_pages`` and
    ``max_items`` bound one list read. ``clock`` times the retries and the token;
    ``wall_clock`` (seconds since the epoch) is what ``clock_skew`` compares the
    API's ``Date`` with.
    """

    def __init__(
        self,
        settings: ApiSettings,
        *,
        retry: RetryPolicy = _DEFAULT_RETRY,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        session: requests.Session | None = None,
        page_size: int = PAGE_SIZE,
        max_pages: int = MAX_PAGES,
        max_items: int = MAX_ITEMS,
    ) -> None:
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, not {page_size}")
        self._settings = settings
        self._transport = RequestsTransport(settings, session, wall_clock=wall_clock)
        self._errors = self._transport.errors
        self._caller = Caller(settings, self._transport, retry=retry, sleep=sleep, clock=clock)
        self._tokens = self._caller.tokens
        self._reader = ListReader(
            _ClientPages(self), page_size=page_size, max_pages=max_pages, max_items=max_items
        )

    def __repr__(self) -> str:
        return f"CrayonClient({self._settings!r})"

    @property
    def retries(self) -> int:
        """How many requests were re-sent so far (backoff retries and after-401 repeats)."""
        return self._caller.retries

    def watch_throttling(self, listener: Callable[[float | None], None] | None) -> None:
        """Call ``listener`` with the Retry-After (None without one) of every answer
        429, on the thread that got it; None stops. Apply's adaptive limit uses it."""
        self._caller.throttle.listener = listener

    @property
    def clock_skew(self) -> timedelta | None:
        """The API's clock minus ours, from the ``Date`` of every answer so far: the
        measurement of the largest magnitude (about a second's precision); None until
        an answer with a readable ``Date`` arrived."""
        return self._transport.skew.value

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ----------------------------------------------------------------- public calls

    def verify(self, order: OrderJson) -> VerifiedOrder:
        """POST the order to verify; business errors come back in ``errors``.

        On the legacy endpoints the order goes without the fields they do not take
        (``orders.legacy_order``); the answer is compared with what was sent.
        """
        path = self._settings.verify_path
        if self._settings.legacy_endpoints:
            order = legacy_order(order)
        response = self._request(
            ApiRequest("verify", Endpoint.VERIFY, "POST", path, json_body=order)
        )
        body = self._transport.read_json(response, "verify")
        if not isinstance(body, dict):
            raise self._errors.bad_answer(
                "verify: the API answered with something that is not an order", response
            )
        return read_verified(order, body)

    def checkout(self, verified: VerifiedOrder) -> None:
        """POST the verify answer unchanged. Returns on 2xx; raises ApiError otherwise."""
        path = self._settings.checkout_path
        if not verified.ok:
            raise self._errors.make(
                "checkout not sent: the verified order has errors",
                FailureKind.DEFINITIVE,
                "POST",
                self._settings.base_url + path,
            )
        body = dict(verified.body)
        self._request(ApiRequest("checkout", Endpoint.CHECKOUT, "POST", path, json_body=body))

    # ----------------------------------------------------------------- one subscription

    def get_subscription(self, subscription_id: int) -> SubscriptionDetail:
        """One subscription, whole (a read: retried like every read)."""
        operation = "get subscription"
        path = subscription_path(subscription_id)
        response = self._request(ApiRequest(operation, Endpoint.READ, "GET", path))
        body = self._transport.read_json(response, operation)
        try:
            if not isinstance(body, dict):
                raise ApiError("the answer is not a subscription", kind=FailureKind.DEFINITIVE)
            detail = parse_subscription_detail(body)
        except ApiError as error:
            raise self._errors.bad_answer(f"{operation}: {error}", response) from None
        if detail.id != subscription_id:
            raise self._errors.bad_answer(
                f"{operation}: asked for subscription {subscription_id}, the API answered "
                f"with subscription {detail.id}",
                response,
            )
        return detail

    def update_subscription(
        self,
        current: SubscriptionDetail,
        *,
        quantity: int | None = None,
        auto_renew: bool | None = None,
        status: int | None = None,
    ) -> SubscriptionDetail:
        """PUT ``current.body`` with only ``quantity``, ``autoRenewEnabled`` and ``status``
        changed (those given); returns the subscription the API answered.

        ``quantity`` is absolute and at least 1 (cancel with ``cancel_subscription``).
        Failures: see ``records.SubscriptionUpdater``; an AMBIGUOUS one is never
        repeated here.
        """
        changes = _asked_changes(quantity, auto_renew, status)
        operation = "update subscription"
        path = subscription_path(current.id)
        body = _changed(current.body, changes)
        response = self._request(
            ApiRequest(operation, Endpoint.UPDATE, "PUT", path, json_body=body)
        )
        try:
            answer = self._transport.read_json(response, operation)
            if not isinstance(answer, dict):
                raise ApiError("the answer is not a subscription", kind=FailureKind.DEFINITIVE)
            updated = parse_subscription_detail(answer)
            if updated.id != current.id:
                raise ApiError(
                    f"the answer is subscription {updated.id}", kind=FailureKind.DEFINITIVE
                )
        except ApiError as error:
            # The API took the PUT (2xx) but its answer says nothing usable: whether the
            # subscription changed is for a fresh read to tell.
            reason = str(error).removeprefix(f"{operation}: ")
            raise self._errors.make(
                f"{operation} outcome unknown: HTTP {response.status_code}, but {reason}; "
                f"read subscription {current.id} again to learn whether it changed",
                FailureKind.AMBIGUOUS,
                "PUT",
                response.url,
                status=response.status_code,
            ) from None
        return updated

    def cancel_subscription(self, current: SubscriptionDetail) -> SubscriptionDetail:
        """PUT ``current`` with status Suspended and its quantity unchanged."""
        return self.update_subscription(current, status=STATUS_SUSPENDED)

    # ----------------------------------------------------------------- lists, typed reads
    # Paging and parsing live in ``reads.ListReader``; it gets its pages through
    # ``_ClientPages``, which sends through ``_request``.

    def list_orders(self, customer_tenant_id: int) -> list[dict[str, Any]]:
        """Every processed purchase order of one customer tenant (all pages), as JSON."""
        return self._reader.list_orders(customer_tenant_id)

    def list_subscriptions(self, customer_tenant_id: int) -> list[dict[str, Any]]:
        """Every subscription of one customer tenant (all pages), as JSON."""
        return self._reader.list_subscriptions(customer_tenant_id)

    def read_subscriptions(
        self,
        customer_tenant_id: int,
        *,
        statuses: int | None = None,
        skip_unreadable: bool = False,
    ) -> Listing[Subscription]:
        """The tenant's subscriptions, those with a status flag in ``statuses`` if given
        (``records.STATUS_ACTIVE`` for the ones holding seats)."""
        return self._reader.read_subscriptions(
            customer_tenant_id, statuses=statuses, skip_unreadable=skip_unreadable
        )

    def read_processed_orders(
        self, customer_tenant_id: int, *, skip_unreadable: bool = False
    ) -> Listing[ProcessedOrder]:
        """Every processed purchase order line of the tenant, oldest first as the API lists them."""
        return self._reader.read_processed_orders(
            customer_tenant_id, skip_unreadable=skip_unreadable
        )

    def find_asset_orders(
        self, customer_tenant_id: int, external_order_id: str, *, skip_unreadable: bool = False
    ) -> Listing[AssetOrder]:
        """The tenant's asset orders whose externalOrderId is exactly ``external_order_id``."""
        return self._reader.find_asset_orders(
            customer_tenant_id, external_order_id, skip_unreadable=skip_unreadable
        )

    def read_agreement_products(
        self, customer_tenant_id: int, search: str | None = None
    ) -> Listing[CatalogEntry]:
        """The products (names, unit prices) the tenant may buy, matching ``search`` if given."""
        return self._reader.read_agreement_products(customer_tenant_id, search)

    def _request(self, request: ApiRequest) -> requests.Response:
        """One API call with a token, the 401 repeat and the bounded retries."""
        return self._caller.request(request)


class _ClientPages:
    """The page source ``reads.ListReader`` reads through: the client's GET and errors."""

    def __init__(self, client: CrayonClient) -> None:
        self._client = client

    def get_page(self, operation: str, path: str, params: Mapping[str, Any]) -> Any:
        client = self._client
        response = client._request(ApiRequest(operation, Endpoint.READ, "GET", path, params=params))
        return client._transport.read_json(response, operation)

    def refuse(self, operation: str, path: str, message: str) -> ApiError:
        client = self._client
        return client._errors.make(
            message, FailureKind.DEFINITIVE, "GET", client._settings.base_url + path
        )


def _asked_changes(
    quantity: int | None, auto_renew: bool | None, status: int | None
) -> dict[str, Any]:
    """The fields an update sets (camelCase names), each checked; ValueError for a bad
    one or for none at all."""
    changes: dict[str, Any] = {}
    if quantity is not None:
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise ValueError(
                f"quantity must be a whole number of at least 1, not {quantity!r}; "
                "a subscription is cancelled with cancel_subscription, never with 0 seats"
            )
        changes["quantity"] = quantity
    if auto_renew is not None:
        if not isinstance(auto_renew, bool):
            raise ValueError(f"auto_renew must be true or false, not {auto_renew!r}")
        changes["autoRenewEnabled"] = auto_renew
    if status is not None:
        if isinstance(status, bool) or not isinstance(status, int):
            raise ValueError(f"status must be a SubscriptionStatus integer, not {status!r}")
        changes["status"] = status
    if not changes:
        raise ValueError("update_subscription needs a quantity, auto_renew or status")
    return changes


def _changed(body: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``body`` with ``changes`` (camelCase names) set on the keys that match
    them ignoring case; a field the body lacks gets the body's casing."""
    changed: dict[str, Any] = json.loads(json.dumps(dict(body)))
    pascal = any(isinstance(k, str) and k[:1].isupper() for k in changed)
    for name, value in changes.items():
        key = ci_key(changed, name) or (name[0].upper() + name[1:] if pascal else name)
        changed[key] = value
    return changed
