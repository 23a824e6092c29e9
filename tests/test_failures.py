"""The failure classification as tables: every row of reconciler.api.failures' docstring.

No HTTP and no requests objects: the classifiers take plain values.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconciler.api.failures import (
    Endpoint,
    ErrorBody,
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
from reconciler.errors import ApiObjectError, FailureKind

RETRYABLE, DEFINITIVE, AMBIGUOUS = (
    FailureKind.RETRYABLE,
    FailureKind.DEFINITIVE,
    FailureKind.AMBIGUOUS,
)
#: Token, verify and the GETs are safe to repeat; only checkout is not.
REPEATABLE = (Endpoint.TOKEN, Endpoint.VERIFY, Endpoint.READ)

# --------------------------------------------------------------------------- statuses

# (status, kind for token/verify/GETs, kind for checkout)
STATUS_TABLE = [
    (429, RETRYABLE, RETRYABLE),
    (401, DEFINITIVE, DEFINITIVE),
    (400, DEFINITIVE, DEFINITIVE),
    (403, DEFINITIVE, DEFINITIVE),
    (404, DEFINITIVE, DEFINITIVE),
    (409, DEFINITIVE, DEFINITIVE),
    (422, DEFINITIVE, DEFINITIVE),
    (408, RETRYABLE, AMBIGUOUS),
    (500, RETRYABLE, AMBIGUOUS),
    (501, RETRYABLE, AMBIGUOUS),
    (502, RETRYABLE, AMBIGUOUS),
    (503, RETRYABLE, AMBIGUOUS),
    (504, RETRYABLE, AMBIGUOUS),
    (599, RETRYABLE, AMBIGUOUS),
    # Any other status: redirects are never followed, other 4xx are not ours to repeat.
    (100, DEFINITIVE, AMBIGUOUS),
    (301, DEFINITIVE, AMBIGUOUS),
    (302, DEFINITIVE, AMBIGUOUS),
    (304, DEFINITIVE, AMBIGUOUS),
    (307, DEFINITIVE, AMBIGUOUS),
    (402, DEFINITIVE, AMBIGUOUS),
    (405, DEFINITIVE, AMBIGUOUS),
    (410, DEFINITIVE, AMBIGUOUS),
    (413, DEFINITIVE, AMBIGUOUS),
    (418, DEFINITIVE, AMBIGUOUS),
    (451, DEFINITIVE, AMBIGUOUS),
    (499, DEFINITIVE, AMBIGUOUS),
]


@pytest.mark.parametrize("endpoint", REPEATABLE)
@pytest.mark.parametrize(("status", "repeatable_kind", "checkout_kind"), STATUS_TABLE)
def test_statuses_on_repeatable_endpoints(
    endpoint: Endpoint, status: int, repeatable_kind: FailureKind, checkout_kind: FailureKind
) -> None:
    assert classify_status(endpoint, status) is repeatable_kind


#: The calls that change something: never repeated after a failure that may have reached
#: the server (an update's quantity is absolute, but whether to send it again is the
#: caller's call, after reading the subscription).
CHANGING = (Endpoint.CHECKOUT, Endpoint.UPDATE)


@pytest.mark.parametrize("endpoint", CHANGING)
@pytest.mark.parametrize(("status", "repeatable_kind", "checkout_kind"), STATUS_TABLE)
def test_statuses_on_checkout_and_update(
    endpoint: Endpoint, status: int, repeatable_kind: FailureKind, checkout_kind: FailureKind
) -> None:
    assert classify_status(endpoint, status) is checkout_kind


@pytest.mark.parametrize("endpoint", list(Endpoint))
@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_a_success_is_not_classified(endpoint: Endpoint, status: int) -> None:
    with pytest.raises(ValueError, match=f"HTTP {status} is a success"):
        classify_status(endpoint, status)


# (endpoint, status, the API refused the order)
REFUSAL_TABLE = [
    *[(Endpoint.VERIFY, s, True) for s in (400, 403, 404, 409, 422)],
    *[(Endpoint.CHECKOUT, s, True) for s in (400, 403, 404, 409, 422)],
    *[(Endpoint.UPDATE, s, True) for s in (400, 403, 404, 409, 422)],
    # The token endpoint refuses us, not the order; the GETs carry no order.
    *[(Endpoint.TOKEN, s, False) for s in (400, 401, 403, 404, 409, 422)],
    *[(Endpoint.READ, s, False) for s in (400, 403, 404, 409, 422)],
    # Anything not definitive, and a 401 (answered with a fresh token), is no refusal.
    *[(Endpoint.VERIFY, s, False) for s in (401, 408, 410, 418, 429, 500, 503)],
    *[(Endpoint.CHECKOUT, s, False) for s in (401, 408, 410, 418, 429, 500, 503)],
    *[(Endpoint.UPDATE, s, False) for s in (401, 408, 410, 418, 429, 500, 503)],
]


@pytest.mark.parametrize(("endpoint", "status", "refused"), REFUSAL_TABLE)
def test_which_statuses_refuse_the_order(endpoint: Endpoint, status: int, refused: bool) -> None:
    assert refuses_order(endpoint, status) is refused


@pytest.mark.parametrize(
    ("endpoint", "status", "refused"),
    [
        (Endpoint.TOKEN, 400, True),
        (Endpoint.TOKEN, 401, True),
        (Endpoint.TOKEN, 403, False),
        (Endpoint.TOKEN, 429, False),
        (Endpoint.TOKEN, 500, False),
        (Endpoint.VERIFY, 400, False),
        (Endpoint.VERIFY, 401, False),
        (Endpoint.CHECKOUT, 401, False),
        (Endpoint.READ, 401, False),
    ],
)
def test_which_statuses_refuse_the_credentials(
    endpoint: Endpoint, status: int, refused: bool
) -> None:
    assert refuses_credentials(endpoint, status) is refused


def test_only_checkout_and_update_are_never_repeated_and_only_they_and_verify_refuse() -> None:
    assert [e for e in Endpoint if not e.idempotent] == [Endpoint.CHECKOUT, Endpoint.UPDATE]
    assert [e for e in Endpoint if e.takes_order] == [
        Endpoint.VERIFY,
        Endpoint.CHECKOUT,
        Endpoint.UPDATE,
    ]


# --------------------------------------------------------------------------- transport

# (what happened, kind for token/verify/GETs, kind for checkout)
TRANSPORT_TABLE = [
    # Refused, DNS failure, connect timeout: nothing was sent, so even checkout is retried.
    (TransportFailure.NOT_CONNECTED, RETRYABLE, RETRYABLE),
    (TransportFailure.CERTIFICATE_REJECTED, DEFINITIVE, DEFINITIVE),
    (TransportFailure.UNUSABLE_REQUEST, DEFINITIVE, DEFINITIVE),
    (TransportFailure.TLS_FAILED, RETRYABLE, AMBIGUOUS),
    (TransportFailure.NO_ANSWER, RETRYABLE, AMBIGUOUS),
    (TransportFailure.CONNECTION_BROKEN, RETRYABLE, AMBIGUOUS),
    (TransportFailure.UNREADABLE_ANSWER, RETRYABLE, AMBIGUOUS),
]


def test_the_transport_table_covers_every_failure() -> None:
    assert {row[0] for row in TRANSPORT_TABLE} == set(TransportFailure)


@pytest.mark.parametrize("endpoint", REPEATABLE)
@pytest.mark.parametrize(("failure", "repeatable_kind", "checkout_kind"), TRANSPORT_TABLE)
def test_transport_failures_on_repeatable_endpoints(
    endpoint: Endpoint,
    failure: TransportFailure,
    repeatable_kind: FailureKind,
    checkout_kind: FailureKind,
) -> None:
    assert classify_transport(endpoint, failure) is repeatable_kind


@pytest.mark.parametrize("endpoint", CHANGING)
@pytest.mark.parametrize(("failure", "repeatable_kind", "checkout_kind"), TRANSPORT_TABLE)
def test_transport_failures_on_checkout_and_update(
    endpoint: Endpoint,
    failure: TransportFailure,
    repeatable_kind: FailureKind,
    checkout_kind: FailureKind,
) -> None:
    assert classify_transport(endpoint, failure) is checkout_kind


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (TransportFailure.UNUSABLE_REQUEST, "the request could not be made (bad host)"),
        (TransportFailure.NOT_CONNECTED, "could not connect (bad host)"),
        (TransportFailure.CERTIFICATE_REJECTED, "TLS certificate rejected (bad host)"),
        (TransportFailure.TLS_FAILED, "TLS error (bad host)"),
        (TransportFailure.NO_ANSWER, "no answer within 2.5 s of sending the request"),
        (
            TransportFailure.CONNECTION_BROKEN,
            "the connection broke after the request was sent (bad host)",
        ),
        (TransportFailure.UNREADABLE_ANSWER, "the answer could not be read (bad host)"),
    ],
)
def test_transport_reasons(failure: TransportFailure, reason: str) -> None:
    assert transport_reason(failure, "bad host", 2.5) == reason


# --------------------------------------------------------------------------- words


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (DEFINITIVE, "checkout refused: HTTP 409 Conflict"),
        (RETRYABLE, "checkout failed: HTTP 409 Conflict"),
        (
            AMBIGUOUS,
            "checkout outcome unknown: HTTP 409 Conflict; "
            "the API may or may not have acted on the request",
        ),
    ],
)
def test_headlines(kind: FailureKind, expected: str) -> None:
    assert headline("checkout", kind, status_reason(409)) == expected


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (404, "HTTP 404 Not Found"),
        (429, "HTTP 429 Too Many Requests"),
        (599, "HTTP 599 (unknown status)"),
    ],
)
def test_status_reasons(status: int, reason: str) -> None:
    assert status_reason(status) == reason


# --------------------------------------------------------------------------- Retry-After

NOW = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", 5.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("soon", None),
        ("", None),
        ("   ", None),
        (None, None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("nan", None),
    ],
)
def test_retry_after_parsing(value: str | None, expected: float | None) -> None:
    assert retry_after(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: no wait
        ("Wed, 21 Oct 2015 07:28:10 -0000", 10.0),  # no zone given: read as UTC
        ("Wed, 21 Oct 2015 09:29:00 +0200", 60.0),
        ("Wed, 32 Oct 2015 07:28:00 GMT", None),
    ],
)
def test_retry_after_dates_are_measured_from_now(value: str, expected: float | None) -> None:
    assert retry_after(value, now=NOW) == expected


# --------------------------------------------------------------------------- error bodies


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", ErrorBody()),
        (b"   \n", ErrorBody()),
        (b"[1, 2]", ErrorBody()),
        (b"null", ErrorBody()),
        (b'"plain words"', ErrorBody(message="plain words")),
        (b"<html>Bad   Gateway</html>", ErrorBody(message="<html>Bad Gateway</html>")),
        (
            b'{"ErrorCode": "NotFound", "Message": "No such tenant"}',
            ErrorBody("NotFound", "No such tenant"),
        ),
        (
            b'{"errorcode": "Bad", "message": "lower case", "objecterrors": '
            b'[{"errorcode": "E1", "message": "first"}, "junk", {"Message": "second"}]}',
            ErrorBody(
                "Bad",
                "lower case",
                (ApiObjectError("E1", "first"), ApiObjectError("", "second")),
            ),
        ),
        (
            b'{"error": "invalid_grant", "error_description": "bad password"}',
            ErrorBody("invalid_grant", "bad password"),
        ),
        (b'{"ErrorCode": 42, "ObjectErrors": "none"}', ErrorBody("42")),
        (b'{"ErrorCode": "", "Message": null}', ErrorBody()),
        (b"\xff\xfe broken", ErrorBody(message="\ufffd\ufffd broken")),
    ],
)
def test_error_bodies(content: bytes, expected: ErrorBody) -> None:
    assert error_body(content) == expected


def test_long_error_texts_are_clipped_to_one_line() -> None:
    assert clip("a\n  b\tc") == "a b c"
    clipped = clip("x" * 1000)
    assert len(clipped) == 300
    assert clipped.endswith("...")
    assert error_body(b"y" * 1000).message == "y" * 297 + "..."
