"""How a failed API call counts: pure functions of plain values, and their words.

``classify_status`` and ``classify_transport`` decide, from the endpoint and
what happened, whether a failure is RETRYABLE, DEFINITIVE or AMBIGUOUS;
``refuses_order`` and ``refuses_credentials`` say what a definitive status
means; ``retry_after`` and ``error_body`` read an error answer. The transport
maps ``requests``' exceptions and responses onto these values; nothing else in
the code decides whether a failure may be retried. This module must not import
``requests``, must do no I/O and must hold no state.

    what happened                              token, verify, GETs   checkout, update (PUT)
    -----------------------------------------  --------------------  ------------------------
    2xx                                        success               success
    could not connect: refused, DNS failure,   RETRYABLE, retried    RETRYABLE, retried (the
      connect timeout (nothing was sent)                             request never left)
    TLS certificate rejected; the request      DEFINITIVE            DEFINITIVE
      could not be made (bad URL or header)
    other TLS error                            RETRYABLE, retried    AMBIGUOUS, never re-sent
    read timeout; connection reset, dropped    RETRYABLE, retried    AMBIGUOUS, never re-sent
      or broken after the request was sent;
      an answer that could not be read
    429 Too Many Requests                      RETRYABLE, retried    RETRYABLE, retried
    401 Unauthorized                           DEFINITIVE (the client first repeats the call
                                               once with a fresh token)
    400 403 404 409 422                        DEFINITIVE            DEFINITIVE, refused
    408, 5xx                                   RETRYABLE, retried    AMBIGUOUS, never re-sent
    any other status (3xx: redirects are       DEFINITIVE            AMBIGUOUS, never re-sent
      never followed; other 4xx)
    token endpoint 400/401 (bad credentials)   DEFINITIVE; the client says which CRAYON_*
                                               variables to check, never their values

A definitive 400/403/404/409/422 on verify, checkout or an update is the API
refusing that order or that change (``refuses_order``, which sets
``ApiError.refused``); on the token endpoint it refuses us, not the order. An
update is never re-sent after an ambiguous failure although its quantity is
absolute: whether sending it again is safe depends on what the subscription
shows now, which only the caller can read and judge.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Final

from reconciler.api.fields import UnreadableJson, as_list, ci_get, load_json
from reconciler.errors import ApiObjectError, FailureKind

#: Statuses that refuse the request itself: repeating it gives the same answer.
REFUSAL_STATUSES: Final = frozenset({400, 403, 404, 409, 422})
#: Statuses of the token endpoint that mean the credentials are wrong.
CREDENTIAL_REFUSAL_STATUSES: Final = frozenset({400, 401})
_MAX_TEXT: Final = 300


class Endpoint(enum.Enum):
    """The kind of endpoint a call goes to; it decides how its failures count."""

    TOKEN = "token"
    VERIFY = "verify"
    CHECKOUT = "checkout"
    UPDATE = "update"
    READ = "read"

    @property
    def idempotent(self) -> bool:
        """Whether the client may repeat the request after a failure that may have
        reached the server."""
        return self is not Endpoint.CHECKOUT and self is not Endpoint.UPDATE

    @property
    def takes_order(self) -> bool:
        """Whether the request carries an order or a change the API may refuse."""
        return self in (Endpoint.VERIFY, Endpoint.CHECKOUT, Endpoint.UPDATE)


class TransportFailure(enum.Enum):
    """What went wrong below HTTP, as far as the client can tell."""

    #: The request could not even be made (a malformed URL or header).
    UNUSABLE_REQUEST = "unusable request"
    #: Failed while opening the connection: provably nothing was sent.
    NOT_CONNECTED = "not connected"
    #: The server's TLS certificate was rejected.
    CERTIFICATE_REJECTED = "certificate rejected"
    #: Any other TLS failure: the request may have been sent.
    TLS_FAILED = "tls failed"
    #: Sent, but no answer came within the read timeout.
    NO_ANSWER = "no answer"
    #: Reset, dropped or broken after the request was sent.
    CONNECTION_BROKEN = "connection broken"
    #: An answer came but could not be read.
    UNREADABLE_ANSWER = "unreadable answer"


@dataclass(frozen=True)
class ErrorBody:
    """What an error answer says: the API's ErrorCode, Message and ObjectErrors."""

    code: str | None = None
    message: str | None = None
    object_errors: tuple[ApiObjectError, ...] = ()


def classify_status(endpoint: Endpoint, status: int) -> FailureKind:
    """How a non-2xx answer from ``endpoint`` counts (see the module docstring)."""
    if 200 <= status < 300:
        raise ValueError(f"HTTP {status} is a success, not a failure")
    if status == 429:
        return FailureKind.RETRYABLE
    if status in REFUSAL_STATUSES or status == 401:
        return FailureKind.DEFINITIVE
    if not endpoint.idempotent:
        return FailureKind.AMBIGUOUS
    if status == 408 or status >= 500:
        return FailureKind.RETRYABLE
    return FailureKind.DEFINITIVE


def classify_transport(endpoint: Endpoint, failure: TransportFailure) -> FailureKind:
    """How a failure below HTTP on a call to ``endpoint`` counts."""
    if failure in (TransportFailure.UNUSABLE_REQUEST, TransportFailure.CERTIFICATE_REJECTED):
        return FailureKind.DEFINITIVE
    if failure is TransportFailure.NOT_CONNECTED:
        return FailureKind.RETRYABLE
    # The request may have reached the server: only a repeatable one is repeated.
    return FailureKind.RETRYABLE if endpoint.idempotent else FailureKind.AMBIGUOUS


def refuses_order(endpoint: Endpoint, status: int) -> bool:
    """Whether ``status`` is the API definitively refusing the order sent to ``endpoint``."""
    return endpoint.takes_order and status in REFUSAL_STATUSES


def refuses_credentials(endpoint: Endpoint, status: int) -> bool:
    """Whether ``status`` is the token endpoint refusing the client's credentials."""
    return endpoint is Endpoint.TOKEN and status in CREDENTIAL_REFUSAL_STATUSES


def transport_reason(failure: TransportFailure, cause: str, read_timeout: float) -> str:
    """The reason shown for a failure below HTTP; ``cause`` is the innermost error."""
    match failure:
        case TransportFailure.UNUSABLE_REQUEST:
            return f"the request could not be made ({cause})"
        case TransportFailure.NOT_CONNECTED:
            return f"could not connect ({cause})"
        case TransportFailure.CERTIFICATE_REJECTED:
            return f"TLS certificate rejected ({cause})"
        case TransportFailure.TLS_FAILED:
            return f"TLS error ({cause})"
        case TransportFailure.NO_ANSWER:
            return f"no answer within {read_timeout:g} s of sending the request"
        case TransportFailure.CONNECTION_BROKEN:
            return f"the connection broke after the request was sent ({cause})"
        case TransportFailure.UNREADABLE_ANSWER:
            return f"the answer could not be read ({cause})"


def status_reason(status: int) -> str:
    """``HTTP 404 Not Found``; unknown statuses say so."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "(unknown status)"
    return f"HTTP {status} {phrase}"


def headline(operation: str, kind: FailureKind, reason: str) -> str:
    """The first line of an ApiError: what failed, how it counts, and why."""
    if kind is FailureKind.DEFINITIVE:
        return f"{operation} refused: {reason}"
    if kind is FailureKind.AMBIGUOUS:
        return (
            f"{operation} outcome unknown: {reason}; "
            "the API may or may not have acted on the request"
        )
    return f"{operation} failed: {reason}"


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP-date).

    ``now`` is the moment an HTTP-date is measured from (the current time when
    not given); a date in the past means no wait.
    """
    # Deferred: email.utils costs the CLI's start several milliseconds, and only
    # a client (whose requests imports it anyway) ever reads a header.
    import email.utils

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
    if now is None:
        now = datetime.now(UTC)
    return max((when - now).total_seconds(), 0.0)


def error_body(content: bytes, scrub: Callable[[str], str] = str) -> ErrorBody:
    """ErrorCode, Message and ObjectErrors of an error answer, read case-insensitively.

    Also reads the OAuth ``error``/``error_description`` of the token endpoint.
    Empty bodies give nothing; non-JSON bodies give their (clipped) text. Every
    text goes through ``scrub`` before it is clipped: collapsing its whitespace or
    cutting it short could hide a secret from the scrubbing.
    """
    text = content.decode("utf-8", errors="replace").strip()
    if not text:
        return ErrorBody()

    def shown(value: object) -> str:
        return clip(scrub(str(value)))

    try:
        data = load_json(text)
    except UnreadableJson:
        return ErrorBody(message=shown(text))
    if isinstance(data, str):
        return ErrorBody(message=shown(data))
    if not isinstance(data, dict):
        return ErrorBody()
    code = ci_get(data, "ErrorCode") or ci_get(data, "error")
    message = ci_get(data, "Message") or ci_get(data, "error_description")
    object_errors = tuple(
        ApiObjectError(
            code=shown(ci_get(entry, "ErrorCode") or ""),
            message=shown(ci_get(entry, "Message") or ""),
        )
        for entry in as_list(ci_get(data, "ObjectErrors"))
        if isinstance(entry, dict)
    )
    return ErrorBody(
        shown(code) if code else None,
        shown(message) if message else None,
        object_errors,
    )


def clip(text: str) -> str:
    """``text`` on one line, at most 300 characters: error texts end up in messages."""
    text = " ".join(text.split())
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."
