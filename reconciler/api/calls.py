"""One call to the Crayon Cloud-iQ API, made well: the token, the 401s and the retries.

``Caller.request`` sends an ``ApiRequest`` through the transport with the
client's one bearer token, answers a 401 and retries within bounds; the client
makes every call through it.

401 Unauthorized gets a fresh token and the call repeated once; a second 401
is DEFINITIVE, unless another call was sent with that token (it may have worked
for it, or used it up) or another thread replaced it: then once more, at most 3
new tokens per call. One token per client (``TokenHolder``), renewed shortly
before it expires (10% of its lifetime, at most 60 s early); threads share it,
and a lock makes sure only one of them asks for a new one. A failure to get a
token is never AMBIGUOUS: the request was not sent.

Retries: at most ``RetryPolicy.max_attempts`` attempts and ``max_total`` seconds
per call; exponential backoff with full jitter, or the server's ``Retry-After``
(seconds or an HTTP-date) capped at ``max_delay``; a retry whose delay would
end past ``max_total`` is not made. When retries run out the last error stays
RETRYABLE: the server never took the request or refused it with 429.

This module must not print or log, must never put a secret (client secret,
password, access token) into a message, a repr or an exception, must not
classify a failure itself (``failures`` does) and must not decide what an
answer means beyond the token's.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Final

import requests
from requests.auth import AuthBase

from reconciler.api.failures import Endpoint
from reconciler.api.fields import ci_get
from reconciler.api.settings import TOKEN_PATH, ApiSettings, RetryPolicy
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

#: New tokens one call may ask for after 401s. More than one only when other threads
#: used each new token too (a fresh token refused with no other use is definitive at
#: once); on a loaded machine one thread can lose that race several times in a row to
#: the others of a parallel apply, so the bound is well above one or two losses.
_MAX_RENEWALS: Final = 10


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


class Caller:
    """Sends a client's requests: the shared token, the 401 repeat, the bounded
    retries and the throttle after a 429. Safe to share between threads."""

    def __init__(
        self,
        settings: ApiSettings,
        transport: RequestsTransport,
        *,
        retry: RetryPolicy,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
    ) -> None:
        self._settings = settings
        self._transport = transport
        self._errors = transport.errors
        self._retry = retry
        self._sleep = sleep
        self._clock = clock
        self._random = random.Random()
        self.tokens = TokenHolder(clock)
        self.throttle = Throttle(clock, sleep)
        self._counter_lock = threading.Lock()
        self._retries = 0

    @property
    def retries(self) -> int:
        """How many requests were re-sent so far (backoff retries and after-401 repeats)."""
        with self._counter_lock:
            return self._retries

    def request(self, request: ApiRequest) -> requests.Response:
        """One API call with a token, the 401 repeat and the bounded retries."""
        started = self._clock()
        attempt = 0
        waited_until = 0.0
        while True:
            attempt += 1
            self.throttle.wait(waited_until)
            try:
                return self._authorized(request)
            except ApiError as error:
                if error.status == 429:
                    waited_until = self.throttle.throttled(error.retry_after, self._retry)
                self._pause_or_raise(error, attempt, started)

    def _authorized(self, request: ApiRequest) -> requests.Response:
        """``request`` with the shared token: the one place that answers a 401."""
        token = self.tokens.current(self._fetch_token)
        renewals = 0
        while True:
            try:
                self.tokens.sending(token)
                response = self._transport.send(request, _BearerAuth(token))
            except ApiError as error:
                if error.status != 401:
                    raise
                # A fresh token refused too is definitive, unless another call was sent
                # with that token (it may have worked for it, or used it up) or another
                # thread replaced it: then it expired or was revoked, which says nothing
                # against the credentials.
                if renewals >= _MAX_RENEWALS or (renewals and not self.tokens.expired(token)):
                    raise self._errors.reworded(
                        error,
                        f"{request.operation} refused: HTTP 401 Unauthorized even with a fresh "
                        "token; check CRAYON_USERNAME and CRAYON_PASSWORD and that the account "
                        "may use the API",
                    ) from None
            else:
                self.tokens.prove(token)
                return response
            # A 401 means the server refused the request, so repeating it with a new
            # token cannot buy twice.
            self.tokens.discard(token)
            self._count_retry()
            renewals += 1
            token = self.tokens.current(self._fetch_token)

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


class TokenHolder:
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
