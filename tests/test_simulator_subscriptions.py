"""The simulator's subscriptions over HTTP: one subscription, its update, the
168-hour cancellation window, the clock, the faults of an update, lists that lag
behind what happened, failed portal orders and answers that are not JSON.

Driven with plain ``requests``, as any client would: the simulator is checked
against its own rules here, not through the reconciler's client.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from reconciler.simulator import CANCELLATION_WINDOW, SeatBatch, Simulator

TENANT = 111111
BASIC = "CFQ7TTC0LF8R:0010"


@pytest.fixture
def simulator(simulator_factory: Callable[..., Simulator]) -> Simulator:
    """The lists these tests read are envelopes, whatever RECONCILER_SIM_LIST_SHAPE says;
    the bare shape has tests of its own."""
    return simulator_factory(list_shape="envelope")


class Api:
    """An authenticated session with the simulator."""

    def __init__(self, sim: Simulator, http: requests.Session) -> None:
        self.sim = sim
        self.http = http
        answer = http.post(
            sim.url + "/api/v1/connect/token",
            data={
                "grant_type": "password",
                "username": sim.username,
                "password": sim.password,
                "scope": "CustomerApi",
            },
            auth=(sim.client_id, sim.client_secret),
            timeout=5,
        )
        self.headers = {"Authorization": f"Bearer {answer.json()['AccessToken']}"}

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.http.get(self.sim.url + path, params=params, headers=self.headers, timeout=5)

    def put(self, path: str, body: Any) -> requests.Response:
        data = body if isinstance(body, bytes) else json.dumps(body)
        return self.http.put(self.sim.url + path, data=data, headers=self.headers, timeout=5)

    def one(self, number: int) -> dict[str, Any]:
        answer = self.get(f"/api/v1/subscriptions/{number}")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def update(self, number: int, **changes: Any) -> requests.Response:
        return self.put(f"/api/v1/subscriptions/{number}", self.one(number) | changes)


@pytest.fixture
def api(simulator: Simulator) -> Iterator[Api]:
    with requests.Session() as http:
        yield Api(simulator, http)


def bought(sim: Simulator, quantity: int = 10) -> int:
    return sim.portal_add_subscription(TENANT, BASIC, quantity)


def message(answer: requests.Response) -> str:
    body = answer.json()
    assert set(body) == {"ErrorCode", "Message", "Parameters", "ObjectErrors"}
    assert body["ErrorCode"].startswith(str(answer.status_code))
    text: str = body["Message"]
    return text


# --------------------------------------------------------------------------- reading


@pytest.mark.parametrize(
    "path",
    ["/api/v1/subscriptions/{}", "/api/v1/Subscriptions/{}/", "/API/V1/SUBSCRIPTIONS/{}"],
)
def test_one_subscription_in_any_casing(simulator: Simulator, api: Api, path: str) -> None:
    number = bought(simulator, 4)
    answer = api.get(path.format(number))
    assert answer.status_code == 200
    body = answer.json()
    assert (body["Id"], body["Quantity"], body["Status"], body["AutoRenewEnabled"]) == (
        number,
        4,
        1,
        True,
    )
    assert isinstance(body["Product"]["Id"], int)
    assert isinstance(body["OrderId"], str)
    created = datetime.fromisoformat(body["CreationDate"])
    assert body["StartDate"] == body["EffectiveStartDate"] == body["CreationDate"]
    assert datetime.fromisoformat(body["CommitmentEndDate"]) - created >= timedelta(days=28)
    assert body["EndDate"] == body["CommitmentEndDate"]


def test_an_unknown_or_malformed_id_is_404(api: Api) -> None:
    assert api.get("/api/v1/subscriptions/424242").status_code == 404
    assert api.get("/api/v1/subscriptions/abc").status_code == 404
    assert api.put("/api/v1/subscriptions/424242", {"Quantity": 1}).status_code == 404


def test_one_subscription_needs_a_token(simulator: Simulator) -> None:
    number = bought(simulator)
    assert (
        requests.get(f"{simulator.url}/api/v1/subscriptions/{number}", timeout=5).status_code == 401
    )


def test_checkout_subscriptions_carry_their_order_and_asset_order_line(
    simulator: Simulator, api: Api
) -> None:
    order = {
        "resellerCustomerId": TENANT,
        "externalOrderId": "reconciler-x",
        "orderLines": [
            {
                "productId": "CFQ7TTC0LF8R",
                "skuId": "0010",
                "quantity": 3,
                "billingCycle": 1,
                "termDuration": "P1M",
                "type": 3,
            },
            {
                "productId": "CFQ7TTC0LH18",
                "skuId": "0001",
                "quantity": 2,
                "billingCycle": 1,
                "termDuration": "P1M",
                "type": 3,
            },
        ],
    }
    verified = api.http.post(
        simulator.url + "/api/v1/assets/verify", json=order, headers=api.headers, timeout=5
    ).json()
    api.http.post(
        simulator.url + "/api/v1/assets/checkout", json=verified, headers=api.headers, timeout=5
    )
    first, second = simulator.subscriptions
    [asset_order] = api.get(
        "/api/v1/assets/orders", ResellerCustomerId=TENANT, ExternalOrderId="reconciler-x"
    ).json()["Items"]
    assert [line["subscriptionId"] for line in asset_order["orderLines"]] == [first.id, second.id]
    [reference] = {o.reference for o in simulator.processed_orders}
    assert api.one(first.id)["OrderId"] == api.one(second.id)["OrderId"] == str(reference)


# --------------------------------------------------------------------------- updates


def test_an_increase_adds_a_batch_at_the_simulated_now(simulator: Simulator, api: Api) -> None:
    number = bought(simulator, 10)
    simulator.advance_clock(hours=30)
    answer = api.update(number, Quantity=13)
    assert answer.status_code == 200, answer.text
    assert answer.json()["Quantity"] == 13
    batches = simulator.subscription(number).batches
    assert [b.seats for b in batches] == [10, 3]
    assert batches[1].added - batches[0].added >= timedelta(hours=30)


def test_reductions_take_the_newest_seats_within_the_window(simulator: Simulator, api: Api) -> None:
    number = bought(simulator, 10)
    simulator.advance_clock(hours=100)
    api.update(number, Quantity=14)  # 4 seats, 100 hours after the first 10
    simulator.advance_clock(hours=100)  # the first 10 are 200 hours old, the 4 are 100
    assert api.update(number, Quantity=11).status_code == 200
    assert [b.seats for b in simulator.subscription(number).batches] == [10, 1]
    refused = api.update(number, Quantity=9)
    assert refused.status_code == 409
    assert message(refused).startswith(
        f"Subscription {number} cannot go from 11 to 9 seats: only 1 of them were added "
        "within the last 168 hours"
    )
    assert refused.json()["ObjectErrors"][0]["ErrorCode"] == "CancellationWindowExpired"
    simulator.advance_clock(hours=70)
    none_left = api.update(number, Quantity=10)
    assert "none of them were added within the last 168 hours" in message(none_left)
    assert simulator.subscription(number).quantity == 11


def test_the_window_is_168_hours(simulator: Simulator, api: Api) -> None:
    assert timedelta(hours=168) == CANCELLATION_WINDOW
    number = bought(simulator, 5)
    simulator.advance_clock(hours=167, minutes=59)
    assert api.update(number, Quantity=4).status_code == 200
    simulator.advance_clock(minutes=2)
    assert api.update(number, Quantity=3).status_code == 409


def test_a_cancellation_inside_the_window(simulator: Simulator, api: Api) -> None:
    number = bought(simulator, 6)
    simulator.advance_clock(hours=160)
    answer = api.update(number, Status=2)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["Status"], answer.json()["Quantity"]) == (2, 6)
    assert simulator.active_seats(TENANT, BASIC) == 0
    again = api.update(number, Status=2)
    assert again.status_code == 409
    assert "is not active (status 2)" in message(again)


def test_a_cancellation_after_the_window_is_refused(simulator: Simulator, api: Api) -> None:
    number = bought(simulator, 6)
    simulator.advance_clock(hours=169)
    answer = api.update(number, Status=2)
    assert answer.status_code == 409
    assert "more than 168 hours ago: it can no longer be cancelled" in message(answer)
    assert simulator.subscription(number).active


def test_auto_renew_changes_at_any_time(simulator: Simulator, api: Api) -> None:
    number = bought(simulator)
    simulator.advance_clock(hours=1000)
    assert api.update(number, AutoRenewEnabled=False).json()["AutoRenewEnabled"] is False
    assert simulator.subscription(number).auto_renew is False


@pytest.mark.parametrize(
    ("changes", "status", "problem"),
    [
        ({"Quantity": 0}, 400, "Quantity must be at least 1, not 0; to cancel"),
        ({"Quantity": -1}, 400, "Quantity must be at least 1"),
        ({"Quantity": "12"}, 400, "Quantity must be a whole number."),
        ({"Status": 4}, 400, "Status can only be changed to Suspended (2), not 4."),
        ({"Status": 128}, 400, "Status 128 is not a subscription status."),
        ({"Status": 2, "Quantity": 3}, 400, "Change the quantity or the status, not both."),
        ({"AutoRenewEnabled": "no"}, 400, "AutoRenewEnabled must be true or false."),
        ({"Colour": "blue"}, 400, "Colour is not a field of a subscription."),
        ({"quantity": 11}, 400, "quantity is given twice."),
        ({"Id": 1}, 400, "The body is subscription 1, the path subscription"),
        ({"PartNumber": "CFQ7TTC0LH18:0001"}, 400, "partNumber cannot be changed."),
        ({"CustomerTenant": {"Id": 222222}}, 400, "customerTenant cannot be changed."),
    ],
)
def test_bad_updates_are_refused_with_crayons_error_body(
    simulator: Simulator, api: Api, changes: dict[str, Any], status: int, problem: str
) -> None:
    number = bought(simulator, 10)
    answer = api.update(number, **changes)
    assert answer.status_code == status
    assert problem in message(answer)
    assert simulator.subscription(number).quantity == 10
    assert simulator.subscription(number).active


@pytest.mark.parametrize("body", [b"[1]", b"not json", b"[" * 50_000])
def test_a_body_that_is_no_subscription_is_400(simulator: Simulator, api: Api, body: bytes) -> None:
    assert api.put(f"/api/v1/subscriptions/{bought(simulator)}", body).status_code == 400


def test_names_are_read_ignoring_case_and_nested_objects_compared_so(
    simulator: Simulator, api: Api
) -> None:
    number = bought(simulator, 10)
    body = {k[0].lower() + k[1:]: v for k, v in api.one(number).items()}
    body["customerTenant"] = {"id": TENANT}
    body["quantity"] = 12
    assert api.put(f"/api/v1/subscriptions/{number}", body).status_code == 200
    assert simulator.subscription(number).quantity == 12


def test_a_minimal_body_is_enough(simulator: Simulator, api: Api) -> None:
    number = bought(simulator, 10)
    assert api.put(f"/api/v1/subscriptions/{number}", {"Quantity": 11}).status_code == 200


# --------------------------------------------------------------------------- the clock


def test_the_clock_dates_everything_and_every_answer(simulator: Simulator, api: Api) -> None:
    simulator.set_clock("2031-03-01T08:00:00+00:00")
    number = bought(simulator)
    assert api.one(number)["CreationDate"] == "2031-03-01T08:00:00.000Z"
    date = email.utils.parsedate_to_datetime(api.get("/api/v1/ping").headers["Date"])
    assert abs(date - datetime(2031, 3, 1, 8, tzinfo=UTC)) < timedelta(seconds=5)
    [order] = simulator.processed_orders
    assert order.created.startswith("2031-03-01T08:00:0")


def test_the_admin_clock_endpoint(simulator: Simulator, http: requests.Session) -> None:
    def clock(body: Any) -> requests.Response:
        return http.post(simulator.url + "/_admin/clock", data=json.dumps(body), timeout=5)

    # The answer has milliseconds: "before" too, or a run in the same millisecond fails.
    before = simulator.now
    before = before.replace(microsecond=before.microsecond // 1000 * 1000)
    moved = clock({"advance_hours": 200})
    assert moved.status_code == 200
    now = datetime.fromisoformat(moved.json()["now"])
    assert timedelta(hours=200) <= now - before < timedelta(hours=200, seconds=5)
    assert clock({"now": "2040-01-01T00:00:00Z"}).json()["now"] == "2040-01-01T00:00:00.000Z"
    assert clock({}).json()["now"].startswith("2040-01-01T00:00:0")
    for bad in (
        {"advance_hours": "x"},
        {"now": "soon"},
        {"later": 1},
        [1],
        {"now": "x", "advance_hours": 1},
    ):
        assert clock(bad).status_code == 400
    simulator.reset()
    assert abs(simulator.now - datetime.now(UTC)) < timedelta(seconds=5)


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def test_moving_the_clock_does_not_expire_tokens(simulator: Simulator, api: Api) -> None:
    simulator.advance_clock(hours=10_000)
    assert api.get("/api/v1/me").status_code == 200
    assert simulator.tokens_issued == 1


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize(
    ("fault", "status", "applied"), [("500", 500, True), ("unapplied", 500, False)]
)
def test_update_faults_with_an_answer(
    simulator: Simulator, api: Api, fault: Any, status: int, applied: bool
) -> None:
    number = bought(simulator, 10)
    simulator.fail_updates(fault)
    assert api.update(number, Quantity=12).status_code == status
    assert simulator.subscription(number).quantity == (12 if applied else 10)
    assert api.update(number, Quantity=13).status_code == 200  # one fault, then normal


def test_every_applied_update_is_listed_whatever_the_answer(simulator: Simulator, api: Api) -> None:
    number = bought(simulator, 10)
    simulator.fail_updates("unapplied")
    simulator.fail_updates("500")
    assert api.update(number, Quantity=12).status_code == 500  # not applied
    assert api.update(number, Quantity=13).status_code == 500  # applied
    assert api.update(number, Quantity=0).status_code == 400  # refused
    assert api.update(number, AutoRenewEnabled=False).status_code == 200
    assert api.update(number, Status=2).status_code == 200
    assert [(u.subscription_id, u.before, u.after) for u in simulator.updates] == [
        (number, (10, 1, True), (13, 1, True)),
        (number, (13, 1, True), (13, 1, False)),
        (number, (13, 1, False), (13, 2, False)),
    ]
    assert simulator.updates[0].time.endswith("Z")
    simulator.reset()
    assert simulator.updates == []


def test_an_update_applied_then_dropped(simulator: Simulator, api: Api) -> None:
    number = bought(simulator, 10)
    simulator.drop_after_update()
    with pytest.raises(requests.ConnectionError):
        api.update(number, Quantity=12)
    assert simulator.subscription(number).quantity == 12
    assert [c.status for c in simulator.calls if c.endpoint == "update"] == [0]


def test_an_invalid_update_is_refused_before_a_queued_fault(simulator: Simulator, api: Api) -> None:
    number = bought(simulator, 10)
    simulator.fail_updates("drop")
    assert api.update(number, Quantity=0).status_code == 400
    with pytest.raises(requests.ConnectionError):
        api.update(number, Quantity=11)  # the fault waited for a valid update


def test_fail_next_on_update_and_subscription_does_not_act(simulator: Simulator, api: Api) -> None:
    number = bought(simulator, 10)
    simulator.fail_next("update", 503)
    simulator.fail_next("subscription", 429, retry_after="1")
    limited = api.get(f"/api/v1/subscriptions/{number}")
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "1")
    assert api.update(number, Quantity=12).status_code == 503
    assert simulator.subscription(number).quantity == 10


def test_update_fault_arguments_are_checked(simulator: Simulator) -> None:
    with pytest.raises(ValueError, match="fault must be one of drop, 500, unapplied"):
        simulator.fail_updates("later")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode must be"):
        simulator.drop_after_update(mode="unapplied")  # type: ignore[arg-type]


def test_a_storm_hits_updates_too(simulator: Simulator, api: Api) -> None:
    number = bought(simulator, 10)
    simulator.storm(1.0, seed=3, slow=0.01)
    for quantity in range(11, 31):
        with contextlib.suppress(requests.ConnectionError):
            api.put(f"/api/v1/subscriptions/{number}", {"Quantity": quantity})
    simulator.storm(0, seed=0)
    assert sum(simulator.faults_injected.values()) == 20
    assert any(k.startswith("update ") and "apply" in k for k in simulator.faults_injected)


def test_a_garbled_answer_is_not_json_and_acts_on_nothing(simulator: Simulator, api: Api) -> None:
    number = bought(simulator, 10)
    simulator.garble_next("update")
    simulator.garble_next("subscriptions", status=200, count=2)
    answer = api.update(number, Quantity=12)
    assert answer.status_code == 200
    with pytest.raises(ValueError):  # noqa: PT011 (requests' JSONDecodeError, any version)
        answer.json()
    assert answer.headers["Content-Type"].startswith("application/json")
    assert simulator.subscription(number).quantity == 10  # not acted on
    for _ in range(2):
        garbled = api.get("/api/v1/subscriptions", CustomerTenantId=TENANT)
        assert garbled.content == b'{"Items": [{"Id": 5000'
    assert api.get("/api/v1/subscriptions", CustomerTenantId=TENANT).json()["TotalHits"] == 1
    with pytest.raises(ValueError, match="endpoint must be one of"):
        simulator.garble_next("nowhere")


# --------------------------------------------------------------------------- lists that lag


def _listed(api: Api, path: str, **query: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.get(path, **query).json()["Items"]
    return items


def _checkout(simulator: Simulator, api: Api, external_order_id: str, quantity: int = 3) -> None:
    order = {
        "resellerCustomerId": TENANT,
        "externalOrderId": external_order_id,
        "orderLines": [
            {
                "productId": "CFQ7TTC0LF8R",
                "skuId": "0010",
                "quantity": quantity,
                "billingCycle": 1,
                "termDuration": "P1M",
                "type": 3,
            }
        ],
    }
    url = simulator.url + "/api/v1/purchaserequest"
    verified = api.http.post(url + "/verify", json=order, headers=api.headers, timeout=5).json()
    done = api.http.post(url + "/checkout", json=verified, headers=api.headers, timeout=5)
    assert done.status_code == 204


def test_a_new_subscription_is_listed_once_the_clock_passes_the_lag(
    simulator: Simulator, api: Api
) -> None:
    old = bought(simulator, 2)
    simulator.advance_clock(minutes=5)
    simulator.lag_listing("subscriptions", 60)
    _checkout(simulator, api, "reconciler-lag")
    (new,) = [s.id for s in simulator.subscriptions if s.id != old]
    query = {"CustomerTenantId": TENANT}
    assert [s["Id"] for s in _listed(api, "/api/v1/subscriptions", **query)] == [old]
    assert api.one(new)["Quantity"] == 3  # one subscription by id does not lag
    # The asset order and the processed order do not lag unless asked: they name it.
    (asset,) = _listed(api, "/api/v1/assets/orders", ResellerCustomerId=TENANT)
    assert asset["orderLines"][0]["subscriptionId"] == new
    assert len(_listed(api, "/api/v1/purchaserequest/orders", CustomerTenantId=TENANT)) == 2
    simulator.advance_clock(seconds=61)
    assert [s["Id"] for s in _listed(api, "/api/v1/subscriptions", **query)] == [old, new]


def test_hidden_lists_show_nothing_until_shown_again(simulator: Simulator, api: Api) -> None:
    _checkout(simulator, api, "reconciler-hidden")
    simulator.hide_subscriptions(True)
    simulator.hide_asset_orders(True)
    simulator.lag_listing("orders", math.inf)
    for path, scope in (
        ("/api/v1/subscriptions", "CustomerTenantId"),
        ("/api/v1/assets/orders", "ResellerCustomerId"),
        ("/api/v1/purchaserequest/orders", "CustomerTenantId"),
    ):
        answer = api.get(path, **{scope: TENANT}).json()
        assert (answer["Items"], answer["TotalHits"]) == ([], 0)
    simulator.advance_clock(hours=24 * 365)  # hidden is hidden at any time
    assert _listed(api, "/api/v1/subscriptions", CustomerTenantId=TENANT) == []
    simulator.hide_subscriptions(False)
    simulator.hide_asset_orders(False)
    simulator.lag_listing("orders", 0)
    assert len(_listed(api, "/api/v1/subscriptions", CustomerTenantId=TENANT)) == 1
    assert len(_listed(api, "/api/v1/assets/orders", ResellerCustomerId=TENANT)) == 1
    assert len(_listed(api, "/api/v1/purchaserequest/orders", CustomerTenantId=TENANT)) == 1
    simulator.hide_subscriptions()
    simulator.reset()  # forgets the lags with everything else (and the tokens)
    bought(simulator, 1)
    again = Api(simulator, api.http)
    assert len(_listed(again, "/api/v1/subscriptions", CustomerTenantId=TENANT)) == 1


@pytest.mark.parametrize(
    ("listing", "seconds", "message"),
    [
        ("nothing", 1, "listing must be one of subscriptions, asset-orders, orders"),
        ("subscriptions", -1, "seconds must be 0 or more"),
        ("subscriptions", math.nan, "seconds must be 0 or more"),
        ("orders", "5", "seconds must be a number"),
        ("orders", True, "seconds must be a number"),
    ],
)
def test_lag_arguments_are_checked(
    simulator: Simulator, listing: str, seconds: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        simulator.lag_listing(listing, seconds)


# --------------------------------------------------------------------------- the portal


def test_a_failed_portal_order_is_listed_and_buys_nothing(
    simulator: Simulator, api: Api, http: requests.Session
) -> None:
    reference = simulator.portal_failed_order(TENANT, BASIC, 5, error="Payment declined")
    over_http = http.post(
        simulator.url + "/_admin/portal",
        json={"action": "failed-order", "customerTenantId": TENANT, "product": BASIC,
              "quantity": 2, "termDuration": "P1Y", "billingCycle": "annual"},
        timeout=5,
    )  # fmt: skip
    assert over_http.status_code == 200
    assert over_http.json()["orderReferenceId"] == reference + 1
    orders = _listed(api, "/api/v1/purchaserequest/orders", CustomerTenantId=TENANT)
    assert [(o["Quantity"], o["OrderState"], o["Error"]) for o in orders] == [
        (5, "Failed", "Payment declined"),
        (2, "Failed", "The purchase could not be completed."),
    ]
    assert orders[1]["BillingCycle"] == "Annual"
    assert simulator.subscriptions == []
    assert simulator.checkouts == []
    assert _listed(api, "/api/v1/assets/orders", ResellerCustomerId=TENANT) == []
    with pytest.raises(ValueError, match="not in the catalogue"):
        simulator.portal_failed_order(TENANT, "NOPE:0001", 1)
    refused = http.post(
        simulator.url + "/_admin/portal",
        json={"action": "failed-order", "customerTenantId": TENANT, "product": BASIC,
              "quantity": 1, "error": 7},
        timeout=5,
    )  # fmt: skip
    assert refused.status_code == 400


def test_portal_changes_keep_seat_batches(simulator: Simulator) -> None:
    number = bought(simulator, 10)
    start = simulator.subscription(number).created
    simulator.advance_clock(hours=5)
    simulator.portal_set_quantity(number, 12)
    simulator.portal_set_quantity(number, 11)
    assert simulator.subscription(number).batches == (
        SeatBatch(start, 10),
        SeatBatch(simulator.subscription(number).batches[1].added, 1),
    )
    simulator.portal_set_quantity(number, 4)  # the portal does not check the window
    assert [b.seats for b in simulator.subscription(number).batches] == [4]
    simulator.portal_cancel(number)
    assert simulator.subscription(number).status == 8
    with pytest.raises(LookupError):
        simulator.subscription(123)


def test_the_organisation_scopes_lists(simulator: Simulator, api: Api) -> None:
    bought(simulator, 1)
    simulator.portal_add_subscription(222222, BASIC, 2)
    everyone = api.get("/api/v1/subscriptions", OrganizationId=simulator.organization_id)
    assert sorted(s["Quantity"] for s in everyone.json()["Items"]) == [1, 2]
    assert api.get("/api/v1/subscriptions", OrganizationId=1).status_code == 404
    assert api.get("/api/v1/subscriptions").status_code == 400
    products = api.get("/api/v1/AgreementProducts", OrganizationId=simulator.organization_id)
    assert products.json()["TotalHits"] == len(simulator.catalog)
    orders = api.get("/api/v1/purchaserequest/orders", OrganizationId=simulator.organization_id)
    assert orders.status_code == 400  # processed orders are per tenant


def test_ping_and_me(simulator: Simulator, api: Api) -> None:
    ping = requests.get(simulator.url + "/api/v1/Ping", timeout=5)  # no token needed
    assert (ping.status_code, ping.content) == (200, b"")
    me = api.get("/api/v1/Me").json()
    assert me["userName"] == simulator.username
    assert me["token"] is None  # never echoed
    assert requests.get(simulator.url + "/api/v1/me", timeout=5).status_code == 401
