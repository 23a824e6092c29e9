"""``reconciler apply`` (``reconciler.cli.apply``), end to end against the simulator.

Every run goes through the real CLI against a simulator on a loopback socket, and
is judged by what a user and the Crayon side see: the exit code and output, the
state file, and the checkouts the simulator recorded. The one question behind all
of them: was every declared seat bought exactly once? ``Harness.run`` also checks
that no secret (client secret, password, any issued access token) appears in the
output, the state file or a saved plan.

The tests at the end run the apply under test as ``python -m reconciler``, to kill
or interrupt it mid-checkout, to run two at once, and to ask on a terminal.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import pty
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import pytest

from reconciler import api
from reconciler.model import PendingOperation
from reconciler.simulator import Simulator
from reconciler.state import JsonFileStateStore
from tests.support.cli import init, run
from tests.support.declarations import (
    declare,
    edit_purchase,
    purchase,
    read_declared,
    remove_purchase,
    renamed,
)
from tests.support.paths import CUSTOMERS, DATA
from tests.support.processes import TIMEOUT, wait_until
from tests.support.records import BASIC, E3, TENANT
from tests.support.simulator import (
    TEAMS,
    Harness,
    HarnessFactory,
    Project,
    SimulatorFactory,
    assert_bought_exactly_once,
    assert_no_secrets,
)
from tests.support.states import read_state_file, record, state_json
from tests.support.times import T0

BILLING_CYCLES = {"monthly": 1, "annual": 2, "none": 3, "one-time": 4, "triennial": 5}
TYPES = {"reservation": 1, "software": 2, "subscription": 3}


def revoke_tokens_after(sim: Simulator, checkouts: int) -> None:
    """Revoke every issued token once the simulator has taken ``checkouts`` checkouts."""
    deadline = time.monotonic() + 10
    while len(sim.checkouts) < checkouts and time.monotonic() < deadline:
        time.sleep(0.001)
    sim.expire_tokens()


def pending_message_commands(stderr: str, address: str) -> list[str]:
    """The ``reconciler state resolve ADDRESS ...`` commands an error message prints."""
    return [
        line.strip()
        for line in stderr.splitlines()
        if line.strip().startswith(f"reconciler state resolve {address} ")
    ]


# --------------------------------------------------------------------------- happy path


def test_apply_buys_every_declared_seat_once_and_records_it(h: Harness) -> None:
    result = h.apply()

    assert result.exit_code == 0, result.stderr
    assert "Apply complete: 10 purchased (+333 seats), 0 failed, 0 pending." in result.stdout
    assert result.stderr == ""
    h.assert_bought_exactly_once()
    wanted = read_declared(h.decl)
    assert sum(d.quantity for d in wanted.values()) == 333

    # One checkout per address, in address order, each the verify answer sent back unchanged.
    ids = h.checkout_ids_by_address()
    assert all(len(v) == 1 for v in ids.values())
    assert [c.external_order_id for c in h.sim.checkouts] == [ids[a][0] for a in sorted(wanted)]
    log = h.sim.requests_log
    verified = {r.response["externalOrderId"]: r for r in log if r.endpoint == "verify"}
    checked_out = [r for r in log if r.endpoint == "checkout"]
    assert len(checked_out) == len(verified) == 10
    for request in checked_out:
        assert request.status == 204
        assert request.body == verified[request.body["externalOrderId"]].response
    # The order sent to verify: camelCase, integer enums, one line of the declared seats.
    for address, want in wanted.items():
        order = verified[ids[address][0]].body
        assert order["resellerCustomerId"] == want.tenant
        assert order["externalOrderId"] == ids[address][0]
        (line,) = order["orderLines"]
        assert f"{line['productId']}:{line['skuId']}" == want.product
        assert line["quantity"] == want.quantity
        assert line["billingCycle"] == BILLING_CYCLES[want.billing_cycle]
        assert line["termDuration"] == want.term_duration
        assert line["type"] == TYPES[want.type]
    assert h.sim.tokens_issued == 1

    # A second apply reads Cloud-iQ, records the subscription each checkout made, and has
    # nothing to buy: it sends nothing.
    sent = h.sent()
    again = h.apply()
    assert again.exit_code == 0, again.stderr
    assert "No changes." in again.stdout
    assert again.stdout.count("Recorded subscription ") == 10
    assert h.sent() == sent
    assert len(h.sim.checkouts) == 10
    owned = {a: p.get("subscriptions") for a, p in h.state_file()["purchases"].items()}
    assert all(ids and len(ids) == 1 for ids in owned.values()), owned
    assert "unseen" not in json.dumps(h.state_file())


def test_increase_buys_only_the_difference(h: Harness) -> None:
    assert h.apply().exit_code == 0
    first = h.checkout_ids_by_address()["northwind/m365-business-standard"]
    edit_purchase(h.decl, "northwind/m365-business-standard", quantity=23)

    result = h.apply()

    assert result.exit_code == 0, result.stderr
    assert "increase, 18 -> 23 seats (+5)" in result.stdout
    assert "Apply complete: 1 purchased (+5 seats), 0 failed, 0 pending." in result.stdout
    assert [c.quantity for c in h.sim.checkouts[10:]] == [5]
    assert h.sim.count("checkout") == 11
    assert h.sim.count("verify") == 11
    ids = h.checkout_ids_by_address()["northwind/m365-business-standard"]
    assert ids[0] == first[0]
    assert ids[1] == h.sim.checkouts[10].external_order_id
    assert h.sim.seats(100003, "CFQ7TTC0LDPB:0001") == 23
    h.assert_bought_exactly_once()


def test_orphan_is_kept_and_buys_nothing(h: Harness) -> None:
    assert h.apply().exit_code == 0
    before = h.state_file()
    calls = h.sent()
    remove_purchase(h.decl, "contoso/visio-plan-2")

    result = h.apply()

    assert result.exit_code == 0, result.stderr
    assert "contoso/visio-plan-2  orphan" in result.stdout
    assert "no longer declared" in result.stdout
    assert h.sent() == calls
    after = h.state_file()["purchases"]
    assert after.keys() == before["purchases"].keys()
    assert (
        after["contoso/visio-plan-2"]["quantity"]
        == before["purchases"]["contoso/visio-plan-2"]["quantity"]
    )


def test_conflict_refuses_before_anything_is_sent(h: Harness) -> None:
    assert h.apply().exit_code == 0
    calls = h.sent()
    edit_purchase(h.decl, "contoso/visio-plan-2", billingCycle="annual")
    # Another change that would buy: a conflict anywhere stops the whole apply.
    edit_purchase(h.decl, "contoso/power-bi-pro", quantity=20)

    result = h.apply()

    assert result.exit_code == 1
    assert "contoso/visio-plan-2  conflict" in result.stdout
    assert "conflict" in result.stderr
    assert "nothing was bought or changed" in result.stderr
    assert h.sent() == calls
    assert h.sim.count("verify") == 10
    assert h.state_file()["pending"] == {}


# --------------------------------------------------------------------------- retried faults


@pytest.mark.parametrize(
    ("endpoint", "status", "retry_after"),
    [
        ("token", 429, "0"),
        ("token", 503, None),
        ("verify", 429, "0"),
        ("verify", 503, None),
        ("checkout", 429, "0"),
    ],
)
def test_retryable_failure_is_retried_and_apply_succeeds(
    h: Harness, endpoint: str, status: int, retry_after: str | None
) -> None:
    count = 2 if retry_after == "0" else 1  # without Retry-After the backoff really sleeps
    h.sim.fail_next(endpoint, status, count, retry_after)

    result = h.apply()

    assert result.exit_code == 0, result.stderr
    assert "Apply complete: 10 purchased (+333 seats), 0 failed, 0 pending." in result.stdout
    assert h.sim.count(endpoint, status) == count
    h.assert_bought_exactly_once()


def test_retry_after_is_honoured(h: Harness) -> None:
    h.sim.fail_next("verify", 429, 1, "1")
    started = time.monotonic()

    result = h.apply()

    assert result.exit_code == 0, result.stderr
    assert time.monotonic() - started >= 1.0
    h.assert_bought_exactly_once()


def test_verify_unreachable_past_the_retry_limit_stops_the_run(h: Harness) -> None:
    h.sim.fail_next("verify", 503, 5, "0")  # RetryPolicy.max_attempts

    result = h.apply()

    # No later change could do better: nothing more is started, nothing is pending.
    assert result.exit_code == 1
    assert "Apply failed: 0 purchased (+0 seats), 1 failed, 0 pending. 9 not started." in (
        result.stdout
    )
    assert "503" in result.stderr
    assert "state resolve" not in result.stderr
    assert h.sim.count("verify", 503) == 5
    assert h.sim.count("verify") == 5
    assert h.sim.checkouts == []
    assert (h.shown()["purchases"], h.shown()["pending"]) == ({}, {})

    again = h.apply()
    assert again.exit_code == 0, again.stderr
    assert "Apply complete: 10 purchased (+333 seats), 0 failed, 0 pending." in again.stdout
    h.assert_bought_exactly_once()


def test_tokens_expiring_every_few_calls_buy_everything_once(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness(token_ttl_calls=3)

    result = h.apply()

    assert result.exit_code == 0, result.stderr
    assert h.sim.count("verify", 401) + h.sim.count("checkout", 401) >= 5
    assert h.sim.tokens_issued >= 6
    h.assert_bought_exactly_once()


def test_tokens_revoked_mid_run_buy_everything_once(h: Harness) -> None:
    # The fifth verify is slow: time to revoke every token once four checkouts are in.
    h.sim.delay_next("verify", 0, 4)
    h.sim.delay_next("verify", 0.3)

    revoker = threading.Thread(target=revoke_tokens_after, args=(h.sim, 4))
    revoker.start()
    result = h.apply()
    revoker.join()

    assert result.exit_code == 0, result.stderr
    assert h.sim.count("verify", 401) == 1
    assert h.sim.tokens_issued == 2
    h.assert_bought_exactly_once()


# --------------------------------------------------------------------------- definitive failures


def test_checkout_400_fails_that_change_and_the_others_go_on(h: Harness) -> None:
    h.sim.fail_next(
        "checkout",
        400,
        body={
            "ErrorCode": "400 BadRequest",
            "Message": "The order is not valid.",
            "Parameters": {},
            "ObjectErrors": [
                {"ErrorCode": "Required", "Message": "ResellerCustomerId is required"}
            ],
        },
    )

    result = h.apply()

    assert result.exit_code == 1
    assert "Apply failed: 9 purchased (+298 seats), 1 failed, 0 pending." in result.stdout
    assert re.search(r"contoso/m365-business-basic +\+35 +failed", result.stdout)
    for text in ("400", "400 BadRequest", "The order is not valid.", "Required"):
        assert text in result.stderr
    assert "ResellerCustomerId is required" in result.stderr
    assert "state resolve" not in result.stderr
    state = h.state_file()
    assert state["pending"] == {}
    assert "contoso/m365-business-basic" not in state["purchases"]
    assert len(h.sim.checkouts) == 9
    assert h.sim.seats(100001, "CFQ7TTC0LF8R:0010") == 0

    again = h.apply()
    assert again.exit_code == 0, again.stderr
    assert "Apply complete: 1 purchased (+35 seats), 0 failed, 0 pending." in again.stdout
    h.assert_bought_exactly_once()


def test_checkout_401_even_with_a_fresh_token_is_definitive(h: Harness) -> None:
    h.sim.fail_next("checkout", 401, 2)

    result = h.apply()

    assert result.exit_code == 1
    assert "1 failed, 0 pending." in result.stdout
    assert "401" in result.stderr
    assert h.sim.tokens_issued == 2  # exactly one fresh token was asked for
    assert h.state_file()["pending"] == {}
    assert len(h.sim.checkouts) == 9

    assert h.apply().exit_code == 0
    h.assert_bought_exactly_once()


def test_failure_messages_name_the_failure_once(h: Harness) -> None:
    h.sim.fail_next("checkout", 400)

    result = h.apply()

    assert result.exit_code == 1
    assert "checkout refused: HTTP 400" in result.stderr
    assert "checkout refused: checkout refused" not in result.stderr


def test_unknown_customer_tenant_is_a_conflict_of_that_tenant_only(h: Harness) -> None:
    edit_purchase(h.decl, "northwind/exchange-online-plan-1", customerTenantId=999999)

    result = h.apply()

    assert result.exit_code == 1
    assert "Apply failed: 9 purchased (+327 seats), 0 failed, 0 pending. 1 conflict." in (
        result.stdout
    )
    assert "Cloud-iQ refused to list the subscriptions of customer tenant 999999" in (result.stdout)
    assert "Customer tenant 999999 was not found." in result.stdout
    assert "nothing was bought or changed for customer tenant 999999" in result.stderr
    assert all(c.tenant != 999999 for c in h.sim.checkouts)
    assert "northwind/exchange-online-plan-1" not in h.state_file()["purchases"]


def test_a_refused_first_tenant_leaves_the_others_read_and_bought(h: Harness) -> None:
    """The tenants' subscriptions are read at once after the first; the first refused
    (an unknown tenant, not bad credentials) still lets every other tenant be read."""
    edit_purchase(h.decl, "northwind/exchange-online-plan-1", customerTenantId=1)

    result = h.apply()

    assert result.exit_code == 1
    assert "Cloud-iQ refused to list the subscriptions of customer tenant 1" in result.stdout
    assert "9 purchased (+327 seats)" in result.stdout
    assert h.sim.count("token") == 1
    assert all(c.tenant != 1 for c in h.sim.checkouts)


def test_verify_line_error_fails_that_change_and_shows_the_reason(h: Harness) -> None:
    edit_purchase(h.decl, TEAMS, quantity=25)

    result = h.apply()

    assert result.exit_code == 1
    assert "Apply failed: 9 purchased (+328 seats), 1 failed, 0 pending." in result.stdout
    assert re.search(r"northwind/teams-essentials +\+25 +failed", result.stdout)
    assert "QuantityOutOfRange" in result.stderr
    assert "Quantity 25 is outside the allowed range 1-20." in result.stderr
    assert all(c.product != "CFQ7TTC0LHSF:0001" for c in h.sim.checkouts)
    assert not [r for r in h.sim.requests_log if r.endpoint == "checkout" and r.status != 204], (
        "an order with errors was sent to checkout"
    )
    assert len(h.sim.checkouts) == 9
    state = h.state_file()
    assert TEAMS not in state["purchases"]
    assert state["pending"] == {}


def test_verify_order_error_fails_that_change(h: Harness) -> None:
    h.sim.add_order_error(1042, "Customer is not allowed to buy this product.")

    result = h.apply()

    assert result.exit_code == 1
    assert "Apply failed: 9 purchased (+298 seats), 1 failed, 0 pending." in result.stdout
    assert "1042" in result.stderr
    assert "Customer is not allowed to buy this product." in result.stderr
    assert "contoso/m365-business-basic" not in h.state_file()["purchases"]
    assert all(c.product != "CFQ7TTC0LF8R:0010" for c in h.sim.checkouts)


# --------------------------------------------------------------------------- ambiguous checkouts


@pytest.mark.parametrize("mode", ["drop", "500"])
def test_an_ambiguous_checkout_is_settled_by_the_next_apply_without_a_person(
    h: Harness, mode: Literal["drop", "500"]
) -> None:
    address = "contoso/m365-business-basic"  # the first change in address order
    h.sim.drop_after_checkout(1, mode)

    result = h.apply()

    # The server took the order; the tool cannot know, so it stops and says so.
    assert result.exit_code == 1
    assert "Apply failed: 0 purchased (+0 seats), 0 failed, 1 pending. 9 not started." in (
        result.stdout
    )
    (taken,) = h.sim.checkouts
    assert taken.external_order_id is not None
    assert h.sim.count("verify") == 1, "a later change was started after an unknown outcome"
    state = h.state_file()
    assert state["purchases"] == {}
    pending = state["pending"][address]
    assert pending["externalOrderId"] == taken.external_order_id
    assert pending["quantity"] == 35
    assert (pending["customerTenantId"], pending["productId"], pending["skuId"]) == (
        100001,
        "CFQ7TTC0LF8R",
        "0010",
    )
    assert taken.external_order_id in result.stderr
    assert f"reconciler refresh --state {h.state}" in result.stderr
    assert len(pending_message_commands(result.stderr, address)) == 2

    # Offline, only a person can settle it: apply refuses before sending anything.
    sent = h.sent()
    refused = h.apply("--refresh=false")
    assert refused.exit_code == 1
    assert f"reconciler state resolve {address} --purchased" in refused.stderr
    assert "Cloud-iQ was not read" in refused.stderr
    assert h.sent() == sent
    # The plan reads Cloud-iQ: the asset order of that externalOrderId proves it taken.
    plan = h.run("plan", str(h.decl), "--state", str(h.state))
    assert plan.exit_code == 0, plan.stderr
    assert f"{address}  pending" not in plan.stdout
    assert "proven purchased" in plan.stdout

    # The next apply records it from that evidence and buys the rest: no person needed.
    rest = h.apply()
    assert rest.exit_code == 0, rest.stderr
    assert f"Settled {address}: {taken.external_order_id} recorded as purchased" in rest.stdout
    assert "Apply complete: 9 purchased (+298 seats), 0 failed, 0 pending." in rest.stdout
    assert h.checkout_ids_by_address()[address] == [taken.external_order_id]
    assert "asset order" in h.state_file()["purchases"][address]["checkouts"][0]["evidence"]
    h.assert_bought_exactly_once()


def test_a_checkout_wrongly_resolved_as_not_purchased_is_not_bought_again(h: Harness) -> None:
    address = "contoso/m365-business-basic"
    h.sim.drop_after_checkout(1, "drop")
    assert h.apply("--refresh=false").exit_code == 1
    (first,) = h.sim.checkouts

    # The person resolves it the wrong way: it was bought.
    resolved = h.resolve(address, "--not-purchased")
    assert resolved.exit_code == 0, resolved.stderr
    assert first.external_order_id is not None
    assert first.external_order_id in resolved.stdout
    assert h.state_file()["pending"] == {}

    result = h.apply()

    # Cloud-iQ holds its seats in a subscription no address owns: a conflict that says
    # how to adopt them, never a second purchase of them.
    assert result.exit_code == 1
    assert f"{address}  conflict" in result.stdout
    assert "Cloud-iQ already holds 35 seats" in result.stdout
    assert "import: [{to: contoso/m365-business-basic, subscriptions: [" in result.stdout
    taken = [c for c in h.sim.checkouts if c.product == "CFQ7TTC0LF8R:0010"]
    assert [c.quantity for c in taken] == [35]


def test_checkout_503_is_ambiguous_and_not_purchased_buys_it_once(h: Harness) -> None:
    # A 503 on checkout: this time the server did not act, but the tool cannot know.
    address = "contoso/m365-business-basic"
    h.sim.fail_next("checkout", 503, 1, "0")

    result = h.apply()

    assert result.exit_code == 1
    assert "1 pending. 9 not started." in result.stdout
    assert h.sim.count("checkout", 503) == 1, "an ambiguous checkout was re-sent"
    assert h.sim.checkouts == []
    assert address in h.state_file()["pending"]

    assert h.resolve(address, "--not-purchased").exit_code == 0
    assert h.apply().exit_code == 0
    h.assert_bought_exactly_once()


def shorten_the_read_timeout(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """The client waits 60 s for an answer; a test cannot, so that one number is shortened."""
    from_env = api.ApiSettings.from_env

    def quick(env: Mapping[str, str], **kwargs: Any) -> api.ApiSettings:
        return dataclasses.replace(from_env(env, **kwargs), read_timeout=seconds)

    monkeypatch.setattr(api.ApiSettings, "from_env", staticmethod(quick))


def test_checkout_timeout_is_ambiguous_and_stops_later_changes(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    shorten_the_read_timeout(monkeypatch, 0.3)
    h.sim.delay_next("checkout", 0, 2)
    h.sim.delay_next("checkout", 0.8)  # the third checkout answers too late
    address = "contoso/power-bi-pro"

    result = h.apply()

    assert result.exit_code == 1
    assert "Apply failed: 2 purchased (+120 seats), 0 failed, 1 pending. 7 not started." in (
        result.stdout
    )
    assert "no answer within" in result.stderr
    assert h.sim.count("verify") == 3
    pending = h.state_file()["pending"][address]
    deadline = time.monotonic() + 5
    while len(h.sim.checkouts) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)  # the late checkout is still being taken by the server
    assert [c.external_order_id for c in h.sim.checkouts][2] == pending["externalOrderId"]
    assert len(h.sim.checkouts) == 3

    assert h.resolve(address, "--purchased").exit_code == 0
    assert h.apply().exit_code == 0
    h.assert_bought_exactly_once()


def test_verify_timeout_is_retried(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    shorten_the_read_timeout(monkeypatch, 0.3)
    h.sim.delay_next("verify", 0.6)

    result = h.apply()

    assert result.exit_code == 0, result.stderr
    h.assert_bought_exactly_once()


def test_ambiguous_increase_resolved_as_purchased_adds_its_seats(h: Harness) -> None:
    address = "northwind/m365-business-standard"
    assert h.apply().exit_code == 0
    edit_purchase(h.decl, address, quantity=23)
    h.sim.drop_after_checkout(1, "drop")

    result = h.apply()

    assert result.exit_code == 1
    assert h.sim.checkouts[-1].quantity == 5
    pending = h.state_file()["pending"][address]
    assert (pending["quantity"], pending["externalOrderId"]) == (
        5,
        h.sim.checkouts[-1].external_order_id,
    )
    assert h.state_file()["purchases"][address]["quantity"] == 18

    assert h.resolve(address, "--purchased").exit_code == 0
    again = h.apply()
    assert again.exit_code == 0, again.stderr
    assert "No changes." in again.stdout
    assert len(h.sim.checkouts) == 11
    assert [r["quantity"] for r in h.state_file()["purchases"][address]["checkouts"]] == [18, 5]
    h.assert_bought_exactly_once()


# --------------------------------------------------------------------------- guards


@pytest.mark.parametrize(("limit", "refused"), [(332, True), (333, False)])
def test_max_seats(h: Harness, limit: int, refused: bool) -> None:
    result = h.apply("--max-seats", str(limit))

    if refused:
        assert result.exit_code == 1
        assert f"the plan buys 333 seats, more than --max-seats {limit}" in result.stderr
        assert h.sent() == 0
        assert h.sim.checkouts == []
    else:
        assert result.exit_code == 0, result.stderr
        h.assert_bought_exactly_once()


def test_saved_plan_is_applied(h: Harness) -> None:
    plan_file = h.tmp / "tfplan.json"
    saved = h.run("plan", str(h.decl), "--state", str(h.state), "--out", str(plan_file))
    assert saved.exit_code == 0, saved.stderr
    assert h.sent() == 0  # plan reads Cloud-iQ, and sends nothing

    result = h.apply("--plan", str(plan_file))

    assert result.exit_code == 0, result.stderr
    assert "Apply complete: 10 purchased (+333 seats), 0 failed, 0 pending." in result.stdout
    h.assert_bought_exactly_once()


def test_saved_plan_is_refused_when_the_state_changed(h: Harness) -> None:
    remove_purchase(h.decl, "contoso/visio-plan-2")
    assert h.apply().exit_code == 0
    edit_purchase(h.decl, "northwind/teams-essentials", quantity=6)
    plan_file = h.tmp / "tfplan.json"
    assert (
        h.run("plan", str(h.decl), "--state", str(h.state), "--out", str(plan_file)).exit_code == 0
    )
    # Someone else changes the state after the plan was saved.
    imported = h.run(
        "state", "import", "contoso/visio-plan-2", "--quantity", "4",
        "--config", str(CUSTOMERS), "--state", str(h.state), "--yes",
    )  # fmt: skip
    assert imported.exit_code == 0, imported.stderr
    calls = len(h.sim.calls)

    result = h.apply("--plan", str(plan_file))

    assert result.exit_code == 1
    assert "stale" in result.stderr
    assert "state serial" in result.stderr
    assert len(h.sim.calls) == calls  # refused before anything is read
    assert len(h.sim.checkouts) == 9


def test_saved_plan_is_refused_when_the_declarations_changed(h: Harness) -> None:
    plan_file = h.tmp / "tfplan.json"
    assert (
        h.run("plan", str(h.decl), "--state", str(h.state), "--out", str(plan_file)).exit_code == 0
    )
    edit_purchase(h.decl, "contoso/power-bi-pro", quantity=13)
    calls = len(h.sim.calls)

    result = h.apply("--plan", str(plan_file))

    assert result.exit_code == 1
    assert "declarations changed" in result.stderr
    assert len(h.sim.calls) == calls  # refused before anything is read
    assert not h.state.exists() or h.state_file()["purchases"] == {}


def test_invalid_declarations_send_nothing(h: Harness) -> None:
    (h.decl / "customers" / "broken.yaml").write_text(
        "version: 1\npurchases:\n  - name: broken/x\n    quantity: 0\n", encoding="utf-8"
    )
    before = h.state.read_bytes()
    listing = sorted(h.tmp.iterdir())

    result = h.apply()

    assert result.exit_code == 1
    assert "broken.yaml:" in result.stderr
    assert h.sim.calls == []
    assert h.state.read_bytes() == before
    assert sorted(h.tmp.iterdir()) == listing  # not even a lock file


def test_corrupt_state_is_refused_by_name_and_kept(h: Harness) -> None:
    h.state.parent.mkdir(parents=True, exist_ok=True)
    h.state.write_text('{"version": 1, "lineage": ', encoding="utf-8")

    result = h.apply()

    assert result.exit_code == 1
    assert str(h.state) in result.stderr
    assert h.state.read_text(encoding="utf-8") == '{"version": 1, "lineage": '
    assert h.sim.calls == []


def test_apply_without_a_terminal_needs_auto_approve(h: Harness) -> None:
    result = h.run("apply", str(h.decl), "--state", str(h.state))

    assert result.exit_code == 1
    assert "--auto-approve" in result.stderr
    assert h.sim.calls == []
    assert not h.state.exists() or h.state_file()["purchases"] == {}


def test_legacy_endpoints_use_the_assets_paths(h: Harness) -> None:
    result = h.apply("--legacy-endpoints")

    assert result.exit_code == 0, result.stderr
    paths = collections.Counter(c.path for c in h.sim.calls if c.endpoint in ("verify", "checkout"))
    assert paths == {"/api/v1/assets/verify": 10, "/api/v1/assets/checkout": 10}
    h.assert_bought_exactly_once()
    # fabrikam declares attestationAccepted, which AssetOrder has no field for: left
    # out of every order, and said so.
    assert "attestationAccepted is not sent with --legacy-endpoints" in result.stderr
    assert result.stderr.count("warning: fabrikam/") >= 1
    sent = [r.body for r in h.sim.requests_log if r.endpoint in ("verify", "checkout")]
    assert sent
    assert all("attestationAccepted" not in line for b in sent for line in b["orderLines"])


@pytest.mark.parametrize("revoke", [False, True], ids=["steady", "tokens-revoked"])
def test_parallel_apply_buys_each_once(make_harness: HarnessFactory, revoke: bool) -> None:
    h = make_harness(DATA / "apply" / "twelve.yaml", latency=0.02)
    revoker = threading.Thread(target=revoke_tokens_after, args=(h.sim, 4))
    if revoke:
        revoker.start()

    result = h.apply("--parallelism", "4")

    if revoke:
        revoker.join()
        assert h.sim.count("verify", 401) + h.sim.count("checkout", 401) >= 1
        assert h.sim.tokens_issued == 2
    assert result.exit_code == 0, result.stderr
    assert "Apply complete: 12 purchased (+324 seats), 0 failed, 0 pending." in result.stdout
    assert len(h.state_file()["purchases"]) == 12
    assert len(h.sim.checkouts) == 12
    h.assert_bought_exactly_once()


def test_parallel_apply_stops_starting_changes_after_an_ambiguous_checkout(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness(DATA / "apply" / "twelve.yaml", latency=0.02)
    h.sim.drop_after_checkout(1, "500")  # whichever checkout arrives first

    result = h.apply("--parallelism", "4")

    assert result.exit_code == 1
    state = h.state_file()
    (address,) = state["pending"]
    ambiguous = h.sim.checkouts[0].external_order_id
    assert state["pending"][address]["externalOrderId"] == ambiguous
    # Changes already in flight may finish; every one the server took is recorded.
    taken = {c.external_order_id for c in h.sim.checkouts}
    recorded = {r["externalOrderId"] for p in state["purchases"].values() for r in p["checkouts"]}
    assert taken == recorded | {ambiguous}
    assert len(taken) < 12
    assert "not started." in result.stdout

    assert h.resolve(address, "--purchased").exit_code == 0
    assert h.apply("--parallelism", "4").exit_code == 0
    h.assert_bought_exactly_once()


# --------------------------------------------------------------------------- secrets


def test_wrong_credentials_buy_nothing_and_show_no_secret(h: Harness) -> None:
    env: dict[str, str | None] = dict(h.sim.env())
    wrong = f"wrong-{uuid.uuid4().hex}"
    env["CRAYON_PASSWORD"] = wrong

    result = h.run("apply", str(h.decl), "--state", str(h.state), "--auto-approve", env=env)

    assert result.exit_code == 1
    assert "CRAYON_PASSWORD" in result.stderr
    assert wrong not in result.stdout + result.stderr
    assert h.sim.checkouts == []
    assert h.sim.count("verify") == 0
    assert h.sim.count("token") == 1, "refused credentials were tried again"
    assert "Apply" not in result.stdout  # stopped at the first read, before any plan ran
    assert not h.state.exists() or h.state_file()["pending"] == {}


def test_no_secret_anywhere_after_a_faulty_run(make_harness: HarnessFactory) -> None:
    h = make_harness(token_ttl_calls=2)
    h.sim.fail_next("token", 503, 1, "0")
    h.sim.fail_next("verify", 429, 1, "0")
    h.sim.fail_next("checkout", 401, 1)
    h.sim.drop_after_checkout(1, "500")
    outputs = []

    first = h.apply()
    outputs.append(first.stdout + first.stderr)
    assert first.exit_code == 1
    address = next(iter(h.state_file()["pending"]))
    for args in (
        ("plan", str(h.decl), "--state", str(h.state), "--json"),
        ("show", "--state", str(h.state)),
        ("state", "show", address, "--state", str(h.state)),
        ("state", "resolve", address, "--purchased", "--state", str(h.state)),
        ("plan", str(h.decl), "--state", str(h.state), "--verify", "--out", str(h.tmp / "p.plan")),
        ("apply", str(h.decl), "--state", str(h.state), "--auto-approve"),
    ):
        result = h.run(*args)
        outputs.append(result.stdout + result.stderr)
    assert result.exit_code == 0

    # Harness.run checked each output and file already; check it all once more together.
    everything = "\n".join(outputs) + "".join(
        p.read_text(encoding="utf-8") for p in h.tmp.iterdir() if p.is_file()
    )
    assert h.sim.tokens_issued >= 5
    h.assert_no_secrets(everything)
    assert h.sim.password not in everything
    h.assert_bought_exactly_once()


# --------------------------------------------------------------------------- state paths


def test_printed_resolve_command_works_for_a_state_path_with_a_space(h: Harness) -> None:
    spaced = h.tmp / "my states" / "prod.state.json"
    spaced.parent.mkdir()
    assert h.run("init", "--state", str(spaced)).exit_code == 0
    h.state = spaced
    h.sim.drop_after_checkout(1, "drop")
    result = h.apply()
    assert result.exit_code == 1
    (command,) = [
        c
        for c in pending_message_commands(result.stderr, "contoso/m365-business-basic")
        if "--purchased" in c
    ]

    resolved = h.run(*shlex.split(command)[1:])

    assert resolved.exit_code == 0, resolved.stderr


def test_state_reached_through_a_symlink_is_written_through(h: Harness) -> None:
    real = h.tmp / "shared" / "reconciler.state.json"
    real.parent.mkdir(parents=True)
    link = h.tmp / "link.state.json"
    link.symlink_to(real)
    # Created through the link, as a pipeline that only knows the link would.
    assert h.run("init", "--state", str(link)).exit_code == 0
    assert link.is_symlink()
    assert real.is_file()
    northwind = h.decl / "customers" / "northwind.yaml"
    assert h.run(
        "apply", str(northwind), "--state", str(real), "--auto-approve"
    ).exit_code == 0  # fmt: skip

    h.state = link
    through_link = h.apply()
    h.state = real
    through_real = h.apply()

    assert through_link.exit_code == through_real.exit_code == 0
    h.assert_bought_exactly_once()
    assert link.is_symlink()


# --------------------------------------------------------------------------- saved plans


def test_a_saved_plan_applies_from_anywhere_without_asking(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan_file = h.tmp / "plans" / "tfplan.json"
    plan_file.parent.mkdir()
    planned = h.run("plan", str(h.decl), "--state", str(h.state), "--out", str(plan_file))
    assert planned.exit_code == 0, planned.stderr
    assert json.loads(plan_file.read_text(encoding="utf-8"))["declarations_path"] == (
        "../declarations"
    )
    elsewhere = h.tmp / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "junk.yaml").write_text("not: declarations\n", encoding="utf-8")
    monkeypatch.chdir(elsewhere)

    # No PATH, no --auto-approve and no terminal: the saved plan is the approval.
    result = h.run("apply", "--plan", str(plan_file), "--state", str(h.state))

    assert result.exit_code == 0, result.stderr
    assert "Apply complete: 10 purchased (+333 seats), 0 failed, 0 pending." in result.stdout
    h.assert_bought_exactly_once()


# --------------------------------------------------------------------------- moves and targets


def test_apply_of_a_move_makes_no_api_call_and_keeps_the_checkouts(state: Path, decl: Path) -> None:
    record(state, "acme/old", 10, order="order-1")
    record(state, "acme/old", 2, order="order-2")
    checkouts = state_json(state)["purchases"]["acme/old"]
    renamed(decl, 12, moved=True)

    # Offline, with no API settings at all: a call to the API would fail the run.
    result = run("apply", str(decl), "--state", str(state), "--auto-approve", "--refresh=false")

    assert result.exit_code == 0, result.output
    assert result.stdout.endswith("Moved acme/old to acme/new in the state.\n")
    after = state_json(state)
    assert after["purchases"] == {"acme/new": checkouts}
    again = run("plan", str(decl), "--state", str(state), "--detailed-exitcode")
    # The leftover moved: entry is a harmless noop (plan without credentials: offline).
    assert again.exit_code == 0, again.output
    assert "No changes." in again.stdout


def test_a_moves_only_apply_without_a_terminal_needs_auto_approve(state: Path, decl: Path) -> None:
    record(state, "acme/old", 10, order="order-1")
    before = state.read_bytes()
    renamed(decl, 10, moved=True)

    refused = run("apply", str(decl), "--state", str(state), "--refresh=false")

    assert refused.exit_code == 1
    assert "pass --auto-approve to apply without asking" in refused.stderr
    assert state.read_bytes() == before


def test_a_saved_plan_keeps_its_moves(state: Path, decl: Path, tmp_path: Path) -> None:
    record(state, "acme/old", 10, order="order-1")
    renamed(decl, 10, moved=True)
    saved = tmp_path / "tfplan.json"

    planned = run("plan", str(decl), "--state", str(state), "--out", str(saved))
    applied = run(
        "apply", str(decl), "--state", str(state), "--plan", str(saved), "--refresh=false"
    )

    assert planned.exit_code == 0, planned.output
    assert json.loads(saved.read_text(encoding="utf-8"))["changes"][0]["from"] == "acme/old"
    assert applied.exit_code == 0, applied.output
    assert list(state_json(state)["purchases"]) == ["acme/new"]


def test_a_move_with_more_seats_moves_then_buys_the_difference(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness()
    assert h.apply().exit_code == 0
    old = h.state_file()["purchases"][TEAMS]
    edit_purchase(h.decl, TEAMS, name="northwind/teams", quantity=old["quantity"] + 2)
    file = h.decl / "customers" / "northwind.yaml"
    with file.open("a", encoding="utf-8") as handle:
        handle.write(f"moved:\n- from: {TEAMS}\n  to: northwind/teams\n")
    calls = len(h.sim.calls)

    result = h.apply()

    assert result.exit_code == 0, result.output
    assert f"Moved {TEAMS} to northwind/teams in the state." in result.stdout
    state = h.state_file()
    assert TEAMS not in state["purchases"]
    moved = state["purchases"]["northwind/teams"]
    assert moved["quantity"] == old["quantity"] + 2
    orders = [c["externalOrderId"] for c in moved["checkouts"]]
    assert orders[:-1] == [c["externalOrderId"] for c in old["checkouts"]]
    assert moved["checkouts"][-1]["quantity"] == 2
    # One verify and one checkout for the two added seats; nothing for the move.
    paths = [c.path for c in h.sim.calls[calls:]]
    assert sum("checkout" in p.lower() for p in paths) == 1


def test_apply_goes_ahead_for_customers_without_conflicts_and_targets_narrow_it(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness()
    assert h.apply().exit_code == 0
    state = h.state_file()
    basic = state["purchases"]["contoso/m365-business-basic"]["quantity"]
    edit_purchase(h.decl, "contoso/m365-business-basic", quantity=basic + 3)
    premium = state["purchases"]["fabrikam/m365-e3"]["quantity"]
    edit_purchase(h.decl, "fabrikam/m365-e3", quantity=premium + 1)
    edit_purchase(h.decl, TEAMS, billingCycle="monthly")  # a conflict at northwind
    waiting = "northwind/exchange-online-plan-1"
    recorded = JsonFileStateStore(h.state).load().purchases[waiting]
    with JsonFileStateStore(h.state).lock("test") as writer:
        writer.add_pending(PendingOperation(waiting, recorded.identity, "order-w", 1, T0))
    saved = h.tmp / "contoso.plan"

    planned = h.run(
        "plan", str(h.decl), "--state", str(h.state), "--target", "contoso/", "--out", str(saved)
    )
    other = h.apply("--plan", str(saved), "--target", "fabrikam/")
    targeted = h.apply("--plan", str(saved))

    assert planned.exit_code == 0, planned.output
    assert other.exit_code == 1
    assert other.stderr == (
        f"error: saved plan {saved} was made with --target contoso/; apply it without "
        "--target or run `reconciler plan` again\n"
    )
    assert targeted.exit_code == 0, targeted.output
    after = h.state_file()
    assert after["purchases"]["contoso/m365-business-basic"]["quantity"] == basic + 3
    assert after["purchases"]["fabrikam/m365-e3"]["quantity"] == premium

    # A whole apply: northwind's conflict and pending entry block only northwind.
    whole = h.apply()
    assert whole.exit_code == 1
    assert "1 conflict" in whole.stdout
    final = h.state_file()
    assert final["purchases"]["fabrikam/m365-e3"]["quantity"] == premium + 1
    assert final["purchases"][TEAMS]["billingCycle"] == "annual"
    assert list(final["pending"]) == [waiting]
    assert f"reconciler state resolve {waiting} --purchased" in whole.stderr


# --------------------------------------------------------------------------- read before buying


def test_apply_refuses_to_buy_seats_that_exist_after_the_state_was_lost(
    project: Project, tmp_path: Path
) -> None:
    project.ok("apply", str(project.decl), "--auto-approve")
    lost = Project(project.sim, tmp_path, project.decl, str(tmp_path / "new.state.json"))
    lost.ok("init")
    before = lost.buys()

    refused = lost.ok("apply", str(project.decl), "--auto-approve", code=1)
    assert "! acme/basic  conflict" in refused.stdout
    assert "Cloud-iQ already holds 5 seats (subscription " in refused.stdout
    assert "`import: [{to: acme/basic, subscriptions: [" in refused.stdout
    assert "`reconciler import --tenant 111111`" in refused.stdout
    assert "allowAdditionalSubscription: true" in refused.stdout
    assert "the plan has 3 conflicts" in refused.stderr
    assert "nothing was bought or changed for customer tenant 111111" in refused.stderr
    assert lost.buys() == before
    assert "3 conflicts" in lost.ok("plan", str(project.decl), code=1).stdout

    # Acknowledged on one purchase, that one buys a second subscription; the rest adopt.
    text = (project.decl / "acme.yaml").read_text(encoding="utf-8")
    (project.decl / "acme.yaml").write_text(
        text.replace(
            "    quantity: 2\n", "    quantity: 2\n    allowAdditionalSubscription: true\n"
        )
    )
    assert lost.ok("validate", str(project.decl)).exit_code == 0
    lost.ok("import", str(project.decl), "--tenant", "111111", "--auto-approve")
    lost.ok("apply", str(project.decl), "--auto-approve")
    assert lost.sim.seats(TENANT, E3.product) == 4
    assert lost.sim.seats(TENANT, BASIC.product) == 5
    # The other subscription is not acme/e3's: it stays unmanaged, flagged beside acme/e3.
    done = lost.ok("refresh", str(project.decl), "--auto-approve")
    assert "of an identity acme/e3 has" in done.stdout
    assert "No changes." in lost.ok("plan", str(project.decl)).stdout


# --------------------------------------------------------------------------- the seat limit


def test_a_change_above_the_seat_limit_needs_max_seats_before_any_api_call(
    tmp_path: Path,
) -> None:
    """An extra zero in a quantity must not reach checkout unconfirmed."""
    decl = declare(tmp_path / "decl", purchase("acme/a", 3), purchase("acme/typo", 120_000))
    state = str(tmp_path / "reconciler.state.json")
    assert run("init", "--state", state).exit_code == 0

    planned = run("plan", str(decl), "--state", state)
    assert planned.exit_code == 0
    assert (
        "warning: acme/typo buys 120000 seats in one change, more than the sanity limit of "
        "10000 seats (RECONCILER_SEAT_LIMIT): apply will want the total confirmed with "
        "--max-seats 120003"
    ) in planned.stderr

    refused = run("apply", str(decl), "--state", state, "--auto-approve", "--refresh=false")
    assert refused.exit_code == 1
    assert (
        "error: the plan buys more than 10000 seats in one change: acme/typo (120000 seats); "
        "if that is intended, confirm the total with --max-seats 120003 (the limit is "
        "RECONCILER_SEAT_LIMIT); nothing was bought"
    ) in refused.stderr

    # Confirmed, apply goes on to the API (here: no credentials, so it stops there).
    confirmed = run(
        "apply", str(decl), "--state", state, "--auto-approve", "--max-seats", "120003",
        "--refresh=false",
    )  # fmt: skip
    assert confirmed.exit_code == 1
    assert "sanity limit" not in confirmed.stderr
    assert "in one change" not in confirmed.stderr
    assert "CRAYON_" in confirmed.stderr

    lower = run(
        "apply", str(decl), "--state", state, "--auto-approve", "--refresh=false",
        env={"RECONCILER_SEAT_LIMIT": "2"},
    )  # fmt: skip
    assert "acme/a (3 seats), acme/typo (120000 seats)" in lower.stderr
    bad = run("plan", str(decl), "--state", state, env={"RECONCILER_SEAT_LIMIT": "many"})
    assert bad.exit_code == 1
    assert "RECONCILER_SEAT_LIMIT must be a whole number >= 1, not 'many'" in bad.stderr


# --------------------------------------------------------------------------- the apply process


@pytest.fixture
def sim(simulator_factory: SimulatorFactory) -> Simulator:
    return simulator_factory(client_secret="cs-d1e5b0c9-secret", password="pw-7a1f44e0-secret")


def start_apply(
    sim: Simulator, decl: Path, state: Path, *, ask: bool = False, **kwargs: Any
) -> subprocess.Popen[str]:
    """``apply --auto-approve --parallelism 1`` (or, with ``ask``, asking on stdin)."""
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    flags = [] if ask else ["--auto-approve", "--parallelism", "1"]
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", str(decl), "--state", str(state), *flags],
        env=os.environ | sim.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.mark.slow
def test_killed_during_a_checkout_leaves_it_pending_and_loses_nothing(
    sim: Simulator, tmp_path: Path
) -> None:
    decl, state = tmp_path / "declarations", tmp_path / "reconciler.state.json"
    h = Harness(sim, tmp_path, decl, init(state))
    decl.mkdir()
    shutil.copy(CUSTOMERS / "northwind.yaml", decl)
    seeded = h.run("apply", str(decl), "--state", str(state), "--auto-approve")
    assert seeded.exit_code == 0, seeded.stderr
    before = read_state_file(state)
    shutil.copy(CUSTOMERS / "contoso.yaml", decl)
    shutil.copy(CUSTOMERS / "fabrikam.yaml", decl)
    # contoso/m365-business-basic and -premium go through; the third verify is slow,
    # which leaves time to make the simulator hold the third checkout once taken.
    sim.delay_next("verify", 0, 2)
    sim.delay_next("verify", 0.5)

    proc = start_apply(sim, decl, state)
    wait_until(lambda: len(sim.checkouts) >= 5, proc, "two checkouts")
    sim.hold_checkouts(30)
    wait_until(lambda: len(sim.checkouts) >= 6, proc, "the third checkout")
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == -signal.SIGKILL
    sim.hold_checkouts(0)
    held = sim.checkouts[5]
    assert held.external_order_id is not None
    assert (held.tenant, held.product, held.quantity) == (100001, "CFQ7TTC0LCHC:0002", 12)

    # The state file is whole (the old or a newer one); with its journal it has
    # both 204s recorded and the held checkout pending under the id the server took.
    on_disk = read_state_file(state)
    assert on_disk["lineage"] == before["lineage"]
    assert on_disk["serial"] >= before["serial"]
    recovered = h.shown()
    assert recovered["lineage"] == before["lineage"]
    ids = {c.product: c.external_order_id for c in sim.checkouts}
    for address, product, quantity in (
        ("contoso/m365-business-basic", "CFQ7TTC0LF8R:0010", 35),
        ("contoso/m365-business-premium", "CFQ7TTC0LH18:0001", 85),
    ):
        purchase = recovered["purchases"][address]
        assert purchase["quantity"] == quantity
        assert [r["externalOrderId"] for r in purchase["checkouts"]] == [ids[product]]
    assert set(recovered["pending"]) == {"contoso/power-bi-pro"}
    pending = recovered["pending"]["contoso/power-bi-pro"]
    assert pending["externalOrderId"] == held.external_order_id
    assert pending["quantity"] == 12
    assert "contoso/power-bi-pro" not in recovered["purchases"]
    assert len(recovered["purchases"]) == 5

    # The dead run's lock does not block; its pending checkout is settled from what
    # Cloud-iQ shows (the checkout was taken), with no person, and the rest is bought.
    rest = h.run("apply", str(decl), "--state", str(state), "--auto-approve")
    assert rest.exit_code == 0, rest.stderr
    assert "locked" not in rest.stderr
    assert f"Settled contoso/power-bi-pro: {held.external_order_id}" in rest.stdout
    assert "Apply complete: 4 purchased (+172 seats), 0 failed, 0 pending." in rest.stdout
    assert len(sim.checkouts) == 10
    assert_bought_exactly_once(sim, decl, state)
    assert_no_secrets(sim, out, err, rest.stdout, rest.stderr)
    assert_no_secrets(sim, *(p.read_text() for p in tmp_path.iterdir() if p.is_file()))


@pytest.mark.slow
def test_a_second_apply_fails_at_once_while_the_first_holds_the_lock(
    sim: Simulator, tmp_path: Path
) -> None:
    decl, state = tmp_path / "declarations", tmp_path / "reconciler.state.json"
    h = Harness(sim, tmp_path, decl, init(state))
    shutil.copytree(CUSTOMERS, decl)
    sim.hold_checkouts(1.5)

    first = start_apply(sim, decl, state)
    wait_until(lambda: len(sim.checkouts) >= 1, first, "the first checkout")
    started = time.monotonic()
    second = h.run("apply", str(decl), "--state", str(state), "--auto-approve")
    rm = h.run("state", "rm", "contoso/m365-business-basic", "--state", str(state), "-y")
    elapsed = time.monotonic() - started
    sim.hold_checkouts(0)
    out, err = first.communicate(timeout=TIMEOUT)

    assert second.exit_code == 1
    assert f"state is locked by pid {first.pid}" in second.stderr
    assert "reconciler apply" in second.stderr
    assert rm.exit_code == 1
    assert f"state is locked by pid {first.pid}" in rm.stderr
    assert elapsed < 10
    assert sim.tokens_issued == 1, "the second apply talked to the API"
    assert first.returncode == 0, err
    assert "Apply complete: 10 purchased (+333 seats), 0 failed, 0 pending." in out
    assert len(sim.checkouts) == 10
    assert_bought_exactly_once(sim, decl, state)
    assert_no_secrets(sim, out, err, second.stdout, second.stderr)


@pytest.mark.slow
@pytest.mark.parametrize(("answer", "bought"), [("yes", True), ("y", False)])
def test_apply_on_a_terminal_buys_only_after_yes(
    sim: Simulator, tmp_path: Path, answer: str, bought: bool
) -> None:
    decl, state = tmp_path / "declarations", tmp_path / "reconciler.state.json"
    init(state)
    decl.mkdir()
    shutil.copy(CUSTOMERS / "northwind.yaml", decl)

    controller, terminal = pty.openpty()
    try:
        proc = start_apply(sim, decl, state, ask=True, stdin=terminal)
        os.write(controller, f"{answer}\n".encode())
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        os.close(controller)
        os.close(terminal)

    assert "Only 'yes' will be accepted" in err
    if bought:
        assert proc.returncode == 0, err
        assert "Apply complete: 3 purchased (+29 seats), 0 failed, 0 pending." in out
        assert_bought_exactly_once(sim, decl, state)
    else:
        assert proc.returncode == 1
        assert "nothing was bought" in err
        assert not [c for c in sim.calls if c.endpoint in ("verify", "checkout")]
        assert json.loads(state.read_bytes())["purchases"] == {}


@pytest.mark.slow
def test_ctrl_c_during_a_checkout_reports_it_pending(sim: Simulator, tmp_path: Path) -> None:
    decl, state = tmp_path / "declarations", tmp_path / "reconciler.state.json"
    h = Harness(sim, tmp_path, decl, init(state))
    shutil.copytree(CUSTOMERS, decl)
    sim.delay_next("verify", 0, 2)
    sim.delay_next("verify", 0.5)

    proc = start_apply(sim, decl, state)
    wait_until(lambda: len(sim.checkouts) >= 2, proc, "two checkouts")
    sim.hold_checkouts(30)
    wait_until(lambda: len(sim.checkouts) >= 3, proc, "the third checkout")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=TIMEOUT)
    sim.hold_checkouts(0)

    # The run stops; the checkout the server took stays pending, and the user is told.
    assert proc.returncode == 1
    held = sim.checkouts[2]
    assert held.external_order_id is not None
    pending = h.shown()["pending"]
    assert list(pending) == ["contoso/power-bi-pro"]
    assert pending["contoso/power-bi-pro"]["externalOrderId"] == held.external_order_id
    assert re.search(r"contoso/power-bi-pro +\+12 +pending", out), out
    assert "2 purchased (+120 seats), 0 failed, 1 pending. 7 not started. Interrupted." in out
    assert held.external_order_id in err
    assert "reconciler state resolve contoso/power-bi-pro --purchased" in err
    assert len(sim.checkouts) == 3
    assert sim.count("verify") == 3

    assert h.run("state", "resolve", "contoso/power-bi-pro", "--purchased",
                      "--state", str(state)).exit_code == 0  # fmt: skip
    rest = h.run("apply", str(decl), "--state", str(state), "--auto-approve")
    assert rest.exit_code == 0, rest.stderr
    assert_bought_exactly_once(sim, decl, state)


@pytest.mark.slow
def test_state_file_kept_without_its_journal_after_a_kill_refuses_to_plan(
    sim: Simulator, tmp_path: Path
) -> None:
    decl, state = tmp_path / "declarations", tmp_path / "reconciler.state.json"
    h = Harness(sim, tmp_path, decl, init(state))
    decl.mkdir()
    shutil.copy(CUSTOMERS / "northwind.yaml", decl)
    seeded = h.run("apply", str(decl), "--state", str(state), "--auto-approve")
    assert seeded.exit_code == 0, seeded.stderr
    shutil.copy(CUSTOMERS / "contoso.yaml", decl)
    sim.delay_next("verify", 0, 2)
    sim.delay_next("verify", 0.5)

    proc = start_apply(sim, decl, state)
    wait_until(lambda: len(sim.checkouts) >= 5, proc, "two checkouts")
    sim.hold_checkouts(30)
    wait_until(lambda: len(sim.checkouts) >= 6, proc, "the third checkout")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=TIMEOUT)
    sim.hold_checkouts(0)

    # A pipeline that keeps (commits, uploads) the state file and nothing else ...
    kept = tmp_path / "kept" / "reconciler.state.json"
    kept.parent.mkdir()
    shutil.copy(state, kept)
    # ... must not plan from it: its two 204s and the pending checkout are in the journal.
    calls = len(sim.calls)
    for args in (["plan"], ["apply", "--auto-approve"]):
        refused = h.run(*args, str(decl), "--state", str(kept))
        assert refused.exit_code == 1
        assert "journal" in refused.stderr
        assert "is missing" in refused.stderr
    assert len(sim.calls) == calls
    # With the journal put back beside it, the kept file plans exactly as the original.
    shutil.copy(state.with_name(state.name + ".journal"), kept.with_name(kept.name + ".journal"))
    again = h.run("plan", str(decl), "--state", str(kept), "--json", "--no-refresh")
    actions = {c["address"]: c["action"] for c in json.loads(again.stdout)["changes"]}
    assert actions["contoso/m365-business-basic"] == "noop"
    assert actions["contoso/m365-business-premium"] == "noop"
    assert actions["contoso/power-bi-pro"] == "pending"


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6))
def test_killed_at_a_random_instant_then_resolved_buys_every_seat_once(
    simulator_factory: SimulatorFactory, tmp_path: Path, seed: int
) -> None:
    """SIGKILL at an arbitrary instant of a run, then what an operator does: settle each
    pending checkout by whether the API took its externalOrderId, and apply again."""
    import random

    sim = simulator_factory(latency=0.004)
    decl, state = tmp_path / "declarations", tmp_path / "reconciler.state.json"
    h = Harness(sim, tmp_path, decl, init(state))
    shutil.copytree(CUSTOMERS, decl)
    chance = random.Random(seed)
    after, delay = chance.randrange(10), chance.uniform(0, 0.02)

    proc = start_apply(sim, decl, state)
    # After some checkouts, at a moment anywhere in the next purchase's steps.
    wait_until(lambda: len(sim.checkouts) >= after, proc, f"{after} checkouts")
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=TIMEOUT)
    # A checkout sent just before the kill is still being handled: the API records
    # it all the same, and the operator's look in Cloud-iQ comes after that.
    assert sim.wait_idle()

    taken = {c.external_order_id for c in sim.checkouts}
    pending = h.shown()["pending"]
    for address, op in pending.items():
        outcome = "--purchased" if op["externalOrderId"] in taken else "--not-purchased"
        resolved = h.run("state", "resolve", address, outcome, "--state", str(state))
        assert resolved.exit_code == 0, resolved.stderr
    finish = h.run("apply", str(decl), "--state", str(state), "--auto-approve")
    assert finish.exit_code == 0, finish.stderr
    assert_bought_exactly_once(sim, decl, state)
