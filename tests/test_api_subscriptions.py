"""One subscription through the client: read it, update it, cancel it, and how each
failure of an update counts; the clock skew measured from every answer.

Against the simulator over a real socket where it can show it (the cancellation
window, faults after the PUT was applied, a moved clock), with ``responses`` for
what only a crafted answer shows (key casing, 401s, unreadable answers).
"""

from __future__ import annotations

import email.utils
import json
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import responses

from reconciler.api import (
    STATUS_SUSPENDED,
    ApiSettings,
    RetryPolicy,
    SubscriptionDetail,
    SubscriptionUpdater,
)
from reconciler.api.client import CrayonClient
from reconciler.api.items import parse_subscription_detail
from reconciler.errors import ApiError, FailureKind
from reconciler.simulator import Simulator

TENANT = 111111
BASIC = "CFQ7TTC0LF8R:0010"
FAKE_URL = "https://api.crayon.test"
TOKEN_URL = FAKE_URL + "/api/v1/connect/token"
ONE_URL = FAKE_URL + "/api/v1/subscriptions/500001"
ENV = {
    "CRAYON_API_URL": FAKE_URL,
    "CRAYON_CLIENT_ID": "client-1",
    "CRAYON_CLIENT_SECRET": "s3cret-value",
    "CRAYON_USERNAME": "ops@example.com",
    "CRAYON_PASSWORD": "pa55-word",
}


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_client(sleeps: Sleeps) -> Iterator[Callable[..., CrayonClient]]:
    made: list[CrayonClient] = []

    def make(env: dict[str, str] = ENV, **kwargs: Any) -> CrayonClient:
        settings = ApiSettings(**(ApiSettings.from_env(env).__dict__ | {"read_timeout": 2.0}))
        made.append(
            CrayonClient(settings, retry=RetryPolicy(max_attempts=3), sleep=sleeps, **kwargs)
        )
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture
def live(simulator: Simulator, make_client: Callable[..., CrayonClient]) -> CrayonClient:
    return make_client(simulator.env())


def bought(sim: Simulator, quantity: int = 10) -> int:
    return sim.portal_add_subscription(TENANT, BASIC, quantity)


def puts(sim: Simulator) -> list[Any]:
    return [r.body for r in sim.requests_log if r.endpoint == "update"]


# --------------------------------------------------------------------------- reading


def test_the_client_is_a_subscription_updater(live: CrayonClient) -> None:
    updater: SubscriptionUpdater = live
    assert updater is live


def test_get_subscription_reads_the_whole_record(simulator: Simulator, live: CrayonClient) -> None:
    number = bought(simulator, 10)
    detail = live.get_subscription(number)
    record = simulator.subscription(number)
    assert (detail.id, detail.customer_tenant_id, detail.product, detail.quantity) == (
        number,
        TENANT,
        BASIC,
        10,
    )
    assert (detail.status, detail.active, detail.auto_renew) == ("active", True, True)
    assert (detail.billing_cycle, detail.term_duration) == ("monthly", "P1M")
    assert (
        detail.creation_date
        == detail.start_date
        == record.created.replace(microsecond=record.created.microsecond // 1000 * 1000)
    )
    assert detail.commitment_end_date == detail.end_date
    assert detail.end_date is not None
    assert detail.creation_date is not None
    assert detail.end_date > detail.creation_date
    # Every field as read, in the API's casing.
    assert detail.body["Quantity"] == 10
    assert "EffectiveStartDate" in detail.body
    with pytest.raises(TypeError):
        detail.body["Quantity"] = 11  # type: ignore[index]


def test_subscription_lists_carry_the_dates_and_renewal(
    simulator: Simulator, live: CrayonClient
) -> None:
    number = bought(simulator, 4)
    [listed] = live.read_subscriptions(TENANT)
    assert listed.id == number
    assert listed.creation_date is not None
    assert listed.start_date == listed.creation_date
    assert listed.end_date is not None
    assert listed.auto_renew is True
    assert listed.order_id is not None  # the portal purchase's processed order, as text
    assert listed.commitment_end_date is None  # the list does not carry it


def test_an_unknown_subscription_is_a_definitive_404(live: CrayonClient) -> None:
    with pytest.raises(ApiError) as caught:
        live.get_subscription(999)
    assert (caught.value.status, caught.value.kind) == (404, FailureKind.DEFINITIVE)


# --------------------------------------------------------------------------- updating


def test_an_increase_puts_the_whole_body_with_only_the_quantity_changed(
    simulator: Simulator, live: CrayonClient
) -> None:
    number = bought(simulator, 10)
    current = live.get_subscription(number)
    updated = live.update_subscription(current, quantity=15)
    assert updated.quantity == 15
    [sent] = puts(simulator)
    assert sent == {**current.body, "Quantity": 15}
    assert [b.seats for b in simulator.subscription(number).batches] == [10, 5]


def test_a_decrease_inside_the_window_takes_the_newest_seats(
    simulator: Simulator, live: CrayonClient
) -> None:
    number = bought(simulator, 10)
    simulator.advance_clock(hours=200)  # the first ten are past their window
    raised = live.update_subscription(live.get_subscription(number), quantity=15)
    lowered = live.update_subscription(raised, quantity=12)
    assert lowered.quantity == 12
    with pytest.raises(ApiError) as caught:
        live.update_subscription(lowered, quantity=9)
    error = caught.value
    assert (error.kind, error.status, error.refused) == (FailureKind.DEFINITIVE, 409, True)
    assert "only 2 of them were added within the last 168 hours" in (error.api_message or "")
    assert simulator.subscription(number).quantity == 12


def test_auto_renew_can_be_turned_off(simulator: Simulator, live: CrayonClient) -> None:
    number = bought(simulator)
    updated = live.update_subscription(live.get_subscription(number), auto_renew=False)
    assert (updated.auto_renew, updated.quantity) == (False, 10)
    assert simulator.subscription(number).auto_renew is False
    assert puts(simulator)[0]["AutoRenewEnabled"] is False


def test_cancelling_puts_suspended_with_the_quantity_unchanged(
    simulator: Simulator, live: CrayonClient
) -> None:
    number = bought(simulator, 7)
    cancelled = live.cancel_subscription(live.get_subscription(number))
    assert (cancelled.active, cancelled.status, cancelled.quantity) == (False, "suspended", 7)
    [sent] = puts(simulator)
    assert (sent["Status"], sent["Quantity"]) == (STATUS_SUSPENDED, 7)
    assert simulator.active_seats(TENANT, BASIC) == 0


def test_cancelling_after_the_window_is_refused(simulator: Simulator, live: CrayonClient) -> None:
    number = bought(simulator)
    simulator.advance_clock(hours=169)
    with pytest.raises(ApiError) as caught:
        live.cancel_subscription(live.get_subscription(number))
    assert caught.value.refused
    assert "more than 168 hours ago" in (caught.value.api_message or "")
    assert simulator.subscription(number).active


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"quantity": 0}, "quantity must be a whole number of at least 1, not 0"),
        ({"quantity": -3}, "not -3"),
        ({"quantity": True}, "not True"),
        ({"auto_renew": "no"}, "auto_renew must be true or false"),
        ({"status": "2"}, "status must be a SubscriptionStatus integer"),
        ({}, "needs a quantity, auto_renew or status"),
    ],
)
def test_impossible_updates_are_refused_before_sending(
    simulator: Simulator, live: CrayonClient, changes: dict[str, Any], problem: str
) -> None:
    current = live.get_subscription(bought(simulator))
    with pytest.raises(ValueError, match=problem):
        live.update_subscription(current, **changes)
    assert simulator.count("update") == 0


def detail(**overrides: Any) -> dict[str, Any]:
    """A SubscriptionDetailed in camelCase, with a field the client knows nothing of."""
    return {
        "id": 500001,
        "customerTenant": {"id": TENANT},
        "product": {"id": 77, "partNumber": BASIC, "itemName": "Basic"},
        "quantity": 10,
        "status": 1,
        "billingCycle": 1,
        "termDuration": "P1M",
        "autoRenewEnabled": True,
        "creationDate": "2026-01-01T00:00:00Z",
        "commitmentEndDate": "2026-02-01T00:00:00Z",
        "pricing": {"currencyCode": "EUR", "purchasePrice": 5.6},
        "somethingNew": {"kept": [1, 2]},
    } | overrides


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.POST, TOKEN_URL, json={"AccessToken": "tok", "ExpiresIn": 3600})
        yield mock


def current() -> SubscriptionDetail:
    return parse_subscription_detail(detail())


def sent_bodies(mocked: responses.RequestsMock) -> list[Any]:
    return [json.loads(c.request.body or "") for c in mocked.calls if c.request.method == "PUT"]


def test_the_key_casing_and_unknown_fields_are_kept(
    mocked: responses.RequestsMock, make_client: Callable[..., CrayonClient]
) -> None:
    mocked.add(responses.PUT, ONE_URL, json=detail(quantity=12))
    updated = make_client().update_subscription(current(), quantity=12, auto_renew=False)
    assert updated.quantity == 12
    assert sent_bodies(mocked) == [detail(quantity=12, autoRenewEnabled=False)]


def test_a_field_the_body_lacks_is_added_in_its_casing(
    mocked: responses.RequestsMock, make_client: Callable[..., CrayonClient]
) -> None:
    pascal = {"Id": 500001, "CustomerTenant": {"Id": TENANT}, "PartNumber": BASIC}
    pascal |= {"Quantity": 3, "Status": 1}
    mocked.add(responses.PUT, ONE_URL, json=pascal | {"AutoRenewEnabled": False})
    make_client().update_subscription(parse_subscription_detail(pascal), auto_renew=False)
    assert sent_bodies(mocked) == [pascal | {"AutoRenewEnabled": False}]


# --------------------------------------------------------------------------- failures


def test_429_is_retried_with_backoff(
    mocked: responses.RequestsMock, make_client: Callable[..., CrayonClient], sleeps: Sleeps
) -> None:
    mocked.add(responses.PUT, ONE_URL, status=429, headers={"Retry-After": "2"})
    mocked.add(responses.PUT, ONE_URL, json=detail(quantity=12))
    assert make_client().update_subscription(current(), quantity=12).quantity == 12
    assert (len(sent_bodies(mocked)), sleeps) == (2, [2.0])


def test_a_connection_never_made_is_retried(
    make_client: Callable[..., CrayonClient], sleeps: Sleeps
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = make_client(ENV | {"CRAYON_API_URL": f"http://127.0.0.1:{port}"})
    client._tokens.current(lambda: ("tok", 3600.0))  # as if a token had been had
    with pytest.raises(ApiError) as caught:
        client.update_subscription(current(), quantity=12)
    assert caught.value.kind is FailureKind.RETRYABLE
    assert len(sleeps) == 2  # three attempts, none of which reached a server


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
def test_refusals_are_definitive_and_refused(
    mocked: responses.RequestsMock, make_client: Callable[..., CrayonClient], status: int
) -> None:
    mocked.add(
        responses.PUT,
        ONE_URL,
        status=status,
        json={"ErrorCode": f"{status} X", "Message": "Cannot reduce after 168 hours."},
    )
    with pytest.raises(ApiError) as caught:
        make_client().update_subscription(current(), quantity=2)
    error = caught.value
    assert (error.kind, error.refused, error.status) == (FailureKind.DEFINITIVE, True, status)
    assert error.api_message == "Cannot reduce after 168 hours."
    assert len(sent_bodies(mocked)) == 1


def test_401_gets_one_fresh_token_then_is_definitive(
    mocked: responses.RequestsMock, make_client: Callable[..., CrayonClient]
) -> None:
    mocked.add(responses.PUT, ONE_URL, status=401)
    with pytest.raises(ApiError) as caught:
        make_client().update_subscription(current(), quantity=2)
    assert caught.value.kind is FailureKind.DEFINITIVE
    assert not caught.value.refused
    assert len(sent_bodies(mocked)) == 2
    assert sum(c.request.url == TOKEN_URL for c in mocked.calls) == 2


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_5xx_is_ambiguous_and_never_repeated(
    mocked: responses.RequestsMock, make_client: Callable[..., CrayonClient], status: int
) -> None:
    mocked.add(responses.PUT, ONE_URL, status=status)
    with pytest.raises(ApiError) as caught:
        make_client().update_subscription(current(), quantity=2)
    assert caught.value.kind is FailureKind.AMBIGUOUS
    assert len(sent_bodies(mocked)) == 1


@pytest.mark.parametrize(
    "answer",
    [b"", b"not json", b"[" * 10_000, json.dumps(detail(id=500002)).encode(), b"[]"],
    ids=["empty", "text", "deep", "another-subscription", "not-an-object"],
)
def test_an_unreadable_2xx_answer_is_ambiguous(
    mocked: responses.RequestsMock, make_client: Callable[..., CrayonClient], answer: bytes
) -> None:
    mocked.add(responses.PUT, ONE_URL, body=answer, status=200)
    with pytest.raises(ApiError) as caught:
        make_client().update_subscription(current(), quantity=2)
    assert caught.value.kind is FailureKind.AMBIGUOUS
    assert str(caught.value).startswith("update subscription outcome unknown: HTTP 200, but ")
    assert str(caught.value).endswith("read subscription 500001 again to learn whether it changed")


@pytest.mark.parametrize(
    ("fault", "applied"), [("500", True), ("drop", True), ("unapplied", False)]
)
def test_faults_after_the_put_are_ambiguous_and_a_read_settles_them(
    simulator: Simulator, live: CrayonClient, fault: Any, applied: bool
) -> None:
    number = bought(simulator, 10)
    simulator.fail_updates(fault)
    with pytest.raises(ApiError) as caught:
        live.update_subscription(live.get_subscription(number), quantity=14)
    assert caught.value.kind is FailureKind.AMBIGUOUS
    assert simulator.count("update") == 1  # never sent twice
    assert live.get_subscription(number).quantity == (14 if applied else 10)


def test_no_answer_in_time_is_ambiguous(simulator: Simulator, live: CrayonClient) -> None:
    number = bought(simulator)
    current_ = live.get_subscription(number)
    simulator.delay_next("update", 3)
    with pytest.raises(ApiError) as caught:
        live.update_subscription(current_, quantity=12)
    assert caught.value.kind is FailureKind.AMBIGUOUS
    assert "no answer within 2 s" in str(caught.value)
    assert simulator.wait_idle()
    assert simulator.count("update") == 1


def test_reads_of_one_subscription_are_retried(simulator: Simulator, live: CrayonClient) -> None:
    number = bought(simulator)
    simulator.fail_next("subscription", 503, count=2)
    assert live.get_subscription(number).id == number
    assert live.retries == 2


# --------------------------------------------------------------------------- clock skew


def test_clock_skew_is_measured_from_every_answer(simulator: Simulator, live: CrayonClient) -> None:
    assert live.clock_skew is None
    live.read_subscriptions(TENANT)
    assert live.clock_skew is not None
    assert abs(live.clock_skew) < timedelta(seconds=2)
    simulator.advance_clock(hours=-3)
    simulator.fail_next("subscriptions", 404)
    with pytest.raises(ApiError):  # an error answer carries a Date too
        live.read_subscriptions(TENANT)
    assert abs(live.clock_skew + timedelta(hours=3)) < timedelta(seconds=2)
    simulator.advance_clock(hours=2)  # one hour behind now: the larger skew is kept
    live.read_subscriptions(TENANT)
    assert abs(live.clock_skew + timedelta(hours=3)) < timedelta(seconds=2)


def test_clock_skew_against_a_fixed_clock(
    mocked: responses.RequestsMock, make_client: Callable[..., CrayonClient]
) -> None:
    server = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
    date = email.utils.format_datetime(server, usegmt=True)
    mocked.add(responses.GET, ONE_URL, json=detail(), headers={"Date": date})
    local = (server - timedelta(minutes=15)).timestamp()
    client = make_client(wall_clock=lambda: local)
    client.get_subscription(500001)
    # The header's second is taken at its middle.
    assert client.clock_skew == timedelta(minutes=15, seconds=0.5)


def test_an_unreadable_date_measures_nothing(
    mocked: responses.RequestsMock, make_client: Callable[..., CrayonClient]
) -> None:
    mocked.add(responses.GET, ONE_URL, json=detail(), headers={"Date": "yesterday-ish"})
    client = make_client()
    client.get_subscription(500001)
    assert client.clock_skew is None
