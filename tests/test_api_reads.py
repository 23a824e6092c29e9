"""The typed reads: pure parsing of the list items, and the client against the simulator."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import responses

from reconciler.api import (
    STATUS_ACTIVE,
    ApiReader,
    ApiSettings,
    AssetOrder,
    AssetOrderLine,
    CatalogEntry,
    Price,
    ProcessedOrder,
    RetryPolicy,
    Subscription,
    build_order,
    new_external_order_id,
)
from reconciler.api.client import CrayonClient
from reconciler.api.items import (
    ORDER_BILLING_CYCLES,
    SUBSCRIPTION_BILLING_CYCLES,
    parse_agreement_product,
    parse_asset_order,
    parse_processed_order,
    parse_subscription,
)
from reconciler.api.reads import (
    parse_agreement_products,
    parse_asset_orders,
    parse_processed_orders,
    parse_subscriptions,
)
from reconciler.errors import ApiError, FailureKind
from reconciler.model import BILLING_CYCLES, Identity, Purchase
from reconciler.simulator import LIST_SHAPES, CatalogItem, Simulator

FAKE_URL = "https://api.crayon.test"
TOKEN_URL = FAKE_URL + "/api/v1/connect/token"
SUBSCRIPTIONS_URL = FAKE_URL + "/api/v1/subscriptions/"
ORDERS_URL = FAKE_URL + "/api/v1/purchaserequest/orders/"
ASSET_ORDERS_URL = FAKE_URL + "/api/v1/assets/orders/"
AGREEMENT_PRODUCTS_URL = FAKE_URL + "/api/v1/agreementproducts/"
ENV = {
    "CRAYON_API_URL": FAKE_URL,
    "CRAYON_CLIENT_ID": "client-1",
    "CRAYON_CLIENT_SECRET": "s3cret-value",
    "CRAYON_USERNAME": "ops@example.com",
    "CRAYON_PASSWORD": "pa55-word",
}
BASIC = "CFQ7TTC0LF8R:0010"
PREMIUM = "CFQ7TTC0LH18:0001"


def subscription_json(**overrides: Any) -> dict[str, Any]:
    """A subscription item shaped like the SDK's Subscription (PascalCase)."""
    return {
        "Id": 5001,
        "PublisherSubscriptionId": "6f1d0a3e-0000-4000-8000-000000000001",
        "CustomerTenant": {"Id": 111111, "Name": "Acme"},
        "Product": {"Id": 77, "PartNumber": "CFQ7TTC0LH16:0001", "ItemName": "Exchange P1"},
        "PartNumber": "CFQ7TTC0LH16:0001",
        "Name": "Exchange for sales",
        "Quantity": 12,
        "Status": 1,
        "BillingCycle": 2,
        "TermDuration": "P1Y",
        "OrderId": 1414,
        "StartDate": "2025-08-04T09:17:18.193",
        "EndDate": "2026-08-04T09:17:18.1930000Z",
        "AutoRenewEnabled": True,
        "Markup": 3.5,
    } | overrides


def order_json(**overrides: Any) -> dict[str, Any]:
    """A processed-order item as Crayon's documentation shows one."""
    return {
        "OrderReferenceId": 1414,
        "CatalogId": "CFQ7TTC0LF8R:0010:CFQ7TTC0Q3X5",
        "Name": "Microsoft 365 Business Basic",
        "Quantity": 20,
        "BillingCycle": "Monthly",
        "TermDuration": "P1M",
        "EmailReceiver": "ops@example.com",
        "Created": "2025-08-04T09:17:18.193",
        "OrderState": "Succeeded",
        "Error": None,
    } | overrides


def asset_order_json(**overrides: Any) -> dict[str, Any]:
    return {
        "externalOrderId": "reconciler-abc",
        "resellerCustomerId": 111111,
        "countryCode": "NO",
        "errors": [],
        "orderLines": [
            {
                "productId": "CFQ7TTC0LF8R",
                "skuId": "0010",
                "catalogItemId": "CFQ7TTC0LF8R:0010:CFQ7TTC0Q3X5",
                "quantity": 5,
                "billingCycle": 1,
                "termDuration": "P1M",
                "type": 3,
                "errors": [],
            }
        ],
    } | overrides


def agreement_product_json(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "Microsoft 365 Business Basic",
        "productVariant": {
            "id": 2622144,
            "partNumber": "CFQ7TTC0LF8R:0010",
            "productName": "Microsoft 365 Business Basic (NCE)",
        },
        "salesPrice": {"value": 5.6, "currencyCode": "eur"},
        "recommendedRetailPrice": {"value": 6, "currencyCode": "EUR"},
        "minimumQuantity": 1,
        "maximumQuantity": 300,
        "priceListName": "Standard",
    } | overrides


def message(error: pytest.ExceptionInfo[ApiError]) -> str:
    assert error.value.kind is FailureKind.DEFINITIVE
    return str(error.value)


# --------------------------------------------------------------------------- subscriptions


def test_a_subscription_reads_into_a_record() -> None:
    assert parse_subscription(subscription_json()) == Subscription(
        id=5001,
        customer_tenant_id=111111,
        product_id="CFQ7TTC0LH16",
        sku_id="0001",
        part_number="CFQ7TTC0LH16:0001",
        name="Exchange for sales",
        product_name="Exchange P1",
        quantity=12,
        status="active",
        billing_cycle="annual",
        term_duration="P1Y",
        order_id="1414",
        publisher_subscription_id="6f1d0a3e-0000-4000-8000-000000000001",
        start_date=datetime(2025, 8, 4, 9, 17, 18, 193000, tzinfo=UTC),
        end_date=datetime(2026, 8, 4, 9, 17, 18, 193000, tzinfo=UTC),
        auto_renew=True,
    )


def test_subscription_fields_are_read_case_insensitively_and_optional_ones_may_be_absent() -> None:
    item = {
        "id": "5002",
        "customerTenant": {"id": 111111},
        "product": {"partNumber": "CFQ7TTC0LF8R:0010:CFQ7TTC0Q3X5"},
        "QUANTITY": 3,
        "status": "Active",
        "billingCycle": "ThreeYears",
    }
    subscription = parse_subscription(item)
    assert (subscription.id, subscription.product, subscription.quantity) == (5002, BASIC, 3)
    part_number = "CFQ7TTC0LF8R:0010:CFQ7TTC0Q3X5"
    assert (subscription.part_number, subscription.name, subscription.product_name) == (
        part_number,
        part_number,
        part_number,
    )
    assert (subscription.billing_cycle, subscription.status) == ("triennial", "active")
    assert subscription.active
    assert subscription.term_duration is subscription.order_id is subscription.start_date is None
    assert subscription.auto_renew is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, "monthly"),
        (2, "annual"),
        (3, "none"),
        (4, "one-time"),
        (8, "triennial"),
        (5, "biannually"),
        (7, "two-years"),
        (9, "quarterly"),
        (0, "unknown"),
        (6, "billing-cycle-6"),
        ("Monthly", "monthly"),
        ("OneTime", "one-time"),
        ("Three Years", "triennial"),
        (None, "unknown"),
    ],
)
def test_the_subscription_billing_cycle_enum_maps_to_our_names(value: Any, expected: str) -> None:
    assert parse_subscription(subscription_json(BillingCycle=value)).billing_cycle == expected


def test_only_the_five_documented_cycles_map_to_names_a_declaration_can_have() -> None:
    ours = {
        code: name for code, name in SUBSCRIPTION_BILLING_CYCLES.items() if name in BILLING_CYCLES
    }
    assert ours == {1: "monthly", 2: "annual", 3: "none", 4: "one-time", 8: "triennial"}
    assert {ORDER_BILLING_CYCLES[code] for code in BILLING_CYCLES.values()} == set(BILLING_CYCLES)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, "active"),
        (2, "suspended"),
        (128, "cancelled"),
        (8, "customer-cancellation"),
        (30, "status-30"),
        ("Cancelled", "cancelled"),
        ("CustomerCancellation", "customer-cancellation"),
    ],
)
def test_subscription_statuses(value: Any, expected: str) -> None:
    subscription = parse_subscription(subscription_json(Status=value))
    assert subscription.status == expected
    assert subscription.active is (expected == "active")


def test_a_part_number_without_a_sku_is_a_product_no_declaration_has() -> None:
    subscription = parse_subscription(subscription_json(PartNumber="AAD-12345"))
    assert (subscription.product_id, subscription.sku_id) == ("AAD-12345", "")


def test_the_tenant_comes_from_the_query_when_the_item_has_none() -> None:
    item = subscription_json()
    del item["CustomerTenant"]
    assert parse_subscription(item, tenant=42).customer_tenant_id == 42
    with pytest.raises(ApiError) as caught:
        parse_subscription(item)
    assert message(caught) == "CustomerTenant.Id: missing"


def test_a_subscription_list_keeps_the_asked_tenant_and_statuses() -> None:
    items = [
        subscription_json(Id=1),
        subscription_json(Id=2, CustomerTenant={"Id": 222222}),
        subscription_json(Id=3, Status=128),
        subscription_json(Id=4, Status=2),
    ]
    assert [s.id for s in parse_subscriptions(items, tenant=111111)] == [1, 3, 4]
    assert [s.id for s in parse_subscriptions(items, tenant=111111, statuses=1)] == [1]
    assert [s.id for s in parse_subscriptions(items, tenant=111111, statuses=2 | 128)] == [3, 4]


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("nope", "item 1: expected an object, got 'nope'"),
        (
            subscription_json(Quantity="five"),
            "item 1 (id 5001): Quantity: expected a whole number, got 'five'",
        ),
        (
            subscription_json(Quantity=-1),
            "item 1 (id 5001): Quantity: expected a number of seats (0 or more), got -1",
        ),
        (subscription_json(Quantity=None), "item 1 (id 5001): Quantity: missing"),
        (
            subscription_json(Quantity=True),
            "item 1 (id 5001): Quantity: expected a whole number, got true",
        ),
        (
            subscription_json(Quantity=2.5),
            "item 1 (id 5001): Quantity: expected a whole number, got 2.5",
        ),
        (subscription_json(Id=None), "item 1: Id: missing"),
        (
            subscription_json(CustomerTenant=7),
            "item 1 (id 5001): CustomerTenant: expected an object, got 7",
        ),
        (
            subscription_json(PartNumber=":0001"),
            "item 1 (id 5001): PartNumber: expected productId:skuId, got ':0001'",
        ),
        (
            subscription_json(PartNumber=None, Product=None),
            "item 1 (id 5001): Product.PartNumber: missing",
        ),
        (subscription_json(PartNumber=5), "item 1 (id 5001): PartNumber: expected a string, got 5"),
        (subscription_json(Status=None), "item 1 (id 5001): Status: missing"),
        (
            subscription_json(Status=[1]),
            "item 1 (id 5001): Status: expected a subscription status, got [1]",
        ),
        (
            subscription_json(BillingCycle={}),
            "item 1 (id 5001): BillingCycle: expected a billing cycle, got {}",
        ),
        (
            subscription_json(StartDate="yesterday"),
            "item 1 (id 5001): StartDate: expected an ISO-8601 date and time, got 'yesterday'",
        ),
        (
            subscription_json(AutoRenewEnabled="yes"),
            "item 1 (id 5001): AutoRenewEnabled: expected true or false, got 'yes'",
        ),
        (
            subscription_json(OrderId=[1]),
            "item 1 (id 5001): OrderId: expected an id (a number or a string), got [1]",
        ),
    ],
)
def test_a_malformed_subscription_is_an_error_naming_the_item_and_field(
    item: Any, expected: str
) -> None:
    with pytest.raises(ApiError) as caught:
        parse_subscriptions([subscription_json(), item], tenant=111111)
    assert message(caught) == expected


# --------------------------------------------------------------------------- processed orders


def test_a_processed_order_reads_into_a_record() -> None:
    assert parse_processed_order(order_json(), tenant=111111) == ProcessedOrder(
        order_reference_id="1414",
        customer_tenant_id=111111,
        catalog_id="CFQ7TTC0LF8R:0010:CFQ7TTC0Q3X5",
        product_id="CFQ7TTC0LF8R",
        sku_id="0010",
        name="Microsoft 365 Business Basic",
        quantity=20,
        billing_cycle="monthly",
        term_duration="P1M",
        created=datetime(2025, 8, 4, 9, 17, 18, 193000, tzinfo=UTC),
        order_state="succeeded",
        error=None,
    )


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("Succeeded", "succeeded"),
        ("Successful", "succeeded"),
        ("Failed", "failed"),
        ("Processing", "processing"),
        (1, "succeeded"),
        (2, "failed"),
        (4, "processing"),
        (0, "none"),
        (None, "unknown"),
        ("Queued", "queued"),
    ],
)
def test_order_states(state: Any, expected: str) -> None:
    order = parse_processed_order(order_json(OrderState=state), tenant=1)
    assert order.order_state == expected
    assert order.succeeded is (expected == "succeeded")
    assert order.failed is (expected == "failed")


def test_an_order_error_and_an_int_billing_cycle_are_read() -> None:
    order = parse_processed_order(
        order_json(
            BillingCycle=5,
            Created="2025-08-04T11:17:18+02:00",
            Error={"ErrorCode": "QuantityOutOfRange", "Message": "Too many seats"},
        ),
        tenant=1,
    )
    assert order.billing_cycle == "triennial"
    assert order.created == datetime(2025, 8, 4, 9, 17, 18, tzinfo=UTC)
    assert order.error == "QuantityOutOfRange: Too many seats"
    assert parse_processed_order(order_json(Error="boom"), tenant=1).error == "boom"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"CatalogId": None}, "item 0 (id 1414): CatalogId: missing"),
        ({"OrderReferenceId": None}, "item 0: OrderReferenceId: missing"),
        ({"Quantity": "20"}, None),
        (
            {"Quantity": "twenty"},
            "item 0 (id 1414): Quantity: expected a whole number, got 'twenty'",
        ),
        (
            {"Created": 1722763038},
            "item 0 (id 1414): Created: expected an ISO-8601 date and time, got 1722763038",
        ),
        ({"OrderState": 1.5}, "item 0 (id 1414): OrderState: expected an order state, got 1.5"),
    ],
)
def test_malformed_processed_orders(overrides: dict[str, Any], expected: str | None) -> None:
    if expected is None:
        assert parse_processed_orders([order_json(**overrides)], tenant=1)[0].quantity == 20
        return
    with pytest.raises(ApiError) as caught:
        parse_processed_orders([order_json(**overrides)], tenant=1)
    assert message(caught) == expected


# --------------------------------------------------------------------------- asset orders


def test_an_asset_order_reads_into_a_record() -> None:
    assert parse_asset_order(asset_order_json()) == AssetOrder(
        external_order_id="reconciler-abc",
        customer_tenant_id=111111,
        lines=(
            AssetOrderLine(
                product_id="CFQ7TTC0LF8R",
                sku_id="0010",
                quantity=5,
                billing_cycle="monthly",
                term_duration="P1M",
                type="subscription",
                catalog_item_id="CFQ7TTC0LF8R:0010:CFQ7TTC0Q3X5",
            ),
        ),
        errors=(),
    )


def test_asset_order_errors_are_collected_from_the_order_and_its_lines() -> None:
    item = asset_order_json(errors=[{"orderGroupId": "", "code": 7, "description": "Held"}])
    item["orderLines"][0]["errors"] = [{"reasonCode": "QuantityOutOfRange", "description": "No"}]
    assert parse_asset_order(item).errors == ("7: Held", "QuantityOutOfRange: No")


def test_asset_orders_must_carry_exactly_the_external_order_id_and_tenant_asked_for() -> None:
    items = [
        asset_order_json(),
        asset_order_json(externalOrderId="reconciler-ABC"),
        asset_order_json(externalOrderId="reconciler-other"),
        asset_order_json(resellerCustomerId=222222),
        asset_order_json(externalOrderId=None),
    ]
    found = parse_asset_orders(items, tenant=111111, external_order_id="reconciler-abc")
    assert [(o.external_order_id, o.customer_tenant_id) for o in found] == [
        ("reconciler-abc", 111111)
    ]


def test_a_malformed_asset_order_line_is_named() -> None:
    item = asset_order_json()
    del item["orderLines"][0]["quantity"]
    with pytest.raises(ApiError) as caught:
        parse_asset_orders([item], tenant=111111, external_order_id="reconciler-abc")
    assert message(caught) == "item 0 (id reconciler-abc): orderLines[0].quantity: missing"
    with pytest.raises(ApiError) as caught:
        parse_asset_order(asset_order_json(orderLines=[3]))
    assert message(caught) == "orderLines[0]: expected an object, got 3"


# --------------------------------------------------------------------------- agreement products


def test_an_agreement_product_reads_into_a_catalog_entry() -> None:
    assert parse_agreement_product(agreement_product_json()) == CatalogEntry(
        product_id="CFQ7TTC0LF8R",
        sku_id="0010",
        part_number="CFQ7TTC0LF8R:0010",
        product_variant_id=2622144,
        name="Microsoft 365 Business Basic",
        product_name="Microsoft 365 Business Basic (NCE)",
        sales_price=Price(Decimal("5.6"), "EUR"),
        recommended_retail_price=Price(Decimal("6"), "EUR"),
        minimum_quantity=1,
        maximum_quantity=300,
    )


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        (None, None),
        ({}, None),
        ({"value": None, "currencyCode": "EUR"}, None),
        ({"value": "11.70", "currencyCode": "NOK"}, Price(Decimal("11.70"), "NOK")),
        ({"value": 0, "currencyCode": "EUR"}, Price(Decimal(0), "EUR")),
        ({"value": 0.1, "currencyCode": "EUR"}, Price(Decimal("0.1"), "EUR")),
    ],
)
def test_an_absent_price_is_unknown_never_zero(
    price: dict[str, Any] | None, expected: Price | None
) -> None:
    entry = parse_agreement_product(agreement_product_json(salesPrice=price))
    assert entry.sales_price == expected


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"salesPrice": {"value": True, "currencyCode": "EUR"}},
            "item 1 (id 2622144): salesPrice.value: expected an amount, got true; "
            "its price is unknown",
        ),
        (
            {"salesPrice": {"value": "cheap", "currencyCode": "EUR"}},
            "item 1 (id 2622144): salesPrice.value: expected an amount, got 'cheap'; "
            "its price is unknown",
        ),
        (
            {"salesPrice": {"value": "NaN", "currencyCode": "EUR"}},
            "item 1 (id 2622144): salesPrice.value: expected an amount, got 'NaN'; "
            "its price is unknown",
        ),
        (
            {"salesPrice": {"value": 5, "currencyCode": None}},
            "item 1 (id 2622144): salesPrice.currencyCode: missing; its price is unknown",
        ),
        (
            {"salesPrice": 5},
            "item 1 (id 2622144): salesPrice: expected an object, got 5; its price is unknown",
        ),
        (
            {"maximumQuantity": "lots"},
            "item 1 (id 2622144): maximumQuantity: expected a whole number, got 'lots'",
        ),
        ({"productVariant": {"id": 1}}, "item 1 (id 1): productVariant.partNumber: missing"),
        ({"productVariant": None}, "item 1: productVariant.partNumber: missing"),
    ],
)
def test_one_unreadable_agreement_product_hides_only_itself(
    overrides: dict[str, Any], expected: str
) -> None:
    other = agreement_product_json(
        name="Premium", productVariant={"id": 7, "partNumber": "CFQ7TTC0LH18:0001"}
    )
    entries = parse_agreement_products([other, agreement_product_json(**overrides), other])
    assert entries.warnings == (expected,)
    assert [e.sales_price for e in entries if e.name == "Premium"] == [
        Price(Decimal("5.6"), "EUR")
    ] * 2
    kept = [e for e in entries if e.name != "Premium"]
    if "its price is unknown" in expected:
        # Named, with no price rather than a wrong one.
        assert [(e.product, e.sales_price, e.recommended_retail_price) for e in kept] == [
            ("CFQ7TTC0LF8R:0010", None, None)
        ]
    else:
        assert kept == []


def test_an_agreement_product_without_a_name_is_named_after_its_variant() -> None:
    entry = parse_agreement_product(agreement_product_json(name=None))
    assert entry.name == entry.product_name == "Microsoft 365 Business Basic (NCE)"


# --------------------------------------------------------------------------- the client, offline


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.POST, TOKEN_URL, json={"AccessToken": "tok-123", "ExpiresIn": 3600})
        yield mock


@pytest.fixture
def make_client() -> Iterator[Callable[..., CrayonClient]]:
    clients: list[CrayonClient] = []

    def make(env: dict[str, str] | None = None, **kwargs: Any) -> CrayonClient:
        client = CrayonClient(
            ApiSettings.from_env(env or ENV),
            retry=RetryPolicy(max_attempts=3),
            sleep=lambda _: None,
            **kwargs,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def query(call: Any) -> dict[str, list[str]]:
    return parse_qs(str(call.request.url).split("?", 1)[1])


def test_the_client_is_an_api_reader(make_client: Callable[..., CrayonClient]) -> None:
    reader: ApiReader = make_client()
    assert reader is not None


def test_reads_send_the_documented_filters(
    mocked: responses.RequestsMock, make_client: Callable[..., CrayonClient]
) -> None:
    for url in (SUBSCRIPTIONS_URL, ORDERS_URL, ASSET_ORDERS_URL, AGREEMENT_PRODUCTS_URL):
        mocked.add(responses.GET, url, json={"Items": [], "TotalHits": 0})
    client = make_client()
    assert client.read_subscriptions(42, statuses=STATUS_ACTIVE) == []
    assert client.read_processed_orders(42) == []
    assert client.find_asset_orders(42, "reconciler-1") == []
    assert client.read_agreement_products(42, search="Basic") == []
    assert client.read_agreement_products(42) == []
    queries = [query(call) for call in mocked.calls[1:]]
    assert queries == [
        {"customerTenantId": ["42"], "statuses": ["1"], "page": ["1"], "pageSize": ["100"]},
        {"customerTenantId": ["42"], "page": ["1"], "pageSize": ["100"]},
        {
            "ResellerCustomerId": ["42"],
            "ExternalOrderId": ["reconciler-1"],
            "Page": ["1"],
            "PageSize": ["100"],
        },
        {"CustomerTenantId": ["42"], "Search": ["Basic"], "Page": ["1"], "PageSize": ["100"]},
        {"CustomerTenantId": ["42"], "Page": ["1"], "PageSize": ["100"]},
    ]


def test_a_bare_array_is_paged_until_a_short_page(
    mocked: responses.RequestsMock, make_client: Callable[..., CrayonClient]
) -> None:
    everything = [subscription_json(Id=n) for n in range(5)]

    def page(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        q = parse_qs(str(request.url).split("?", 1)[1])
        number, size = int(q["page"][0]), int(q["pageSize"][0])
        return 200, {}, json.dumps(everything[(number - 1) * size : number * size])

    mocked.add_callback(responses.GET, SUBSCRIPTIONS_URL, callback=page)
    client = make_client(page_size=2)
    assert [s.id for s in client.read_subscriptions(111111)] == [0, 1, 2, 3, 4]
    assert len(mocked.calls) == 1 + 3


def test_a_bare_array_that_ignores_paging_is_read_once(
    mocked: responses.RequestsMock, make_client: Callable[..., CrayonClient]
) -> None:
    mocked.add(responses.GET, SUBSCRIPTIONS_URL, json=[subscription_json(Id=n) for n in range(3)])
    client = make_client(page_size=2)
    assert [s.id for s in client.read_subscriptions(111111)] == [0, 1, 2]


@pytest.mark.parametrize(
    "answer",
    [
        [subscription_json(Id=1), subscription_json(Id=2)],
        {"Items": [subscription_json(Id=1), subscription_json(Id=2)], "TotalHits": 5},
    ],
    ids=["bare-array", "items"],
)
def test_a_server_repeating_a_page_is_refused_rather_than_read_partly(
    mocked: responses.RequestsMock, make_client: Callable[..., CrayonClient], answer: Any
) -> None:
    mocked.add(responses.GET, SUBSCRIPTIONS_URL, json=answer)
    with pytest.raises(ApiError, match="answered page 2 with the items of page 1") as caught:
        make_client(page_size=2).read_subscriptions(111111)
    assert caught.value.kind is FailureKind.DEFINITIVE


def test_an_unreadable_item_fails_the_read_with_the_url(
    mocked: responses.RequestsMock, make_client: Callable[..., CrayonClient]
) -> None:
    items = [subscription_json(), subscription_json(Quantity="five")]
    mocked.add(responses.GET, SUBSCRIPTIONS_URL, json={"Items": items, "TotalHits": 2})
    with pytest.raises(ApiError) as caught:
        make_client().read_subscriptions(111111)
    assert str(caught.value) == (
        "read subscriptions: item 1 (id 5001): Quantity: expected a whole number, got 'five'"
    )
    assert caught.value.kind is FailureKind.DEFINITIVE
    assert (caught.value.method, caught.value.url) == ("GET", SUBSCRIPTIONS_URL)


def unreadable_tenant() -> list[dict[str, Any]]:
    """A tenant's subscriptions, one with neither part number (both nullable in the
    published document), one of another tenant that is unreadable too."""
    return [
        subscription_json(Id=1),
        subscription_json(Id=2, PartNumber=None, Product={"Id": 7, "PartNumber": None}),
        subscription_json(Id=3, Quantity=4),
        subscription_json(Id=4, CustomerTenant={"Id": 222222}, Quantity="many"),
    ]


def test_an_unreadable_subscription_is_named_and_the_rest_read(
    mocked: responses.RequestsMock, make_client: Callable[..., CrayonClient]
) -> None:
    mocked.add(
        responses.GET, SUBSCRIPTIONS_URL, json={"Items": unreadable_tenant(), "TotalHits": 4}
    )
    read = make_client().read_subscriptions(111111, skip_unreadable=True)
    assert [s.id for s in read] == [1, 3]
    assert not read.complete
    [item] = read.unreadable
    assert (item.position, item.item_id, item.customer_tenant_id, item.product) == (
        1,
        "2",
        111111,
        None,
    )
    assert read.warnings == ("item 1 (id 2): Product.PartNumber: missing",)


def test_by_default_an_unreadable_subscription_fails_the_tenant(
    mocked: responses.RequestsMock, make_client: Callable[..., CrayonClient]
) -> None:
    # Never "no seats" by accident: a caller must ask to read around one.
    mocked.add(
        responses.GET, SUBSCRIPTIONS_URL, json={"Items": unreadable_tenant(), "TotalHits": 4}
    )
    with pytest.raises(ApiError) as caught:
        make_client().read_subscriptions(111111)
    assert str(caught.value) == "read subscriptions: item 1 (id 2): Product.PartNumber: missing"


def test_unreadable_items_are_numbered_across_pages(
    mocked: responses.RequestsMock, make_client: Callable[..., CrayonClient]
) -> None:
    first = [subscription_json(Id=1), subscription_json(Id=2)]
    second = [subscription_json(Id=3), subscription_json(Id=4, Status=None)]
    mocked.add(responses.GET, SUBSCRIPTIONS_URL, json={"Items": first, "TotalHits": 4})
    mocked.add(responses.GET, SUBSCRIPTIONS_URL, json={"Items": second, "TotalHits": 4})
    read = make_client(page_size=2).read_subscriptions(111111, skip_unreadable=True)
    assert read.warnings == ("item 3 (id 4): Status: missing",)
    assert read.unreadable[0].product == "CFQ7TTC0LH16:0001"


def test_an_unreadable_item_outside_the_asked_statuses_is_not_ours() -> None:
    items = [subscription_json(Id=1), subscription_json(Id=2, Status=2, Quantity="x")]
    assert parse_subscriptions(items, tenant=111111, statuses=STATUS_ACTIVE).complete
    assert not parse_subscriptions(items, tenant=111111, skip_unreadable=True).complete


def test_unreadable_processed_orders_and_asset_orders_are_named() -> None:
    orders = parse_processed_orders(
        [order_json(), order_json(OrderReferenceId=1415, Quantity="lots")],
        tenant=1,
        skip_unreadable=True,
    )
    assert [o.order_reference_id for o in orders] == ["1414"]
    assert orders.warnings == ("item 1 (id 1415): Quantity: expected a whole number, got 'lots'",)
    assert orders.unreadable[0].product == "CFQ7TTC0LF8R:0010"
    bad = asset_order_json(orderLines=[{"productId": "X"}])
    found = parse_asset_orders(
        [bad, asset_order_json(externalOrderId="reconciler-other", errors=5)],
        tenant=111111,
        external_order_id="reconciler-abc",
        skip_unreadable=True,
    )
    # The other order's problem is not ours: only the one asked for is named.
    assert found.warnings == ("item 0 (id reconciler-abc): orderLines[0].skuId: missing",)


def test_an_unreadable_agreement_product_leaves_the_others_priced(
    mocked: responses.RequestsMock, make_client: Callable[..., CrayonClient]
) -> None:
    # Before: one null currency hid every name and price of the tenant.
    products = [
        agreement_product_json(),
        agreement_product_json(
            productVariant={"id": 9, "partNumber": "CFQ7TTC0LH18:0001"},
            salesPrice={"value": 20.6, "currencyCode": None},
        ),
    ]
    mocked.add(responses.GET, AGREEMENT_PRODUCTS_URL, json={"Items": products, "TotalHits": 2})
    entries = make_client().read_agreement_products(111111)
    assert [(e.product, e.sales_price) for e in entries] == [
        ("CFQ7TTC0LF8R:0010", Price(Decimal("5.6"), "EUR")),
        ("CFQ7TTC0LH18:0001", None),
    ]
    assert entries.warnings == (
        "item 1 (id 9): salesPrice.currencyCode: missing; its price is unknown",
    )


def test_reads_are_retried_like_every_get(
    mocked: responses.RequestsMock, make_client: Callable[..., CrayonClient]
) -> None:
    mocked.add(responses.GET, ORDERS_URL, status=503)
    mocked.add(responses.GET, ORDERS_URL, json={"Items": [order_json()], "TotalHits": 1})
    client = make_client()
    [order] = client.read_processed_orders(111111)
    assert order.order_reference_id == "1414"
    assert client.retries == 1


def test_page_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="page_size"):
        CrayonClient(ApiSettings.from_env(ENV), page_size=0)


# --------------------------------------------------------------------------- against the simulator


def buy(
    client: CrayonClient,
    quantity: int,
    *,
    tenant: int = 111111,
    product: str = BASIC,
    cycle: str = "monthly",
    term: str = "P1M",
) -> str:
    """Verify and check out one order; returns its externalOrderId."""
    product_id, sku_id = product.split(":")
    identity = Identity(tenant, product_id, sku_id, cycle, term)
    external_order_id = new_external_order_id()
    verified = client.verify(
        build_order(Purchase("acme/x", identity, quantity), quantity, external_order_id)
    )
    assert verified.ok, verified.errors
    client.checkout(verified)
    return external_order_id


@pytest.fixture(params=LIST_SHAPES)
def sim(request: pytest.FixtureRequest, simulator_factory: Callable[..., Simulator]) -> Simulator:
    """The simulator answering lists in each shape: the envelope, and the bare array."""
    return simulator_factory(list_shape=request.param)


@pytest.fixture
def live(sim: Simulator, make_client: Callable[..., CrayonClient]) -> CrayonClient:
    return make_client(sim.env(), page_size=2)


def test_the_client_reads_back_exactly_what_checkouts_created(
    sim: Simulator, live: CrayonClient
) -> None:
    started = datetime.now(UTC)
    refs = [buy(live, n) for n in (3, 4, 5)]
    refs.append(buy(live, 7, product=PREMIUM, cycle="annual", term="P1Y"))
    other = buy(live, 9, tenant=222222)
    calls_before = len(sim.calls)

    subscriptions = live.read_subscriptions(111111)
    assert [(s.product, s.quantity, s.billing_cycle, s.term_duration) for s in subscriptions] == [
        (BASIC, 3, "monthly", "P1M"),
        (BASIC, 4, "monthly", "P1M"),
        (BASIC, 5, "monthly", "P1M"),
        (PREMIUM, 7, "annual", "P1Y"),
    ]
    assert all(s.active and s.customer_tenant_id == 111111 for s in subscriptions)
    assert len({s.id for s in subscriptions}) == 4  # each NCE order its own subscription
    assert subscriptions[0].name == "Microsoft 365 Business Basic"

    orders = live.read_processed_orders(111111)
    assert [(o.product, o.quantity, o.billing_cycle, o.order_state) for o in orders] == [
        (BASIC, 3, "monthly", "succeeded"),
        (BASIC, 4, "monthly", "succeeded"),
        (BASIC, 5, "monthly", "succeeded"),
        (PREMIUM, 7, "annual", "succeeded"),
    ]
    assert [o.order_reference_id for o in orders] == [s.order_id for s in subscriptions]
    assert all(
        o.created is not None and o.created >= started.replace(microsecond=0) for o in orders
    )
    checkouts = [c for c in sim.checkouts if c.tenant == 111111]
    assert [o.order_reference_id for o in orders] == [str(c.order_reference_id) for c in checkouts]

    for ref, quantity in zip(refs, (3, 4, 5, 7), strict=True):
        [asset_order] = live.find_asset_orders(111111, ref)
        assert asset_order.external_order_id == ref
        assert [line.quantity for line in asset_order.lines] == [quantity]
        assert asset_order.lines[0].type == "subscription"
        assert asset_order.errors == ()
    assert live.find_asset_orders(111111, other) == []  # another tenant's order
    assert live.find_asset_orders(111111, "reconciler-never-sent") == []
    assert [s.quantity for s in live.read_subscriptions(222222)] == [9]

    reads = [c for c in sim.calls[calls_before:]]
    assert {c.endpoint for c in reads} == {"subscriptions", "orders", "asset-orders"}
    # Four subscriptions and orders at two per page: every page read, none twice; a
    # bare list has no TotalHits, so only an empty third page ends it.
    pages = 2 if sim.list_shape == "envelope" else 3
    assert [c.endpoint for c in reads].count("orders") == pages


def test_paging_reads_every_page(sim: Simulator, live: CrayonClient) -> None:
    for n in range(1, 8):
        buy(live, n)
    assert [s.quantity for s in live.read_subscriptions(111111)] == list(range(1, 8))
    pages = [c.path for c in sim.calls if c.endpoint == "subscriptions"]
    assert len(pages) == 4
    assert all("pageSize=2" in path for path in pages)


def test_portal_changes_show_in_the_reads(sim: Simulator, live: CrayonClient) -> None:
    buy(live, 10)
    [bought] = live.read_subscriptions(111111)
    sim.portal_set_quantity(bought.id, 15)
    added = sim.portal_add_subscription(
        111111, PREMIUM, 4, billing_cycle="annual", term_duration="P1Y"
    )
    hidden = sim.portal_add_subscription(111111, BASIC, 2, record_order=False)
    sim.portal_cancel(hidden)

    everything = {s.id: s for s in live.read_subscriptions(111111)}
    assert (everything[bought.id].quantity, everything[bought.id].status) == (15, "active")
    assert (everything[added].product, everything[added].quantity) == (PREMIUM, 4)
    assert (everything[added].billing_cycle, everything[added].term_duration) == ("annual", "P1Y")
    assert (everything[hidden].status, everything[hidden].quantity) == ("customer-cancellation", 2)
    active = live.read_subscriptions(111111, statuses=STATUS_ACTIVE)
    assert sorted(s.id for s in active) == sorted([bought.id, added])
    assert sim.active_seats(111111, BASIC) == 15
    assert sim.seats(111111, BASIC) == 10  # what checkouts bought

    orders = live.read_processed_orders(111111)
    assert [(o.product, o.quantity) for o in orders] == [(BASIC, 10), (PREMIUM, 4)]
    assert orders[1].order_reference_id == everything[added].order_id
    assert everything[hidden].order_id is None
    assert sim.count("checkout") == 1


def test_a_500_without_recording_leaves_no_trace(sim: Simulator, live: CrayonClient) -> None:
    sim.fail_checkout_unrecorded()
    with pytest.raises(ApiError) as caught:
        buy(live, 6)
    assert caught.value.status == 500
    assert caught.value.kind is FailureKind.AMBIGUOUS
    lost = sim.requests_log[-1].body["externalOrderId"]
    assert live.read_subscriptions(111111) == []
    assert live.read_processed_orders(111111) == []
    assert live.find_asset_orders(111111, lost) == []
    assert sim.checkouts == []


def test_a_500_after_recording_leaves_the_order_to_be_found(
    sim: Simulator, live: CrayonClient
) -> None:
    sim.drop_after_checkout(mode="500")
    with pytest.raises(ApiError) as caught:
        buy(live, 6)
    assert caught.value.kind is FailureKind.AMBIGUOUS
    taken = sim.checkouts[0].external_order_id
    assert taken is not None
    [asset_order] = live.find_asset_orders(111111, taken)
    assert asset_order.lines[0].quantity == 6
    assert [o.quantity for o in live.read_processed_orders(111111)] == [6]
    assert [s.quantity for s in live.read_subscriptions(111111)] == [6]


def test_agreement_products_give_names_and_prices(sim: Simulator, live: CrayonClient) -> None:
    catalogue = {entry.product: entry for entry in live.read_agreement_products(111111)}
    assert set(catalogue) == {item.key for item in sim.catalog}
    basic = catalogue[BASIC]
    assert (basic.name, basic.sales_price) == (
        "Microsoft 365 Business Basic",
        Price(Decimal("5.60"), "EUR"),
    )
    assert basic.maximum_quantity == 300
    [premium] = live.read_agreement_products(111111, search="business premium")
    assert premium.product == PREMIUM
    assert premium.sales_price == Price(Decimal("20.6"), "EUR")


def test_a_catalogue_without_prices_gives_unknown_prices(
    simulator_factory: Callable[..., Simulator], make_client: Callable[..., CrayonClient]
) -> None:
    item = CatalogItem("PROD1", "0001", "AV1", "Product One", 10, ("P1M",), (1,))
    sim = simulator_factory(catalog=[item], tenants=[42])
    [entry] = make_client(sim.env()).read_agreement_products(42)
    assert (entry.product, entry.name, entry.sales_price) == ("PROD1:0001", "Product One", None)


def test_an_unknown_tenant_is_a_definitive_404(live: CrayonClient) -> None:
    with pytest.raises(ApiError) as caught:
        live.read_subscriptions(999999)
    assert (caught.value.status, caught.value.kind) == (404, FailureKind.DEFINITIVE)
