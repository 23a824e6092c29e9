"""CrayonClient against the simulator (real sockets) and, for parsing edges, ``responses``."""

from __future__ import annotations

import base64
import email.utils
import json
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import responses
from urllib3.exceptions import ProtocolError

from reconciler import __version__
from reconciler.api import (
    ApiSettings,
    LineError,
    OrderJson,
    RetryPolicy,
    VerifiedOrder,
    build_order,
    legacy_dropped_fields,
    legacy_order,
    new_external_order_id,
)
from reconciler.api import settings as api_settings
from reconciler.api.client import CrayonClient
from reconciler.errors import ApiError, AuthenticationError, ConfigurationError, FailureKind
from reconciler.model import Identity, Purchase
from reconciler.simulator import LIST_SHAPES, Simulator

SECRET = "cl1ent-S3cret-7f3c"
PASSWORD = "pa55-W0rd-q9z"
FAKE_URL = "https://api.crayon.test"
VERIFY_URL = FAKE_URL + "/api/v1/purchaserequest/verify"
CHECKOUT_URL = FAKE_URL + "/api/v1/purchaserequest/checkout"
TOKEN_URL = FAKE_URL + "/api/v1/connect/token"
ORDERS_URL = FAKE_URL + "/api/v1/purchaserequest/orders/"
SUBSCRIPTIONS_URL = FAKE_URL + "/api/v1/subscriptions/"

ENV = {
    "CRAYON_API_URL": "https://api.crayon.test",
    "CRAYON_CLIENT_ID": "client-1",
    "CRAYON_CLIENT_SECRET": SECRET,
    "CRAYON_USERNAME": "ops@example.com",
    "CRAYON_PASSWORD": PASSWORD,
}


class Sleeps(list[float]):
    """A ``sleep`` that records the delays instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


class FakeClock:
    """A monotonic clock that only moves when told to (or when slept on)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def purchase(
    tenant: int = 111111,
    product: str = "CFQ7TTC0LF8R",
    sku: str = "0010",
    **kwargs: Any,
) -> Purchase:
    identity = Identity(tenant, product, sku, kwargs.pop("cycle", "monthly"), "P1M")
    return Purchase(address="acme/m365", identity=identity, quantity=10, **kwargs)


def order(quantity: int = 5, **kwargs: Any) -> OrderJson:
    return build_order(purchase(**kwargs), quantity, new_external_order_id())


@pytest.fixture(params=LIST_SHAPES)
def sim(request: pytest.FixtureRequest, simulator_factory: Callable[..., Simulator]) -> Simulator:
    """The simulator answering lists in each shape: the envelope, and the bare array."""
    return simulator_factory(client_secret=SECRET, password=PASSWORD, list_shape=request.param)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_client(sleeps: Sleeps) -> Iterator[Callable[..., CrayonClient]]:
    clients: list[CrayonClient] = []

    def make(
        sim: Simulator | None = None,
        *,
        url: str | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        **settings: Any,
    ) -> CrayonClient:
        env = sim.env() if sim is not None else dict(ENV)
        if url is not None:
            env["CRAYON_API_URL"] = url
        values = ApiSettings.from_env(env).__dict__ | {"read_timeout": 5.0} | settings
        client = CrayonClient(
            ApiSettings(**values),
            retry=retry or RetryPolicy(max_attempts=3),
            sleep=sleep or sleeps,
            clock=clock,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def verified(sim: Simulator, client: CrayonClient, **kwargs: Any) -> VerifiedOrder:
    result = client.verify(order(**kwargs))
    assert result.ok, result.errors
    return result


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- settings


def test_from_env_reads_every_variable() -> None:
    settings = ApiSettings.from_env({**ENV, "CRAYON_API_URL": "https://api.crayon.test/"})
    assert settings.base_url == "https://api.crayon.test"
    assert (settings.client_id, settings.client_secret) == ("client-1", SECRET)
    assert (settings.username, settings.password) == ("ops@example.com", PASSWORD)
    assert settings.legacy_endpoints is False
    assert ApiSettings.from_env(ENV, legacy_endpoints=True).legacy_endpoints is True


def test_from_env_reads_timeouts_and_refuses_bad_ones() -> None:
    default = ApiSettings.from_env(ENV)
    assert (default.connect_timeout, default.read_timeout) == (10.0, 60.0)
    tuned = ApiSettings.from_env(
        {**ENV, "RECONCILER_CONNECT_TIMEOUT": "2.5", "RECONCILER_READ_TIMEOUT": "300"}
    )
    assert (tuned.connect_timeout, tuned.read_timeout) == (2.5, 300.0)
    with pytest.raises(ConfigurationError) as caught:
        ApiSettings.from_env(
            {**ENV, "RECONCILER_CONNECT_TIMEOUT": "soon", "RECONCILER_READ_TIMEOUT": "0"}
        )
    assert str(caught.value) == (
        "RECONCILER_CONNECT_TIMEOUT must be a positive number of seconds, not 'soon'; "
        "RECONCILER_READ_TIMEOUT must be a positive number of seconds, not '0'"
    )


def test_from_env_defaults_to_the_crayon_api(monkeypatch: pytest.MonkeyPatch) -> None:
    # conftest points the default somewhere unusable; this test only reads settings.
    monkeypatch.setattr(api_settings, "DEFAULT_API_URL", "https://api.crayon.com")
    env = {k: v for k, v in ENV.items() if k != "CRAYON_API_URL"}
    assert ApiSettings.from_env(env).base_url == "https://api.crayon.com"
    assert ApiSettings.from_env({**env, "CRAYON_API_URL": ""}).base_url == "https://api.crayon.com"


def test_from_env_names_every_missing_variable_and_no_value() -> None:
    with pytest.raises(ConfigurationError) as caught:
        ApiSettings.from_env(
            {
                "CRAYON_API_URL": "https://api.crayon.test",
                "CRAYON_CLIENT_SECRET": SECRET,
                "CRAYON_USERNAME": "  ",
            }
        )
    message = str(caught.value)
    assert message == (
        "missing environment variables: CRAYON_CLIENT_ID, CRAYON_USERNAME, CRAYON_PASSWORD"
    )
    assert caught.value.kind is FailureKind.DEFINITIVE


def test_from_env_reports_missing_variables_and_a_bad_url_together() -> None:
    with pytest.raises(ConfigurationError) as caught:
        ApiSettings.from_env({"CRAYON_API_URL": "http://api.crayon.com"})
    message = str(caught.value)
    assert "CRAYON_CLIENT_ID" in message
    assert "CRAYON_PASSWORD" in message
    assert "plain http://" in message


@pytest.mark.parametrize(
    "url",
    [
        "http://api.crayon.com",
        "http://10.0.0.1:8080",
        "http://localhost.example.com",
        "http://128.0.0.1",
        "http://[2001:db8::1]:80",
    ],
)
def test_plain_http_is_refused_for_other_hosts(url: str) -> None:
    with pytest.raises(ConfigurationError, match="plain http:// is allowed only for a loopback"):
        ApiSettings.from_env({**ENV, "CRAYON_API_URL": url})


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "http://127.5.6.7",
        "http://localhost:1234",
        "http://LOCALHOST",
        "http://[::1]:8080",
        "https://api.crayon.com/",
    ],
)
def test_https_and_loopback_http_are_accepted(url: str) -> None:
    assert ApiSettings.from_env({**ENV, "CRAYON_API_URL": url}).base_url == url.rstrip("/")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ftp://api.crayon.com", "must be an https:// URL"),
        ("file:///etc/passwd", "must be an https:// URL"),
        ("api.crayon.com", "must be an https:// URL"),
        ("https://", "has no host"),
        ("https://api.crayon.com?x=1", "query or fragment"),
        ("https://api.crayon.com:99999", "invalid host or port"),
    ],
)
def test_other_urls_are_refused(url: str, expected: str) -> None:
    with pytest.raises(ConfigurationError, match=expected):
        ApiSettings.from_env({**ENV, "CRAYON_API_URL": url})


def test_credentials_in_the_url_are_refused_without_echoing_them() -> None:
    with pytest.raises(ConfigurationError) as caught:
        ApiSettings.from_env({**ENV, "CRAYON_API_URL": "https://bob:hunter22@api.crayon.com"})
    assert "must not contain credentials" in str(caught.value)
    assert "hunter22" not in str(caught.value)


def test_settings_built_directly_are_checked_too() -> None:
    with pytest.raises(ConfigurationError, match="plain http://"):
        ApiSettings("http://example.com", "id", SECRET, "user", PASSWORD)
    with pytest.raises(ConfigurationError, match="timeouts"):
        ApiSettings("https://example.com", "id", SECRET, "user", PASSWORD, read_timeout=0)


def test_retry_policy_is_validated() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(base_delay=-1)


# --------------------------------------------------------------------------- orders


def test_build_order_maps_every_field_to_camel_case() -> None:
    full = purchase(
        cycle="annual",
        product_variant_id=2622144,
        tags={"project": "p", "costCenter": "IT"},
        provisioning_context={"b": "2", "a": "1"},
        attestation_accepted=True,
        notification_email="it@acme.example",
        invoice_profile_id=42,
    )
    assert build_order(full, 7, "reconciler-1") == {
        "resellerCustomerId": 111111,
        "externalOrderId": "reconciler-1",
        "notificationEmail": "it@acme.example",
        "invoiceProfileId": 42,
        "orderLines": [
            {
                "productId": "CFQ7TTC0LF8R",
                "skuId": "0010",
                "productVariantId": 2622144,
                "quantity": 7,
                "billingCycle": 2,
                "termDuration": "P1M",
                "type": 3,
                "tags": {"costCenter": "IT", "project": "p"},
                "provisioningContext": {"a": "1", "b": "2"},
                "attestationAccepted": True,
            }
        ],
    }


def test_build_order_omits_unset_optionals() -> None:
    assert build_order(purchase(), 1, "x") == {
        "resellerCustomerId": 111111,
        "externalOrderId": "x",
        "orderLines": [
            {
                "productId": "CFQ7TTC0LF8R",
                "skuId": "0010",
                "quantity": 1,
                "billingCycle": 1,
                "termDuration": "P1M",
                "type": 3,
            }
        ],
    }


@pytest.mark.parametrize("quantity", [0, -1, True])
def test_build_order_refuses_a_non_positive_quantity(quantity: int) -> None:
    with pytest.raises(ValueError, match="quantity"):
        build_order(purchase(), quantity, "x")


def test_external_order_ids_are_unique() -> None:
    ids = {new_external_order_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.startswith("reconciler-") and len(i) == 43 for i in ids)


# --------------------------------------------------------------------------- token


def test_one_token_serves_many_calls(
    sim: Simulator, make_client: Callable[..., CrayonClient]
) -> None:
    client = make_client(sim)
    for _ in range(3):
        client.verify(order())
    client.list_orders(111111)
    assert sim.tokens_issued == 1
    assert sim.count("token") == 1
    assert client.retries == 0


def test_bad_credentials_are_definitive_and_name_the_variables(
    sim: Simulator, make_client: Callable[..., CrayonClient]
) -> None:
    client = make_client(sim)
    sim.password = "something-else"
    with pytest.raises(ApiError) as caught:
        client.verify(order())
    error = caught.value
    assert isinstance(error, AuthenticationError)  # apply stops on it: nothing can succeed
    assert error.kind is FailureKind.DEFINITIVE
    assert error.status == 400
    assert str(error) == (
        "the Crayon API refused the credentials (HTTP 400); check CRAYON_CLIENT_ID, "
        "CRAYON_CLIENT_SECRET, CRAYON_USERNAME and CRAYON_PASSWORD"
    )
    assert error.error_code == "invalid_grant"
    assert sim.count("token") == 1
    assert sim.count("verify") == 0


def test_a_401_gets_one_fresh_token_and_the_call_is_repeated(
    sim: Simulator, make_client: Callable[..., CrayonClient]
) -> None:
    client = make_client(sim)
    client.verify(order())
    sim.expire_tokens()
    assert client.verify(order()).ok
    assert sim.tokens_issued == 2
    assert [c.status for c in sim.calls if c.endpoint == "verify"] == [200, 401, 200]
    assert client.retries == 1


def test_a_second_401_is_definitive(
    sim: Simulator, make_client: Callable[..., CrayonClient]
) -> None:
    client = make_client(sim)
    sim.fail_next("verify", 401, count=2)
    with pytest.raises(ApiError) as caught:
        client.verify(order())
    assert caught.value.kind is FailureKind.DEFINITIVE
    assert caught.value.status == 401
    assert "even with a fresh token" in str(caught.value)
    assert sim.count("verify") == 2
    assert sim.tokens_issued == 2


def test_a_checkout_refused_with_401_is_sent_again_once(
    sim: Simulator, make_client: Callable[..., CrayonClient]
) -> None:
    client = make_client(sim)
    result = verified(sim, client)
    sim.fail_next("checkout", 401)
    client.checkout(result)
    assert [c.status for c in sim.calls if c.endpoint == "checkout"] == [401, 204]
    assert len(sim.checkouts) == 1


def test_tokens_expiring_by_calls_are_renewed(
    simulator_factory: Callable[..., Simulator], make_client: Callable[..., CrayonClient]
) -> None:
    sim = simulator_factory(token_ttl_calls=2)
    client = make_client(sim)
    for _ in range(5):
        client.list_subscriptions(111111)
    assert sim.tokens_issued == 3
    assert sim.count("subscriptions", 401) == 2


def test_the_token_is_renewed_shortly_before_it_expires(
    sim: Simulator, make_client: Callable[..., CrayonClient]
) -> None:
    clock = FakeClock()
    client = make_client(sim, clock=clock)
    client.list_orders(111111)
    clock.now = 3600 - 61
    client.list_orders(111111)
    assert sim.tokens_issued == 1
    clock.now = 3600 - 59
    client.list_orders(111111)
    assert sim.tokens_issued == 2
    assert sim.count("orders", 401) == 0


def test_a_failing_token_endpoint_is_retried(
    sim: Simulator, make_client: Callable[..., CrayonClient], sleeps: Sleeps
) -> None:
    client = make_client(sim)
    sim.fail_next("token", 503)
    assert client.verify(order()).ok
    assert sim.count("token") == 2
    assert len(sleeps) == 1
    assert sim.tokens_issued == 1


def test_a_token_failure_during_checkout_is_never_ambiguous(
    sim: Simulator, make_client: Callable[..., CrayonClient]
) -> None:
    client = make_client(sim)
    result = verified(sim, client)
    sim.expire_tokens()
    sim.fail_next("checkout", 401)
    sim.fail_next("token", 503, count=5)
    with pytest.raises(ApiError) as caught:
        client.checkout(result)
    assert caught.value.kind is FailureKind.RETRYABLE
    assert str(caught.value).startswith("token failed: HTTP 503 Service Unavailable")
    assert sim.checkouts == []


# --------------------------------------------------------------------------- verify, checkout


def test_verify_reports_every_line_error(
    sim: Simulator, make_client: Callable[..., CrayonClient]
) -> None:
    def line(product: str, sku: str, quantity: int, cycle: int, term: str) -> dict[str, Any]:
        return {
            "productId": product,
            "skuId": sku,
            "quantity": quantity,
            "billingCycle": cycle,
            "termDuration": term,
            "type": 3,
        }

    body = {
        "resellerCustomerId": 111111,
        "externalOrderId": "reconciler-x",
        "orderLines": [
            line("CFQ7TTC0LF8R", "0010", 5, 1, "P1M"),
            line("NOSUCHTHING0", "0001", 5, 1, "P1M"),
            line("CFQ7TTC0LHSF", "0001", 25, 1, "P1M"),
            line("CFQ7TTC0LF8R", "0010", 5, 5, "P3Y"),
        ],
    }
    result = make_client(sim).verify(body)
    assert not result.ok
    assert [(e.line, e.code) for e in result.errors] == [
        (1, "ProductNotFound"),
        (2, "QuantityOutOfRange"),
        (3, "TermDurationNotSupported"),
        (3, "BillingCycleNotSupported"),
    ]
    assert result.errors[1].properties["max"] == "20"
    assert str(result.errors[1]).startswith("orderLines[2]: QuantityOutOfRange: Quantity 25")
    assert result.body["orderLines"][0]["catalogItemId"] == "CFQ7TTC0LF8R:0010:CFQ7TTC0Q3X5"


def test_verify_reports_order_level_errors(
    sim: Simulator, make_client: Callable[..., CrayonClient]
) -> None:
    sim.add_order_error(1234, "The customer has no valid agreement.")
    result = make_client(sim).verify(order())
    assert result.errors == (
        LineError(-1, "1234", "The customer has no valid agreement.", {"orderGroupId": ""}),
    )
    assert str(result.errors[0]) == (
        "order: 1234: The customer has no valid agreement. (orderGroupId=)"
    )


def test_checkout_sends_the_verify_answer_unchanged(
    sim: Simulator, make_client: Callable[..., CrayonClient]
) -> None:
    client = make_client(sim)
    sent = order(quantity=12, tags={"costCenter": "IT"})
    result = client.verify(sent)
    assert result.ok
    client.checkout(result)
    verify_log, checkout_log = sim.requests_log
    assert verify_log.body == sent
    assert checkout_log.body == verify_log.response == dict(result.body)
    assert checkout_log.body != sent  # the server filled countryCode, catalogItemId, errors
    assert checkout_log.status == 204
    [bought] = sim.checkouts
    assert (bought.tenant, bought.product, bought.quantity) == (111111, "CFQ7TTC0LF8R:0010", 12)
    assert (bought.billing_cycle, bought.term_duration, bought.type) == (1, "P1M", 3)
    assert bought.external_order_id == sent["externalOrderId"]


def test_an_order_with_errors_is_not_sent_to_checkout(
    sim: Simulator, make_client: Callable[..., CrayonClient]
) -> None:
    client = make_client(sim)
    result = client.verify(order(quantity=1000))
    with pytest.raises(ApiError, match="checkout not sent") as caught:
        client.checkout(result)
    assert caught.value.kind is FailureKind.DEFINITIVE
    assert sim.count("checkout") == 0


def test_legacy_endpoints(sim: Simulator, make_client: Callable[..., CrayonClient]) -> None:
    client = make_client(sim, legacy_endpoints=True)
    client.checkout(verified(sim, client))
    paths = [c.path for c in sim.calls if c.endpoint in ("verify", "checkout")]
    assert paths == ["/api/v1/assets/verify", "/api/v1/assets/checkout"]
    assert len(sim.checkouts) == 1


def test_legacy_bodies_carry_only_asset_order_fields(
    sim: Simulator, make_client: Callable[..., CrayonClient]
) -> None:
    # The legacy endpoints' AssetOrderLine has no attestationAccepted: the simulator,
    # like the published document, refuses a body with it.
    client = make_client(sim, legacy_endpoints=True)
    declared = purchase(attestation_accepted=True, tags={"owner": "it"})
    result = client.verify(build_order(declared, 5, "reconciler-legacy"))
    assert result.ok, result.errors
    client.checkout(result)
    sent = [r.body for r in sim.requests_log if r.endpoint == "verify"]
    assert "attestationAccepted" not in sent[0]["orderLines"][0]
    assert sent[0]["orderLines"][0]["tags"] == {"owner": "it"}
    assert "scheduledPurchaseDate" not in result.body
    assert "customTermEndDate" not in result.body["orderLines"][0]
    # The primary endpoints take it as declared.
    primary = make_client(sim).verify(build_order(declared, 5, "reconciler-primary"))
    assert primary.body["orderLines"][0]["attestationAccepted"] is True


def test_legacy_dropped_fields_names_what_a_legacy_order_goes_without() -> None:
    assert legacy_dropped_fields(purchase(attestation_accepted=False)) == ("attestationAccepted",)
    assert legacy_dropped_fields(purchase(attestation_accepted=None)) == ()
    assert (
        legacy_dropped_fields(purchase(notification_email="ops@example.com", tags={"custom": "x"}))
        == ()
    )


def test_legacy_order_keeps_every_asset_order_field() -> None:
    full = build_order(
        purchase(
            attestation_accepted=True,
            product_variant_id=7,
            notification_email="ops@example.com",
            invoice_profile_id=3,
            provisioning_context={"domain": "acme"},
        ),
        5,
        "reconciler-x",
    )
    kept = legacy_order(full)
    line = dict(full["orderLines"][0])
    del line["attestationAccepted"]
    assert kept == {**full, "orderLines": [line]}
    assert "attestationAccepted" in full["orderLines"][0]  # the original is not changed


def test_lists_read_every_page(sim: Simulator, make_client: Callable[..., CrayonClient]) -> None:
    client = make_client(sim)
    for _ in range(3):
        client.checkout(verified(sim, client))
    orders = client.list_orders(111111)
    assert [o["Quantity"] for o in orders] == [5, 5, 5]
    assert len(client.list_subscriptions(111111)) == 3
    assert client.list_orders(222222) == []


# --------------------------------------------------------------------------- classification


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
@pytest.mark.parametrize("endpoint", ["verify", "checkout"])
def test_client_errors_are_definitive_and_not_retried(
    sim: Simulator, make_client: Callable[..., CrayonClient], endpoint: str, status: int
) -> None:
    client = make_client(sim)
    result = verified(sim, client)
    sim.fail_next(endpoint, status)
    call: Callable[[], object] = (
        (lambda: client.verify(order()))
        if endpoint == "verify"
        else (lambda: client.checkout(result))
    )
    with pytest.raises(ApiError) as caught:
        call()
    error = caught.value
    assert error.kind is FailureKind.DEFINITIVE
    assert error.refused
    assert error.status == status
    assert error.api_message == "Injected failure"
    assert error.error_code is not None
    assert error.error_code.startswith(f"{status} ")
    assert sim.count(endpoint, status) == 1
    assert client.retries == 0
    assert sim.checkouts == []


def test_an_unknown_tenant_is_a_definitive_404(
    sim: Simulator, make_client: Callable[..., CrayonClient]
) -> None:
    with pytest.raises(ApiError) as caught:
        make_client(sim).verify(order(tenant=999999))
    assert caught.value.kind is FailureKind.DEFINITIVE
    assert caught.value.status == 404
    assert caught.value.api_message == "Customer tenant 999999 was not found."


def test_a_malformed_order_is_a_definitive_400_with_object_errors(
    sim: Simulator, make_client: Callable[..., CrayonClient]
) -> None:
    with pytest.raises(ApiError) as caught:
        make_client(sim).verify({"orderLines": []})
    error = caught.value
    assert str(error) == "verify refused: HTTP 400 Bad Request"
    assert error.error_code == "400 BadRequest"
    assert [e.code for e in error.object_errors] == ["Required", "Required"]
    assert error.describe().splitlines() == [
        "verify refused: HTTP 400 Bad Request",
        f"  POST {sim.url}/api/v1/purchaserequest/verify -> 400",
        "  400 BadRequest: The order is not valid.",
        "  - Required: resellerCustomerId is required",
        "  - Required: orderLines must hold at least one line",
    ]


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_on_verify_are_retried(
    sim: Simulator, make_client: Callable[..., CrayonClient], sleeps: Sleeps, status: int
) -> None:
    client = make_client(sim)
    sim.fail_next("verify", status, count=2)
    assert client.verify(order()).ok
    assert sim.count("verify") == 3
    assert len(sleeps) == 2
    assert client.retries == 2


def test_retries_are_bounded_in_count(
    sim: Simulator, make_client: Callable[..., CrayonClient], sleeps: Sleeps
) -> None:
    client = make_client(sim, retry=RetryPolicy(max_attempts=4))
    sim.fail_next("verify", 503, count=10)
    with pytest.raises(ApiError) as caught:
        client.verify(order())
    assert caught.value.kind is FailureKind.RETRYABLE
    assert str(caught.value) == (
        "verify failed: HTTP 503 Service Unavailable (gave up after 4 attempts)"
    )
    assert sim.count("verify") == 4
    assert len(sleeps) == 3


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_on_checkout_are_ambiguous_and_not_retried(
    sim: Simulator, make_client: Callable[..., CrayonClient], sleeps: Sleeps, status: int
) -> None:
    client = make_client(sim)
    result = verified(sim, client)
    sim.fail_next("checkout", status)
    with pytest.raises(ApiError) as caught:
        client.checkout(result)
    assert caught.value.kind is FailureKind.AMBIGUOUS
    assert caught.value.status == status
    assert "outcome unknown" in str(caught.value)
    assert sim.count("checkout") == 1
    assert sleeps == []


def test_a_500_after_the_checkout_was_taken_is_ambiguous(
    sim: Simulator, make_client: Callable[..., CrayonClient]
) -> None:
    client = make_client(sim)
    result = verified(sim, client)
    sim.drop_after_checkout(mode="500")
    with pytest.raises(ApiError) as caught:
        client.checkout(result)
    assert caught.value.kind is FailureKind.AMBIGUOUS
    assert caught.value.api_message == "Ops. Something broke"
    assert len(sim.checkouts) == 1
    assert sim.count("checkout") == 1


def test_a_connection_dropped_after_the_checkout_was_sent_is_ambiguous_and_not_retried(
    sim: Simulator, make_client: Callable[..., CrayonClient], sleeps: Sleeps
) -> None:
    client = make_client(sim)
    result = verified(sim, client)
    sim.drop_after_checkout()
    with pytest.raises(ApiError) as caught:
        client.checkout(result)
    error = caught.value
    assert error.kind is FailureKind.AMBIGUOUS
    assert error.status is None
    assert str(error).startswith(
        "checkout outcome unknown: the connection broke after the request was sent"
    )
    assert len(sim.checkouts) == 1
    assert sim.count("checkout") == 1
    assert client.retries == 0
    assert sleeps == []


def test_a_checkout_read_timeout_is_ambiguous_and_not_retried(
    sim: Simulator, make_client: Callable[..., CrayonClient], sleeps: Sleeps
) -> None:
    client = make_client(sim, read_timeout=0.2)
    result = verified(sim, client)
    sim.hold_checkouts(2.0)
    with pytest.raises(ApiError) as caught:
        client.checkout(result)
    assert caught.value.kind is FailureKind.AMBIGUOUS
    assert "no answer within 0.2 s" in str(caught.value)
    assert len(sim.checkouts) == 1
    assert sim.count("checkout") <= 1  # the held request may still be being answered
    assert len([r for r in sim.requests_log if r.endpoint == "checkout"]) == 1
    assert sleeps == []


def test_a_verify_read_timeout_is_retried(
    sim: Simulator, make_client: Callable[..., CrayonClient], sleeps: Sleeps
) -> None:
    client = make_client(sim, read_timeout=0.2)
    client.list_orders(111111)
    sim.delay_next("verify", 0.6)
    assert client.verify(order()).ok
    assert len(sleeps) == 1
    assert client.retries == 1


def test_connection_refused_is_retried_then_retryable(
    make_client: Callable[..., CrayonClient], sleeps: Sleeps
) -> None:
    client = make_client(url=f"http://127.0.0.1:{unused_port()}")
    with pytest.raises(ApiError) as caught:
        client.verify(order())
    error = caught.value
    assert error.kind is FailureKind.RETRYABLE
    assert str(error).startswith("token failed: could not connect (")
    assert "(gave up after 3 attempts)" in str(error)
    assert len(sleeps) == 2


def test_a_checkout_that_cannot_connect_is_retried_and_never_ambiguous(
    simulator_factory: Callable[..., Simulator],
    make_client: Callable[..., CrayonClient],
    sleeps: Sleeps,
) -> None:
    sim = simulator_factory()
    client = make_client(sim)
    result = verified(sim, client)
    sim.stop()
    time.sleep(0.05)
    with pytest.raises(ApiError) as caught:
        client.checkout(result)
    error = caught.value
    assert error.kind is FailureKind.RETRYABLE
    assert str(error).startswith("checkout failed: could not connect (")
    assert "Connection refused" in str(error)
    assert len(sleeps) == 2
    assert sim.checkouts == []


def test_429_on_checkout_is_retried_and_buys_once(
    sim: Simulator, make_client: Callable[..., CrayonClient], sleeps: Sleeps
) -> None:
    client = make_client(sim)
    result = verified(sim, client)
    sim.fail_next("checkout", 429, retry_after="3")
    client.checkout(result)
    assert sleeps == [3.0]
    assert len(sim.checkouts) == 1
    assert [c.status for c in sim.calls if c.endpoint == "checkout"] == [429, 204]


def test_429_on_checkout_until_retries_run_out_is_retryable(
    sim: Simulator, make_client: Callable[..., CrayonClient], sleeps: Sleeps
) -> None:
    client = make_client(sim)
    result = verified(sim, client)
    sim.fail_next("checkout", 429, count=3)
    with pytest.raises(ApiError) as caught:
        client.checkout(result)
    assert caught.value.kind is FailureKind.RETRYABLE
    assert caught.value.status == 429
    assert sim.checkouts == []
    assert len(sleeps) == 2


def test_retry_after_seconds_are_honoured(
    sim: Simulator, make_client: Callable[..., CrayonClient], sleeps: Sleeps
) -> None:
    client = make_client(sim)
    sim.fail_next("verify", 429, retry_after="7")
    client.verify(order())
    assert sleeps == [7.0]


def test_retry_after_http_date_is_honoured(
    sim: Simulator, make_client: Callable[..., CrayonClient], sleeps: Sleeps
) -> None:
    client = make_client(sim)
    when = datetime.now(UTC) + timedelta(seconds=20)
    sim.fail_next("verify", 503, retry_after=email.utils.format_datetime(when, usegmt=True))
    client.verify(order())
    [delay] = sleeps
    assert 17.0 <= delay <= 20.0


def test_retry_after_is_capped_by_max_delay(
    sim: Simulator, make_client: Callable[..., CrayonClient], sleeps: Sleeps
) -> None:
    client = make_client(sim, retry=RetryPolicy(max_delay=10, max_total=100))
    sim.fail_next("verify", 429, retry_after="500")
    client.verify(order())
    assert sleeps == [10.0]


def test_a_retry_that_would_overrun_the_total_budget_is_not_made(
    sim: Simulator, make_client: Callable[..., CrayonClient], sleeps: Sleeps
) -> None:
    client = make_client(sim, retry=RetryPolicy(max_delay=60, max_total=30))
    sim.fail_next("verify", 429, retry_after="45")
    with pytest.raises(ApiError) as caught:
        client.verify(order())
    assert "the retry budget is 30 s" in str(caught.value)
    assert sleeps == []


def test_backoff_is_exponential_with_full_jitter(
    sim: Simulator, make_client: Callable[..., CrayonClient], sleeps: Sleeps
) -> None:
    policy = RetryPolicy(max_attempts=6, base_delay=0.5, max_delay=3.0, max_total=1000)
    client = make_client(sim, retry=policy)
    rounds = 8
    for _ in range(rounds):
        sim.fail_next("verify", 503, count=5)
        client.verify(order())
    assert len(sleeps) == 5 * rounds
    ceilings = [0.5, 1.0, 2.0, 3.0, 3.0]
    for index, delay in enumerate(sleeps):
        assert 0.0 <= delay <= ceilings[index % 5]
    # Full jitter: not every delay sits on its ceiling.
    assert any(d < c * 0.99 for d, c in zip(sleeps, ceilings * rounds, strict=True))


def test_retries_are_bounded_in_total_time(
    sim: Simulator, make_client: Callable[..., CrayonClient]
) -> None:
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=1000, base_delay=1.0, max_delay=4.0, max_total=10.0)
    client = make_client(sim, retry=policy, clock=clock, sleep=clock.sleep)
    sim.fail_next("verify", 503, count=1000)
    with pytest.raises(ApiError, match="the retry budget is 10 s") as caught:
        client.verify(order())
    assert caught.value.kind is FailureKind.RETRYABLE
    assert sum(clock.sleeps) <= 10.0
    assert sim.count("verify") == len(clock.sleeps) + 1


# --------------------------------------------------------------------------- secrets


def _rendered(error: BaseException) -> str:
    parts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    if isinstance(error, ApiError):
        parts.append(error.describe())
        parts.extend(str(value) for value in vars(error).values())
    return "\n".join(parts)


def test_secrets_never_appear_in_errors_or_reprs(
    sim: Simulator, make_client: Callable[..., CrayonClient]
) -> None:
    basic = base64.b64encode(f"sim-client:{SECRET}".encode()).decode()
    rendered: list[str] = []

    good = make_client(sim)
    rendered += [repr(good), repr(ApiSettings.from_env(sim.env()))]
    result = verified(sim, good)
    sim.fail_next(
        "checkout",
        400,
        body={
            "ErrorCode": f"bad {SECRET}",
            "Message": f"password {PASSWORD} refused",
            "ObjectErrors": [{"ErrorCode": PASSWORD, "Message": SECRET}],
        },
    )
    with pytest.raises(ApiError) as caught:
        good.checkout(result)
    assert caught.value.api_message == "password *** refused"
    rendered.append(_rendered(caught.value))

    sim.drop_after_checkout()
    with pytest.raises(ApiError) as caught:
        good.checkout(result)
    rendered.append(_rendered(caught.value))

    bad = make_client(sim)
    sim.password = "changed"
    with pytest.raises(ApiError) as caught:
        bad.verify(order())
    rendered.append(_rendered(caught.value))

    refused = make_client(url=f"http://127.0.0.1:{unused_port()}")
    with pytest.raises(ApiError) as caught:
        refused.list_orders(1)
    rendered.append(_rendered(caught.value))

    with pytest.raises(ConfigurationError) as missing:
        ApiSettings.from_env({"CRAYON_CLIENT_SECRET": SECRET, "CRAYON_PASSWORD": PASSWORD})
    rendered.append(_rendered(missing.value))

    text = "\n".join(rendered)
    for secret in (SECRET, PASSWORD, basic):
        assert secret not in text


# --------------------------------------------------------------------------- concurrency


def test_eight_threads_buy_every_order_exactly_once(
    simulator_factory: Callable[..., Simulator], make_client: Callable[..., CrayonClient]
) -> None:
    # Tokens die after 10 calls, so other threads often use up a token between one
    # thread's renewal and its repeat: such a 401 must not fail the call.
    sim = simulator_factory(token_ttl_calls=10)
    client = make_client(sim)
    orders = [order(quantity=1 + i % 5) for i in range(40)]
    failures: list[BaseException] = []
    lock = threading.Lock()
    queue = list(orders)

    def work() -> None:
        while True:
            with lock:
                if not queue:
                    return
                mine = queue.pop()
            try:
                client.checkout(client.verify(mine))
            except BaseException as error:
                failures.append(error)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    bought = sorted(c.external_order_id or "" for c in sim.checkouts)
    assert bought == sorted(o["externalOrderId"] for o in orders)
    assert sim.count("checkout", 204) == 40
    assert sim.tokens_issued >= 80 // 10


def test_a_fresh_token_refused_after_others_sent_with_it_is_renewed_again() -> None:
    # Another thread's request may have used the fresh token up (or got its answer but
    # not yet said so) before this one was sent: that 401 says nothing of the credentials.
    from reconciler.api.calls import TokenHolder

    holder = TokenHolder(time.monotonic)
    token = holder.current(lambda: ("fresh", 3600.0))
    holder.sending(token)
    assert not holder.expired(token)  # only this request used it: the credentials are bad
    holder.sending(token)
    assert holder.expired(token)
    holder.discard(token)
    renewed = holder.current(lambda: ("fresher", 3600.0))
    holder.sending(renewed)
    assert not holder.expired(renewed)


# --------------------------------------------------------------------------- responses


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(
            responses.POST,
            TOKEN_URL,
            json={"AccessToken": "tok-123", "ExpiresIn": 3600, "TokenType": "Bearer"},
        )
        yield mock


@pytest.fixture
def offline(make_client: Callable[..., CrayonClient]) -> CrayonClient:
    return make_client()


def test_every_request_carries_timeouts_and_headers(
    mocked: responses.RequestsMock, offline: CrayonClient
) -> None:
    mocked.add(responses.POST, VERIFY_URL, json={"orderLines": [], "errors": []})
    offline.verify({"resellerCustomerId": 1, "orderLines": []})
    token_call, verify_call = mocked.calls
    assert (
        token_call.request.headers["Authorization"]
        == "Basic " + base64.b64encode(f"client-1:{SECRET}".encode()).decode()
    )
    form = parse_qs(str(token_call.request.body))
    assert form == {
        "grant_type": ["password"],
        "username": ["ops@example.com"],
        "password": [PASSWORD],
        "scope": ["CustomerApi"],
    }
    headers = verify_call.request.headers
    assert headers["Authorization"] == "Bearer tok-123"
    assert headers["User-Agent"] == f"crayon-reconciler/{__version__}"
    assert headers["Accept"] == "application/json"
    assert headers["Content-Type"] == "application/json"
    for call in mocked.calls:
        kwargs = call.request.req_kwargs  # type: ignore[attr-defined]  # set by responses
        assert kwargs["timeout"] == (10.0, 5.0)
        assert kwargs["verify"] is not False


def test_a_ca_bundle_named_in_the_environment_is_used_for_every_request(
    monkeypatch: pytest.MonkeyPatch,
    mocked: responses.RequestsMock,
    make_client: Callable[..., CrayonClient],
    tmp_path: Path,
) -> None:
    # A corporate TLS proxy's CA, as requests reads it (read once per client).
    bundle = tmp_path / "corporate-ca.pem"
    bundle.write_text("not read by the mock\n", encoding="utf-8")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    mocked.add(responses.POST, VERIFY_URL, json={"orderLines": [], "errors": []})
    make_client().verify({"resellerCustomerId": 1, "orderLines": []})
    for call in mocked.calls:
        assert call.request.req_kwargs["verify"] == str(bundle)  # type: ignore[attr-defined]


def test_a_proxy_named_in_the_environment_is_used_and_no_proxy_bypasses_it(
    monkeypatch: pytest.MonkeyPatch,
    make_client: Callable[..., CrayonClient],
    simulator: Simulator,
) -> None:
    # Nothing listens on port 9: a client that goes through the proxy cannot connect.
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ApiError, match=r"(?i)proxy|connect"):
        make_client(simulator, retry=RetryPolicy(max_attempts=1)).verify({})
    assert simulator.count("token") == 0
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1")
    with pytest.raises(ApiError, match="HTTP 400"):  # the simulator's answer to an empty order
        make_client(simulator).verify({})
    assert simulator.count("verify") == 1


@pytest.mark.parametrize(
    ("url", "status", "refused"),
    [
        (VERIFY_URL, 403, True),
        (VERIFY_URL, 422, True),
        (CHECKOUT_URL, 409, True),
        (CHECKOUT_URL, 404, True),
        (VERIFY_URL, 401, False),
        (VERIFY_URL, 418, False),
        (VERIFY_URL, 503, False),
        (CHECKOUT_URL, 500, False),
        (ORDERS_URL, 404, False),
        (TOKEN_URL, 403, False),
        (TOKEN_URL, 400, False),
    ],
)
def test_refused_says_whether_the_api_refused_the_order(
    make_client: Callable[..., CrayonClient], url: str, status: int, refused: bool
) -> None:
    client = make_client()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        if url != TOKEN_URL:
            mock.add(responses.POST, TOKEN_URL, json={"AccessToken": "tok-123"})
        mock.add(responses.GET if url == ORDERS_URL else responses.POST, url, status=status)
        calls: dict[str, Callable[[], object]] = {
            VERIFY_URL: lambda: client.verify({}),
            CHECKOUT_URL: lambda: client.checkout(VerifiedOrder(body={"orderLines": []})),
            ORDERS_URL: lambda: client.list_orders(1),
            TOKEN_URL: lambda: client.verify({}),
        }
        with pytest.raises(ApiError) as caught:
            calls[url]()
    assert caught.value.status == status
    assert caught.value.refused is refused


def test_a_checkout_refused_locally_is_no_refusal_by_the_api(offline: CrayonClient) -> None:
    with pytest.raises(ApiError) as caught:
        offline.checkout(VerifiedOrder(body={}, errors=(LineError(-1, "X", "no"),)))
    assert caught.value.kind is FailureKind.DEFINITIVE
    assert not caught.value.refused


def test_an_injected_session_is_used_and_left_open(sim: Simulator) -> None:
    class CountingSession(requests.Session):
        def __init__(self) -> None:
            super().__init__()
            self.sent: list[str] = []
            self.closed = False

        def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
            self.sent.append(f"{method!s} {url!s}")
            return super().request(method, url, *args, **kwargs)

        def close(self) -> None:
            self.closed = True
            super().close()

    session = CountingSession()
    with CrayonClient(ApiSettings.from_env(sim.env()), session=session) as client:
        client.list_orders(111111)
    assert session.sent == [
        f"POST {sim.url}/api/v1/connect/token",
        f"GET {sim.url}/api/v1/purchaserequest/orders/",
    ]
    assert not session.closed
    session.close()


def test_token_answers_are_read_case_insensitively(
    make_client: Callable[..., CrayonClient],
) -> None:
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, TOKEN_URL, json={"accesstoken": "lower", "expiresin": 60})
        mock.add(responses.GET, ORDERS_URL, json={"items": [], "totalhits": 0})
        make_client().list_orders(1)
        assert mock.calls[1].request.headers["Authorization"] == "Bearer lower"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"AccessToken": None, "Error": "invalid_grant"}, "with an error"),
        ({"TokenType": "Bearer"}, "with no AccessToken"),
    ],
)
def test_a_token_answer_without_a_token_is_definitive(
    make_client: Callable[..., CrayonClient], body: dict[str, Any], expected: str
) -> None:
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, TOKEN_URL, json=body)
        with pytest.raises(ApiError, match=expected) as caught:
            make_client().list_orders(1)
    assert caught.value.kind is FailureKind.DEFINITIVE
    assert "CRAYON_CLIENT_SECRET" in str(caught.value)


@pytest.mark.parametrize(
    ("body", "content_type", "code", "message", "objects"),
    [
        (b"", None, None, None, []),
        (
            b"<html><body>Bad   Gateway</body></html>",
            "text/html",
            None,
            "<html><body>Bad Gateway</body></html>",
            [],
        ),
        (b'"plain string"', "application/json", None, "plain string", []),
        (b"[1, 2]", "application/json", None, None, []),
        (
            b'{"errorcode": "E1", "message": "m",'
            b' "objecterrors": [{"errorcode": "O", "message": "om"}, 3]}',
            "application/json",
            "E1",
            "m",
            [("O", "om")],
        ),
        (
            b'{"error": "invalid_request", "error_description": "d"}',
            "application/json",
            "invalid_request",
            "d",
            [],
        ),
    ],
)
def test_error_bodies_of_every_shape_are_read(
    mocked: responses.RequestsMock,
    offline: CrayonClient,
    body: bytes,
    content_type: str | None,
    code: str | None,
    message: str | None,
    objects: list[tuple[str, str]],
) -> None:
    mocked.add(responses.POST, VERIFY_URL, status=422, body=body, content_type=content_type)
    with pytest.raises(ApiError) as caught:
        offline.verify({})
    error = caught.value
    assert (error.error_code, error.api_message) == (code, message)
    assert [(e.code, e.message) for e in error.object_errors] == objects
    assert error.kind is FailureKind.DEFINITIVE


def test_pascal_case_verify_answers_are_read(
    mocked: responses.RequestsMock, offline: CrayonClient
) -> None:
    mocked.add(
        responses.POST,
        VERIFY_URL,
        json={
            "Errors": [{"Code": 7, "Description": "order problem"}],
            "OrderLines": [
                {"Errors": None},
                {"Errors": [{"ReasonCode": "X", "Description": "d", "Properties": {"max": 20}}]},
            ],
        },
    )
    result = offline.verify({"orderLines": [{}, {}]})
    assert result.errors == (
        LineError(-1, "7", "order problem", {}),
        LineError(1, "X", "d", {"max": "20"}),
    )


def test_a_verify_answer_that_changes_the_order_is_an_error(
    mocked: responses.RequestsMock, offline: CrayonClient
) -> None:
    sent = order(quantity=5)
    answer = json.loads(json.dumps(sent))
    answer["orderLines"][0]["quantity"] = 50
    answer["orderLines"][0]["productId"] = "cfq7ttc0lf8r"  # case alone is no change
    mocked.add(responses.POST, VERIFY_URL, json=answer)
    result = offline.verify(sent)
    assert [(e.line, e.code, e.properties["field"]) for e in result.errors] == [
        (0, "VerifyResponseMismatch", "quantity")
    ]


@pytest.mark.parametrize(
    ("body", "content_type"), [(b"", None), (b"<html/>", "text/html"), (b"[]", "application/json")]
)
def test_a_verify_answer_that_is_not_an_order_is_definitive(
    mocked: responses.RequestsMock, offline: CrayonClient, body: bytes, content_type: str | None
) -> None:
    mocked.add(responses.POST, VERIFY_URL, status=200, body=body, content_type=content_type)
    with pytest.raises(ApiError) as caught:
        offline.verify({})
    assert caught.value.kind is FailureKind.DEFINITIVE


@pytest.mark.parametrize(
    ("status", "verify_kind", "checkout_kind"),
    [
        (307, FailureKind.DEFINITIVE, FailureKind.AMBIGUOUS),
        (302, FailureKind.DEFINITIVE, FailureKind.AMBIGUOUS),
        (408, FailureKind.RETRYABLE, FailureKind.AMBIGUOUS),
        (418, FailureKind.DEFINITIVE, FailureKind.AMBIGUOUS),
        (501, FailureKind.RETRYABLE, FailureKind.AMBIGUOUS),
    ],
)
def test_other_statuses(
    mocked: responses.RequestsMock,
    offline: CrayonClient,
    status: int,
    verify_kind: FailureKind,
    checkout_kind: FailureKind,
) -> None:
    headers = {"Location": "https://elsewhere.test/"}
    mocked.add(responses.POST, VERIFY_URL, status=status, headers=headers)
    mocked.add(responses.POST, CHECKOUT_URL, status=status, headers=headers)
    with pytest.raises(ApiError) as verify_error:
        offline.verify({})
    with pytest.raises(ApiError) as checkout_error:
        offline.checkout(VerifiedOrder(body={"orderLines": []}))
    assert verify_error.value.kind is verify_kind
    assert checkout_error.value.kind is checkout_kind
    assert len([c for c in mocked.calls if c.request.url == CHECKOUT_URL]) == 1
    assert all("elsewhere" not in str(c.request.url) for c in mocked.calls)


def _dropped() -> requests.ConnectionError:
    return requests.ConnectionError(
        ProtocolError("Connection aborted.", ConnectionResetError(104, "Connection reset by peer"))
    )


@pytest.mark.parametrize(
    ("failure", "kind", "sent"),
    [
        (requests.ConnectTimeout("connect timed out"), FailureKind.RETRYABLE, 3),
        (requests.ReadTimeout("read timed out"), FailureKind.AMBIGUOUS, 1),
        (_dropped(), FailureKind.AMBIGUOUS, 1),
        (requests.exceptions.ChunkedEncodingError("broken"), FailureKind.AMBIGUOUS, 1),
        (
            requests.exceptions.SSLError("EOF occurred in violation of protocol"),
            FailureKind.AMBIGUOUS,
            1,
        ),
        (
            requests.exceptions.SSLError(
                "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"
            ),
            FailureKind.DEFINITIVE,
            1,
        ),
        (requests.exceptions.ProxyError("proxy went away"), FailureKind.AMBIGUOUS, 1),
    ],
)
def test_transport_failures_on_checkout(
    mocked: responses.RequestsMock,
    offline: CrayonClient,
    failure: Exception,
    kind: FailureKind,
    sent: int,
) -> None:
    mocked.add(responses.POST, CHECKOUT_URL, body=failure)
    with pytest.raises(ApiError) as caught:
        offline.checkout(VerifiedOrder(body={"orderLines": []}))
    assert caught.value.kind is kind
    assert len([c for c in mocked.calls if c.request.url == CHECKOUT_URL]) == sent


@pytest.mark.parametrize(
    "failure",
    [
        requests.ConnectTimeout("connect timed out"),
        requests.ReadTimeout("read timed out"),
        _dropped(),
        requests.exceptions.SSLError("EOF occurred in violation of protocol"),
    ],
)
def test_transport_failures_on_verify_are_retried(
    mocked: responses.RequestsMock, offline: CrayonClient, sleeps: Sleeps, failure: Exception
) -> None:
    mocked.add(responses.POST, VERIFY_URL, body=failure)
    mocked.add(responses.POST, VERIFY_URL, json={"orderLines": []})
    assert offline.verify({}).ok
    assert len(sleeps) == 1


def test_lists_follow_items_and_total_hits_across_pages(
    mocked: responses.RequestsMock, offline: CrayonClient
) -> None:
    def page(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        query = parse_qs(str(request.url).split("?", 1)[1])
        number, size = int(query["page"][0]), int(query["pageSize"][0])
        assert query["customerTenantId"] == ["42"]
        items = [{"Id": i} for i in range(250)][(number - 1) * size : number * size]
        return 200, {}, json.dumps({"Items": items, "TotalHits": 250})

    mocked.add_callback(responses.GET, SUBSCRIPTIONS_URL, callback=page)
    assert [s["Id"] for s in offline.list_subscriptions(42)] == list(range(250))
    assert len([c for c in mocked.calls if "subscriptions" in str(c.request.url)]) == 3


def test_lists_accept_a_bare_array(mocked: responses.RequestsMock, offline: CrayonClient) -> None:
    # Without TotalHits a short page may be a capped one: read on to an empty page.
    mocked.add(responses.GET, ORDERS_URL, json=[{"A": 1}])
    mocked.add(responses.GET, ORDERS_URL, json=[])
    assert offline.list_orders(1) == [{"A": 1}]


def test_a_list_answer_without_items_is_definitive(
    mocked: responses.RequestsMock, offline: CrayonClient
) -> None:
    mocked.add(responses.GET, ORDERS_URL, json={"Things": []})
    with pytest.raises(ApiError, match="without a list of Items"):
        offline.list_orders(1)


def test_the_client_is_a_context_manager(sim: Simulator) -> None:
    with CrayonClient(ApiSettings.from_env(sim.env())) as client:
        client.list_orders(111111)
    assert sim.tokens_issued == 1
