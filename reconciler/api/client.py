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

Every call is an ``ApiRequest`` that goes through ``CrayonClient._request``
(the bounded retries, the shared token and the one answer to a 401), which
sends it through ``reconciler.api.transport`` (the HTTP seam: timeouts,
headers, the clock skew read from every answer's ``Date``, and ``requests``'
exceptions and non-2xx answers turned into ``ApiError``s classified by
``reconciler.api.failures``, whose docstring has the table). This module must
not print, must not log, must never turn TLS verification off, must never put a
secret (client secret, password, access token) into a message, a repr or an
exception, and must not classify a failure itself.

A failure to get a token during a checkout or an update is never AMBIGUOUS:
the request was not sent. ``checkout`` refuses locally (DEFINITIVE, nothing
sent) an order whose verify answer has errors. A 2xx without the expected JSON
body is DEFINITIVE (a checkout's 2xx body is ignored), except for an update,
which was applied or not: its unreadable answer is AMBIGUOUS. When retries run
out the last error stays RETRYABLE: the server never took the request or
refused it with 429.

401 Unauthorized gets a fresh token and the call repeated once; a second 401
is DEFINITIVE, unless another call was sent with that token (it may have worked
for it, or used it up) or another thread replaced it: then once more, at most 3
new tokens per call. One token per
client, renewed shortly before it expires (10% of its lifetime, at most 60 s
early); threads share it, and a lock makes sure only one of them asks for a
new one.

Retries: at most ``RetryPolicy.max_attempts`` attempts and ``max_total`` seconds
per call; exponential backoff with full jitter, or the server's ``Retry-After``
(seconds or an HTTP-date) capped at ``max_delay``; a retry whose delay would
end past ``max_total`` is not made.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from types import TracebackType
from typing import Any, Final, Self

import requests
from requests.auth import AuthBase

from reconciler.api.failures import Endpoint
from reconciler.api.orders import OrderJson, VerifiedOrder, legacy_order, read_verified
from reconciler.api.reads import (
    MAX_ITEMS,
    MAX_PAGES,
    PAGE_SIZE,
    ListReader,
    parse_subscription_detail,
)
from reconciler.api.records import (
    STATUS_SUSPENDED,
    AssetOrder,
    CatalogEntry,
    Listing,
    ProcessedOrder,
    Subscription,
    SubscriptionDetail,
    ci_get,
    ci_key,
)
from reconciler.api.settings import TOKEN_PATH, ApiSettings, RetryPolicy, subscription_path
from reconciler.api.throttle import Throttle
from reconciler.api.transport import (
    CREDENTIALS_HINT,
    ApiRequest,
    RequestsTransport,
    basic_credentials,
)
from reconciler.errors import ApiError, AuthenticationError, FailureKind

SCOPE: Final = "CustomerApi"
#: Token lifetime assumed when the token answer has no usable ExpiresIn.
DEFAULT_TOKEN_LIFETIME: Final = 3600.0

#: New tokens one call may ask for after 401s (more than one only when other
#: threads renewed the token meanwhile).
_MAX_RENEWALS: Final = 3
_DEFAULT_RETRY: Final = RetryPolicy()


class _BasicAuth(AuthBase):
    """Basic credentials encoded as UTF-8 (RFC 7617), not Latin-1 as requests does,
    which cannot encode most secrets outside Western Europe."""

    def __init__(self, user: str, password: str) -> None:
        self._value = basic_credentials(user, password)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Basic {self._value}"
        return request

    def __repr__(self) -> str:
        return "_BasicAuth(***)"


class _BearerAuth(AuthBase):
    """Sets the bearer token; passing auth explicitly also keeps ~/.netrc out of it."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_BearerAuth(***)"


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
        self._retry = retry
        self._sleep = sleep
        self._clock = clock
        self._random = random.Random()
        self._transport = RequestsTransport(settings, session, wall_clock=wall_clock)
        self._errors = self._transport.errors
        self._tokens = _TokenHolder(clock)
        self._counter_lock = threading.Lock()
        self._retries = 0
        self._throttle = Throttle(clock, sleep)
        self._reader = ListReader(
            _ClientPages(self), page_size=page_size, max_pages=max_pages, max_items=max_items
        )

    def __repr__(self) -> str:
        return f"CrayonClient({self._settings!r})"

    @property
    def retries(self) -> int:
        """How many requests were re-sent so far (backoff retries and after-401 repeats)."""
        with self._counter_lock:
            return self._retries

    def watch_throttling(self, listener: Callable[[float | None], None] | None) -> None:
        """Call ``listener`` with the Retry-After (None without one) of every answer
        429, on the thread that got it; None stops. Apply's adaptive limit uses it."""
        self._throttle.listener = listener

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

    # ----------------------------------------------------------------- retries, auth

    def _request(self, request: ApiRequest) -> requests.Response:
        """One API call with a token, the 401 repeat and the bounded retries."""
        started = self._clock()
        attempt = 0
        waited_until = 0.0
        while True:
            attempt += 1
            self._throttle.wait(waited_until)
            try:
                return self._authorized(request)
            except ApiError as error:
                if error.status == 429:
                    waited_until = self._throttle.throttled(error.retry_after, self._retry)
                self._pause_or_raise(error, attempt, started)

    def _authorized(self, request: ApiRequest) -> requests.Response:
        """``request`` with the shared token: the one place that answers a 401."""
        token = self._tokens.current(self._fetch_token)
        renewals = 0
        while True:
            try:
                self._tokens.sending(token)
                response = self._transport.send(request, _BearerAuth(token))
            except ApiError as error:
                if error.status != 401:
                    raise
                # A fresh token refused too is definitive, unless another call was sent
                # with that token (it may have worked for it, or used it up) or another
                # thread replaced it: then it expired or was revoked, which says nothing
                # against the credentials.
                if renewals >= _MAX_RENEWALS or (renewals and not self._tokens.expired(token)):
                    raise self._errors.reworded(
                        error,
                        f"{request.operation} refused: HTTP 401 Unauthorized even with a fresh "
                        "token; check CRAYON_USERNAME and CRAYON_PASSWORD and that the account "
                        "may use the API",
                    ) from None
            else:
                self._tokens.prove(token)
                return response
            # A 401 means the server refused the request, so repeating it with a new
            # token cannot buy twice.
            self._tokens.discard(token)
            self._count_retry()
            renewals += 1
            token = self._tokens.current(self._fetch_token)

    def _pause_or_raise(self, error: ApiError, attempt: int, started: float) -> None:
        """Sleep before the next attempt, or raise ``error`` when it may not be retried."""
        if error.kind is not FailureKind.RETRYABLE:
            raise error
        policy = self._retry
        if attempt >= policy.max_attempts:
            raise self._errors.reworded(error, f"{error} (gave up after {attempt} attempts)")
        if error.retry_after is not None:
            delay = policy.capped(error.retry_after)
        else:
            delay = self._random.uniform(0.0, policy.ceiling(attempt))
        elapsed = self._clock() - started
        if elapsed + delay > policy.max_total:
            raise self._errors.reworded(
                error,
                f"{error} (gave up after {attempt} attempts in {elapsed:.1f} s; "
                f"the retry budget is {policy.max_total:g} s)",
            )
        self._count_retry()
        self._sleep(delay)

    def _count_retry(self) -> None:
        with self._counter_lock:
            self._retries += 1

    def _fetch_token(self) -> tuple[str, float]:
        """A new access token and its lifetime in seconds (called under the token lock)."""
        settings = self._settings
        form = {
            "grant_type": "password",
            "username": settings.username,
            "password": settings.password,
            "scope": SCOPE,
        }
        request = ApiRequest("token", Endpoint.TOKEN, "POST", TOKEN_PATH, form=form)
        response = self._transport.send(
            request, _BasicAuth(settings.client_id, settings.client_secret)
        )
        data = self._transport.read_json(response, "token")
        token = ci_get(data, "AccessToken") if isinstance(data, dict) else None
        refusal = ci_get(data, "Error") if isinstance(data, dict) else None
        if refusal or not isinstance(token, str) or not token:
            reason = "an error" if refusal else "no AccessToken"
            raise self._errors.make(
                f"the Crayon API answered the token request with {reason}; {CREDENTIALS_HINT}",
                FailureKind.DEFINITIVE,
                "POST",
                response.url,
                status=response.status_code,
                error_code=str(refusal) if refusal else None,
                error_class=AuthenticationError,
            )
        self._errors.learn(token)
        if not (token.isascii() and token.isprintable()):
            # It would fail in http.client's header encoding, outside our errors.
            raise self._errors.bad_answer(
                "token: the API answered with an access token that is not printable ASCII, "
                "which cannot be sent in a header",
                response,
            )
        expires_in = ci_get(data, "ExpiresIn")
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
            return token, DEFAULT_TOKEN_LIFETIME
        return token, float(expires_in) if expires_in > 0 else DEFAULT_TOKEN_LIFETIME


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


def _changed(body: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``body`` with ``changes`` (camelCase names) set on the keys that match
    them ignoring case; a field the body lacks gets the body's casing."""
    changed: dict[str, Any] = json.loads(json.dumps(dict(body)))
    pascal = any(isinstance(k, str) and k[:1].isupper() for k in changed)
    for name, value in changes.items():
        key = ci_key(changed, name) or (name[0].upper() + name[1:] if pascal else name)
        changed[key] = value
    return changed


class _TokenHolder:
    """The one bearer token of a client, shared by its threads."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._access_token: str | None = None
        self._proven_token: str | None = None
        #: How many requests were sent with the token in use.
        self._sends = 0
        self._renew_at = 0.0

    def current(self, fetch: Callable[[], tuple[str, float]]) -> str:
        """The token in use, or a new one from ``fetch`` when it is about to expire."""
        with self._lock:
            if self._access_token is not None and self._clock() < self._renew_at:
                return self._access_token
            requested_at = self._clock()
            token, lifetime = fetch()
            self._access_token = token
            self._sends = 0
            self._renew_at = requested_at + lifetime - min(60.0, 0.1 * lifetime)
            return token

    def prove(self, token: str) -> None:
        """Note that the server accepted ``token``."""
        with self._lock:
            self._proven_token = token

    def sending(self, token: str) -> None:
        """Note a request about to be sent with ``token``."""
        with self._lock:
            if token == self._access_token:
                self._sends += 1

    def expired(self, token: str) -> bool:
        """Whether a refused ``token`` once worked, was sent with by another request
        too, or has already been replaced."""
        with self._lock:
            return self._proven_token == token or self._access_token != token or self._sends > 1

    def discard(self, token: str) -> None:
        with self._lock:
            # Another thread may already have replaced it; keep that one.
            if self._access_token == token:
                self._access_token = None
