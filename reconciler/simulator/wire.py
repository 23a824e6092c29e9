"""The simulator's HTTP answers and the JSON shapes its endpoints share.

Values and pure helpers only: this module holds no state, opens no socket and
must not import ``reconciler.api`` or ``reconciler.model``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, Final

#: The endpoint names faults and counts use: ``subscription`` is the GET of one
#: subscription, ``update`` its PUT.
ENDPOINTS: Final = (
    "token",
    "verify",
    "checkout",
    "orders",
    "subscriptions",
    "asset-orders",
    "agreement-products",
    "subscription",
    "update",
    "ping",
    "me",
)
#: The list shapes the list endpoints can answer in: the published document's bare
#: array, or Crayon's SDK's ``{"Items": [...], "TotalHits": n}``.
LIST_SHAPES: Final = ("envelope", "bare")


class Reply(Exception):
    """Raised inside a handler to answer with ``status`` and a JSON (or no) body; a
    ``bytes`` body is sent as it is (an injected answer that is not JSON)."""

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


class Drop(Exception):
    """Raised inside a handler to close the connection without any answer."""


def check_endpoint(endpoint: str) -> None:
    """Refuse an endpoint name the simulator does not serve (a typo in a test)."""
    if endpoint not in ENDPOINTS:
        raise ValueError(f"endpoint must be one of {', '.join(ENDPOINTS)}, not {endpoint!r}")


def error_body(
    status: int, message: str, object_errors: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    """The API's error document: ErrorCode, Message, Parameters, ObjectErrors."""
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


def object_error(code: str, message: str, path: str) -> dict[str, Any]:
    """One entry of an error document's ObjectErrors."""
    return {"ErrorCode": code, "Message": message, "Parameters": {"path": path}}


def parse_json(raw: bytes) -> Any:
    """A request body as JSON, or a 400 answer."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise Reply(400, error_body(400, "The request body is not valid JSON.")) from None


def canonical(value: Any) -> str:
    """One text per JSON value whatever its key order: how checkout recognises a verified order."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def is_int(value: Any) -> bool:
    """A JSON integer; ``True`` is not one, although Python says it is."""
    return isinstance(value, int) and not isinstance(value, bool)
