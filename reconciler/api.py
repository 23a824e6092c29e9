"""The Crayon Cloud-iQ API client: token, verify, checkout and the read endpoints.

This is the only module that imports ``requests``. Every HTTP call goes through
``CrayonClient._send``, which sets the timeouts and headers, turns ``requests``
exceptions and non-2xx answers into ``ApiError`` and classifies each failure;
nothing else in the code decides whether a failure may be retried. This module
must not print, must not log, must never turn TLS verification off, and must
never put a secret (client secret, password, access token) into a message, a
repr or an exception.

How failures are classified (``FailureKind``)::

    what happened                              token, verify, GETs   checkout
    -----------------------------------------  --------------------  ------------------------
    2xx                                        success               success
    could not connect: refused, DNS failure,   RETRYABLE, retried    RETRYABLE, retried (the
      connect timeout (nothing was sent)                             request never left)
    TLS certificate rejected                   DEFINITIVE            DEFINITIVE
    other TLS error                            RETRYABLE, retried    AMBIGUOUS, never re-sent
    read timeout; connection reset, dropped    RETRYABLE, retried    AMBIGUOUS, never re-sent
      or broken after the request was sent
    429 Too Many Requests                      RETRYABLE, retried    RETRYABLE, retried
    401 Unauthorized                           a fresh token, the call repeated once;
                                               a second 401 is DEFINITIVE (unless that
                                               token worked for another call or another
                                               thread replaced it: then once more; at
                                               most 3 new tokens per call)
    400 403 404 409 422                        DEFINITIVE            DEFINITIVE
    408, 5xx                                   RETRYABLE, retried    AMBIGUOUS, never re-sent
    any other status (3xx: redirects are       DEFINITIVE            AMBIGUOUS, never re-sent
      never followed; other 4xx)
    2xx without the expected JSON body         DEFINITIVE            (a 2xx body is ignored)
    retries exhausted                          the last error:       RETRYABLE: the server
                                               RETRYABLE             never took the order or
                                                                     refused it with 429
    token endpoint 400/401 (bad credentials)   DEFINITIVE; the message names the CRAYON_*
                                               variables to check, never their values

A failure to get a token during a checkout is never AMBIGUOUS: the checkout was
not sent. ``checkout`` refuses locally (DEFINITIVE, nothing sent) an order whose
verify answer has errors. Verify's business errors (the order's and each line's
``errors``) are data, not exceptions; verify also reports ``VerifyResponseMismatch``
for any tenant, product, quantity or term its answer changed, because checkout
buys exactly what verify returned.

Retries: at most ``RetryPolicy.max_attempts`` attempts and ``max_total`` seconds
per call; exponential backoff with full jitter (a delay drawn from
``[0, min(max_delay, base_delay * 2**(n-1))]`` before retry ``n``), or the
server's ``Retry-After`` (seconds or an HTTP-date) capped at ``max_delay``; a
retry whose delay would end past ``max_total`` is not made.

One token per client, renewed shortly before it expires (10% of its lifetime,
at most 60 s early) or once after a 401; threads share it, and a lock makes
sure only one of them asks for a new one.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from types import MappingProxyType, TracebackType
from typing import Any, Final, Self
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase, HTTPBasicAuth
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError

from reconciler import __version__
from reconciler.errors import (
    ApiError,
    ApiObjectError,
    AuthenticationError,
    ConfigurationError,
    FailureKind,
)
from reconciler.model import BILLING_CYCLES, PURCHASE_TYPES, TAG_KEYS, Purchase

DEFAULT_API_URL: Final = "https://api.crayon.com"
URL_VARIABLE: Final = "CRAYON_API_URL"
CREDENTIAL_VARIABLES: Final = (
    "CRAYON_CLIENT_ID",
    "CRAYON_CLIENT_SECRET",
    "CRAYON_USERNAME",
    "CRAYON_PASSWORD",
)
#: Optional timeouts in seconds; the defaults are ApiSettings' own.
TIMEOUT_VARIABLES: Final = ("RECONCILER_CONNECT_TIMEOUT", "RECONCILER_READ_TIMEOUT")
USER_AGENT: Final = f"crayon-reconciler/{__version__}"
SCOPE: Final = "CustomerApi"

TOKEN_PATH: Final = "/api/v1/connect/token"
VERIFY_PATH: Final = "/api/v1/purchaserequest/verify"
CHECKOUT_PATH: Final = "/api/v1/purchaserequest/checkout"
LEGACY_VERIFY_PATH: Final = "/api/v1/assets/verify"
LEGACY_CHECKOUT_PATH: Final = "/api/v1/assets/checkout"
ORDERS_PATH: Final = "/api/v1/purchaserequest/orders/"
SUBSCRIPTIONS_PATH: Final = "/api/v1/subscriptions/"

PAGE_SIZE: Final = 100
MAX_PAGES: Final = 10_000
#: Token lifetime assumed when the token answer has no usable ExpiresIn.
DEFAULT_TOKEN_LIFETIME: Final = 3600.0

_DEFINITIVE_STATUSES: Final = frozenset({400, 403, 404, 409, 422})
#: New tokens one call may ask for after 401s (more than one only when other
#: threads renewed the token meanwhile).
_MAX_RENEWALS: Final = 3
_CREDENTIALS_HINT: Final = (
    "check " + ", ".join(CREDENTIAL_VARIABLES[:-1]) + (f" and {CREDENTIAL_VARIABLES[-1]}")
)
_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost."})
_MAX_TEXT: Final = 300


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class ApiSettings:
    """Where the API is and who we are; secrets stay out of the repr."""

    base_url: str
    client_id: str
    client_secret: str = field(repr=False)
    username: str
    password: str = field(repr=False)
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    legacy_endpoints: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", _checked_base_url(self.base_url))
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ConfigurationError("API timeouts must be positive numbers of seconds")

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, legacy_endpoints: bool = False) -> ApiSettings:
        """Read the CRAYON_* variables; every missing one is named, no value ever shown."""
        problems: list[str] = []
        missing = [name for name in CREDENTIAL_VARIABLES if not env.get(name, "").strip()]
        if missing:
            noun = "variable" if len(missing) == 1 else "variables"
            problems.append(f"missing environment {noun}: {', '.join(missing)}")
        url = env.get(URL_VARIABLE, "").strip() or DEFAULT_API_URL
        try:
            url = _checked_base_url(url)
        except ConfigurationError as error:
            problems.append(str(error))
        timeouts: dict[str, float] = {}
        for name, setting in zip(
            TIMEOUT_VARIABLES, ("connect_timeout", "read_timeout"), strict=True
        ):
            text = env.get(name, "").strip()
            if not text:
                continue
            try:
                timeouts[setting] = float(text)
            except ValueError:
                timeouts[setting] = -1.0
            if not 0 < timeouts[setting] < float("inf"):
                problems.append(f"{name} must be a positive number of seconds, not {text!r}")
        if problems:
            raise ConfigurationError("; ".join(problems))
        return cls(
            base_url=url,
            client_id=env["CRAYON_CLIENT_ID"].strip(),
            client_secret=env["CRAYON_CLIENT_SECRET"],
            username=env["CRAYON_USERNAME"].strip(),
            password=env["CRAYON_PASSWORD"],
            legacy_endpoints=legacy_endpoints,
            **timeouts,
        )


def _checked_base_url(url: str) -> str:
    """The normalised base URL, or ConfigurationError (never echoing credentials)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise ConfigurationError(f"{URL_VARIABLE} must be an https:// URL")
    if "@" in parts.netloc:
        raise ConfigurationError(
            f"{URL_VARIABLE} must not contain credentials; use CRAYON_USERNAME and CRAYON_PASSWORD"
        )
    try:
        host = parts.hostname
        _ = parts.port
    except ValueError:
        raise ConfigurationError(f"{URL_VARIABLE} has an invalid host or port") from None
    if not host:
        raise ConfigurationError(f"{URL_VARIABLE} has no host")
    if parts.query or parts.fragment:
        raise ConfigurationError(f"{URL_VARIABLE} must not have a query or fragment")
    if scheme == "http" and not _is_loopback(host):
        raise ConfigurationError(
            f"{URL_VARIABLE}: plain http:// is allowed only for a loopback host "
            f"(127.0.0.1, ::1, localhost), not {host}; use https://"
        )
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds on retrying one call: attempts, per-delay and total seconds."""

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_total: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.base_delay, self.max_delay, self.max_total) < 0:
            raise ValueError("retry delays must not be negative")


# --------------------------------------------------------------------------- orders


@dataclass(frozen=True)
class LineError:
    """One business error from verify; ``line`` is the 0-based order line, -1 for the order."""

    line: int
    code: str
    description: str
    properties: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        where = "order" if self.line < 0 else f"orderLines[{self.line}]"
        props = ", ".join(f"{k}={v}" for k, v in sorted(self.properties.items()))
        text = f"{where}: {self.code}: {self.description}"
        return f"{text} ({props})" if props else text


@dataclass(frozen=True)
class VerifiedOrder:
    """The verify answer exactly as returned (checkout sends it back unchanged)."""

    body: Mapping[str, Any]
    errors: tuple[LineError, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors


def build_order(purchase: Purchase, quantity: int, external_order_id: str) -> dict[str, Any]:
    """The camelCase order buying ``quantity`` seats of ``purchase`` on one line."""
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise ValueError(f"quantity must be a positive integer, not {quantity!r}")
    identity = purchase.identity
    try:
        billing_cycle = BILLING_CYCLES[identity.billing_cycle]
        asset_type = PURCHASE_TYPES[identity.type]
    except KeyError as error:
        raise ValueError(f"{purchase.address}: unknown enum value {error}") from None
    unknown_tags = sorted(set(purchase.tags) - set(TAG_KEYS))
    if unknown_tags:
        raise ValueError(f"{purchase.address}: unknown tag keys {unknown_tags}")

    line: dict[str, Any] = {"productId": identity.product_id, "skuId": identity.sku_id}
    if purchase.product_variant_id is not None:
        line["productVariantId"] = purchase.product_variant_id
    line |= {
        "quantity": quantity,
        "billingCycle": billing_cycle,
        "termDuration": identity.term_duration,
        "type": asset_type,
    }
    if purchase.tags:
        line["tags"] = {key: purchase.tags[key] for key in TAG_KEYS if key in purchase.tags}
    if purchase.provisioning_context:
        line["provisioningContext"] = dict(sorted(purchase.provisioning_context.items()))
    if purchase.attestation_accepted is not None:
        line["attestationAccepted"] = purchase.attestation_accepted

    order: dict[str, Any] = {
        "resellerCustomerId": identity.customer_tenant_id,
        "externalOrderId": external_order_id,
    }
    if purchase.notification_email is not None:
        order["notificationEmail"] = purchase.notification_email
    if purchase.invoice_profile_id is not None:
        order["invoiceProfileId"] = purchase.invoice_profile_id
    order["orderLines"] = [line]
    return order


def new_external_order_id() -> str:
    """A fresh, unique correlation id for one order."""
    return "reconciler-" + uuid.uuid4().hex


# --------------------------------------------------------------------------- client


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
    """Talks to the Crayon API; safe to share between the threads of one pool."""

    def __init__(
        self,
        settings: ApiSettings,
        *,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._retry = retry
        self._sleep = sleep
        self._clock = clock
        self._random = random.Random()
        self._session = requests.Session()
        # No retries inside urllib3: this class alone decides what is repeated.
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        self._token_lock = threading.Lock()
        self._access_token: str | None = None
        self._proven_token: str | None = None
        self._renew_at = 0.0
        self._counter_lock = threading.Lock()
        self._retries = 0
        self._secrets = tuple(s for s in (settings.client_secret, settings.password) if len(s) >= 3)

    def __repr__(self) -> str:
        return f"CrayonClient({self._settings!r})"

    @property
    def retries(self) -> int:
        """How many requests were re-sent so far (backoff retries and after-401 repeats)."""
        with self._counter_lock:
            return self._retries

    def close(self) -> None:
        self._session.close()

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

    def verify(self, order: Mapping[str, Any]) -> VerifiedOrder:
        """POST the order to verify; business errors come back in ``errors``."""
        path = LEGACY_VERIFY_PATH if self._settings.legacy_endpoints else VERIFY_PATH
        response = self._call("verify", "POST", path, idempotent=True, json_body=order)
        body = self._json(response, "verify")
        if not isinstance(body, dict):
            raise self._error(
                "verify: the API answered with something that is not an order",
                FailureKind.DEFINITIVE,
                "POST",
                response.url,
                status=response.status_code,
            )
        errors = _verify_errors(body) + _echo_mismatches(order, body)
        return VerifiedOrder(body=body, errors=errors)

    def checkout(self, verified: VerifiedOrder) -> None:
        """POST the verify answer unchanged. Returns on 2xx; raises ApiError otherwise."""
        path = LEGACY_CHECKOUT_PATH if self._settings.legacy_endpoints else CHECKOUT_PATH
        if not verified.ok:
            raise self._error(
                "checkout not sent: the verified order has errors",
                FailureKind.DEFINITIVE,
                "POST",
                self._settings.base_url + path,
            )
        self._call("checkout", "POST", path, idempotent=False, json_body=dict(verified.body))

    def list_orders(self, customer_tenant_id: int) -> list[dict[str, Any]]:
        """Every processed purchase order of one customer tenant (all pages)."""
        return self._list("list orders", ORDERS_PATH, customer_tenant_id)

    def list_subscriptions(self, customer_tenant_id: int) -> list[dict[str, Any]]:
        """Every subscription of one customer tenant (all pages)."""
        return self._list("list subscriptions", SUBSCRIPTIONS_PATH, customer_tenant_id)

    # ----------------------------------------------------------------- retries, auth

    def _list(self, operation: str, path: str, customer_tenant_id: int) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            params = {"customerTenantId": customer_tenant_id, "page": page, "pageSize": PAGE_SIZE}
            response = self._call(operation, "GET", path, idempotent=True, params=params)
            data = self._json(response, operation)
            page_items = _ci_get(data, "Items") if isinstance(data, dict) else data
            total = _ci_get(data, "TotalHits") if isinstance(data, dict) else None
            if not isinstance(page_items, list) or not all(isinstance(i, dict) for i in page_items):
                raise self._error(
                    f"{operation}: the API answered without a list of Items",
                    FailureKind.DEFINITIVE,
                    "GET",
                    response.url,
                    status=response.status_code,
                )
            items.extend(page_items)
            if not isinstance(data, dict) or not page_items:
                return items
            if isinstance(total, int) and not isinstance(total, bool):
                if len(items) >= total:
                    return items
            elif len(page_items) < PAGE_SIZE:
                return items
        raise self._error(
            f"{operation}: more than {MAX_PAGES} pages",
            FailureKind.DEFINITIVE,
            "GET",
            self._settings.base_url + path,
        )

    def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        idempotent: bool,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> requests.Response:
        """One API call with a token, the 401 repeat and the bounded retries."""
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._authorized(operation, method, path, idempotent, json_body, params)
            except ApiError as error:
                self._pause_or_raise(error, attempt, started)

    def _authorized(
        self,
        operation: str,
        method: str,
        path: str,
        idempotent: bool,
        json_body: Any,
        params: Mapping[str, Any] | None,
    ) -> requests.Response:
        token = self._token()
        renewals = 0
        while True:
            try:
                response = self._send(
                    operation,
                    method,
                    path,
                    idempotent=idempotent,
                    auth=_BearerAuth(token),
                    json_body=json_body,
                    params=params,
                )
            except ApiError as error:
                if error.status != 401:
                    raise
                # A fresh token refused too is definitive, unless that token has
                # worked for another call or was replaced by another thread: then it
                # expired or was revoked, which says nothing against the credentials.
                if renewals >= _MAX_RENEWALS or (renewals and not self._expired(token)):
                    raise self._reworded(
                        error,
                        f"{operation} refused: HTTP 401 Unauthorized even with a fresh token; "
                        "check CRAYON_USERNAME and CRAYON_PASSWORD and that the account "
                        "may use the API",
                    ) from None
            else:
                with self._token_lock:
                    self._proven_token = token
                return response
            # A 401 means the server refused the request, so repeating it with a new
            # token cannot buy twice.
            self._discard_token(token)
            self._count_retry()
            renewals += 1
            token = self._token()

    def _pause_or_raise(self, error: ApiError, attempt: int, started: float) -> None:
        """Sleep before the next attempt, or raise ``error`` when it may not be retried."""
        if error.kind is not FailureKind.RETRYABLE:
            raise error
        policy = self._retry
        if attempt >= policy.max_attempts:
            raise self._reworded(error, f"{error} (gave up after {attempt} attempts)")
        if error.retry_after is not None:
            delay = min(max(error.retry_after, 0.0), policy.max_delay)
        else:
            ceiling = min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1))
            delay = self._random.uniform(0.0, ceiling)
        elapsed = self._clock() - started
        if elapsed + delay > policy.max_total:
            raise self._reworded(
                error,
                f"{error} (gave up after {attempt} attempts in {elapsed:.1f} s; "
                f"the retry budget is {policy.max_total:g} s)",
            )
        self._count_retry()
        self._sleep(delay)

    def _count_retry(self) -> None:
        with self._counter_lock:
            self._retries += 1

    def _token(self) -> str:
        with self._token_lock:
            if self._access_token is not None and self._clock() < self._renew_at:
                return self._access_token
            requested_at = self._clock()
            token, lifetime = self._fetch_token()
            self._access_token = token
            self._renew_at = requested_at + lifetime - min(60.0, 0.1 * lifetime)
            return token

    def _expired(self, token: str) -> bool:
        """Whether a refused ``token`` once worked or has already been replaced."""
        with self._token_lock:
            return self._proven_token == token or self._access_token != token

    def _discard_token(self, token: str) -> None:
        with self._token_lock:
            # Another thread may already have replaced it; keep that one.
            if self._access_token == token:
                self._access_token = None

    def _fetch_token(self) -> tuple[str, float]:
        settings = self._settings
        form = {
            "grant_type": "password",
            "username": settings.username,
            "password": settings.password,
            "scope": SCOPE,
        }
        try:
            response = self._send(
                "token",
                "POST",
                TOKEN_PATH,
                idempotent=True,
                auth=HTTPBasicAuth(settings.client_id, settings.client_secret),
                form=form,
            )
        except ApiError as error:
            if error.status in (400, 401):
                raise self._reworded(
                    error,
                    f"the Crayon API refused the credentials (HTTP {error.status}); "
                    f"{_CREDENTIALS_HINT}",
                    AuthenticationError,
                ) from None
            raise
        data = self._json(response, "token")
        token = _ci_get(data, "AccessToken") if isinstance(data, dict) else None
        refusal = _ci_get(data, "Error") if isinstance(data, dict) else None
        if refusal or not isinstance(token, str) or not token:
            reason = "an error" if refusal else "no AccessToken"
            raise self._error(
                f"the Crayon API answered the token request with {reason}; {_CREDENTIALS_HINT}",
                FailureKind.DEFINITIVE,
                "POST",
                response.url,
                status=response.status_code,
                error_code=str(refusal) if refusal else None,
                error_class=AuthenticationError,
            )
        self._secrets = (*self._secrets, token)
        expires_in = _ci_get(data, "ExpiresIn")
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
            lifetime = DEFAULT_TOKEN_LIFETIME
        else:
            lifetime = float(expires_in) if expires_in > 0 else DEFAULT_TOKEN_LIFETIME
        return token, lifetime

    # ----------------------------------------------------------------- the HTTP seam

    def _send(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        idempotent: bool,
        auth: AuthBase,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> requests.Response:
        """The one place that sends HTTP. Returns a 2xx response or raises ApiError.

        ``idempotent`` says whether the server acting twice would be harmless; it
        decides how failures after sending are classified (see the module docstring).
        """
        url = self._settings.base_url + path
        shown_url = f"{url}?{urlencode(params)}" if params else url
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        data: bytes | dict[str, str] | None = None
        if form is not None:
            data = dict(form)
        else:
            headers["Content-Type"] = "application/json"
            if json_body is not None:
                data = json.dumps(json_body, ensure_ascii=False).encode("utf-8")
        try:
            response = self._session.request(
                method,
                url,
                params=params,
                data=data,
                headers=headers,
                auth=auth,
                timeout=(self._settings.connect_timeout, self._settings.read_timeout),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise self._transport_error(operation, method, shown_url, exc, idempotent) from exc
        if 200 <= response.status_code < 300:
            return response
        raise self._status_error(operation, method, shown_url, response, idempotent)

    def _transport_error(
        self,
        operation: str,
        method: str,
        url: str,
        exc: requests.RequestException,
        idempotent: bool,
    ) -> ApiError:
        sent_kind = FailureKind.RETRYABLE if idempotent else FailureKind.AMBIGUOUS
        cause = _root_cause(exc)
        if isinstance(
            exc,
            requests.exceptions.InvalidURL
            | requests.exceptions.MissingSchema
            | requests.exceptions.InvalidSchema
            | requests.exceptions.InvalidHeader
            | requests.exceptions.URLRequired,
        ):
            kind, reason = FailureKind.DEFINITIVE, f"the request could not be made ({cause})"
        elif _never_sent(exc):
            kind, reason = FailureKind.RETRYABLE, f"could not connect ({cause})"
        elif isinstance(exc, requests.exceptions.SSLError):
            if "CERTIFICATE_VERIFY_FAILED" in cause or "certificate verify failed" in cause:
                kind, reason = FailureKind.DEFINITIVE, f"TLS certificate rejected ({cause})"
            else:
                kind, reason = sent_kind, f"TLS error ({cause})"
        elif isinstance(exc, requests.Timeout):
            kind = sent_kind
            reason = f"no answer within {self._settings.read_timeout:g} s of sending the request"
        elif isinstance(exc, requests.ConnectionError):
            kind, reason = sent_kind, f"the connection broke after the request was sent ({cause})"
        else:
            kind, reason = sent_kind, f"the answer could not be read ({cause})"
        return self._error(_headline(operation, kind, reason), kind, method, url)

    def _status_error(
        self,
        operation: str,
        method: str,
        url: str,
        response: requests.Response,
        idempotent: bool,
    ) -> ApiError:
        status = response.status_code
        if status == 429:
            kind = FailureKind.RETRYABLE
        elif status in _DEFINITIVE_STATUSES or status == 401:
            kind = FailureKind.DEFINITIVE
        elif not idempotent:
            kind = FailureKind.AMBIGUOUS
        elif status == 408 or status >= 500:
            kind = FailureKind.RETRYABLE
        else:
            kind = FailureKind.DEFINITIVE
        error_code, api_message, object_errors = _error_body(response.content)
        return self._error(
            _headline(operation, kind, f"HTTP {status} {_phrase(status)}"),
            kind,
            method,
            url,
            status=status,
            error_code=error_code,
            api_message=api_message,
            object_errors=object_errors,
            retry_after=_retry_after(response.headers.get("Retry-After")),
        )

    def _json(self, response: requests.Response, operation: str) -> Any:
        """The JSON of a 2xx answer; an empty or unparsable one is DEFINITIVE."""
        problem = "an empty body"
        if response.content.strip():
            try:
                return json.loads(response.content)
            except ValueError:
                problem = "a body that is not JSON"
        raise self._error(
            f"{operation}: the API answered HTTP {response.status_code} with {problem}",
            FailureKind.DEFINITIVE,
            response.request.method or "",
            response.url,
            status=response.status_code,
        )

    def _error(
        self,
        message: str,
        kind: FailureKind,
        method: str,
        url: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        api_message: str | None = None,
        object_errors: Sequence[ApiObjectError] = (),
        retry_after: float | None = None,
        error_class: type[ApiError] = ApiError,
    ) -> ApiError:
        """An ApiError whose every text has been scrubbed of secrets."""
        scrub = self._redact
        return error_class(
            scrub(message),
            kind=kind,
            method=method,
            url=scrub(url),
            status=status,
            error_code=scrub(error_code) if error_code is not None else None,
            api_message=scrub(api_message) if api_message is not None else None,
            object_errors=tuple(
                ApiObjectError(code=scrub(e.code), message=scrub(e.message)) for e in object_errors
            ),
            retry_after=retry_after,
        )

    def _reworded(
        self, error: ApiError, message: str, error_class: type[ApiError] = ApiError
    ) -> ApiError:
        return self._error(
            message,
            error.kind,
            error.method,
            error.url,
            status=error.status,
            error_code=error.error_code,
            api_message=error.api_message,
            object_errors=error.object_errors,
            retry_after=error.retry_after,
            error_class=error_class,
        )

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


# --------------------------------------------------------------------------- parsing


def _headline(operation: str, kind: FailureKind, reason: str) -> str:
    if kind is FailureKind.DEFINITIVE:
        return f"{operation} refused: {reason}"
    if kind is FailureKind.AMBIGUOUS:
        return (
            f"{operation} outcome unknown: {reason}; "
            "the API may or may not have acted on the request"
        )
    return f"{operation} failed: {reason}"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "(unknown status)"


def _never_sent(exc: requests.RequestException) -> bool:
    """True only when the failure provably happened before the request left.

    urllib3 raises NewConnectionError (a ConnectTimeoutError) only while opening
    the socket, so nothing of the request can have been sent. Resets, drops and
    read timeouts come as other exceptions and are not "never sent".
    """
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.SSLError | requests.exceptions.ProxyError):
        return False
    if isinstance(exc, requests.ConnectionError) and exc.args:
        inner = exc.args[0]
        return isinstance(inner, MaxRetryError) and isinstance(inner.reason, ConnectTimeoutError)
    return False


def _root_cause(exc: BaseException) -> str:
    """The innermost reason of a requests/urllib3 exception chain, briefly."""
    current: BaseException = exc
    seen = {id(current)}
    for _ in range(10):
        following: BaseException | None = None
        if isinstance(current, MaxRetryError) and current.reason is not None:
            following = current.reason
        elif current.args and isinstance(current.args[-1], BaseException):
            following = current.args[-1]
        elif current.__cause__ is not None:
            following = current.__cause__
        if following is None or id(following) in seen:
            break
        seen.add(id(following))
        current = following
    text = str(current) or type(current).__name__
    # urllib3 prefixes connection errors with an object repr ("<...HTTPConnection ...>: ").
    text = re.sub(r"<[^<>]*>:\s*", "", text)
    return _clip(text)


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP-date)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if seconds == seconds else None  # NaN is not a delay
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _error_body(content: bytes) -> tuple[str | None, str | None, tuple[ApiObjectError, ...]]:
    """ErrorCode, Message and ObjectErrors of an error answer, read case-insensitively.

    Also reads the OAuth ``error``/``error_description`` of the token endpoint.
    Empty bodies give nothing; non-JSON bodies give their (clipped) text.
    """
    text = content.decode("utf-8", errors="replace").strip()
    if not text:
        return None, None, ()
    try:
        data = json.loads(text)
    except ValueError:
        return None, _clip(text), ()
    if isinstance(data, str):
        return None, _clip(data), ()
    if not isinstance(data, dict):
        return None, None, ()
    code = _ci_get(data, "ErrorCode") or _ci_get(data, "error")
    message = _ci_get(data, "Message") or _ci_get(data, "error_description")
    object_errors = tuple(
        ApiObjectError(
            code=_clip(str(_ci_get(entry, "ErrorCode") or "")),
            message=_clip(str(_ci_get(entry, "Message") or "")),
        )
        for entry in _as_list(_ci_get(data, "ObjectErrors"))
        if isinstance(entry, dict)
    )
    return (
        _clip(str(code)) if code else None,
        _clip(str(message)) if message else None,
        object_errors,
    )


def _ci_get(data: Mapping[str, Any], name: str) -> Any:
    """``data[name]`` matching the key case-insensitively; None when absent."""
    if name in data:
        return data[name]
    wanted = name.casefold()
    for key, value in data.items():
        if isinstance(key, str) and key.casefold() == wanted:
            return value
    return None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text_map(value: Any) -> Mapping[str, str]:
    if not isinstance(value, dict):
        return MappingProxyType({})
    return MappingProxyType({str(k): "" if v is None else str(v) for k, v in value.items()})


def _verify_errors(body: Mapping[str, Any]) -> tuple[LineError, ...]:
    """The order's ``errors`` and every line's ``errors``."""
    errors: list[LineError] = []
    for entry in _as_list(_ci_get(body, "errors")):
        if isinstance(entry, dict):
            code = _ci_get(entry, "code")
            if code is None:
                code = _ci_get(entry, "reasonCode")
            description = _ci_get(entry, "description") or _ci_get(entry, "message") or ""
            group = _ci_get(entry, "orderGroupId")
            properties = _text_map(_ci_get(entry, "properties"))
            if group is not None:
                properties = MappingProxyType({**properties, "orderGroupId": str(group)})
            errors.append(LineError(-1, str(code or ""), str(description), properties))
        elif entry is not None:
            errors.append(LineError(-1, "", str(entry), MappingProxyType({})))
    for index, line in enumerate(_as_list(_ci_get(body, "orderLines"))):
        if not isinstance(line, dict):
            continue
        for entry in _as_list(_ci_get(line, "errors")):
            if isinstance(entry, dict):
                code = _ci_get(entry, "reasonCode")
                if code is None:
                    code = _ci_get(entry, "code")
                description = _ci_get(entry, "description") or _ci_get(entry, "message") or ""
                properties = _text_map(_ci_get(entry, "properties"))
                errors.append(LineError(index, str(code or ""), str(description), properties))
            elif entry is not None:
                errors.append(LineError(index, "", str(entry), MappingProxyType({})))
    return tuple(errors)


_ECHO_ORDER_FIELDS: Final = ("resellerCustomerId", "externalOrderId")
_ECHO_LINE_FIELDS: Final = (
    "productId",
    "skuId",
    "productVariantId",
    "quantity",
    "billingCycle",
    "termDuration",
    "type",
)


def _echo_mismatches(sent: Mapping[str, Any], body: Mapping[str, Any]) -> tuple[LineError, ...]:
    """Errors for every field verify changed: checkout buys what verify returned.

    A verify answer with another quantity, product or tenant than we asked for
    would make the state record something else than what is bought.
    """
    found: list[LineError] = []

    def compare(line: int, name: str, ours: Any, theirs: Any) -> None:
        if ours is None or theirs is None or ours == theirs:
            return
        if str(ours).casefold() == str(theirs).casefold():
            return
        found.append(
            LineError(
                line,
                "VerifyResponseMismatch",
                f"verify answered {name}={theirs!r} for an order with {name}={ours!r}",
                MappingProxyType({"field": name}),
            )
        )

    for name in _ECHO_ORDER_FIELDS:
        compare(-1, name, _ci_get(sent, name), _ci_get(body, name))
    if not isinstance(_ci_get(sent, "orderLines"), list):
        return tuple(found)
    sent_lines = _as_list(_ci_get(sent, "orderLines"))
    answered_lines = _as_list(_ci_get(body, "orderLines"))
    if len(sent_lines) != len(answered_lines):
        compare(-1, "len(orderLines)", len(sent_lines), len(answered_lines))
        return tuple(found)
    for index, (ours, theirs) in enumerate(zip(sent_lines, answered_lines, strict=True)):
        if isinstance(ours, dict) and isinstance(theirs, dict):
            for name in _ECHO_LINE_FIELDS:
                compare(index, name, _ci_get(ours, name), _ci_get(theirs, name))
    return tuple(found)
