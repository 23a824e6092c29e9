"""The Crayon API simulator, driven over real HTTP with plain ``requests``."""

from __future__ import annotations

import _thread
import ast
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

import reconciler.simulator
from reconciler.simulator import (
    CatalogError,
    CatalogItem,
    Simulator,
    default_catalog,
    load_catalog,
    serve_forever,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
VERIFY = "/api/v1/purchaserequest/verify"
CHECKOUT = "/api/v1/purchaserequest/checkout"
ORDERS = "/api/v1/purchaserequest/orders/"
SUBSCRIPTIONS = "/api/v1/subscriptions/"
TOKEN = "/api/v1/connect/token"


@pytest.fixture
def simulator(simulator_factory: Callable[..., Simulator]) -> Simulator:
    """The lists these tests read are envelopes, whatever RECONCILER_SIM_LIST_SHAPE says;
    the bare shape has tests of its own."""
    return simulator_factory(list_shape="envelope")


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def get_token(sim: Simulator, http: requests.Session, **form: str) -> requests.Response:
    data = {
        "grant_type": "password",
        "username": sim.username,
        "password": sim.password,
        "scope": "CustomerApi",
    } | form
    return http.post(sim.url + TOKEN, data=data, auth=(sim.client_id, sim.client_secret), timeout=5)


class Api:
    """A tiny authenticated client for poking at the simulator."""

    def __init__(self, sim: Simulator, http: requests.Session) -> None:
        self.sim = sim
        self.http = http
        self.token = get_token(sim, http).json()["AccessToken"]

    def post(self, path: str, body: Any, **kwargs: Any) -> requests.Response:
        return self.http.post(
            self.sim.url + path,
            data=body if isinstance(body, bytes) else json.dumps(body),
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=5,
            **kwargs,
        )

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.http.get(
            self.sim.url + path,
            params=params,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=5,
        )

    def buy(self, body: dict[str, Any]) -> dict[str, Any]:
        verified = self.post(VERIFY, body)
        assert verified.status_code == 200, verified.text
        checkout = self.post(CHECKOUT, verified.json())
        assert checkout.status_code == 204, checkout.text
        answer: dict[str, Any] = verified.json()
        return answer


@pytest.fixture
def api(simulator: Simulator, http: requests.Session) -> Api:
    return Api(simulator, http)


def line(**overrides: Any) -> dict[str, Any]:
    return {
        "productId": "CFQ7TTC0LF8R",
        "skuId": "0010",
        "quantity": 5,
        "billingCycle": 1,
        "termDuration": "P1M",
        "type": 3,
    } | overrides


def an_order(tenant: int = 111111, ref: str = "reconciler-1", **overrides: Any) -> dict[str, Any]:
    return {"resellerCustomerId": tenant, "externalOrderId": ref, "orderLines": [line(**overrides)]}


# --------------------------------------------------------------------------- lifecycle


def test_start_returns_a_loopback_url_and_env_points_at_it() -> None:
    with Simulator() as sim:
        assert sim.url == f"http://127.0.0.1:{sim.port}"
        assert sim.port > 0
        assert sim.start() == sim.url  # already running: same URL
        assert sim.env() == {
            "CRAYON_API_URL": sim.url,
            "CRAYON_CLIENT_ID": "sim-client",
            "CRAYON_CLIENT_SECRET": "sim-secret",
            "CRAYON_USERNAME": "sim-user",
            "CRAYON_PASSWORD": "sim-password",
        }
    with pytest.raises(requests.ConnectionError):
        requests.get(sim.url + ORDERS, timeout=2)
    sim.stop()  # twice is fine


def test_stop_closes_idle_keep_alive_connections(simulator: Simulator, api: Api) -> None:
    assert api.get(ORDERS, customerTenantId=111111).status_code == 200
    started = time.monotonic()
    simulator.stop()
    assert time.monotonic() - started < 2
    assert not simulator.running


def test_serve_forever_stops_cleanly_on_ctrl_c() -> None:
    sim = Simulator()
    timer = threading.Timer(0.3, _thread.interrupt_main)
    timer.start()
    try:
        serve_forever(sim)
    finally:
        timer.cancel()
    assert not sim.running


def test_python_dash_m_serves_with_the_list_options() -> None:
    arguments = ["--port", "0", "--list-shape", "bare", "--max-page-size", "2"]
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler.simulator", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("Crayon API simulator listening on http://127.0.0.1:"), first
        url = first.split()[5]
        env = dict(line.split()[1].split("=", 1) for line in islice(process.stdout, 5))
        token = requests.post(
            url + TOKEN,
            data={
                "grant_type": "password",
                "username": env["CRAYON_USERNAME"],
                "password": env["CRAYON_PASSWORD"],
                "scope": "CustomerApi",
            },
            auth=(env["CRAYON_CLIENT_ID"], env["CRAYON_CLIENT_SECRET"]),
            timeout=5,
        ).json()["AccessToken"]
        products = requests.get(
            url + "/api/v1/AgreementProducts",
            params={"CustomerTenantId": 111111},
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        ).json()
        assert isinstance(products, list)
        assert len(products) == 2
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=10)
    assert process.returncode == 0


def test_python_dash_m_checks_its_options() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler.simulator", "--list-shape", "paged"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "invalid choice: 'paged'" in done.stderr


def test_nothing_is_written_to_stderr(
    simulator: Simulator, api: Api, capfd: pytest.CaptureFixture[str]
) -> None:
    api.buy(an_order())
    api.get("/nowhere")
    assert capfd.readouterr() == ("", "")


def test_verbose_logs_requests(
    simulator_factory: Callable[..., Simulator],
    http: requests.Session,
    capfd: pytest.CaptureFixture[str],
) -> None:
    sim = simulator_factory(verbose=True)
    get_token(sim, http)
    assert "POST /api/v1/connect/token" in capfd.readouterr().err


# --------------------------------------------------------------------------- token


def test_token_answer_is_pascal_case(
    simulator_factory: Callable[..., Simulator], http: requests.Session
) -> None:
    sim = simulator_factory(token_ttl_seconds=900)
    answer = get_token(sim, http)
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {
        "AccessToken",
        "IdentityToken",
        "Error",
        "ExpiresIn",
        "TokenType",
        "RefreshToken",
    }
    assert body["AccessToken"]
    assert (body["ExpiresIn"], body["TokenType"], body["Error"]) == (900, "Bearer", None)
    assert sim.tokens_issued == 1


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"auth": ("sim-client", "wrong")}, "invalid_client"),
        ({"auth": None}, "invalid_client"),
        ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
        ({"scope": "OtherApi"}, "invalid_scope"),
        ({"password": "wrong"}, "invalid_grant"),
        ({"username": "someone"}, "invalid_grant"),
    ],
)
def test_bad_token_requests_get_400(
    simulator: Simulator, http: requests.Session, change: dict[str, Any], error: str
) -> None:
    data = {
        "grant_type": "password",
        "username": simulator.username,
        "password": simulator.password,
        "scope": "CustomerApi",
    }
    auth = change.pop("auth", (simulator.client_id, simulator.client_secret))
    answer = http.post(simulator.url + TOKEN, data=data | change, auth=auth, timeout=5)
    assert answer.status_code == 400
    assert answer.json()["error"] == error
    assert simulator.tokens_issued == 0


@pytest.mark.parametrize("authorization", [None, "Bearer nope", "Basic c2ltOnNpbQ=="])
def test_api_calls_without_a_valid_token_get_401(
    simulator: Simulator, http: requests.Session, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    answer = http.post(simulator.url + VERIFY, json=an_order(), headers=headers, timeout=5)
    assert answer.status_code == 401
    assert answer.content == b""
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_tokens_expire_after_their_lifetime(
    simulator_factory: Callable[..., Simulator], http: requests.Session
) -> None:
    sim = simulator_factory(token_ttl_seconds=0.2)
    api = Api(sim, http)
    assert api.get(ORDERS, customerTenantId=111111).status_code == 200
    time.sleep(0.3)
    assert api.get(ORDERS, customerTenantId=111111).status_code == 401


def test_tokens_expire_after_a_number_of_calls(
    simulator_factory: Callable[..., Simulator], http: requests.Session
) -> None:
    sim = simulator_factory(token_ttl_calls=2)
    api = Api(sim, http)
    statuses = [api.get(ORDERS, customerTenantId=111111).status_code for _ in range(3)]
    assert statuses == [200, 200, 401]


def test_expire_tokens(simulator: Simulator, api: Api) -> None:
    simulator.expire_tokens()
    assert api.get(ORDERS, customerTenantId=111111).status_code == 401


# --------------------------------------------------------------------------- verify


def test_verify_echoes_the_order_with_server_fields(simulator: Simulator, api: Api) -> None:
    sent = an_order(tags={"costCenter": "IT"}, productVariantId=2622144)
    sent["notificationEmail"] = "it@acme.example"
    answer = api.post(VERIFY, sent)
    assert answer.status_code == 200
    assert answer.json() == {
        "resellerCustomerId": 111111,
        "externalOrderId": "reconciler-1",
        "notificationEmail": "it@acme.example",
        "countryCode": "NO",
        "scheduledPurchaseDate": None,
        "errors": [],
        "orderLines": [
            {
                **line(tags={"costCenter": "IT"}, productVariantId=2622144),
                "catalogItemId": "CFQ7TTC0LF8R:0010:CFQ7TTC0Q3X5",
                "isTrial": False,
                "customTermEndDate": None,
                "errors": [],
            }
        ],
    }


def test_verify_accepts_pascal_case_and_answers_in_camel_case(api: Api) -> None:
    sent = {
        "ResellerCustomerId": 111111,
        "OrderLines": [
            {
                "ProductId": "CFQ7TTC0LF8R",
                "SkuId": "0010",
                "Quantity": 3,
                "BillingCycle": 1,
                "TermDuration": "P1M",
            }
        ],
    }
    answer = api.post(VERIFY, sent).json()
    assert answer["resellerCustomerId"] == 111111
    assert answer["orderLines"][0]["quantity"] == 3
    assert answer["orderLines"][0]["type"] == 3
    assert answer["orderLines"][0]["errors"] == []
    assert api.post(CHECKOUT, answer).status_code == 204


@pytest.mark.parametrize(
    ("overrides", "code", "properties"),
    [
        (
            {"productId": "NOSUCHPRODUCT"},
            "ProductNotFound",
            {"productId": "NOSUCHPRODUCT", "skuId": "0010"},
        ),
        ({"skuId": "9999"}, "ProductNotFound", {"productId": "CFQ7TTC0LF8R", "skuId": "9999"}),
        ({"quantity": 301}, "QuantityOutOfRange", {"min": "1", "max": "300"}),
        ({"quantity": 0}, "QuantityOutOfRange", {"min": "1", "max": "300"}),
        (
            {"productId": "CFQ7TTC0LHSF", "skuId": "0001", "quantity": 21},
            "QuantityOutOfRange",
            {"min": "1", "max": "20"},
        ),
        ({"termDuration": "P3Y"}, "TermDurationNotSupported", {"supported": "P1M,P1Y"}),
        ({"billingCycle": 5}, "BillingCycleNotSupported", {"supported": "1,2"}),
        ({"type": 1}, "TypeNotSupported", {"supported": "3"}),
    ],
)
def test_verify_reports_line_errors(
    api: Api, overrides: dict[str, Any], code: str, properties: dict[str, str]
) -> None:
    answer = api.post(VERIFY, an_order(**overrides))
    assert answer.status_code == 200
    [error] = answer.json()["orderLines"][0]["errors"]
    assert error["reasonCode"] == code
    assert error["properties"] == properties
    assert error["description"]


def test_verify_reports_order_errors_when_told(simulator: Simulator, api: Api) -> None:
    simulator.add_order_error(42, "No agreement.")
    first = api.post(VERIFY, an_order()).json()
    second = api.post(VERIFY, an_order()).json()
    assert first["errors"] == [{"orderGroupId": "", "code": 42, "description": "No agreement."}]
    assert second["errors"] == []
    assert api.post(CHECKOUT, first).status_code == 400


@pytest.mark.parametrize(
    ("body", "messages"),
    [
        ({"orderLines": [line()]}, ["resellerCustomerId is required"]),
        ({"resellerCustomerId": 111111}, ["orderLines must hold at least one line"]),
        (
            {"resellerCustomerId": 111111, "orderLines": []},
            ["orderLines must hold at least one line"],
        ),
        (
            {"resellerCustomerId": "111111", "orderLines": [line()]},
            ["resellerCustomerId has the wrong type"],
        ),
        (
            {"resellerCustomerId": -5, "orderLines": [line()]},
            ["resellerCustomerId must be positive"],
        ),
        (
            {
                "resellerCustomerId": 111111,
                "orderLines": [line(quantity="5", billingCycle="monthly")],
            },
            [
                "orderLines[0].quantity has the wrong type",
                "orderLines[0].billingCycle has the wrong type",
            ],
        ),
        (
            {"resellerCustomerId": 111111, "orderLines": [{"productId": "X"}]},
            [
                "skuId is required",
                "termDuration is required",
                "quantity is required",
                "billingCycle is required",
            ],
        ),
        ({"resellerCustomerId": 111111, "orderLines": ["x"]}, ["an order line must be an object"]),
        ([1, 2], ["The order must be a JSON object."]),
    ],
)
def test_malformed_orders_get_400_with_object_errors(
    api: Api, body: Any, messages: list[str]
) -> None:
    answer = api.post(VERIFY, body)
    assert answer.status_code == 400
    error = answer.json()
    assert error["ErrorCode"] == "400 BadRequest"
    assert error["Message"] == "The order is not valid."
    assert error["Parameters"] == {}
    assert [e["Message"] for e in error["ObjectErrors"]] == messages


def test_a_body_that_is_not_json_gets_400(api: Api) -> None:
    answer = api.post(VERIFY, b"{not json")
    assert answer.status_code == 400
    assert answer.json()["Message"] == "The request body is not valid JSON."


def test_an_unknown_tenant_gets_404(api: Api) -> None:
    answer = api.post(VERIFY, an_order(tenant=999999))
    assert answer.status_code == 404
    assert answer.json()["ErrorCode"] == "404 NotFound"


# --------------------------------------------------------------------------- checkout


def test_checkout_takes_exactly_what_verify_returned(simulator: Simulator, api: Api) -> None:
    verified = api.post(VERIFY, an_order(quantity=7)).json()
    answer = api.post(CHECKOUT, verified)
    assert answer.status_code == 204
    assert answer.content == b""
    [bought] = simulator.checkouts
    assert bought.tenant == 111111
    assert bought.product == "CFQ7TTC0LF8R:0010"
    assert (bought.quantity, bought.billing_cycle, bought.term_duration, bought.type) == (
        7,
        1,
        "P1M",
        3,
    )
    assert bought.external_order_id == "reconciler-1"
    assert bought.catalog_item_id == "CFQ7TTC0LF8R:0010:CFQ7TTC0Q3X5"
    assert bought.body == verified
    assert bought.time.endswith("Z")
    assert simulator.seats(111111, "CFQ7TTC0LF8R:0010") == 7


def test_checkout_ignores_key_order(simulator: Simulator, api: Api) -> None:
    verified = api.post(VERIFY, an_order()).json()
    reordered = dict(reversed(list(verified.items())))
    assert api.post(CHECKOUT, reordered).status_code == 204


def test_checkout_refuses_changed_unverified_and_erroneous_orders(
    simulator: Simulator, api: Api
) -> None:
    verified = api.post(VERIFY, an_order()).json()
    changed = json.loads(json.dumps(verified))
    changed["orderLines"][0]["quantity"] = 6
    with_errors = api.post(VERIFY, an_order(quantity=1000)).json()
    answers = [
        api.post(CHECKOUT, changed),
        api.post(CHECKOUT, an_order()),
        api.post(CHECKOUT, with_errors),
    ]
    assert [a.status_code for a in answers] == [400, 400, 400]
    assert [a.json()["Message"] for a in answers] == [
        "The order was not verified, or it was changed after verification.",
        "The order was not verified, or it was changed after verification.",
        "The order has errors; fix them and verify it again.",
    ]
    assert simulator.checkouts == []


def test_every_accepted_checkout_is_recorded_even_a_repeat(simulator: Simulator, api: Api) -> None:
    verified = api.buy(an_order())
    assert api.post(CHECKOUT, verified).status_code == 204
    assert len(simulator.checkouts) == 2  # the API has no duplicate protection


def test_legacy_endpoints_behave_the_same(simulator: Simulator, api: Api) -> None:
    verified = api.post("/api/v1/assets/verify", an_order())
    assert verified.status_code == 200
    # As the published document has it: 200 without a body, not 204.
    checkout = api.post("/api/v1/assets/checkout/", verified.json())
    assert (checkout.status_code, checkout.content) == (200, b"")
    assert len(simulator.checkouts) == 1
    assert simulator.count("verify") == simulator.count("checkout") == 1


def test_the_legacy_endpoints_take_and_answer_an_asset_order_only(api: Api) -> None:
    order = an_order(attestationAccepted=True, customTermEndDate=None)
    order["scheduledPurchaseDate"] = None
    refused = api.post("/api/v1/assets/verify", order)
    assert refused.status_code == 400
    assert sorted(e["Parameters"]["path"] for e in refused.json()["ObjectErrors"]) == [
        "orderLines[0].attestationAccepted",
        "orderLines[0].customTermEndDate",
        "scheduledPurchaseDate",
    ]
    answer = api.post("/api/v1/assets/verify", an_order()).json()
    assert "scheduledPurchaseDate" not in answer
    assert "customTermEndDate" not in answer["orderLines"][0]
    primary = api.post(VERIFY, order).json()  # PurchaseRequestOrder has all three
    assert primary["orderLines"][0]["attestationAccepted"] is True


@pytest.mark.parametrize(
    "path",
    [
        "/API/V1/ASSETS/VERIFY",
        "/api/v1/Assets/verify/",
        "/api/v1/PurchaseRequest/Verify",
    ],
)
def test_every_path_is_matched_ignoring_case(api: Api, path: str) -> None:
    assert api.post(path, an_order()).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/Subscriptions",
        "/API/V1/PURCHASEREQUEST/ORDERS/",
        "/api/v1/AgreementProducts",
        "/api/v1/Assets/orders",
    ],
)
def test_every_list_is_matched_ignoring_case(api: Api, path: str) -> None:
    answer = api.get(path, CustomerTenantId=111111, ResellerCustomerId=111111)
    assert answer.status_code == 200, answer.text


def test_lists_in_the_bare_shape_with_a_page_size_cap(
    simulator_factory: Callable[..., Simulator], http: requests.Session
) -> None:
    sim = simulator_factory(list_shape="bare", max_page_size=2)
    for quantity in (1, 2, 3):
        sim.portal_add_subscription(111111, "CFQ7TTC0LF8R:0010", quantity)
    api = Api(sim, http)
    first = api.get(SUBSCRIPTIONS, customerTenantId=111111, pageSize=100).json()
    assert [s["Quantity"] for s in first] == [1, 2]  # a bare array, two at most
    rest = api.get(SUBSCRIPTIONS, customerTenantId=111111, page=2, pageSize=100).json()
    assert [s["Quantity"] for s in rest] == [3]
    sim.list_shape, sim.max_page_size = "envelope", None  # read at each request
    assert api.get(SUBSCRIPTIONS, customerTenantId=111111).json()["TotalHits"] == 3


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"list_shape": "paged"}, "list_shape must be one of envelope, bare, not 'paged'"),
        ({"max_page_size": 0}, "max_page_size must be a positive integer, not 0"),
        ({"max_page_size": True}, "max_page_size must be a positive integer, not True"),
    ],
)
def test_list_options_are_checked(arguments: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        Simulator(**arguments)


def test_unknown_paths_and_methods(api: Api) -> None:
    assert api.get("/api/v1/nothing").status_code == 404
    assert api.get(VERIFY).status_code == 405
    assert api.post(ORDERS, {}).status_code == 405


# --------------------------------------------------------------------------- lists


def test_orders_and_subscriptions_list_the_checkouts_page_by_page(
    simulator: Simulator, api: Api
) -> None:
    for number in range(5):
        api.buy(an_order(ref=f"r{number}", quantity=number + 1))
    api.buy(an_order(tenant=222222, ref="other"))
    pages = [api.get(ORDERS, customerTenantId=111111, page=p, pageSize=2).json() for p in (1, 2, 3)]
    assert [p["TotalHits"] for p in pages] == [5, 5, 5]
    assert [[o["Quantity"] for o in p["Items"]] for p in pages] == [[1, 2], [3, 4], [5]]
    first = pages[0]["Items"][0]
    assert first["CatalogId"] == "CFQ7TTC0LF8R:0010:CFQ7TTC0Q3X5"
    assert first["Name"] == "Microsoft 365 Business Basic"
    assert (first["BillingCycle"], first["TermDuration"], first["OrderState"]) == (
        "Monthly",
        "P1M",
        "Succeeded",
    )
    subscriptions = api.get(SUBSCRIPTIONS, customerTenantId=222222).json()
    assert subscriptions["TotalHits"] == 1
    [subscription] = subscriptions["Items"]
    assert subscription["CustomerTenant"] == {"Id": 222222}
    assert subscription["PartNumber"] == "CFQ7TTC0LF8R:0010"
    assert (subscription["Quantity"], subscription["Status"], subscription["BillingCycle"]) == (
        5,
        1,
        1,
    )
    assert api.get(ORDERS, customerTenantId=333333).json() == {"Items": [], "TotalHits": 0}


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({}, 400),
        ({"customerTenantId": "abc"}, 400),
        ({"customerTenantId": 111111, "page": 0}, 400),
        ({"customerTenantId": 999999}, 404),
        ({"CustomerTenantId": 111111}, 200),
    ],
)
def test_list_parameters_are_checked(api: Api, params: dict[str, Any], status: int) -> None:
    assert api.get(ORDERS, **params).status_code == status
    assert api.get(SUBSCRIPTIONS, **params).status_code == status


# --------------------------------------------------------------------------- injection


def test_fail_next_answers_with_the_status_then_recovers(simulator: Simulator, api: Api) -> None:
    simulator.fail_next("verify", 429, count=2, retry_after="3")
    first, second, third = (api.post(VERIFY, an_order()) for _ in range(3))
    assert [first.status_code, second.status_code, third.status_code] == [429, 429, 200]
    assert first.headers["Retry-After"] == "3"
    assert first.json()["ErrorCode"] == "429 TooManyRequests"


def test_fail_next_with_a_custom_body_and_no_record(simulator: Simulator, api: Api) -> None:
    verified = api.post(VERIFY, an_order()).json()
    simulator.fail_next("checkout", 503, body={"ErrorCode": "X", "Message": "Y"})
    answer = api.post(CHECKOUT, verified)
    assert answer.status_code == 503
    assert answer.json() == {"ErrorCode": "X", "Message": "Y"}
    assert simulator.checkouts == []


@pytest.mark.parametrize("endpoint", ["token", "orders", "subscriptions"])
def test_fail_next_on_every_endpoint(
    simulator: Simulator, http: requests.Session, endpoint: str
) -> None:
    api = Api(simulator, http)
    simulator.fail_next(endpoint, 500)
    if endpoint == "token":
        assert get_token(simulator, http).status_code == 500
    else:
        path = ORDERS if endpoint == "orders" else SUBSCRIPTIONS
        assert api.get(path, customerTenantId=111111).status_code == 500
    assert simulator.count(endpoint, 500) == 1


def test_injection_arguments_are_checked(simulator: Simulator) -> None:
    with pytest.raises(ValueError, match="endpoint must be one of"):
        simulator.fail_next("purchase", 500)
    with pytest.raises(ValueError, match="mode"):
        simulator.drop_after_checkout(mode="reset")  # type: ignore[arg-type]


def test_drop_after_checkout_records_then_hangs_up(simulator: Simulator, api: Api) -> None:
    verified = api.post(VERIFY, an_order()).json()
    simulator.drop_after_checkout()
    with pytest.raises(requests.ConnectionError):
        api.post(CHECKOUT, verified)
    assert len(simulator.checkouts) == 1
    assert [c.status for c in simulator.calls if c.endpoint == "checkout"] == [0]
    assert api.post(CHECKOUT, verified).status_code == 204  # only ``count`` are dropped


def test_drop_after_checkout_can_answer_500(simulator: Simulator, api: Api) -> None:
    verified = api.post(VERIFY, an_order()).json()
    simulator.drop_after_checkout(count=1, mode="500")
    assert api.post(CHECKOUT, verified).status_code == 500
    assert len(simulator.checkouts) == 1


def test_hold_checkouts_records_before_answering(simulator: Simulator, api: Api) -> None:
    verified = api.post(VERIFY, an_order()).json()
    simulator.hold_checkouts(0.5)
    answers: list[int] = []
    worker = threading.Thread(
        target=lambda: answers.append(api.post(CHECKOUT, verified).status_code)
    )
    started = time.monotonic()
    worker.start()
    while not simulator.checkouts and time.monotonic() - started < 2:
        time.sleep(0.01)
    assert len(simulator.checkouts) == 1
    assert answers == []
    worker.join()
    assert answers == [204]
    assert time.monotonic() - started >= 0.5


def test_latency_and_delay_next_slow_answers_down(
    simulator_factory: Callable[..., Simulator], http: requests.Session
) -> None:
    sim = simulator_factory(latency=0.1)
    api = Api(sim, http)
    sim.delay_next("orders", 0.2)
    started = time.monotonic()
    api.get(ORDERS, customerTenantId=111111)
    slow = time.monotonic() - started
    started = time.monotonic()
    api.get(ORDERS, customerTenantId=111111)
    normal = time.monotonic() - started
    assert slow >= 0.3
    assert 0.1 <= normal < 0.3


def test_calls_and_requests_log(simulator: Simulator, api: Api) -> None:
    sent = an_order()
    verified = api.buy(sent)
    assert [(c.method, c.endpoint, c.status) for c in simulator.calls] == [
        ("POST", "token", 200),
        ("POST", "verify", 200),
        ("POST", "checkout", 204),
    ]
    assert "authorization" not in {k.lower() for k in simulator.calls[1].headers}
    verify_log, checkout_log = simulator.requests_log
    assert (verify_log.body, verify_log.response) == (sent, verified)
    assert (checkout_log.body, checkout_log.status) == (verified, 204)
    simulator.reset()
    assert simulator.calls == []
    assert simulator.requests_log == []
    assert simulator.checkouts == []


def test_concurrent_checkouts_are_all_recorded(simulator: Simulator) -> None:
    errors: list[BaseException] = []

    def buy(number: int) -> None:
        try:
            with requests.Session() as session:
                api = Api(simulator, session)
                for round_ in range(5):
                    api.buy(an_order(ref=f"t{number}-{round_}", quantity=1))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=buy, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len({c.external_order_id for c in simulator.checkouts}) == 60
    assert simulator.seats(111111, "CFQ7TTC0LF8R:0010") == 60


# --------------------------------------------------------------------------- catalogue


def test_default_catalog_covers_the_documented_products_and_tenants() -> None:
    catalog, tenants = default_catalog()
    keys = {item.key for item in catalog}
    assert {
        "CFQ7TTC0LF8R:0010",
        "CFQ7TTC0LDPB:0001",
        "CFQ7TTC0LH18:0001",
        "CFQ7TTC0LFLZ:0002",
        "CFQ7TTC0LFK5:0002",
        "CFQ7TTC0LH1G:0001",
        "CFQ7TTC0LHSF:0001",
        "CFQ7TTC0LCHC:0002",
        "CFQ7TTC0MM8R:0002",
        "CFQ7TTC0HD33:0001",
        "DG7GMGF0D7FV:0001",
    } <= keys
    assert {100001, 100002, 100003, 111111, 222222, 333333} <= tenants
    assert any(item.max_quantity == 20 for item in catalog)
    for item in catalog:
        assert set(item.terms) == {"P1M", "P1Y"}
        assert set(item.billing_cycles) == {1, 2}
        assert item.types == (3,)


def _declared(path: Path) -> Iterator[tuple[Any, Any, Any]]:
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(document, dict):
        return
    defaults = document.get("defaults") or {}
    for entry in document.get("purchases") or []:
        merged = {**defaults, **entry}
        yield merged.get("customerTenantId"), merged.get("productId"), merged.get("skuId")


@pytest.mark.parametrize(
    "path",
    sorted(EXAMPLES.rglob("*.y*ml")) if EXAMPLES.is_dir() else [],
    ids=lambda p: p.name,
)
def test_default_catalog_covers_every_example(path: Path) -> None:
    catalog, tenants = default_catalog()
    keys = {item.key for item in catalog}
    for tenant, product, sku in _declared(path):
        assert tenant in tenants, f"{path.name}: tenant {tenant}"
        assert f"{product}:{sku}" in keys, f"{path.name}: {product}:{sku}"


CATALOG_YAML = """\
tenants: [42, 43]
products:
  - productId: PROD1
    skuId: "0001"
    availabilityId: AV1
    name: Product One
    maxQuantity: 3
    terms: [P1Y]
    billingCycles: [annual, 1]
"""


def test_load_catalog_reads_yaml_and_json(tmp_path: Path) -> None:
    yaml_file = tmp_path / "catalog.yaml"
    yaml_file.write_text(CATALOG_YAML, encoding="utf-8")
    json_file = tmp_path / "catalog.json"
    json_file.write_text(json.dumps(yaml.safe_load(CATALOG_YAML)), encoding="utf-8")
    expected = CatalogItem("PROD1", "0001", "AV1", "Product One", 3, ("P1Y",), (2, 1), (3,))
    assert load_catalog(yaml_file) == ([expected], {42, 43})
    assert load_catalog(json_file) == ([expected], {42, 43})


def test_load_catalog_file_changes_what_verify_accepts(
    simulator: Simulator, api: Api, tmp_path: Path
) -> None:
    path = tmp_path / "catalog.yml"
    path.write_text(CATALOG_YAML, encoding="utf-8")
    simulator.load_catalog_file(path)
    assert simulator.tenants == {42, 43}
    assert api.post(VERIFY, an_order()).status_code == 404
    body = an_order(tenant=42, productId="PROD1", skuId="0001", quantity=4, termDuration="P1Y")
    [error] = api.post(VERIFY, body).json()["orderLines"][0]["errors"]
    assert (error["reasonCode"], error["properties"]["max"]) == ("QuantityOutOfRange", "3")


@pytest.mark.parametrize(
    ("text", "messages"),
    [
        ("[1, 2]", ["the catalogue must be a mapping with 'tenants' and 'products'"]),
        (
            "tenants: [1]\nproducts: {}\nextra: 1",
            ["extra: unknown key", "products: must be a list"],
        ),
        (
            "tenants: [0, x]\nproducts:\n  - {productId: P, skuId: 1, availabilityId: A, name: N,"
            " maxQuantity: 0, billingCycles: [weekly], colour: red}",
            [
                "tenants[0]: must be a positive integer",
                "tenants[1]: must be a positive integer",
                "products[0].colour: unknown key",
                "products[0].skuId: must be a non-empty string",
                "products[0].maxQuantity: must be a positive integer",
                "products[0].billingCycles: unknown billing cycle 'weekly'",
            ],
        ),
        ("tenants: [1\n", None),
    ],
)
def test_bad_catalogues_are_reported(tmp_path: Path, text: str, messages: list[str] | None) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    if messages is None:
        assert str(caught.value).startswith(f"{path}: not valid YAML/JSON")
    else:
        assert str(caught.value).splitlines() == [f"{path}: {m}" for m in messages]


def test_a_missing_catalogue_is_reported(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read the catalogue"):
        load_catalog(tmp_path / "nope.yaml")


# --------------------------------------------------------------------------- read-back

ASSET_ORDERS = "/api/v1/assets/orders/"
AGREEMENT_PRODUCTS = "/api/v1/agreementproducts/"
ADMIN = "/_admin/portal"


def admin(sim: Simulator, http: requests.Session, body: Any) -> requests.Response:
    """The portal admin endpoint, without any token."""
    return http.post(sim.url + ADMIN, data=json.dumps(body), timeout=5)


def test_each_checkout_line_is_a_processed_order_and_a_subscription_of_its_own(
    simulator: Simulator, api: Api
) -> None:
    api.buy(an_order(ref="r1", quantity=3))
    api.buy(an_order(ref="r2", quantity=4))
    orders = api.get(ORDERS, customerTenantId=111111).json()["Items"]
    subscriptions = api.get(SUBSCRIPTIONS, customerTenantId=111111).json()["Items"]
    assert [(o["Quantity"], o["OrderState"]) for o in orders] == [
        (3, "Succeeded"),
        (4, "Succeeded"),
    ]
    assert [(s["Quantity"], s["Status"]) for s in subscriptions] == [(3, 1), (4, 1)]
    assert [s["OrderId"] for s in subscriptions] == [str(o["OrderReferenceId"]) for o in orders]
    assert len({s["Id"] for s in subscriptions}) == 2
    assert [s.id for s in simulator.subscriptions] == [s["Id"] for s in subscriptions]
    assert [o.reference for o in simulator.processed_orders] == [
        o["OrderReferenceId"] for o in orders
    ]
    assert simulator.active_seats(111111, "CFQ7TTC0LF8R:0010") == 7


@pytest.mark.parametrize(("cycle", "term", "enum"), [(1, "P1M", 1), (2, "P1Y", 2)])
def test_a_subscription_carries_the_subscription_billing_cycle_enum(
    api: Api, cycle: int, term: str, enum: int
) -> None:
    api.buy(an_order(billingCycle=cycle, termDuration=term))
    [subscription] = api.get(SUBSCRIPTIONS, customerTenantId=111111).json()["Items"]
    assert (subscription["BillingCycle"], subscription["TermDuration"]) == (enum, term)


def test_asset_orders_are_found_by_external_order_id(simulator: Simulator, api: Api) -> None:
    first = api.buy(an_order(ref="reconciler-a", quantity=2))
    api.buy(an_order(ref="reconciler-b", quantity=3))
    api.buy(an_order(tenant=222222, ref="reconciler-c"))
    found = api.get(ASSET_ORDERS, ResellerCustomerId=111111, ExternalOrderId="reconciler-a").json()
    # The order as checked out, with AssetOrder's fields only, each line naming the
    # subscription it created.
    del first["scheduledPurchaseDate"], first["orderLines"][0]["customTermEndDate"]
    first["orderLines"][0]["subscriptionId"] = simulator.subscriptions[0].id
    assert found == {"Items": [first], "TotalHits": 1}
    everything = api.get(ASSET_ORDERS, ResellerCustomerId=111111).json()
    assert [o["externalOrderId"] for o in everything["Items"]] == ["reconciler-a", "reconciler-b"]
    other = api.get(ASSET_ORDERS, ResellerCustomerId=111111, ExternalOrderId="reconciler-c")
    assert other.json() == {"Items": [], "TotalHits": 0}
    # Without a tenant: every tenant of the organisation.
    anywhere = api.get(ASSET_ORDERS, ExternalOrderId="reconciler-c").json()["Items"]
    assert [o["resellerCustomerId"] for o in anywhere] == [222222]
    assert api.get(ASSET_ORDERS, ResellerCustomerId=999999).status_code == 404
    page = api.get(ASSET_ORDERS, ResellerCustomerId=111111, Page=2, PageSize=1).json()
    assert [o["externalOrderId"] for o in page["Items"]] == ["reconciler-b"]


def test_agreement_products_list_names_and_prices(simulator: Simulator, api: Api) -> None:
    answer = api.get(AGREEMENT_PRODUCTS, CustomerTenantId=111111, PageSize=100).json()
    assert answer["TotalHits"] == len(simulator.catalog)
    by_part = {p["productVariant"]["partNumber"]: p for p in answer["Items"]}
    basic = by_part["CFQ7TTC0LF8R:0010"]
    assert basic["name"] == basic["productVariant"]["productName"] == "Microsoft 365 Business Basic"
    assert basic["salesPrice"] == {"value": 5.6, "currencyCode": "EUR"}
    assert basic["maximumQuantity"] == 300
    assert len({p["productVariant"]["id"] for p in answer["Items"]}) == len(answer["Items"])
    found = api.get(AGREEMENT_PRODUCTS, CustomerTenantId=111111, Search="teams").json()
    assert [p["name"] for p in found["Items"]] == ["Microsoft Teams Essentials"]
    assert api.get(AGREEMENT_PRODUCTS, CustomerTenantId=999999).status_code == 404


def test_subscriptions_filter_by_status_flags(simulator: Simulator, api: Api) -> None:
    api.buy(an_order(ref="r1", quantity=3))
    api.buy(an_order(ref="r2", quantity=4))
    simulator.portal_cancel(simulator.subscriptions[0].id)

    def quantities(**params: Any) -> list[tuple[int, int]]:
        items = api.get(SUBSCRIPTIONS, customerTenantId=111111, **params).json()["Items"]
        return [(s["Quantity"], s["Status"]) for s in items]

    assert quantities() == [(3, 8), (4, 1)]
    assert quantities(statuses=1) == [(4, 1)]
    assert quantities(statuses=8 | 4) == [(3, 8)]
    assert api.get(SUBSCRIPTIONS, customerTenantId=111111, statuses="x").status_code == 400


def test_the_portal_admin_endpoint_adds_changes_and_cancels(
    simulator: Simulator, api: Api, http: requests.Session
) -> None:
    added = admin(
        simulator,
        http,
        {
            "action": "add",
            "customerTenantId": 111111,
            "product": "CFQ7TTC0LH18:0001",
            "quantity": 5,
            "billingCycle": "annual",
            "termDuration": "P1Y",
        },
    )
    assert added.status_code == 200, added.text
    subscription = added.json()["subscription"]
    assert (subscription["PartNumber"], subscription["Quantity"], subscription["Status"]) == (
        "CFQ7TTC0LH18:0001",
        5,
        1,
    )
    assert (subscription["BillingCycle"], subscription["TermDuration"]) == (2, "P1Y")
    number = subscription["Id"]
    changed = admin(
        simulator, http, {"action": "set-quantity", "subscriptionId": number, "quantity": 8}
    )
    assert changed.json()["subscription"]["Quantity"] == 8
    listed = api.get(SUBSCRIPTIONS, customerTenantId=111111).json()["Items"]
    assert listed == [changed.json()["subscription"]]
    [order] = api.get(ORDERS, customerTenantId=111111).json()["Items"]
    assert (str(order["OrderReferenceId"]), order["Quantity"]) == (subscription["OrderId"], 5)
    cancelled = admin(simulator, http, {"action": "cancel", "subscriptionId": number})
    assert (
        cancelled.json()["subscription"]["Status"],
        simulator.active_seats(111111, "CFQ7TTC0LH18:0001"),
    ) == (8, 0)
    quiet = admin(simulator, http, portal_add(recordOrder=False))
    assert quiet.json()["subscription"]["OrderId"] is None
    assert len(api.get(ORDERS, customerTenantId=111111).json()["Items"]) == 1
    assert api.get(ASSET_ORDERS, ResellerCustomerId=111111).json()["Items"] == []
    assert simulator.checkouts == []
    assert simulator.count("checkout") == simulator.count("verify") == 0
    assert [c.endpoint for c in simulator.calls].count("admin") == 4


def portal_add(**fields: Any) -> dict[str, Any]:
    return {
        "action": "add",
        "customerTenantId": 111111,
        "product": "CFQ7TTC0LF8R:0010",
        "quantity": 1,
    } | fields


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        ({"action": "buy"}, 400, "action must be one of add, set-quantity, cancel"),
        ([1], 400, "action must be one of"),
        (
            {"action": "cancel", "subscriptionId": 1, "colour": "red"},
            400,
            "unknown field(s) for cancel: colour",
        ),
        ({"action": "cancel", "subscriptionId": 42}, 404, "subscription 42 was not found"),
        ({"action": "cancel", "subscriptionId": "x"}, 404, "subscription 'x' was not found"),
        (
            {"action": "set-quantity", "subscriptionId": 42, "quantity": 0},
            400,
            "quantity must be a positive integer",
        ),
        (portal_add(customerTenantId=999), 400, "customer tenant 999 is not in the catalogue"),
        (portal_add(product="NOPE:1"), 400, "product 'NOPE:1' is not in the catalogue"),
        (portal_add(product=["x"]), 400, "product ['x'] is not in the catalogue"),
        (portal_add(termDuration="P3Y"), 400, "term 'P3Y' is not offered"),
        (portal_add(billingCycle="weekly"), 400, "unknown billing cycle 'weekly'"),
        (portal_add(recordOrder="no"), 400, "recordOrder must be true or false"),
    ],
)
def test_the_portal_admin_endpoint_refuses_bad_requests(
    simulator: Simulator, http: requests.Session, body: Any, status: int, text: str
) -> None:
    answer = admin(simulator, http, body)
    assert answer.status_code == status
    assert text in answer.json()["Message"]
    assert simulator.subscriptions == []


def test_the_portal_admin_endpoint_takes_only_post(
    simulator: Simulator, http: requests.Session
) -> None:
    assert http.get(simulator.url + ADMIN, timeout=5).status_code == 405


def test_the_portal_python_api(simulator: Simulator) -> None:
    number = simulator.portal_add_subscription(111111, "CFQ7TTC0LF8R:0010", 3)
    simulator.portal_set_quantity(number, 4)
    [record] = simulator.subscriptions
    assert (record.id, record.quantity, record.billing_cycle, record.term_duration) == (
        number,
        4,
        1,
        "P1M",
    )
    [order] = simulator.processed_orders
    assert (order.reference, order.quantity) == (record.order_reference, 3)
    simulator.portal_cancel(number)
    simulator.portal_cancel(number)  # cancelling twice changes nothing
    assert not simulator.subscriptions[0].active
    with pytest.raises(ValueError, match="not active"):
        simulator.portal_set_quantity(number, 5)
    with pytest.raises(LookupError, match="subscription 9 was not found"):
        simulator.portal_cancel(9)
    with pytest.raises(ValueError, match="billing cycle 4 is not offered"):
        simulator.portal_add_subscription(111111, "CFQ7TTC0LF8R:0010", 1, billing_cycle=4)
    with pytest.raises(ValueError, match="quantity"):
        simulator.portal_add_subscription(111111, "CFQ7TTC0LF8R:0010", 0)


def test_fail_checkout_unrecorded_answers_500_and_takes_nothing(
    simulator: Simulator, api: Api
) -> None:
    verified = api.post(VERIFY, an_order()).json()
    simulator.fail_checkout_unrecorded()
    # An order that was not verified is refused as always and does not spend the fault.
    assert api.post(CHECKOUT, an_order(quantity=9)).status_code == 400
    answer = api.post(CHECKOUT, verified)
    assert answer.status_code == 500
    assert answer.json()["ErrorCode"] == "500 InternalServerError"
    assert simulator.checkouts == []
    assert simulator.subscriptions == simulator.processed_orders == []
    assert api.get(ASSET_ORDERS, ResellerCustomerId=111111).json()["Items"] == []
    assert simulator.requests_log[-1].status == 500
    assert api.post(CHECKOUT, verified).status_code == 204
    assert len(simulator.checkouts) == 1


def test_checkout_faults_hit_checkouts_in_the_order_programmed(
    simulator: Simulator, api: Api
) -> None:
    verified = api.post(VERIFY, an_order()).json()
    simulator.drop_after_checkout(1, mode="500")
    simulator.fail_checkout_unrecorded(1)
    statuses = [api.post(CHECKOUT, verified).status_code for _ in range(3)]
    assert statuses == [500, 500, 204]
    assert len(simulator.checkouts) == 2
    assert len(simulator.subscriptions) == 2


@pytest.mark.parametrize(
    ("endpoint", "path", "params"),
    [
        ("asset-orders", ASSET_ORDERS, {"ResellerCustomerId": 111111}),
        ("agreement-products", AGREEMENT_PRODUCTS, {"CustomerTenantId": 111111}),
    ],
)
def test_fail_next_on_the_read_back_endpoints(
    simulator: Simulator, api: Api, endpoint: str, path: str, params: dict[str, Any]
) -> None:
    simulator.fail_next(endpoint, 503)
    assert api.get(path, **params).status_code == 503
    assert api.get(path, **params).status_code == 200
    assert simulator.count(endpoint, 503) == 1


def test_reset_forgets_orders_and_subscriptions(simulator: Simulator, api: Api) -> None:
    api.buy(an_order())
    simulator.portal_add_subscription(111111, "CFQ7TTC0LF8R:0010", 2)
    simulator.reset()
    assert simulator.subscriptions == simulator.processed_orders == []


def test_the_default_catalogue_has_a_price_for_every_product() -> None:
    catalog, _ = default_catalog()
    assert all(item.price is not None and item.price > 0 for item in catalog)
    assert {item.currency for item in catalog} == {"EUR"}


def test_load_catalog_reads_prices(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(
        CATALOG_YAML + "    price: 5.6\n    currency: nok\n"
        "  - {productId: P2, skuId: '1', availabilityId: A, name: Two, price: 3}\n",
        encoding="utf-8",
    )
    first, second = load_catalog(path)[0]
    assert (first.price, first.currency) == (Decimal("5.6"), "NOK")
    assert (second.price, second.currency) == (Decimal(3), "EUR")


@pytest.mark.parametrize(
    ("fields", "messages"),
    [
        ("price: cheap", ["products[0].price: must be a number"]),
        ("price: -1", ["products[0].price: must not be negative"]),
        ("price: .nan", ["products[0].price: must be a number"]),
        ("price: true", ["products[0].price: must be a number"]),
        (
            "price: 1, currency: euro",
            ["products[0].currency: must be a three-letter currency code"],
        ),
        ("currency: EUR", ["products[0].currency: needs a price"]),
    ],
)
def test_bad_prices_are_reported(tmp_path: Path, fields: str, messages: list[str]) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(
        f"tenants: [1]\nproducts:\n  - {{productId: P, skuId: '1', availabilityId: A, name: N, "
        f"{fields}}}\n",
        encoding="utf-8",
    )
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    assert str(caught.value).splitlines() == [f"{path}: {m}" for m in messages]


# --------------------------------------------------------------------------- independence

FORBIDDEN_IMPORTS = ("reconciler.api", "reconciler.model")


def forbidden_imports(source: str, package: str) -> list[str]:
    """The modules out of FORBIDDEN_IMPORTS (or inside them) that ``source`` imports.

    ``package`` is the package the module belongs to, to resolve relative imports.
    Every import statement counts, also those under ``if TYPE_CHECKING`` or in a function.
    """

    def forbidden(name: str) -> bool:
        return any(name == banned or name.startswith(banned + ".") for banned in FORBIDDEN_IMPORTS)

    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if forbidden(alias.name))
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module) if part)
            if forbidden(module):
                found.add(module)
            else:  # ``from reconciler import api`` imports the module reconciler.api
                submodules = (f"{module}.{alias.name}" for alias in node.names)
                found.update(name for name in submodules if forbidden(name))
    return sorted(found)


def test_the_simulator_imports_neither_the_client_nor_the_model() -> None:
    # An oracle that shared the client's wire format or model would share its bugs.
    root = Path(reconciler.simulator.__file__).parent
    modules = sorted(root.rglob("*.py"))
    assert {"__init__.py", "server.py", "orders.py"} <= {m.name for m in modules}
    found = {}
    for module in modules:
        # A module's package is its directory, for __init__.py as for the others.
        package = ".".join(module.relative_to(root.parent.parent).parent.parts)
        names = forbidden_imports(module.read_text(encoding="utf-8"), package)
        if names:
            found[module.name] = names
    assert found == {}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import reconciler.api", ["reconciler.api"]),
        ("import reconciler.model as model", ["reconciler.model"]),
        ("from reconciler import api, errors", ["reconciler.api"]),
        ("from reconciler.api.client import CrayonClient", ["reconciler.api.client"]),
        ("from .. import model", ["reconciler.model"]),
        ("from ..api import settings", ["reconciler.api"]),
        ("if TYPE_CHECKING:\n    from reconciler.model import Plan", ["reconciler.model"]),
        ("def f() -> None:\n    import reconciler.api", ["reconciler.api"]),
        ("from reconciler.errors import ReconcilerError", []),
        ("from . import wire\nfrom .orders import camel", []),
        ("import reconciler.modeller", []),
    ],
)
def test_forbidden_imports_sees_every_form_of_import(source: str, expected: list[str]) -> None:
    assert forbidden_imports(source, "reconciler.simulator") == expected
