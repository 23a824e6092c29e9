"""The HTTP seam: the one place that sends a request to the Crayon API.

``RequestsTransport.send`` takes an ``ApiRequest``, sets the timeouts and
headers, never follows a redirect, and returns a 2xx response or raises
``ApiError``: it maps ``requests``' exceptions onto the facts
``reconciler.api.failures`` classifies and applies that classification, and
``ApiErrors`` builds every error with its secrets scrubbed; ``ClockSkew`` keeps
what the ``Date`` header of every answer says of the local clock. ``read_json``
parses an answer within ``fields.load_json``'s limits. Retries, tokens and
what an answer means are the client's. This module must not print, must not
log, must never turn TLS verification off, and must never put a secret (client
secret, password, access token) into a message, a repr or an exception.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from typing import Any, Final
from urllib.parse import quote, quote_plus, urlencode

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError

from reconciler import __version__
from reconciler.api.failures import (
    Endpoint,
    TransportFailure,
    classify_status,
    classify_transport,
    clip,
    error_body,
    headline,
    refuses_credentials,
    refuses_order,
    retry_after,
    status_reason,
    transport_reason,
)
from reconciler.api.fields import UnreadableJson, load_json
from reconciler.api.settings import CREDENTIAL_VARIABLES, ApiSettings
from reconciler.errors import ApiError, ApiObjectError, AuthenticationError, FailureKind

USER_AGENT: Final = f"crayon-reconciler/{__version__}"
CREDENTIALS_HINT: Final = (
    "check " + ", ".join(CREDENTIAL_VARIABLES[:-1]) + (f" and {CREDENTIAL_VARIABLES[-1]}")
)


@dataclass(frozen=True)
class ApiRequest:
    """One call as the client makes it; bodies (the token form holds the password)
    stay out of the repr."""

    operation: str  # names the call in messages: "verify", "list orders", "token"
    endpoint: Endpoint  # decides how its failures count
    method: str
    path: str
    json_body: Any = field(default=None, repr=False)
    form: Mapping[str, str] | None = field(default=None, repr=False)
    params: Mapping[str, Any] | None = None

    def shown_url(self, base_url: str) -> str:
        """The URL as messages show it, query included."""
        url = base_url + self.path
        return f"{url}?{urlencode(self.params)}" if self.params else url


class RequestsTransport:
    """Sends ``ApiRequest``s over one ``requests.Session``.

    A session passed in is used as given (its adapters decide pooling and must
    not retry on their own) and stays the caller's to close.
    """

    def __init__(
        self,
        settings: ApiSettings,
        session: requests.Session | None = None,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._wall_clock = wall_clock
        #: Server time minus local time, from every answer's Date header.
        self.skew = ClockSkew()
        self._owns_session = session is None
        self._session = session if session is not None else _new_session()
        #: Proxies and CA bundle from the environment (HTTPS_PROXY, NO_PROXY,
        #: REQUESTS_CA_BUNDLE, ...), as requests reads them; for a session of our own
        #: read once here rather than on every request, where walking the whole
        #: environment cost about 0.4 ms a call. TLS verification stays on: ``verify``
        #: is True or a CA bundle, never False.
        self._proxies: dict[str, str] | None = None
        self._verify: bool | str | None = None
        if self._owns_session:
            found = self._session.merge_environment_settings(
                settings.base_url, {}, None, None, None
            )
            self._proxies = dict(found["proxies"])
            self._verify = found["verify"] if found["verify"] is not False else True
            self._session.trust_env = False
        self.errors = ApiErrors(
            (settings.client_secret, settings.password),
            basic_auth=(settings.client_id, settings.client_secret),
        )
        #: URLs of JSON requests without parameters as requests prepares them (IDNA host,
        #: requoted path), each prepared once; see ``_send_lean``.
        self._prepared_urls: dict[str, str] = {}
        self._base_headers: dict[str, str | bytes] = dict(self._session.headers)

    def close(self) -> None:
        if self._owns_session:
            # urllib3 2 only forgets its pools on clear(): a pool that an error's
            # response still refers to would keep its connection open until collected.
            for adapter in self._session.adapters.values():
                if isinstance(adapter, HTTPAdapter):
                    pools = adapter.poolmanager.pools
                    for key in list(pools.keys()):
                        pool = pools.get(key)
                        if pool is not None:
                            pool.close()
            self._session.close()

    def send(self, request: ApiRequest, auth: AuthBase) -> requests.Response:
        """The one place that sends HTTP. Returns a 2xx response or raises ApiError."""
        settings = self._settings
        url = settings.base_url + request.path
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        data: bytes | dict[str, str] | None = None
        if request.form is not None:
            data = dict(request.form)
        else:
            headers["Content-Type"] = "application/json"
            if request.json_body is not None:
                data = json.dumps(request.json_body, ensure_ascii=False).encode("utf-8")
        sent_at = self._wall_clock()
        try:
            if self._owns_session and request.params is None and request.form is None:
                response = self._send_lean(request.method, url, data, headers, auth)
            else:
                response = self._session.request(
                    request.method,
                    url,
                    params=request.params,
                    data=data,
                    headers=headers,
                    auth=auth,
                    timeout=(settings.connect_timeout, settings.read_timeout),
                    allow_redirects=False,
                    proxies=self._proxies,
                    verify=self._verify,
                )
        except requests.RequestException as exc:
            failure = _transport_failure(exc)
            cause = _root_cause(exc, self.errors.redact)
            reason = transport_reason(failure, cause, settings.read_timeout)
            kind = classify_transport(request.endpoint, failure)
            raise self.errors.make(
                headline(request.operation, kind, reason),
                kind,
                request.method,
                request.shown_url(settings.base_url),
            ) from exc
        self.skew.measure(response.headers.get("Date"), sent_at, self._wall_clock())
        if 200 <= response.status_code < 300:
            return response
        raise self.errors.from_status(request, request.shown_url(settings.base_url), response)

    def _send_lean(
        self,
        method: str,
        url: str,
        body: bytes | dict[str, str] | None,
        headers: dict[str, str],
        auth: AuthBase,
    ) -> requests.Response:
        """What ``Session.request`` does for a JSON request of our own session, without
        what it does for nothing here: merging environment, cookie and hook settings and
        a cookie jar per call (about 0.15 ms a call). The URL is prepared by requests
        itself (once per URL), the request goes through the session's own adapter (the
        same pool, timeouts and TLS verification), redirects are not followed, and the
        body is read before returning, as ``Session.request`` does; its exceptions are
        those of ``Session.request``."""
        prepared = requests.PreparedRequest()
        prepared.method = method
        known = self._prepared_urls.get(url)
        if known is None:
            prepared.prepare_url(url, None)
            known = self._prepared_urls[url] = prepared.url or url
        prepared.url = known
        prepared.headers = CaseInsensitiveDict({**self._base_headers, **headers})  # type: ignore[arg-type]
        prepared.prepare_body(body, None)
        prepared.hooks = {"response": []}
        prepared.prepare_auth(auth)
        adapter = self._session.get_adapter(known)
        response = adapter.send(
            prepared,
            timeout=(self._settings.connect_timeout, self._settings.read_timeout),
            verify=self._verify if self._verify is not None else True,
            proxies=self._proxies or {},
        )
        response.content  # noqa: B018 -- read now: a broken body fails here, as requests does
        return response

    def read_json(self, response: requests.Response, operation: str) -> Any:
        """The JSON of a 2xx answer. An empty or unreadable one (not JSON, nested too
        deep, a number too long) is DEFINITIVE."""
        problem = "an empty body"
        if response.content.strip():
            try:
                return load_json(response.content)
            except UnreadableJson as error:
                problem = str(error)
        raise self.errors.bad_answer(
            f"{operation}: the API answered HTTP {response.status_code} with {problem}", response
        )


class ClockSkew:
    """How far the API's clock is from ours: server time minus local time.

    Measured from the ``Date`` header of every answer, against the middle of the
    local time between sending and receiving; the header has whole seconds, so
    it is taken as the middle of its second and a measurement is good to about a
    second plus the network's delay. ``value`` is the measurement of the largest
    magnitude seen (the one that matters when deciding whether two clocks can be
    compared), None until an answer with a readable Date arrived. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: timedelta | None = None

    def measure(self, date: str | None, sent_at: float, received_at: float) -> None:
        # Deferred: email.utils costs the CLI's start several milliseconds.
        import email.utils

        if not date:
            return
        try:
            when = email.utils.parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError, OverflowError):
            return
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        try:
            server = when.timestamp() + 0.5
        except (OverflowError, OSError, ValueError):
            return
        skew = timedelta(seconds=server - (sent_at + received_at) / 2)
        with self._lock:
            if self._value is None or abs(skew) > abs(self._value):
                self._value = skew

    @property
    def value(self) -> timedelta | None:
        with self._lock:
            return self._value


def _new_session() -> requests.Session:
    session = requests.Session()
    # No retries inside urllib3: the client alone decides what is repeated.
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
    return session


def basic_credentials(user: str, password: str) -> str:
    """The value after ``Basic`` in an Authorization header: UTF-8, as RFC 7617 says."""
    return base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def secret_forms(secret: str) -> set[str]:
    """Every form in which the client sends ``secret``, as a server may echo it back:
    as is, URL-encoded (either hex case), JSON-escaped, and with its whitespace
    collapsed as error texts are."""
    forms = {secret, " ".join(secret.split())}
    for encoded in (quote(secret, safe=""), quote(secret), quote_plus(secret)):
        forms.add(encoded)
        forms.add(re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), encoded))
    forms.add(json.dumps(secret)[1:-1])
    forms.add(json.dumps(secret, ensure_ascii=False)[1:-1])
    return forms


class ApiErrors:
    """Makes every ApiError of one client, each text scrubbed of its secrets.

    Scrubbing covers every form the client itself produced (``secret_forms`` and
    the Basic credentials) and runs before any whitespace is collapsed or any text
    clipped, which would hide a secret from it.
    """

    def __init__(
        self, secrets: Sequence[str], *, basic_auth: tuple[str, str] | None = None
    ) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if len(secret) >= 3:
                forms |= secret_forms(secret)
        if basic_auth is not None and basic_auth[1]:
            # Decoding it gives the secret back, however short: always scrubbed.
            forms.add(basic_credentials(*basic_auth).rstrip("="))
        self._forms: tuple[str, ...] = ()
        self._add(forms)

    def _add(self, forms: set[str]) -> None:
        # Longest first, so no shorter form leaves part of a longer one behind.
        known = {*self._forms, *(f for f in forms if len(f) >= 3)}
        self._forms = tuple(sorted(known, key=lambda f: (-len(f), f)))

    def learn(self, secret: str) -> None:
        """Scrub ``secret`` (a new access token) from every later error too."""
        self._add(secret_forms(secret))

    def from_status(self, request: ApiRequest, url: str, response: requests.Response) -> ApiError:
        """The error for a non-2xx answer to ``request``."""
        status = response.status_code
        kind = classify_status(request.endpoint, status)
        message = headline(request.operation, kind, status_reason(status))
        error_class = ApiError
        if refuses_credentials(request.endpoint, status):
            message = f"the Crayon API refused the credentials (HTTP {status}); {CREDENTIALS_HINT}"
            error_class = AuthenticationError
        body = error_body(response.content, scrub=self.redact)
        return self.make(
            message,
            kind,
            request.method,
            url,
            status=status,
            error_code=body.code,
            api_message=body.message,
            object_errors=body.object_errors,
            retry_after=retry_after(response.headers.get("Retry-After")),
            refused=refuses_order(request.endpoint, status),
            error_class=error_class,
        )

    def bad_answer(
        self, message: str, response: requests.Response, *, kind: FailureKind | None = None
    ) -> ApiError:
        """A 2xx answer without what it should carry: DEFINITIVE (asking again gives the
        same) unless ``kind`` says otherwise."""
        return self.make(
            message,
            kind or FailureKind.DEFINITIVE,
            response.request.method or "",
            response.url,
            status=response.status_code,
        )

    def make(
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
        refused: bool = False,
        error_class: type[ApiError] = ApiError,
    ) -> ApiError:
        """An ApiError whose every text has been scrubbed of secrets."""
        scrub = self.redact
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
            refused=refused,
        )

    def reworded(self, error: ApiError, message: str) -> ApiError:
        """``error`` with another message, everything else kept."""
        return self.make(
            message,
            error.kind,
            error.method,
            error.url,
            status=error.status,
            error_code=error.error_code,
            api_message=error.api_message,
            object_errors=error.object_errors,
            retry_after=error.retry_after,
            refused=error.refused,
        )

    def redact(self, text: str) -> str:
        """``text`` with every known form of every secret replaced by ``***``."""
        for form in self._forms:
            text = text.replace(form, "***")
        return text


# --------------------------------------------------------------------------- requests -> facts


def _transport_failure(exc: requests.RequestException) -> TransportFailure:
    """What a ``requests`` exception says happened, in the terms ``failures`` classifies."""
    if isinstance(
        exc,
        requests.exceptions.InvalidURL
        | requests.exceptions.MissingSchema
        | requests.exceptions.InvalidSchema
        | requests.exceptions.InvalidHeader
        | requests.exceptions.URLRequired,
    ):
        return TransportFailure.UNUSABLE_REQUEST
    if _never_sent(exc):
        return TransportFailure.NOT_CONNECTED
    if isinstance(exc, requests.exceptions.SSLError):
        cause = _root_cause(exc)
        if "CERTIFICATE_VERIFY_FAILED" in cause or "certificate verify failed" in cause:
            return TransportFailure.CERTIFICATE_REJECTED
        return TransportFailure.TLS_FAILED
    if isinstance(exc, requests.Timeout):
        return TransportFailure.NO_ANSWER
    if isinstance(exc, requests.ConnectionError):
        return TransportFailure.CONNECTION_BROKEN
    return TransportFailure.UNREADABLE_ANSWER


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


def _root_cause(exc: BaseException, scrub: Callable[[str], str] = str) -> str:
    """The innermost reason of a requests/urllib3 exception chain, briefly, scrubbed
    by ``scrub`` before it is clipped."""
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
    return clip(scrub(text))
