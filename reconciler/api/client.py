"""The Crayon Cloud-iQ API client: token, verify, checkout and the read endpoints.

The typed reads (``read_subscriptions``, ``read_processed_orders``,
``find_asset_orders``, ``read_agreement_products``) and the raw ``list_*`` calls
are delegated to ``reconciler.api.readers.ListReader``, which pages to the end
and turns the items into ``reconciler.api.records``.

Every call is an ``ApiRequest`` that goes through ``CrayonClient._request``
(the bounded retries, the shared token and the one answer to a 401), which
sends it through ``reconciler.api.transport`` (the HTTP seam: timeouts,
headers, and ``requests``' exceptions and non-2xx answers turned into
``ApiError``s classified by ``reconciler.api.failures``, whose docstring has the
table). This module must not print, must not log, must never turn TLS
verification off, must never put a secret (client secret, password, access
token) into a message, a repr or an exception, and must not classify a failure
itself.

A failure to get a token during a checkout is never AMBIGUOUS: the checkout was
not sent. ``checkout`` refuses locally (DEFINITIVE, nothing sent) an order whose
verify answer has errors. A 2xx without the expected JSON body is DEFINITIVE
(a checkout's 2xx body is ignored). When retries run out the last error stays
RETRYABLE: the server never took the request or refused it with 429.

401 Unauthorized gets a fresh token and the call repeated once; a second 401
is DEFINITIVE, unless that token worked for another call or another thread
replaced it: then once more, at most 3 new tokens per call. One token per
client, renewed shortly before it expires (10% of its lifetime, at most 60 s
early); threads share it, and a lock makes sure only one of them asks for a
new one.

Retries: at most ``RetryPolicy.max_attempts`` attempts and ``max_total`` seconds
per call; exponential backoff with full jitter, or the server's ``Retry-After``
(seconds or an HTTP-date) capped at ``max_delay``; a retry whose delay would
end past ``max_total`` is not made.
"""

from __future__ import annotations

import datetime
import email.utils
import random
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final, Self

import requests
from requests.auth import AuthBase

from reconciler.api.failures import Endpoint
from reconciler.api.jsonread import ci_get
from reconciler.api.orders import OrderJson, VerifiedOrder, read_verified
from reconciler.api.readers import PAGE_SIZE, ListReader
from reconciler.api.reads import parse_subscription_detail
from reconciler.api.records import (
    AssetOrder,
    CatalogEntry,
    ProcessedOrder,
    Subscription,
    SubscriptionDetail,
)
from reconciler.api.settings import SUBSCRIPTIONS_PATH, TOKEN_PATH, ApiSettings, RetryPolicy
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
    ``page_size`` is the ``pageSize`` the list calls ask for.
    """

    def __init__(
        self,
        settings: ApiSettings,
        *,
        retry: RetryPolicy = _DEFAULT_RETRY,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        session: requests.Session | None = None,
        page_size: int = PAGE_SIZE,
    ) -> None:
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, not {page_size}")
        self._settings = settings
        self._retry = retry
        self._sleep = sleep
        self._clock = clock
        self._random = random.Random()
        self._transport = RequestsTransport(settings, session)
        self._errors = self._transport.errors
        self._tokens = _TokenHolder(clock)
        self._counter_lock = threading.Lock()
        self._retries = 0
        self._reader = ListReader(settings, self._transport, self._request, page_size)
        self._skew: datetime.timedelta | None = None

    def __repr__(self) -> str:
        return f"CrayonClient({self._settings!r})"

    @property
    def retries(self) -> int:
        """How many requests were re-sent so far (backoff retries and after-401 repeats)."""
        with self._counter_lock:
            return self._retries

    @property
    def clock_skew(self) -> datetime.timedelta | None:
        """How far the API's clock is ahead of ours (negative: behind), from the ``Date``
        header of the latest answer that had one; None until one arrived."""
        with self._counter_lock:
            return self._skew

    def _measure(self, response: requests.Response) -> None:
        header = response.headers.get("Date")
        if not header:
            return
        try:
            server = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError, IndexError):
            return
        if server.tzinfo is None:
            return
        skew = server - datetime.datetime.now(datetime.UTC)
        with self._counter_lock:
            self._skew = skew

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
        """POST the order to verify; business errors come back in ``errors``."""
        path = self._settings.verify_path
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

    def get_subscription(self, subscription_id: int) -> SubscriptionDetail:
        """``GET /subscriptions/{id}``: one subscription, kept whole for a later update."""
        path = f"{SUBSCRIPTIONS_PATH}{subscription_id}/"
        operation = "read subscription"
        response = self._request(ApiRequest(operation, Endpoint.READ, "GET", path))
        return self._detail(response, operation)

    def update_subscription(
        self,
        current: SubscriptionDetail,
        *,
        quantity: int | None = None,
        auto_renew: bool | None = None,
        status: int | None = None,
    ) -> SubscriptionDetail:
        """``PUT /subscriptions/{id}``: ``current`` as read, with only the given fields
        changed (matched by name whatever their casing, so nothing is dropped); the
        updated subscription as the API answers it.

        A 4xx refuses the update (``ApiError.refused``); a lost answer or a 5xx is
        ambiguous and never sent again here: read the subscription back to settle it.
        Cancelling is ``status`` Suspended (2), the status the documented Update
        example sets; assumed to be how Cloud-iQ takes a cancellation.
        """
        body = dict(current.body)
        for name, value in (
            ("quantity", quantity),
            ("autoRenewEnabled", auto_renew),
            ("status", status),
        ):
            if value is not None:
                key = next((k for k in body if k.casefold() == name.casefold()), name)
                body[key] = value
        path = f"{SUBSCRIPTIONS_PATH}{current.id}/"
        operation = "update subscription"
        request = ApiRequest(operation, Endpoint.UPDATE, "PUT", path, json_body=body)
        return self._detail(self._request(request), operation)

    def _detail(self, response: requests.Response, operation: str) -> SubscriptionDetail:
        body = self._transport.read_json(response, operation)
        try:
            return parse_subscription_detail(body)
        except ApiError as error:
            raise self._errors.bad_answer(f"{operation}: {error}", response) from None

    # ----------------------------------------------------------------- lists, typed reads
    # Paging and parsing live in ``ListReader``; it sends through ``_request``.

    def list_orders(self, customer_tenant_id: int) -> list[dict[str, Any]]:
        """Every processed purchase order of one customer tenant (all pages), as JSON."""
        return self._reader.list_orders(customer_tenant_id)

    def list_subscriptions(self, customer_tenant_id: int) -> list[dict[str, Any]]:
        """Every subscription of one customer tenant (all pages), as JSON."""
        return self._reader.list_subscriptions(customer_tenant_id)

    def read_subscriptions(
        self, customer_tenant_id: int, *, statuses: int | None = None
    ) -> list[Subscription]:
        """The tenant's subscriptions, those with a status flag in ``statuses`` if given
        (``reads.STATUS_ACTIVE`` for the ones holding seats)."""
        return self._reader.read_subscriptions(customer_tenant_id, statuses=statuses)

    def read_processed_orders(self, customer_tenant_id: int) -> list[ProcessedOrder]:
        """Every processed purchase order line of the tenant, oldest first as the API lists them."""
        return self._reader.read_processed_orders(customer_tenant_id)

    def find_asset_orders(
        self, customer_tenant_id: int, external_order_id: str
    ) -> list[AssetOrder]:
        """The tenant's asset orders whose externalOrderId is exactly ``external_order_id``."""
        return self._reader.find_asset_orders(customer_tenant_id, external_order_id)

    def read_agreement_products(
        self, customer_tenant_id: int, search: str | None = None
    ) -> list[CatalogEntry]:
        """The products (names, unit prices) the tenant may buy, matching ``search`` if given."""
        return self._reader.read_agreement_products(customer_tenant_id, search)

    # ----------------------------------------------------------------- retries, auth

    def _request(self, request: ApiRequest) -> requests.Response:
        """One API call with a token, the 401 repeat and the bounded retries."""
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._authorized(request)
            except ApiError as error:
                self._pause_or_raise(error, attempt, started)

    def _authorized(self, request: ApiRequest) -> requests.Response:
        """``request`` with the shared token: the one place that answers a 401."""
        token = self._tokens.current(self._fetch_token)
        renewals = 0
        while True:
            try:
                response = self._transport.send(request, _BearerAuth(token))
            except ApiError as error:
                if error.status != 401:
                    raise
                # A fresh token refused too is definitive, unless that token has
                # worked for another call or was replaced by another thread: then it
                # expired or was revoked, which says nothing against the credentials.
                if renewals >= _MAX_RENEWALS or (renewals and not self._tokens.expired(token)):
                    raise self._errors.reworded(
                        error,
                        f"{request.operation} refused: HTTP 401 Unauthorized even with a fresh "
                        "token; check CRAYON_USERNAME and CRAYON_PASSWORD and that the account "
                        "may use the API",
                    ) from None
            else:
                self._tokens.prove(token)
                self._measure(response)
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


class _TokenHolder:
    """The one bearer token of a client, shared by its threads."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._access_token: str | None = None
        self._proven_token: str | None = None
        self._renew_at = 0.0

    def current(self, fetch: Callable[[], tuple[str, float]]) -> str:
        """The token in use, or a new one from ``fetch`` when it is about to expire."""
        with self._lock:
            if self._access_token is not None and self._clock() < self._renew_at:
                return self._access_token
            requested_at = self._clock()
            token, lifetime = fetch()
            self._access_token = token
            self._renew_at = requested_at + lifetime - min(60.0, 0.1 * lifetime)
            return token

    def prove(self, token: str) -> None:
        """Note that the server accepted ``token``."""
        with self._lock:
            self._proven_token = token

    def expired(self, token: str) -> bool:
        """Whether a refused ``token`` once worked or has already been replaced."""
        with self._lock:
            return self._proven_token == token or self._access_token != token

    def discard(self, token: str) -> None:
        with self._lock:
            # Another thread may already have replaced it; keep that one.
            if self._access_token == token:
                self._access_token = None
