"""What each request to the simulator gets.

``Dispatcher`` routes a request (paths matched
ignoring case, a trailing slash optional, as the published document spells
them or in lower case) to its endpoint, applies the queued faults first,
records the call and writes the answer, dated by the simulated clock. The
lists' paging lives in ``paging``, a subscription's rules in
``subscriptions``. ``POST /_admin/portal`` makes the changes a person would make
in the Cloud-iQ portal (``portal``) and ``POST /_admin/clock`` moves the clock
(``clock``); neither takes a token or a fault, and the real API has neither. The socket
is ``loopback``'s. Never writes to stderr unless ``verbose`` is set, and must not
import ``reconciler.api`` or ``reconciler.model``.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
import secrets
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any, Final, Protocol
from urllib.parse import parse_qs, urlsplit

from reconciler.simulator.clock import clock_reply
from reconciler.simulator.cloud import (
    RecordedCall,
    RecordedRequest,
    SimulatedCloud,
    UnknownSubscription,
)
from reconciler.simulator.faults import Faults
from reconciler.simulator.orders import camel, has_errors, order_problems, verified
from reconciler.simulator.paging import list_reply
from reconciler.simulator.portal import portal_reply
from reconciler.simulator.ratelimit import RateLimiter
from reconciler.simulator.subscriptions import ORGANIZATION_ID, subscription_detail
from reconciler.simulator.wire import (
    Drop,
    Reply,
    canonical,
    error_body,
    parse_json,
)

#: Casefolded paths (without a trailing slash) -> {method: endpoint}.
_ROUTES: Final[tuple[tuple[re.Pattern[str], dict[str, str]], ...]] = tuple(
    (re.compile(pattern), methods)
    for pattern, methods in (
        (r"/api/v1/connect/token", {"POST": "token"}),
        (r"/api/v1/(?:purchaserequest|assets)/verify", {"POST": "verify"}),
        (r"/api/v1/(?:purchaserequest|assets)/checkout", {"POST": "checkout"}),
        (r"/api/v1/purchaserequest/orders", {"GET": "orders"}),
        (r"/api/v1/subscriptions", {"GET": "subscriptions"}),
        (r"/api/v1/subscriptions/(?P<id>[^/]+)", {"GET": "subscription", "PUT": "update"}),
        (r"/api/v1/assets/orders", {"GET": "asset-orders"}),
        (r"/api/v1/agreementproducts", {"GET": "agreement-products"}),
        (r"/api/v1/ping", {"GET": "ping"}),
        (r"/api/v1/me", {"GET": "me"}),
        (r"/_admin/(?:portal|clock)", {"POST": "admin"}),
    )
)


class Settings(Protocol):
    """What the server reads at each request; a test may change it while serving."""

    @property
    def client_id(self) -> str: ...
    @property
    def client_secret(self) -> str: ...
    @property
    def username(self) -> str: ...
    @property
    def password(self) -> str: ...
    @property
    def token_ttl_seconds(self) -> float: ...
    @property
    def token_ttl_calls(self) -> int | None: ...
    @property
    def latency(self) -> float: ...
    @property
    def verbose(self) -> bool: ...
    @property
    def list_shape(self) -> str: ...
    @property
    def max_page_size(self) -> int | None: ...
    @property
    def rate_limit(self) -> float | None: ...


class Dispatcher:
    """Answers one request: faults first, then the endpoint; records every call."""

    def __init__(
        self, settings: Settings, cloud: SimulatedCloud, faults: Faults, stopping: threading.Event
    ) -> None:
        self._settings = settings
        self._cloud = cloud
        self._faults = faults
        self._stopping = stopping
        self.rate = RateLimiter()

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        path = parts.path.rstrip("/") or "/"
        endpoint, methods, item = "", {}, ""
        for pattern, known in _ROUTES:
            found = pattern.fullmatch(path.casefold())
            if found:
                methods, item = known, found.groupdict().get("id") or ""
                endpoint = known.get(handler.command, "")
                break
        status = 0
        reply: Reply | None
        try:
            reply = self._dispatch(handler, endpoint, methods, path, parts.query, item)
        except Reply as refusal:
            reply = refusal
        except Drop:
            handler.close_connection = True
            reply = None
        if reply is not None:
            status = reply.status
        # Recorded before answering, so a client that has its answer sees the record.
        headers = {k: v for k, v in handler.headers.items() if k.lower() != "authorization"}
        self._cloud.record_call(
            RecordedCall(handler.command, handler.path, endpoint, status, headers)
        )
        if reply is not None:
            try:
                _answer(handler, reply)
            except OSError:  # the client hung up first (a timeout on its side)
                handler.close_connection = True

    def _dispatch(
        self,
        handler: BaseHTTPRequestHandler,
        endpoint: str,
        methods: dict[str, str],
        path: str,
        query: str,
        item: str,
    ) -> Reply:
        body = _read_body(handler)
        if self._settings.latency > 0:
            self._stopping.wait(self._settings.latency)
        if not methods:
            raise Reply(404, error_body(404, f"No API endpoint at {path}"))
        if not endpoint:
            raise Reply(405, error_body(405, f"{handler.command} is not allowed on {path}"))
        if endpoint == "admin":
            if path.casefold().endswith("/clock"):
                return clock_reply(self._cloud.clock, body)
            return portal_reply(self._cloud, body)
        if endpoint != "ping":
            self.rate.check(self._settings.rate_limit)
        delay, failure = self._faults.take(endpoint)
        if delay > 0:
            self._stopping.wait(delay)
        if failure is not None:
            headers = {"Retry-After": failure.retry_after} if failure.retry_after else {}
            content = failure.body
            if content is None and failure.status != 401:
                content = error_body(failure.status, "Injected failure")
            return Reply(failure.status, content, headers)
        if endpoint == "token":
            return self._token(handler, body)
        if endpoint == "ping":
            return Reply(200)  # unauthenticated, as clients use it to test the connection
        self._authorize(handler)
        if endpoint == "verify":
            return self._verify(path, body)
        if endpoint == "checkout":
            return self._checkout(path, body)
        if endpoint == "subscription":
            return Reply(200, subscription_detail(self._subscription(item)))
        if endpoint == "update":
            return self._update(path, item, body)
        if endpoint == "me":
            return self._me()
        return list_reply(
            self._cloud,
            endpoint,
            query,
            shape=self._settings.list_shape,
            max_page_size=self._settings.max_page_size,
        )

    # ----------------------------------------------------------------- token and auth

    def _token(self, handler: BaseHTTPRequestHandler, body: bytes) -> Reply:
        settings = self._settings
        scheme, _, encoded = handler.headers.get("Authorization", "").partition(" ")
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        client_id, _, client_secret = decoded.partition(":")
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        expected = f"{settings.client_id}:{settings.client_secret}".encode()
        if scheme.lower() != "basic" or not secrets.compare_digest(
            f"{client_id}:{client_secret}".encode(), expected
        ):
            raise Reply(400, {"error": "invalid_client"})
        if form.get("grant_type") != "password":
            raise Reply(400, {"error": "unsupported_grant_type"})
        if "CustomerApi" not in form.get("scope", "").split():
            raise Reply(400, {"error": "invalid_scope"})
        if form.get("username") != settings.username or not secrets.compare_digest(
            form.get("password", "").encode(), settings.password.encode()
        ):
            raise Reply(
                400, {"error": "invalid_grant", "error_description": "invalid_username_or_password"}
            )
        token = self._cloud.tokens.issue(settings.token_ttl_seconds, settings.token_ttl_calls)
        return Reply(
            200,
            {
                "AccessToken": token,
                "IdentityToken": None,
                "Error": None,
                "ExpiresIn": max(int(settings.token_ttl_seconds), 1),
                "TokenType": "Bearer",
                "RefreshToken": None,
            },
        )

    def _authorize(self, handler: BaseHTTPRequestHandler) -> None:
        scheme, _, token = handler.headers.get("Authorization", "").partition(" ")
        if not self._cloud.tokens.authorize(token if scheme.lower() == "bearer" else None):
            raise Reply(401)

    # ----------------------------------------------------------------- verify, checkout

    def _verify(self, path: str, raw: bytes) -> Reply:
        order = parse_json(raw)
        request = copy.deepcopy(order)
        try:
            response = self._verified_order(order, legacy=_legacy(path))
        except Reply as reply:
            self._log_request("verify", path, request, reply.status, reply.body)
            raise
        self._cloud.remember_verified(canonical(response), has_errors(response))
        self._log_request("verify", path, request, 200, response)
        return Reply(200, response)

    def _verified_order(self, order: Any, *, legacy: bool) -> dict[str, Any]:
        problems = order_problems(order, legacy=legacy)
        if problems:
            raise Reply(400, error_body(400, "The order is not valid.", problems))
        response = camel(order)
        tenant = response["resellerCustomerId"]
        with self._cloud.lock:  # an order error is spent even on an unknown tenant
            known_tenant = self._cloud.has_tenant(tenant)
            catalog = self._cloud.catalog
            order_errors = self._faults.take_order_errors()
        if not known_tenant:
            raise Reply(404, error_body(404, f"Customer tenant {tenant} was not found."))
        return verified(response, catalog, order_errors, legacy=legacy)

    def _checkout(self, path: str, raw: bytes) -> Reply:
        order = parse_json(raw)
        is_verified, with_errors = self._cloud.verification(canonical(order))
        if not is_verified:
            message = (
                "The order has errors; fix them and verify it again."
                if with_errors
                else "The order was not verified, or it was changed after verification."
            )
            body = error_body(400, message)
            self._log_request("checkout", path, order, 400, body)
            raise Reply(400, body)
        with self._cloud.lock:
            drop = self._faults.take_drop()
            if drop != "unrecorded":
                self._cloud.record_checkout(order)
            hold = self._faults.hold
        # The published document answers the legacy checkout 200 without a body.
        reply = Reply(200) if _legacy(path) else Reply(204)
        if drop in ("500", "unrecorded"):
            reply = Reply(500, error_body(500, "Ops. Something broke"))
        self._log_request(
            "checkout", path, order, 0 if drop == "drop" else reply.status, reply.body
        )
        if hold > 0:
            self._stopping.wait(hold)
        if drop == "drop":
            raise Drop
        return reply

    # ----------------------------------------------------------------- one subscription

    def _subscription(self, item: str) -> Any:
        try:
            return self._cloud.subscription(int(item))
        except (ValueError, UnknownSubscription):
            raise Reply(404, error_body(404, f"Subscription {item} was not found.")) from None

    def _update(self, path: str, item: str, raw: bytes) -> Reply:
        """PUT: the subscription changed by the body's rules, or the refusal; then the
        fault queued for updates (applied then 500 or dropped, or 500 unapplied)."""
        subscription_id = self._subscription(item).id
        body = parse_json(raw)
        try:
            with self._cloud.lock:
                self._cloud.check_update(subscription_id, body)
                fault = self._faults.take_update_fault()
                if fault != "unapplied":
                    changed = self._cloud.update_subscription(subscription_id, body)
        except Reply as refusal:
            self._log_request("update", path, body, refusal.status, refusal.body)
            raise
        if fault in ("500", "unapplied"):
            reply = Reply(500, error_body(500, "Ops. Something broke"))
        else:
            reply = Reply(200, subscription_detail(changed))
        self._log_request("update", path, body, 0 if fault == "drop" else reply.status, reply.body)
        if fault == "drop":
            raise Drop
        return reply

    def _me(self) -> Reply:
        settings = self._settings
        return Reply(
            200,
            {
                "userId": f"sim-{settings.username}",
                "userName": settings.username,
                "token": None,
                "claims": [f"organizationId:{ORGANIZATION_ID}"],
            },
        )

    def _log_request(self, endpoint: str, path: str, body: Any, status: int, response: Any) -> None:
        self._cloud.record_request(
            RecordedRequest(endpoint, path, body, status, copy.deepcopy(response))
        )


def _legacy(path: str) -> bool:
    return "/assets/" in path.casefold()


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        handler.close_connection = True
        raise Reply(411, error_body(411, "Send a Content-Length"))
    try:
        length = int(handler.headers.get("Content-Length") or 0)
    except ValueError:
        handler.close_connection = True
        raise Reply(400, error_body(400, "Bad Content-Length")) from None
    return handler.rfile.read(length) if length > 0 else b""


def _answer(handler: BaseHTTPRequestHandler, reply: Reply) -> None:
    handler.send_response(reply.status)
    for name, value in reply.headers.items():
        handler.send_header(name, value)
    if reply.status == 204:
        handler.end_headers()
        return
    if isinstance(reply.body, bytes):
        payload = reply.body  # an injected answer that is not JSON
    else:
        payload = b"" if reply.body is None else json.dumps(reply.body).encode("utf-8")
    if reply.status == 401:
        handler.send_header("WWW-Authenticate", 'Bearer error="invalid_token"')
    if payload:
        handler.send_header("Content-Type", "application/json; charset=utf-8")
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)
