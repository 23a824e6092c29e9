"""Contract tests: what the client sends and the simulator answers, held against
Crayon's published OpenAPI document (a copy in tests/data), over real sockets.

Every exchange of a test run whose path the document has is checked: the request
body and query parameter names the client sends, and the 2xx answer the
simulator gives. The matrix covers the declarations' options on both endpoint
families and both list shapes; what the document does not have (the
``purchaserequest`` endpoints) is left to the other tests.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from reconciler.api import ApiSettings, RetryPolicy, build_order, legacy_order
from reconciler.api.client import CrayonClient
from reconciler.model import TAG_KEYS, Identity, Purchase
from reconciler.simulator import LIST_SHAPES, Simulator
from tests.support.crayon_openapi import Contract, Traffic

DOCUMENT = Contract.load()
TENANT = 111111


@pytest.fixture
def traffic(monkeypatch: pytest.MonkeyPatch) -> Traffic:
    recorded = Traffic()
    recorded.install(monkeypatch)
    return recorded


def checked(traffic: Traffic, sim: Simulator) -> set[tuple[str, str]]:
    """Every documented exchange with ``sim`` checked; returns the operations seen."""
    problems, seen = DOCUMENT.check(traffic.to(sim.url))
    assert problems == []
    return seen


# --------------------------------------------------------------------------- the checker


def test_the_copy_is_crayons_document() -> None:
    assert DOCUMENT.document["info"] == {"title": "Crayon Group Customer API", "version": "v1"}
    assert DOCUMENT.document["servers"] == [{"url": "https://api.crayon.com/api/v1"}]


@pytest.mark.parametrize(
    ("method", "path", "operation"),
    [
        ("GET", "/api/v1/subscriptions/", "ListSubscriptions"),
        ("GET", "/API/V1/Subscriptions", "ListSubscriptions"),
        ("GET", "/api/v1/subscriptions/500001", "GetSubscription"),
        ("PUT", "/api/v1/subscriptions/500001/", "UpdateSubscription"),
        ("POST", "/api/v1/assets/verify", "CreateAssetVerifyOrder"),
        ("POST", "/api/v1/Assets/checkout", "CreateAssetCheckoutOrder"),
        ("GET", "/api/v1/assets/orders/", "ListAssetOrders"),
        ("GET", "/api/v1/agreementproducts/", "ListAgreementProducts"),
        ("POST", "/api/v1/connect/token", "GetCustomerToken"),
        ("GET", "/api/v1/ping", "Ping"),
        ("GET", "/api/v1/me", "GetMe"),
    ],
)
def test_operations_are_found_ignoring_case(method: str, path: str, operation: str) -> None:
    found = DOCUMENT.operation(method, path)
    assert found is not None
    assert found["operationId"] == operation


def test_the_purchaserequest_endpoints_are_not_in_the_2021_document() -> None:
    assert DOCUMENT.operation("POST", "/api/v1/purchaserequest/verify") is None
    assert DOCUMENT.operation("GET", "/api/v1/purchaserequest/orders/") is None


@pytest.mark.parametrize(
    ("schema", "value", "problem"),
    [
        # What the simulator used to answer, and what the client used to send.
        ("Subscription", {"Product": {"Id": "CFQ7TTC0LF8R:0010:X"}}, "is not of type 'integer'"),
        ("Subscription", {"OrderId": 1001}, "1001 is not of type 'string'"),
        ("Subscription", {"Status": 128}, "128 is not one of"),
        ("Subscription", {"Id": 1, "id": 2}, "'id' is given twice (ignoring case)"),
        ("Subscription", {"EndDate": "soon"}, "'soon' is not a 'date-time'"),
        (
            "AssetOrder",
            {"scheduledPurchaseDate": None},
            "'scheduledPurchaseDate' was unexpected",
        ),
        (
            "AssetOrderLine",
            {"attestationAccepted": True},
            "'attestationAccepted' was unexpected",
        ),
        ("AssetOrderLine", {"customTermEndDate": None}, "'customTermEndDate' was unexpected"),
        ("AssetOrderLine", {"quantity": 2**31}, "is not a 'int32'"),
        ("Token", {"AccessToken": 5}, "5 is not of type 'string'"),
    ],
)
def test_the_checker_finds_what_the_document_forbids(
    schema: str, value: dict[str, Any], problem: str
) -> None:
    found = DOCUMENT.problems(DOCUMENT.schema(schema), value)
    assert any(problem in p for p in found), found


def test_the_checker_reads_names_ignoring_case() -> None:
    token = {"AccessToken": "t", "ExpiresIn": 3600, "TokenType": "Bearer", "Error": None}
    assert DOCUMENT.problems(DOCUMENT.schema("Token"), token) == []


# --------------------------------------------------------------------------- declarations

CYCLES = [("monthly", "P1M"), ("annual", "P1Y"), ("monthly", "P1Y")]
OPTIONS: list[dict[str, Any]] = [
    {},
    {"tags": {key: f"{key}-value" for key in TAG_KEYS}},
    {"tags": {"costCenter": "CC-7"}, "provisioning_context": {"domain": "acme.example"}},
    {"attestation_accepted": True},
    {"attestation_accepted": False, "notification_email": "ops@example.com"},
    {"invoice_profile_id": 7, "product_variant_id": 2622144},
    {
        "tags": {"owner": "it"},
        "provisioning_context": {"a": "1", "b": "2"},
        "attestation_accepted": True,
        "notification_email": "licences@example.com",
        "invoice_profile_id": 42,
        "product_variant_id": 2600001,
    },
]
PRODUCTS = [("CFQ7TTC0LF8R", "0010"), ("CFQ7TTC0LH18", "0001"), ("CFQ7TTC0LFLZ", "0002")]


def purchase(product: tuple[str, str], cycle: tuple[str, str], **options: Any) -> Purchase:
    identity = Identity(TENANT, product[0], product[1], cycle[0], cycle[1])
    return Purchase(address="contract/p", identity=identity, quantity=3, **options)


def every_declaration() -> Iterator[Purchase]:
    for product, cycle, options in itertools.product(PRODUCTS, CYCLES, OPTIONS):
        yield purchase(product, cycle, **options)


def test_every_legacy_order_fits_asset_order() -> None:
    problems = []
    for declared in every_declaration():
        body = legacy_order(build_order(declared, 3, "reconciler-contract"))
        problems += DOCUMENT.request_problems("POST", "/api/v1/assets/verify", body)
    assert problems == []


def test_without_legacy_order_a_declared_attestation_breaks_the_document() -> None:
    # The check above can fail: the purchaserequest body with an attestation does.
    body = build_order(purchase(PRODUCTS[0], CYCLES[0], attestation_accepted=True), 3, "r")
    [problem] = DOCUMENT.request_problems("POST", "/api/v1/assets/verify", body)
    assert "'attestationAccepted' was unexpected" in problem


# --------------------------------------------------------------------------- end to end


@pytest.fixture(params=LIST_SHAPES)
def sim(request: pytest.FixtureRequest, simulator_factory: Callable[..., Simulator]) -> Simulator:
    return simulator_factory(list_shape=request.param, max_page_size=2)


def client_for(sim: Simulator, *, legacy: bool) -> CrayonClient:
    settings = ApiSettings.from_env(sim.env(), legacy_endpoints=legacy)
    return CrayonClient(settings, retry=RetryPolicy(max_attempts=1), page_size=3)


@pytest.mark.parametrize("legacy", [True, False], ids=["assets", "purchaserequest"])
@pytest.mark.parametrize(
    "declared",
    [
        purchase(product, cycle, **options)
        for product, cycle, options in zip(
            itertools.cycle(PRODUCTS), itertools.cycle(CYCLES), OPTIONS, strict=False
        )
    ],
    ids=lambda p: f"{p.identity.product_id}-{p.identity.billing_cycle}-{p.identity.term_duration}",
)
def test_the_client_and_the_simulator_keep_to_the_document(
    sim: Simulator, traffic: Traffic, declared: Purchase, legacy: bool
) -> None:
    with client_for(sim, legacy=legacy) as client:
        for quantity in (2, 3, 4):  # three subscriptions: more than a page of the capped lists
            verified = client.verify(build_order(declared, quantity, f"reconciler-{quantity}"))
            assert verified.ok, verified.errors
            client.checkout(verified)
        subscriptions = client.read_subscriptions(TENANT)
        assert sorted(s.quantity for s in subscriptions) == [2, 3, 4]
        [order] = client.find_asset_orders(TENANT, "reconciler-3")
        assert order.lines[0].subscription_id in {s.id for s in subscriptions}
        assert client.read_agreement_products(TENANT).complete
        current = client.get_subscription(subscriptions[0].id)
        raised = client.update_subscription(current, quantity=current.quantity + 1)
        renewing = client.update_subscription(raised, auto_renew=False)
        cancelled = client.cancel_subscription(renewing)
        assert (cancelled.active, cancelled.auto_renew) == (False, False)
    seen = checked(traffic, sim)
    expected = {
        ("POST", "GetCustomerToken"),
        ("GET", "ListSubscriptions"),
        ("GET", "ListAssetOrders"),
        ("GET", "ListAgreementProducts"),
        ("GET", "GetSubscription"),
        ("PUT", "UpdateSubscription"),
    }
    if legacy:
        expected |= {("POST", "CreateAssetVerifyOrder"), ("POST", "CreateAssetCheckoutOrder")}
    assert seen == expected


@pytest.mark.parametrize("casing", [str.lower, str.upper, lambda p: p])
def test_plain_calls_in_any_casing_keep_to_the_document(
    sim: Simulator, traffic: Traffic, casing: Callable[[str], str]
) -> None:
    sim.portal_add_subscription(TENANT, "CFQ7TTC0LF8R:0010", 5)
    sim.portal_cancel(sim.portal_add_subscription(TENANT, "CFQ7TTC0LH18:0001", 2))
    with requests.Session() as http:
        token = http.post(
            sim.url + casing("/api/v1/connect/token"),
            data={
                "grant_type": "password",
                "username": sim.username,
                "password": sim.password,
                "scope": "CustomerApi",
            },
            auth=(sim.client_id, sim.client_secret),
            timeout=5,
        ).json()["AccessToken"]
        headers = {"Authorization": f"Bearer {token}"}
        calls = [
            ("/api/v1/Ping", {}),
            ("/api/v1/Me", {}),
            ("/api/v1/Subscriptions", {"OrganizationId": sim.organization_id}),
            ("/api/v1/Subscriptions", {"CustomerTenantId": TENANT, "Statuses": 8}),
            ("/api/v1/AgreementProducts", {"OrganizationId": sim.organization_id}),
            ("/api/v1/Assets/orders", {"ResellerCustomerId": TENANT}),
            (f"/api/v1/Subscriptions/{sim.subscriptions[0].id}", {}),
        ]
        for path, params in calls:
            answer = http.get(sim.url + casing(path), params=params, headers=headers, timeout=5)
            assert answer.status_code == 200, (path, answer.text)
    assert len(checked(traffic, sim)) == 7
