"""A Crayon client nobody here wrote, the PyPI package ``crayon-cloudiq-sdk``, against
the simulator: token, ping, me, agreement products, verify, checkout, subscriptions.

The SDK spells the paths as Crayon's published document does (``/AgreementProducts``,
``/Me``), reads the token's PascalCase fields, scopes agreement products by
organisation and sends its own headers; every exchange is also held against the
document.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cloudiq import CloudIQ  # type: ignore[import-untyped]

from reconciler.simulator import LIST_SHAPES, Simulator
from tests.support.crayon_openapi import Contract, Traffic

TENANT = 111111


@pytest.fixture(params=LIST_SHAPES)
def sim(request: pytest.FixtureRequest, simulator_factory: Callable[..., Simulator]) -> Simulator:
    return simulator_factory(list_shape=request.param)


def items(answer: Any) -> list[Any]:
    """A list answer in either shape."""
    listed: list[Any] = answer["Items"] if isinstance(answer, dict) else answer
    return listed


def test_the_cloudiq_sdk_buys_and_reads_back(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    traffic = Traffic()
    traffic.install(monkeypatch)
    sdk = CloudIQ(sim.client_id, sim.client_secret, sim.username, sim.password)
    sdk.baseURL = sim.url + "/api/v1"

    token = sdk.getToken()
    assert token["TokenType"] == "Bearer"
    assert token["AccessToken"].startswith("sim-")
    assert sdk.ping().status_code == 200
    me = sdk.me()
    assert (me.status_code, me.json()["userName"]) == (200, sim.username)

    products = sdk.getAgreementProducts(sim.organization_id, {"PageSize": 100})
    assert products.status_code == 200, products.text
    by_part = {p["productVariant"]["partNumber"]: p for p in items(products.json())}
    assert by_part["CFQ7TTC0LF8R:0010"]["salesPrice"] == {"value": 5.6, "currencyCode": "EUR"}

    order = {
        "resellerCustomerId": TENANT,
        "externalOrderId": "sdk-order-1",
        "orderLines": [
            {
                "productId": "CFQ7TTC0LF8R",
                "skuId": "0010",
                "productVariantId": by_part["CFQ7TTC0LF8R:0010"]["productVariant"]["id"],
                "quantity": 6,
                "billingCycle": 1,
                "termDuration": "P1M",
                "type": 3,
            }
        ],
    }
    verified = sdk.post(f"{sdk.baseURL}/Assets/verify", order)
    assert verified.status_code == 200, verified.text
    assert verified.json()["orderLines"][0]["errors"] == []
    checkout = sdk.post(f"{sdk.baseURL}/Assets/checkout", verified.json())
    assert checkout.status_code == 200, checkout.text
    assert sim.active_seats(TENANT, "CFQ7TTC0LF8R:0010") == 6

    listed = sdk.get(f"{sdk.baseURL}/Subscriptions", {"CustomerTenantId": TENANT})
    [subscription] = items(listed.json())
    assert (subscription["Quantity"], subscription["Status"]) == (6, 1)
    one = sdk.get(f"{sdk.baseURL}/Subscriptions/{subscription['Id']}")
    assert one.json()["CommitmentEndDate"] > one.json()["CreationDate"]
    everything = sdk.get(f"{sdk.baseURL}/Subscriptions", {"OrganizationId": sim.organization_id})
    assert [s["Id"] for s in items(everything.json())] == [subscription["Id"]]
    [asset_order] = items(
        sdk.get(f"{sdk.baseURL}/Assets/orders", {"ExternalOrderId": "sdk-order-1"}).json()
    )
    assert asset_order["orderLines"][0]["subscriptionId"] == subscription["Id"]

    problems, seen = Contract.load().check(traffic.to(sim.url))
    assert problems == []
    assert {operation for _, operation in seen} == {
        "GetCustomerToken",
        "Ping",
        "GetMe",
        "ListAgreementProducts",
        "CreateAssetVerifyOrder",
        "CreateAssetCheckoutOrder",
        "ListSubscriptions",
        "GetSubscription",
        "ListAssetOrders",
    }
