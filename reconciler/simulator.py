"""A Crayon Cloud-iQ API simulator: real HTTP on 127.0.0.1, for tests and demos.

It serves the token, verify, checkout (primary and legacy paths) and the
processed-orders and subscriptions lists the way ``crayon-api.md`` describes
them, records every accepted checkout, and can inject the failures the client
must survive (error statuses, Retry-After, dropped connections after a
checkout was taken, slow answers). It binds to loopback only, keeps everything
in memory, imports nothing outside the standard library but PyYAML (for
catalogue files), and writes nothing to stderr unless ``verbose`` is set.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import itertools
import json
import secrets
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Self
from urllib.parse import parse_qs, urlsplit

import yaml

from reconciler.errors import ReconcilerError

ENDPOINTS: Final = ("token", "verify", "checkout", "orders", "subscriptions")
COUNTRY_CODE: Final = "NO"
DEFAULT_PAGE_SIZE: Final = 50

_PATHS: Final = {
    "/api/v1/connect/token": "token",
    "/api/v1/purchaserequest/verify": "verify",
    "/api/v1/assets/verify": "verify",
    "/api/v1/purchaserequest/checkout": "checkout",
    "/api/v1/assets/checkout": "checkout",
    "/api/v1/purchaserequest/orders": "orders",
    "/api/v1/subscriptions": "subscriptions",
}
_METHODS: Final = {
    "token": "POST",
    "verify": "POST",
    "checkout": "POST",
    "orders": "GET",
    "subscriptions": "GET",
}
#: BillingCycleType (orders) -> its name, and -> BillingCycleEnum (subscriptions).
_CYCLE_NAMES: Final = {1: "Monthly", 2: "Annual", 3: "None", 4: "OneTime", 5: "Triennial"}
_CYCLE_TO_SUBSCRIPTION: Final = {1: 1, 2: 2, 3: 3, 4: 4, 5: 8}
_CYCLE_BY_NAME: Final = {"monthly": 1, "annual": 2, "none": 3, "one-time": 4, "triennial": 5}
_TERM_MONTHS: Final = {"P1M": 1, "P1Y": 12, "P3Y": 36}

_ORDER_FIELDS: Final = (
    "resellerCustomerId",
    "externalOrderId",
    "countryCode",
    "adminAccount",
    "notificationEmail",
    "invoiceProfileId",
    "scheduledPurchaseDate",
    "errors",
    "orderLines",
)
_LINE_FIELDS: Final = (
    "productId",
    "skuId",
    "productVariantId",
    "catalogItemId",
    "quantity",
    "billingCycle",
    "termDuration",
    "type",
    "scope",
    "subscriptionId",
    "armRegionName",
    "provisioningContext",
    "requiresInventoryCheck",
    "isTrial",
    "resellerPriceType",
    "resellerPriceTypeValue",
    "name",
    "attestationAccepted",
    "customTermEndDate",
    "tags",
    "errors",
)
_CAMEL: Final = {name.casefold(): name for name in (*_ORDER_FIELDS, *_LINE_FIELDS)}


class CatalogError(ReconcilerError):
    """A simulator catalogue file is unreadable or invalid."""


@dataclass(frozen=True)
class CatalogItem:
    """One product:sku the simulated tenants may buy, and its limits."""

    product_id: str
    sku_id: str
    availability_id: str
    name: str
    max_quantity: int
    terms: tuple[str, ...]
    billing_cycles: tuple[int, ...]
    types: tuple[int, ...] = (3,)

    @property
    def key(self) -> str:
        return f"{self.product_id}:{self.sku_id}"

    @property
    def catalog_item_id(self) -> str:
        return f"{self.product_id}:{self.sku_id}:{self.availability_id}"


@dataclass(frozen=True)
class RecordedCheckout:
    """One order line of a checkout the simulator accepted (it counts as bought)."""

    tenant: int
    product_id: str
    sku_id: str
    quantity: int
    billing_cycle: int
    term_duration: str
    type: int
    external_order_id: str | None
    time: str
    body: Mapping[str, Any]
    catalog_item_id: str
    order_reference_id: int
    line: int = 0

    @property
    def product(self) -> str:
        return f"{self.product_id}:{self.sku_id}"


@dataclass(frozen=True)
class RecordedCall:
    """One HTTP request the simulator answered (or dropped: status 0)."""

    method: str
    path: str
    endpoint: str
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedRequest:
    """The JSON body of a verify or checkout request and of the answer to it."""

    endpoint: str
    path: str
    body: Any
    status: int
    response: Any = None


@dataclass
class _Failure:
    status: int
    retry_after: str | None
    body: dict[str, Any] | None


@dataclass
class _Token:
    expires_at: float
    calls_left: int | None


def default_catalog() -> tuple[list[CatalogItem], set[int]]:
    """The built-in catalogue: common Microsoft NCE products and a few tenants."""
    both_terms = ("P1M", "P1Y")
    both_cycles = (1, 2)

    def item(product: str, sku: str, availability: str, name: str, max_q: int = 300) -> CatalogItem:
        return CatalogItem(product, sku, availability, name, max_q, both_terms, both_cycles)

    catalog = [
        item("CFQ7TTC0LF8R", "0010", "CFQ7TTC0Q3X5", "Microsoft 365 Business Basic"),
        item("CFQ7TTC0LDPB", "0001", "CFQ7TTC0Q3KB", "Microsoft 365 Business Standard"),
        item("CFQ7TTC0LH18", "0001", "CFQ7TTC0Q3PN", "Microsoft 365 Business Premium"),
        item("CFQ7TTC0LFLZ", "0002", "CFQ7TTC0Q3NP", "Microsoft 365 E3"),
        item("CFQ7TTC0LFK5", "0002", "CFQ7TTC0Q3LZ", "Microsoft 365 E5"),
        item("CFQ7TTC0LH1G", "0001", "CFQ7TTC0Q3SW", "Exchange Online (Plan 1)"),
        item("CFQ7TTC0LHSF", "0001", "CFQ7TTC0QJ3K", "Microsoft Teams Essentials", max_q=20),
        item("CFQ7TTC0LCHC", "0002", "CFQ7TTC0Q3FM", "Power BI Pro"),
        item("CFQ7TTC0MM8R", "0002", "CFQ7TTC0Q3VM", "Visio Plan 2"),
        item("CFQ7TTC0HD33", "0001", "CFQ7TTC0Q3DD", "Project Plan 3"),
        item("DG7GMGF0D7FV", "0001", "CFQ7TTC0Q3WV", "Windows 10/11 Enterprise E3"),
    ]
    tenants = {100001, 100002, 100003, 111111, 222222, 333333, 123456}
    return catalog, tenants


def load_catalog(path: str | Path) -> tuple[list[CatalogItem], set[int]]:
    """Read a YAML or JSON catalogue file::

    tenants: [111111, 222222]
    products:
      - {productId: CFQ7TTC0LF8R, skuId: "0010", availabilityId: CFQ7TTC0Q3X5,
         name: Microsoft 365 Business Basic, maxQuantity: 300,
         terms: [P1M, P1Y], billingCycles: [monthly, annual], types: [3]}
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise CatalogError(f"{path}: cannot read the catalogue: {error.strerror}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise CatalogError(f"{path}: not valid YAML/JSON: {error}") from None
    problems: list[str] = []
    catalog, tenants = _parse_catalog(data, problems)
    if problems:
        raise CatalogError("\n".join(f"{path}: {p}" for p in problems))
    return catalog, tenants


def _parse_catalog(data: Any, problems: list[str]) -> tuple[list[CatalogItem], set[int]]:
    if not isinstance(data, dict):
        problems.append("the catalogue must be a mapping with 'tenants' and 'products'")
        return [], set()
    unknown = sorted(set(data) - {"tenants", "products"})
    problems.extend(f"{key}: unknown key" for key in unknown)
    tenants: set[int] = set()
    raw_tenants = data.get("tenants")
    if not isinstance(raw_tenants, list):
        problems.append("tenants: must be a list of customer tenant ids")
    else:
        for index, tenant in enumerate(raw_tenants):
            if _is_int(tenant) and tenant > 0:
                tenants.add(tenant)
            else:
                problems.append(f"tenants[{index}]: must be a positive integer")
    catalog: list[CatalogItem] = []
    raw_products = data.get("products")
    if not isinstance(raw_products, list):
        problems.append("products: must be a list")
        return catalog, tenants
    for index, raw in enumerate(raw_products):
        where = f"products[{index}]"
        if not isinstance(raw, dict):
            problems.append(f"{where}: must be a mapping")
            continue
        allowed = {"productId", "skuId", "availabilityId", "name", "maxQuantity"}
        allowed |= {"terms", "billingCycles", "types"}
        problems.extend(f"{where}.{key}: unknown key" for key in sorted(set(raw) - allowed))
        before = len(problems)
        strings = {}
        for key in ("productId", "skuId", "availabilityId", "name"):
            value = raw.get(key)
            if not isinstance(value, str) or not value:
                problems.append(f"{where}.{key}: must be a non-empty string")
            strings[key] = str(value)
        max_quantity = raw.get("maxQuantity", 300)
        if not _is_int(max_quantity) or max_quantity < 1:
            problems.append(f"{where}.maxQuantity: must be a positive integer")
        terms = raw.get("terms", ["P1M", "P1Y"])
        if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
            problems.append(f"{where}.terms: must be a list of ISO-8601 durations")
            terms = []
        cycles: list[int] = []
        for cycle in raw.get("billingCycles", [1, 2]) or []:
            if isinstance(cycle, str) and cycle.casefold() in _CYCLE_BY_NAME:
                cycles.append(_CYCLE_BY_NAME[cycle.casefold()])
            elif _is_int(cycle):
                cycles.append(cycle)
            else:
                problems.append(f"{where}.billingCycles: unknown billing cycle {cycle!r}")
        types = raw.get("types", [3])
        if not isinstance(types, list) or not all(_is_int(t) for t in types):
            problems.append(f"{where}.types: must be a list of integers")
            types = []
        if len(problems) == before:
            catalog.append(
                CatalogItem(
                    product_id=strings["productId"],
                    sku_id=strings["skuId"],
                    availability_id=strings["availabilityId"],
                    name=strings["name"],
                    max_quantity=max_quantity,
                    terms=tuple(terms),
                    billing_cycles=tuple(cycles),
                    types=tuple(types),
                )
            )
    return catalog, tenants


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error_body(
    status: int, message: str, object_errors: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    try:
        phrase = HTTPStatus(status).phrase.replace(" ", "").replace("-", "")
    except ValueError:
        phrase = "Error"
    return {
        "ErrorCode": f"{status} {phrase}",
        "Message": message,
        "Parameters": {},
        "ObjectErrors": list(object_errors),
    }


def _object_error(code: str, message: str, path: str) -> dict[str, Any]:
    return {"ErrorCode": code, "Message": message, "Parameters": {"path": path}}


class _Reply(Exception):
    """Raised inside a handler to answer with ``status`` and a JSON (or no) body."""

    def __init__(
        self,
        status: int,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


class _Drop(Exception):
    """Raised inside a handler to close the connection without any answer."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    simulator: Simulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hang up mid-answer on purpose (timeouts, kills); stay quiet.
        if self.simulator.verbose:
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, the second waits
    # for the client's delayed ACK (~40 ms per answer).
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.simulator._connection_opened(self.connection)

    def finish(self) -> None:
        self.server.simulator._connection_closed(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.simulator.verbose:
            sys.stderr.write(f"simulator: {format % args}\n")

    def do_GET(self) -> None:
        self.server.simulator._handle(self)

    def do_POST(self) -> None:
        self.server.simulator._handle(self)

    def do_PUT(self) -> None:
        self.server.simulator._handle(self)

    def do_DELETE(self) -> None:
        self.server.simulator._handle(self)


class Simulator:
    """The simulated API. Use as a context manager, or ``start()``/``stop()``."""

    def __init__(
        self,
        *,
        port: int = 0,
        catalog: Sequence[CatalogItem] | None = None,
        tenants: Iterable[int] | None = None,
        client_id: str = "sim-client",
        client_secret: str = "sim-secret",
        username: str = "sim-user",
        password: str = "sim-password",
        token_ttl_seconds: float = 3600,
        token_ttl_calls: int | None = None,
        latency: float = 0.0,
        verbose: bool = False,
    ) -> None:
        default_items, default_tenants = default_catalog()
        self.port = port
        self.client_id = client_id
        self.client_secret = client_secret
        self.username = username
        self.password = password
        self.token_ttl_seconds = token_ttl_seconds
        self.token_ttl_calls = token_ttl_calls
        self.latency = latency
        self.verbose = verbose
        self.url = ""
        self._lock = threading.RLock()
        self._catalog = {i.key: i for i in (default_items if catalog is None else catalog)}
        self._tenants = set(default_tenants if tenants is None else tenants)
        self._tokens: dict[str, _Token] = {}
        self._tokens_issued = 0
        self._verified: set[str] = set()
        self._verified_with_errors: set[str] = set()
        self._checkouts: list[RecordedCheckout] = []
        self._calls: list[RecordedCall] = []
        self._requests: list[RecordedRequest] = []
        self._failures: dict[str, deque[_Failure]] = {e: deque() for e in ENDPOINTS}
        self._delays: dict[str, deque[float]] = {e: deque() for e in ENDPOINTS}
        self._order_errors: deque[dict[str, Any]] = deque()
        self._drops: deque[str] = deque()
        self._hold = 0.0
        self._references = itertools.count(1001)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> str:
        """Listen on 127.0.0.1 and serve in a background thread; returns the base URL."""
        with self._lock:
            if self._server is not None:
                return self.url
            server = _Server(("127.0.0.1", self.port), _Handler)
            server.simulator = self
            self._stopping.clear()
            self._server = server
            self.port = server.server_address[1]
            self.url = f"http://127.0.0.1:{self.port}"
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.01},  # how soon stop() is noticed
                name=f"crayon-simulator-{self.port}",
                daemon=True,
            )
            self._thread.start()
            return self.url

    def stop(self) -> None:
        """Stop serving and close every connection; safe to call twice."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            connections = list(self._connections)
            self._connections.clear()
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=5)

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """The CRAYON_* variables that point a client at this simulator."""
        return {
            "CRAYON_API_URL": self.url,
            "CRAYON_CLIENT_ID": self.client_id,
            "CRAYON_CLIENT_SECRET": self.client_secret,
            "CRAYON_USERNAME": self.username,
            "CRAYON_PASSWORD": self.password,
        }

    def load_catalog_file(self, path: str | Path) -> None:
        """Replace the catalogue and tenants with those of a YAML or JSON file."""
        catalog, tenants = load_catalog(path)
        with self._lock:
            self._catalog = {i.key: i for i in catalog}
            self._tenants = set(tenants)

    # ----------------------------------------------------------------- what happened

    @property
    def catalog(self) -> list[CatalogItem]:
        with self._lock:
            return list(self._catalog.values())

    @property
    def tenants(self) -> set[int]:
        with self._lock:
            return set(self._tenants)

    @property
    def checkouts(self) -> list[RecordedCheckout]:
        """Every accepted checkout line, oldest first (a copy)."""
        with self._lock:
            return list(self._checkouts)

    @property
    def calls(self) -> list[RecordedCall]:
        """Every request answered so far, in order (a copy)."""
        with self._lock:
            return list(self._calls)

    @property
    def requests_log(self) -> list[RecordedRequest]:
        """Bodies of every verify and checkout request and of their answers (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def tokens_issued(self) -> int:
        with self._lock:
            return self._tokens_issued

    def count(self, endpoint: str, status: int | None = None) -> int:
        """How many requests reached ``endpoint`` (answered with ``status``, if given)."""
        self._check_endpoint(endpoint)
        with self._lock:
            return sum(
                1
                for c in self._calls
                if c.endpoint == endpoint and (status is None or c.status == status)
            )

    def seats(self, tenant: int, product: str) -> int:
        """Seats bought for ``product`` ("productId:skuId") by ``tenant``."""
        with self._lock:
            return sum(
                c.quantity for c in self._checkouts if c.tenant == tenant and c.product == product
            )

    def reset(self) -> None:
        """Forget recorded traffic, purchases, tokens and pending injections."""
        with self._lock:
            self._tokens.clear()
            self._verified.clear()
            self._verified_with_errors.clear()
            self._checkouts.clear()
            self._calls.clear()
            self._requests.clear()
            for queue in self._failures.values():
                queue.clear()
            for delays in self._delays.values():
                delays.clear()
            self._order_errors.clear()
            self._drops.clear()
            self._hold = 0.0

    # ----------------------------------------------------------------- fault injection

    def fail_next(
        self,
        endpoint: str,
        status: int,
        count: int = 1,
        retry_after: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        """Answer the next ``count`` requests to ``endpoint`` with ``status``.

        The request is not acted on (a failed checkout buys nothing). ``body``
        replaces the standard error body; ``retry_after`` is sent as the header.
        """
        self._check_endpoint(endpoint)
        with self._lock:
            for _ in range(count):
                self._failures[endpoint].append(_Failure(status, retry_after, body))

    def delay_next(self, endpoint: str, seconds: float, count: int = 1) -> None:
        """Wait ``seconds`` before answering the next ``count`` requests to ``endpoint``."""
        self._check_endpoint(endpoint)
        with self._lock:
            self._delays[endpoint].extend([seconds] * count)

    def drop_after_checkout(self, count: int = 1, mode: Literal["drop", "500"] = "drop") -> None:
        """Take (record) the next ``count`` valid checkouts, then close the connection
        without answering (``drop``) or answer 500 (``500``): the ambiguous cases."""
        if mode not in ("drop", "500"):
            raise ValueError(f"mode must be 'drop' or '500', not {mode!r}")
        with self._lock:
            self._drops.extend([mode] * count)

    def hold_checkouts(self, seconds: float) -> None:
        """Record each valid checkout, then wait ``seconds`` before answering (0 ends it)."""
        with self._lock:
            self._hold = seconds

    def add_order_error(self, code: int, description: str, count: int = 1) -> None:
        """Add an order-level error to the next ``count`` verify answers."""
        with self._lock:
            self._order_errors.extend(
                [{"orderGroupId": "", "code": code, "description": description}] * count
            )

    def expire_tokens(self) -> None:
        """Make every issued token invalid (the next API call gets 401)."""
        with self._lock:
            self._tokens.clear()

    @staticmethod
    def _check_endpoint(endpoint: str) -> None:
        if endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be one of {', '.join(ENDPOINTS)}, not {endpoint!r}")

    # ----------------------------------------------------------------- HTTP handling

    def _connection_opened(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def _connection_closed(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _handle(self, handler: _Handler) -> None:
        parts = urlsplit(handler.path)
        path = parts.path.rstrip("/") or "/"
        endpoint = _PATHS.get(path, "")
        status = 0
        try:
            reply = self._dispatch(handler, endpoint, path, parts.query)
        except _Reply as refusal:
            reply = refusal
        except _Drop:
            handler.close_connection = True
            reply = None
        if reply is not None:
            status = reply.status
        # Recorded before answering, so a client that has its answer sees the record.
        headers = {k: v for k, v in handler.headers.items() if k.lower() != "authorization"}
        with self._lock:
            self._calls.append(
                RecordedCall(handler.command, handler.path, endpoint, status, headers)
            )
        if reply is not None:
            try:
                self._answer(handler, reply)
            except OSError:  # the client hung up first (a timeout on its side)
                handler.close_connection = True

    def _dispatch(self, handler: _Handler, endpoint: str, path: str, query: str) -> _Reply:
        body = self._read_body(handler)
        if self.latency > 0:
            self._stopping.wait(self.latency)
        if not endpoint:
            raise _Reply(404, _error_body(404, f"No API endpoint at {path}"))
        if handler.command != _METHODS[endpoint]:
            raise _Reply(405, _error_body(405, f"{handler.command} is not allowed on {path}"))
        with self._lock:
            delay = self._delays[endpoint].popleft() if self._delays[endpoint] else 0.0
            failure = self._failures[endpoint].popleft() if self._failures[endpoint] else None
        if delay > 0:
            self._stopping.wait(delay)
        if failure is not None:
            headers = {"Retry-After": failure.retry_after} if failure.retry_after else {}
            content = failure.body
            if content is None and failure.status != 401:
                content = _error_body(failure.status, "Injected failure")
            return _Reply(failure.status, content, headers)
        if endpoint == "token":
            return self._token(handler, body)
        self._authorize(handler)
        if endpoint == "verify":
            return self._verify(path, body)
        if endpoint == "checkout":
            return self._checkout(path, body)
        params = {k.casefold(): v[-1] for k, v in parse_qs(query).items()}
        if endpoint == "orders":
            return self._list(params, self._order_items)
        return self._list(params, self._subscription_items)

    @staticmethod
    def _read_body(handler: _Handler) -> bytes:
        if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
            handler.close_connection = True
            raise _Reply(411, _error_body(411, "Send a Content-Length"))
        try:
            length = int(handler.headers.get("Content-Length") or 0)
        except ValueError:
            handler.close_connection = True
            raise _Reply(400, _error_body(400, "Bad Content-Length")) from None
        return handler.rfile.read(length) if length > 0 else b""

    def _answer(self, handler: _Handler, reply: _Reply) -> None:
        handler.send_response(reply.status)
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        if reply.status == 204:
            handler.end_headers()
            return
        payload = b"" if reply.body is None else json.dumps(reply.body).encode("utf-8")
        if reply.status == 401:
            handler.send_header("WWW-Authenticate", 'Bearer error="invalid_token"')
        if payload:
            handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    # ----------------------------------------------------------------- token and auth

    def _token(self, handler: _Handler, body: bytes) -> _Reply:
        scheme, _, encoded = handler.headers.get("Authorization", "").partition(" ")
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        client_id, _, client_secret = decoded.partition(":")
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        expected = f"{self.client_id}:{self.client_secret}".encode()
        if scheme.lower() != "basic" or not secrets.compare_digest(
            f"{client_id}:{client_secret}".encode(), expected
        ):
            raise _Reply(400, {"error": "invalid_client"})
        if form.get("grant_type") != "password":
            raise _Reply(400, {"error": "unsupported_grant_type"})
        if "CustomerApi" not in form.get("scope", "").split():
            raise _Reply(400, {"error": "invalid_scope"})
        if form.get("username") != self.username or not secrets.compare_digest(
            form.get("password", "").encode(), self.password.encode()
        ):
            raise _Reply(
                400, {"error": "invalid_grant", "error_description": "invalid_username_or_password"}
            )
        token = "sim-" + secrets.token_hex(16)
        with self._lock:
            self._tokens[token] = _Token(
                expires_at=time.monotonic() + self.token_ttl_seconds,
                calls_left=self.token_ttl_calls,
            )
            self._tokens_issued += 1
        return _Reply(
            200,
            {
                "AccessToken": token,
                "IdentityToken": None,
                "Error": None,
                "ExpiresIn": max(int(self.token_ttl_seconds), 1),
                "TokenType": "Bearer",
                "RefreshToken": None,
            },
        )

    def _authorize(self, handler: _Handler) -> None:
        scheme, _, token = handler.headers.get("Authorization", "").partition(" ")
        with self._lock:
            state = self._tokens.get(token) if scheme.lower() == "bearer" else None
            if state is None or time.monotonic() >= state.expires_at:
                raise _Reply(401)
            if state.calls_left is not None:
                if state.calls_left <= 0:
                    raise _Reply(401)
                state.calls_left -= 1

    # ----------------------------------------------------------------- verify, checkout

    def _verify(self, path: str, raw: bytes) -> _Reply:
        order = self._parse_json(raw)
        request = copy.deepcopy(order)
        try:
            response = self._verified_order(order)
        except _Reply as reply:
            self._log_request("verify", path, request, reply.status, reply.body)
            raise
        canonical = _canonical(response)
        has_errors = bool(response["errors"]) or any(
            line["errors"] for line in response["orderLines"]
        )
        with self._lock:
            (self._verified_with_errors if has_errors else self._verified).add(canonical)
        self._log_request("verify", path, request, 200, response)
        return _Reply(200, response)

    def _verified_order(self, order: Any) -> dict[str, Any]:
        problems = _order_problems(order)
        if problems:
            raise _Reply(400, _error_body(400, "The order is not valid.", problems))
        response = _camel(order)
        tenant = response["resellerCustomerId"]
        with self._lock:
            known_tenant = tenant in self._tenants
            catalog = dict(self._catalog)
            order_errors = [self._order_errors.popleft()] if self._order_errors else []
        if not known_tenant:
            raise _Reply(
                404,
                _error_body(404, f"Customer tenant {tenant} was not found."),
            )
        response.setdefault("externalOrderId", None)
        if not response.get("countryCode"):
            response["countryCode"] = COUNTRY_CODE
        response.setdefault("scheduledPurchaseDate", None)
        response["errors"] = order_errors
        for line in response["orderLines"]:
            item = catalog.get(f"{line['productId']}:{line['skuId']}")
            line.setdefault("type", 3)
            line["catalogItemId"] = item.catalog_item_id if item else None
            line.setdefault("isTrial", False)
            line.setdefault("customTermEndDate", None)
            line["errors"] = _line_errors(line, item)
        return response

    def _checkout(self, path: str, raw: bytes) -> _Reply:
        order = self._parse_json(raw)
        canonical = _canonical(order)
        with self._lock:
            verified = canonical in self._verified
            with_errors = canonical in self._verified_with_errors
        if not verified:
            message = (
                "The order has errors; fix them and verify it again."
                if with_errors
                else "The order was not verified, or it was changed after verification."
            )
            body = _error_body(400, message)
            self._log_request("checkout", path, order, 400, body)
            raise _Reply(400, body)
        with self._lock:
            reference = next(self._references)
            when = _now()
            for index, line in enumerate(order["orderLines"]):
                self._checkouts.append(
                    RecordedCheckout(
                        tenant=order["resellerCustomerId"],
                        product_id=line["productId"],
                        sku_id=line["skuId"],
                        quantity=line["quantity"],
                        billing_cycle=line["billingCycle"],
                        term_duration=line["termDuration"],
                        type=line["type"],
                        external_order_id=order.get("externalOrderId"),
                        time=when,
                        body=order,
                        catalog_item_id=line["catalogItemId"],
                        order_reference_id=reference,
                        line=index,
                    )
                )
            drop = self._drops.popleft() if self._drops else None
            hold = self._hold
        reply = _Reply(204)
        if drop == "500":
            reply = _Reply(500, _error_body(500, "Ops. Something broke"))
        self._log_request(
            "checkout", path, order, 0 if drop == "drop" else reply.status, reply.body
        )
        if hold > 0:
            self._stopping.wait(hold)
        if drop == "drop":
            raise _Drop
        return reply

    @staticmethod
    def _parse_json(raw: bytes) -> Any:
        try:
            return json.loads(raw)
        except ValueError:
            raise _Reply(400, _error_body(400, "The request body is not valid JSON.")) from None

    def _log_request(self, endpoint: str, path: str, body: Any, status: int, response: Any) -> None:
        with self._lock:
            self._requests.append(
                RecordedRequest(endpoint, path, body, status, copy.deepcopy(response))
            )

    # ----------------------------------------------------------------- lists

    def _list(
        self, query: Mapping[str, str], items: Callable[[int], list[dict[str, Any]]]
    ) -> _Reply:
        problems = []
        numbers: dict[str, int] = {}
        for name, default in (
            ("customertenantid", None),
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
                    _object_error("InvalidValue", f"{name} must be a positive integer", name)
                )
        if problems:
            raise _Reply(400, _error_body(400, "The request is not valid.", problems))
        tenant = numbers["customertenantid"]
        with self._lock:
            if tenant not in self._tenants:
                raise _Reply(404, _error_body(404, f"Customer tenant {tenant} was not found."))
            everything = items(tenant)
        start = (numbers["page"] - 1) * numbers["pagesize"]
        page = everything[start : start + numbers["pagesize"]]
        return _Reply(200, {"Items": page, "TotalHits": len(everything)})

    def _order_items(self, tenant: int) -> list[dict[str, Any]]:
        items = []
        for c in self._checkouts:
            if c.tenant != tenant:
                continue
            item = self._catalog.get(c.product)
            items.append(
                {
                    "OrderReferenceId": c.order_reference_id,
                    "CatalogId": c.catalog_item_id,
                    "Name": item.name if item else c.product,
                    "Quantity": c.quantity,
                    "BillingCycle": _CYCLE_NAMES.get(c.billing_cycle, "Unknown"),
                    "TermDuration": c.term_duration,
                    "EmailReceiver": c.body.get("notificationEmail"),
                    "Created": c.time,
                    "OrderState": "Succeeded",
                    "Error": None,
                }
            )
        return items

    def _subscription_items(self, tenant: int) -> list[dict[str, Any]]:
        items = []
        for number, c in enumerate(self._checkouts, start=1):
            if c.tenant != tenant:
                continue
            item = self._catalog.get(c.product)
            start = datetime.fromisoformat(c.time.replace("Z", "+00:00"))
            months = _TERM_MONTHS.get(c.term_duration, 1)
            year, month = divmod(start.month - 1 + months, 12)
            end = start.replace(year=start.year + year, month=month + 1, day=min(start.day, 28))
            items.append(
                {
                    "Id": 500000 + number,
                    "PublisherSubscriptionId": str(
                        uuid.uuid5(uuid.NAMESPACE_URL, f"{c.order_reference_id}:{c.line}")
                    ),
                    "CustomerTenant": {"Id": c.tenant},
                    "Product": {
                        "Id": c.catalog_item_id,
                        "PartNumber": c.product,
                        "ItemName": item.name if item else c.product,
                    },
                    "PartNumber": c.product,
                    "Name": item.name if item else c.product,
                    "Quantity": c.quantity,
                    "Status": 1,
                    "BillingCycle": _CYCLE_TO_SUBSCRIPTION.get(c.billing_cycle, 0),
                    "TermDuration": c.term_duration,
                    "OrderId": c.order_reference_id,
                    "StartDate": c.time,
                    "EndDate": end.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    "AutoRenewEnabled": True,
                }
            )
        return items


def _camel(order: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the order with its known field names in camelCase (PascalCase accepted)."""

    def rename(data: Mapping[str, Any]) -> dict[str, Any]:
        return {_CAMEL.get(k.casefold(), k): copy.deepcopy(v) for k, v in data.items()}

    result = rename(order)
    result["orderLines"] = [rename(line) for line in result["orderLines"]]
    return result


def _order_problems(order: Any) -> list[dict[str, Any]]:
    """ObjectErrors for a malformed order (wrong shape or types); empty when well-formed."""
    if not isinstance(order, dict):
        return [_object_error("InvalidValue", "The order must be a JSON object.", "")]
    order = {k.casefold(): v for k, v in order.items()}
    problems: list[dict[str, Any]] = []

    def check(data: dict[str, Any], name: str, where: str, kind: str, required: bool) -> None:
        value = data.get(name.casefold())
        path = f"{where}{name}"
        if value is None:
            if required:
                problems.append(_object_error("Required", f"{name} is required", path))
            return
        valid = {
            "int": _is_int(value),
            "str": isinstance(value, str),
            "bool": isinstance(value, bool),
            "map": isinstance(value, dict)
            and all(isinstance(v, str | None) for v in value.values()),
            "obj": isinstance(value, dict),
        }[kind]
        if not valid:
            problems.append(_object_error("InvalidValue", f"{path} has the wrong type", path))

    check(order, "resellerCustomerId", "", "int", required=True)
    tenant = order.get("resellercustomerid")
    if _is_int(tenant) and tenant <= 0:
        problems.append(
            _object_error(
                "InvalidValue", "resellerCustomerId must be positive", "resellerCustomerId"
            )
        )
    for name in ("externalOrderId", "countryCode", "notificationEmail", "adminAccount"):
        check(order, name, "", "str", required=False)
    check(order, "invoiceProfileId", "", "int", required=False)
    lines = order.get("orderlines")
    if not isinstance(lines, list) or not lines:
        problems.append(
            _object_error("Required", "orderLines must hold at least one line", "orderLines")
        )
        return problems
    for index, line in enumerate(lines):
        where = f"orderLines[{index}]."
        if not isinstance(line, dict):
            problems.append(
                _object_error("InvalidValue", "an order line must be an object", where[:-1])
            )
            continue
        line = {k.casefold(): v for k, v in line.items()}
        for name in ("productId", "skuId", "termDuration"):
            check(line, name, where, "str", required=True)
        for name in ("quantity", "billingCycle"):
            check(line, name, where, "int", required=True)
        for name in ("type", "productVariantId"):
            check(line, name, where, "int", required=False)
        check(line, "attestationAccepted", where, "bool", required=False)
        check(line, "provisioningContext", where, "map", required=False)
        check(line, "tags", where, "obj", required=False)
    return problems


def _line_errors(line: Mapping[str, Any], item: CatalogItem | None) -> list[dict[str, Any]]:
    """The business errors verify reports on one well-formed line."""
    product = f"{line['productId']}:{line['skuId']}"
    if item is None:
        return [
            {
                "reasonCode": "ProductNotFound",
                "description": f"Product {product} was not found in the catalogue.",
                "properties": {"productId": line["productId"], "skuId": line["skuId"]},
            }
        ]
    errors = []
    quantity = line["quantity"]
    if not 1 <= quantity <= item.max_quantity:
        errors.append(
            {
                "reasonCode": "QuantityOutOfRange",
                "description": (
                    f"Quantity {quantity} is outside the allowed range 1-{item.max_quantity}."
                ),
                "properties": {"min": "1", "max": str(item.max_quantity)},
            }
        )
    if line["termDuration"] not in item.terms:
        errors.append(
            {
                "reasonCode": "TermDurationNotSupported",
                "description": f"Term {line['termDuration']} is not offered for {product}.",
                "properties": {"supported": ",".join(item.terms)},
            }
        )
    if line["billingCycle"] not in item.billing_cycles:
        errors.append(
            {
                "reasonCode": "BillingCycleNotSupported",
                "description": (
                    f"Billing cycle {line['billingCycle']} is not offered for {product}."
                ),
                "properties": {"supported": ",".join(str(c) for c in item.billing_cycles)},
            }
        )
    if line["type"] not in item.types:
        errors.append(
            {
                "reasonCode": "TypeNotSupported",
                "description": f"Type {line['type']} is not offered for {product}.",
                "properties": {"supported": ",".join(str(t) for t in item.types)},
            }
        )
    return errors


def serve_forever(sim: Simulator) -> None:
    """Serve until KeyboardInterrupt (Ctrl-C), then stop cleanly."""
    sim.start()
    try:
        while sim.running:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
