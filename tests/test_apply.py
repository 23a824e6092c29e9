"""End-to-end tests of `reconciler apply` (and `plan --verify`) against the simulator.

Every test drives the real CLI in-process (``CliRunner``) against a simulator on
a real loopback socket, and judges the run by what a user and the Crayon side
see: the exit code and output, the state file, and the checkouts the simulator
recorded. The one question behind all of them: was every declared seat bought
exactly once?

Every CLI run goes through ``Harness.run``, which also checks that no secret
(client secret, password, any issued access token) appears in the output, the
state file or a saved plan.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import re
import shlex
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner, Result

import reconciler
from reconciler import api
from reconciler.cli import cli
from reconciler.simulator import Simulator

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DATA = Path(__file__).resolve().parent / "data" / "apply"
STATE_SCHEMA = json.loads((ROOT / "schemas" / "state.schema.json").read_text(encoding="utf-8"))

#: The access tokens the simulator issues ("sim-" and 32 hex digits).
TOKEN_PATTERN = re.compile(r"sim-[0-9a-f]{32}")
BILLING_CYCLES = {"monthly": 1, "annual": 2, "none": 3, "one-time": 4, "triennial": 5}
TYPES = {"reservation": 1, "software": 2, "subscription": 3}
TEAMS = "northwind/teams-essentials"  # CFQ7TTC0LHSF:0001, catalogue maximum 20


# --------------------------------------------------------------------------- declarations


@dataclasses.dataclass(frozen=True)
class Declared:
    address: str
    tenant: int
    product: str  # "productId:skuId", as Simulator.seats takes it
    quantity: int
    billing_cycle: str
    term_duration: str
    type: str


def declared(path: Path) -> dict[str, Declared]:
    """The purchases declared under ``path``, read independently of the reconciler."""
    files = [path] if path.is_file() else sorted(path.rglob("*.yaml"))
    found: dict[str, Declared] = {}
    for file in files:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
        defaults = data.get("defaults", {})
        for raw in data["purchases"]:
            entry = defaults | raw
            found[entry["name"]] = Declared(
                address=entry["name"],
                tenant=entry["customerTenantId"],
                product=f"{entry['productId']}:{entry['skuId']}",
                quantity=entry["quantity"],
                billing_cycle=entry["billingCycle"],
                term_duration=entry["termDuration"],
                type=entry.get("type", "subscription"),
            )
    return found


def _file_declaring(decl: Path, address: str) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    for file in sorted(decl.rglob("*.yaml")):
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
        for purchase in data["purchases"]:
            if purchase["name"] == address:
                return file, data, purchase
    raise AssertionError(f"{address} is not declared under {decl}")


def edit_purchase(decl: Path, address: str, **fields: Any) -> None:
    """Change fields of one declaration (``quantity=23``, ``billingCycle="annual"``)."""
    file, data, purchase = _file_declaring(decl, address)
    purchase.update(fields)
    file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def remove_purchase(decl: Path, address: str) -> None:
    file, data, purchase = _file_declaring(decl, address)
    data["purchases"].remove(purchase)
    file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


# --------------------------------------------------------------------------- the harness


@dataclasses.dataclass
class Harness:
    """One simulator, one declarations directory, one state file under tmp_path."""

    sim: Simulator
    tmp: Path
    decl: Path
    state: Path

    def run(self, *args: str, env: dict[str, str | None] | None = None) -> Result:
        """Run the real CLI; no traceback and no secret may come out of it."""
        result = CliRunner().invoke(cli, list(args), env=self.sim.env() if env is None else env)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(
                f"reconciler {' '.join(args)} crashed:\n{result.output}"
            ) from result.exception
        assert "Traceback" not in result.output
        self.assert_no_secrets(result.stdout + result.stderr)
        return result

    def apply(self, *extra: str) -> Result:
        return self.run(
            "apply", str(self.decl), "--state", str(self.state), "--auto-approve", *extra
        )

    def apply_path(self, path: Path, *extra: str) -> Result:
        return self.run("apply", str(path), "--state", str(self.state), "--auto-approve", *extra)

    def resolve(self, address: str, flag: str) -> Result:
        return self.run("state", "resolve", address, flag, "--state", str(self.state))

    def state_file(self) -> dict[str, Any]:
        """The state file on disk: valid JSON, valid against the state schema."""
        text = self.state.read_text(encoding="utf-8")
        assert text.endswith("\n")
        data: dict[str, Any] = json.loads(text)
        jsonschema.validate(data, STATE_SCHEMA)
        assert text == json.dumps(data, indent=2, sort_keys=True) + "\n"
        return data

    def shown(self) -> dict[str, Any]:
        """The state as `reconciler show --json` reports it (journal included)."""
        result = self.run("show", "--state", str(self.state), "--json")
        assert result.exit_code == 0, result.stderr
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    def assert_no_secrets(self, text: str) -> None:
        for secret in (self.sim.client_secret, self.sim.password):
            assert secret not in text
        assert not TOKEN_PATTERN.search(text), TOKEN_PATTERN.search(text)
        for path in self.tmp.rglob("*"):
            if path.is_file() and path.suffix in (".json", ".journal", ".lock", ".plan"):
                content = path.read_text(encoding="utf-8", errors="replace")
                for secret in (self.sim.client_secret, self.sim.password):
                    assert secret not in content, path
                assert not TOKEN_PATTERN.search(content), path


HarnessFactory = Callable[..., Harness]


@pytest.fixture
def make_harness(simulator_factory: Callable[..., Simulator], tmp_path: Path) -> HarnessFactory:
    """A harness on a fresh copy of examples/ (or ``source``), with unique secrets and
    an empty state made by ``reconciler init``."""
    made = 0

    def make(source: Path = EXAMPLES, **sim_kwargs: Any) -> Harness:
        nonlocal made
        made += 1
        sim = simulator_factory(
            client_secret=f"cs-{uuid.uuid4().hex}",
            password=f"pw-{uuid.uuid4().hex}",
            **sim_kwargs,
        )
        root = tmp_path / f"run{made}"
        decl = root / "declarations"
        if source.is_dir():
            # examples/ci holds CI templates (YAML too), not declarations.
            shutil.copytree(source, decl, ignore=shutil.ignore_patterns("ci"))
        else:
            decl.mkdir(parents=True)
            shutil.copy(source, decl / source.name)
        harness = Harness(sim=sim, tmp=root, decl=decl, state=root / "reconciler.state.json")
        # The state is created as a user creates it; every other command refuses a missing one.
        created = harness.run("init", "--state", str(harness.state))
        assert created.exit_code == 0, created.output
        return harness

    return make


@pytest.fixture
def h(make_harness: HarnessFactory) -> Harness:
    return make_harness()


# --------------------------------------------------------------------------- the oracle


def assert_bought_exactly_once(h: Harness, *, also_bought: frozenset[str] = frozenset()) -> None:
    """Every declared seat is in the state and was checked out exactly once.

    ``also_bought``: externalOrderIds the simulator took that the state rightly
    does not record (the user said --not-purchased about them).
    """
    wanted = declared(h.decl)
    state = h.state_file()
    assert state["pending"] == {}
    checkouts = h.sim.checkouts
    order_ids = [c.external_order_id for c in checkouts]
    assert len(order_ids) == len(set(order_ids)), "one externalOrderId checked out twice"
    by_id = {c.external_order_id: c for c in checkouts}
    recorded_ids = set()
    for address, want in wanted.items():
        purchase = state["purchases"][address]
        assert purchase["quantity"] == want.quantity, address
        assert purchase["customerTenantId"] == want.tenant
        assert f"{purchase['productId']}:{purchase['skuId']}" == want.product
        assert sum(r["quantity"] for r in purchase["checkouts"]) == want.quantity
        for record in purchase["checkouts"]:
            taken = by_id[record["externalOrderId"]]
            assert (taken.tenant, taken.product, taken.quantity) == (
                want.tenant,
                want.product,
                record["quantity"],
            )
            recorded_ids.add(record["externalOrderId"])
    assert set(order_ids) == recorded_ids | also_bought
    seats: collections.Counter[tuple[int, str]] = collections.Counter()
    for want in wanted.values():
        seats[want.tenant, want.product] += want.quantity
    for c in checkouts:
        if c.external_order_id in also_bought:
            seats[c.tenant, c.product] += c.quantity
    for (tenant, product), total in seats.items():
        assert h.sim.seats(tenant, product) == total, (tenant, product)


def checkout_ids_by_address(h: Harness) -> dict[str, list[str]]:
    state = h.state_file()
    return {
        address: [r["externalOrderId"] for r in p["checkouts"]]
        for address, p in state["purchases"].items()
    }


def revoke_tokens_after(sim: Simulator, checkouts: int) -> None:
    """Revoke every issued token once the simulator has taken ``checkouts`` checkouts."""
    deadline = time.monotonic() + 10
    while len(sim.checkouts) < checkouts and time.monotonic() < deadline:
        time.sleep(0.001)
    sim.expire_tokens()


def pending_message_commands(stderr: str, address: str) -> list[str]:
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
    assert_bought_exactly_once(h)
    wanted = declared(h.decl)
    assert sum(d.quantity for d in wanted.values()) == 333

    # One checkout per address, in address order, each the verify answer sent back unchanged.
    ids = checkout_ids_by_address(h)
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

    # A second apply has nothing to buy and does not even talk to the API.
    calls = len(h.sim.calls)
    again = h.apply()
    assert again.exit_code == 0, again.stderr
    assert "No changes." in again.stdout
    assert len(h.sim.calls) == calls
    assert len(h.sim.checkouts) == 10


def test_increase_buys_only_the_difference(h: Harness) -> None:
    assert h.apply().exit_code == 0
    first = checkout_ids_by_address(h)["northwind/m365-business-standard"]
    edit_purchase(h.decl, "northwind/m365-business-standard", quantity=23)

    result = h.apply()

    assert result.exit_code == 0, result.stderr
    assert "increase, 18 -> 23 seats (+5)" in result.stdout
    assert "Apply complete: 1 purchased (+5 seats), 0 failed, 0 pending." in result.stdout
    assert [c.quantity for c in h.sim.checkouts[10:]] == [5]
    assert h.sim.count("checkout") == 11
    assert h.sim.count("verify") == 11
    ids = checkout_ids_by_address(h)["northwind/m365-business-standard"]
    assert ids[0] == first[0]
    assert ids[1] == h.sim.checkouts[10].external_order_id
    assert h.sim.seats(100003, "CFQ7TTC0LDPB:0001") == 23
    assert_bought_exactly_once(h)


def test_orphan_is_kept_and_buys_nothing(h: Harness) -> None:
    assert h.apply().exit_code == 0
    before = h.state_file()
    calls = len(h.sim.calls)
    remove_purchase(h.decl, "contoso/visio-plan-2")

    result = h.apply()

    assert result.exit_code == 0, result.stderr
    assert "contoso/visio-plan-2  orphan" in result.stdout
    assert "no longer declared" in result.stdout
    assert len(h.sim.calls) == calls
    assert h.state_file()["purchases"] == before["purchases"]


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param({"quantity": 3}, id="decrease"),
        pytest.param({"billingCycle": "annual"}, id="identity"),
    ],
)
def test_conflict_refuses_before_any_api_call(h: Harness, edit: dict[str, Any]) -> None:
    assert h.apply().exit_code == 0
    before = h.state_file()
    calls = len(h.sim.calls)
    edit_purchase(h.decl, "contoso/visio-plan-2", **edit)
    # Another change that would buy: a conflict anywhere stops the whole apply.
    edit_purchase(h.decl, "contoso/power-bi-pro", quantity=20)

    result = h.apply()

    assert result.exit_code == 1
    assert "contoso/visio-plan-2  conflict" in result.stdout
    assert "conflict" in result.stderr
    assert "nothing was bought" in result.stderr
    assert len(h.sim.calls) == calls
    assert h.sim.count("verify") == 10
    assert h.state_file() == before


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
    assert_bought_exactly_once(h)


def test_retry_after_is_honoured(h: Harness) -> None:
    h.sim.fail_next("verify", 429, 1, "1")
    started = time.monotonic()

    result = h.apply()

    assert result.exit_code == 0, result.stderr
    assert time.monotonic() - started >= 1.0
    assert_bought_exactly_once(h)


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
    assert_bought_exactly_once(h)


def test_tokens_expiring_every_few_calls_buy_everything_once(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness(token_ttl_calls=3)

    result = h.apply()

    assert result.exit_code == 0, result.stderr
    assert h.sim.count("verify", 401) + h.sim.count("checkout", 401) >= 5
    assert h.sim.tokens_issued >= 6
    assert_bought_exactly_once(h)


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
    assert_bought_exactly_once(h)


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
    assert_bought_exactly_once(h)


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
    assert_bought_exactly_once(h)


def test_failure_messages_name_the_failure_once(h: Harness) -> None:
    h.sim.fail_next("checkout", 400)

    result = h.apply()

    assert result.exit_code == 1
    assert "checkout refused: HTTP 400" in result.stderr
    assert "checkout refused: checkout refused" not in result.stderr


def test_unknown_customer_tenant_fails_that_change_only(h: Harness) -> None:
    edit_purchase(h.decl, "northwind/exchange-online-plan-1", customerTenantId=999999)

    result = h.apply()

    assert result.exit_code == 1
    assert "Apply failed: 9 purchased (+327 seats), 1 failed, 0 pending." in result.stdout
    assert "404" in result.stderr
    assert "Customer tenant 999999 was not found." in result.stderr
    assert all(c.tenant != 999999 for c in h.sim.checkouts)
    assert "northwind/exchange-online-plan-1" not in h.state_file()["purchases"]


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


@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_plan_verify_shows_line_errors_and_never_checks_out(h: Harness, fmt: str) -> None:
    edit_purchase(h.decl, TEAMS, quantity=25)
    before = h.state.read_bytes()
    listing = sorted(h.tmp.iterdir())

    result = h.run("plan", str(h.decl), "--state", str(h.state), "--verify", "--format", fmt)

    assert result.exit_code == 1
    assert f"verify refused 1 order: {TEAMS}" in result.stderr
    assert h.sim.count("verify") == 10
    assert h.sim.count("checkout") == 0
    assert h.sim.checkouts == []
    assert h.state.read_bytes() == before  # plan never writes the state
    assert sorted(h.tmp.iterdir()) == listing  # nor a lock file or a journal
    description = "Quantity 25 is outside the allowed range 1-20."
    if fmt == "json":
        plan = json.loads(result.stdout)
        changes = {c["address"]: c for c in plan["changes"]}
        assert changes[TEAMS]["verify_errors"] == [
            {"code": "QuantityOutOfRange", "description": description}
        ]
        assert all(c["verify_errors"] == [] for a, c in changes.items() if a != TEAMS)
    elif fmt == "markdown":
        lines = result.stdout.splitlines()
        assert lines[:3] == [
            "<!-- crayon-reconciler:plan -->",
            "",
            "### ❌ Plan: **cannot be applied: 1 order refused by verify**",
        ]
        assert any(line.startswith("Plan: 10 to purchase (+353 seats)") for line in lines)
        at = lines.index(f"- `{TEAMS}` refused by verify:")
        assert lines[at + 1] == f"  - `QuantityOutOfRange`: {description}"
        (row,) = [
            line
            for line in lines
            if line.startswith(f"| ! | `{TEAMS}`")
            or (line.startswith("| ") and f"`{TEAMS}`" in line)
        ]
        assert row.endswith("| purchase, **refused by verify** (see above) |")
    else:
        lines = result.stdout.splitlines()
        at = next(i for i, line in enumerate(lines) if TEAMS in line)
        assert f"verify: QuantityOutOfRange: {description}" in "\n".join(lines[at : at + 4])
        assert result.stdout.count("verify:") == 1


def test_plan_verify_without_credentials_names_the_missing_variables(h: Harness) -> None:
    env: dict[str, str | None] = {name: None for name in h.sim.env()}
    env["CRAYON_API_URL"] = h.sim.url

    result = h.run("plan", str(h.decl), "--state", str(h.state), "--verify", env=env)

    assert result.exit_code == 1
    for name in api.CREDENTIAL_VARIABLES:
        assert name in result.stderr
    assert h.sim.calls == []


# --------------------------------------------------------------------------- ambiguous checkouts


@pytest.mark.parametrize("mode", ["drop", "500"])
def test_ambiguous_checkout_stays_pending_until_resolved_as_purchased(
    h: Harness, mode: str
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
    commands = pending_message_commands(result.stderr, address)
    assert len(commands) == 2

    # Until the user settles it, apply refuses before any API call.
    calls = len(h.sim.calls)
    refused = h.apply()
    assert refused.exit_code == 1
    assert address in refused.stderr
    assert f"reconciler state resolve {address} --purchased" in refused.stderr
    assert f"reconciler state resolve {address} --not-purchased" in refused.stderr
    assert len(h.sim.calls) == calls
    plan = h.run("plan", str(h.decl), "--state", str(h.state))
    assert plan.exit_code == 1
    assert f"? {address}" in plan.stdout

    # The user checks Cloud-iQ, finds the order, and runs the printed command as is.
    (purchased,) = [c for c in commands if "--purchased" in c]
    argv = shlex.split(purchased)
    assert argv[0] == "reconciler"
    resolved = h.run(*argv[1:])
    assert resolved.exit_code == 0, resolved.stderr
    assert h.shown()["purchases"][address]["quantity"] == 35

    rest = h.apply()
    assert rest.exit_code == 0, rest.stderr
    assert "Apply complete: 9 purchased (+298 seats), 0 failed, 0 pending." in rest.stdout
    assert checkout_ids_by_address(h)[address] == [taken.external_order_id]
    assert_bought_exactly_once(h)


def test_ambiguous_checkout_resolved_as_not_purchased_is_bought_again(h: Harness) -> None:
    address = "contoso/m365-business-basic"
    h.sim.drop_after_checkout(1, "drop")
    assert h.apply().exit_code == 1
    (first,) = h.sim.checkouts

    resolved = h.resolve(address, "--not-purchased")
    assert resolved.exit_code == 0, resolved.stderr
    assert first.external_order_id in resolved.stdout
    assert h.state_file()["pending"] == {}

    result = h.apply()

    # The user said it was not bought, so it is bought again: the simulator now has
    # it twice, and the state records only the checkout that got its 204.
    assert result.exit_code == 0, result.stderr
    assert "Apply complete: 10 purchased (+333 seats), 0 failed, 0 pending." in result.stdout
    taken = [c for c in h.sim.checkouts if c.product == "CFQ7TTC0LF8R:0010"]
    assert [c.quantity for c in taken] == [35, 35]
    assert taken[0].external_order_id == first.external_order_id
    assert checkout_ids_by_address(h)[address] == [taken[1].external_order_id]
    assert_bought_exactly_once(h, also_bought=frozenset({first.external_order_id}))


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
    assert_bought_exactly_once(h)


def test_checkout_timeout_is_ambiguous_and_stops_later_changes(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The client waits 60 s for an answer; a test cannot, so that one number is shortened.
    from_env = api.ApiSettings.from_env.__func__  # type: ignore[attr-defined]

    def quick(cls: type[api.ApiSettings], env: Any, **kwargs: Any) -> api.ApiSettings:
        return dataclasses.replace(from_env(cls, env, **kwargs), read_timeout=0.3)

    monkeypatch.setattr(api.ApiSettings, "from_env", classmethod(quick))
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
    assert_bought_exactly_once(h)


def test_verify_timeout_is_retried(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    from_env = api.ApiSettings.from_env.__func__  # type: ignore[attr-defined]

    def quick(cls: type[api.ApiSettings], env: Any, **kwargs: Any) -> api.ApiSettings:
        return dataclasses.replace(from_env(cls, env, **kwargs), read_timeout=0.3)

    monkeypatch.setattr(api.ApiSettings, "from_env", classmethod(quick))
    h.sim.delay_next("verify", 0.6)

    result = h.apply()

    assert result.exit_code == 0, result.stderr
    assert_bought_exactly_once(h)


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
    assert_bought_exactly_once(h)


# --------------------------------------------------------------------------- guards


@pytest.mark.parametrize(("limit", "refused"), [(332, True), (333, False)])
def test_max_seats(h: Harness, limit: int, refused: bool) -> None:
    result = h.apply("--max-seats", str(limit))

    if refused:
        assert result.exit_code == 1
        assert f"the plan buys 333 seats, more than --max-seats {limit}" in result.stderr
        assert h.sim.calls == []
        assert h.sim.checkouts == []
    else:
        assert result.exit_code == 0, result.stderr
        assert_bought_exactly_once(h)


def test_saved_plan_is_applied(h: Harness) -> None:
    plan_file = h.tmp / "tfplan.json"
    saved = h.run("plan", str(h.decl), "--state", str(h.state), "--out", str(plan_file))
    assert saved.exit_code == 0, saved.stderr
    assert h.sim.calls == []

    result = h.apply("--plan", str(plan_file))

    assert result.exit_code == 0, result.stderr
    assert "Apply complete: 10 purchased (+333 seats), 0 failed, 0 pending." in result.stdout
    assert_bought_exactly_once(h)


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
        "--config", str(EXAMPLES / "customers"), "--state", str(h.state), "--yes",
    )  # fmt: skip
    assert imported.exit_code == 0, imported.stderr
    calls = len(h.sim.calls)

    result = h.apply("--plan", str(plan_file))

    assert result.exit_code == 1
    assert "stale" in result.stderr
    assert "state serial" in result.stderr
    assert len(h.sim.calls) == calls
    assert len(h.sim.checkouts) == 9


def test_saved_plan_is_refused_when_the_declarations_changed(h: Harness) -> None:
    plan_file = h.tmp / "tfplan.json"
    assert (
        h.run("plan", str(h.decl), "--state", str(h.state), "--out", str(plan_file)).exit_code == 0
    )
    edit_purchase(h.decl, "contoso/power-bi-pro", quantity=13)

    result = h.apply("--plan", str(plan_file))

    assert result.exit_code == 1
    assert "declarations changed" in result.stderr
    assert h.sim.calls == []
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
    paths = collections.Counter(c.path for c in h.sim.calls if c.endpoint != "token")
    assert paths == {"/api/v1/assets/verify": 10, "/api/v1/assets/checkout": 10}
    assert_bought_exactly_once(h)


@pytest.mark.parametrize("revoke", [False, True], ids=["steady", "tokens-revoked"])
def test_parallel_apply_buys_each_once(make_harness: HarnessFactory, revoke: bool) -> None:
    h = make_harness(DATA / "twelve.yaml", latency=0.02)
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
    assert_bought_exactly_once(h)


def test_parallel_apply_stops_starting_changes_after_an_ambiguous_checkout(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness(DATA / "twelve.yaml", latency=0.02)
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
    assert_bought_exactly_once(h)


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
    assert "9 not started." in result.stdout
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
    assert_bought_exactly_once(h)


# --------------------------------------------------------------------------- demo


def test_demo_runs_the_whole_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(cli, ["demo"])

    assert result.exit_code == 0, result.output
    # The first checkout's answer is lost and refresh settles it: 35 + 298 seats, once.
    assert "Settled contoso/m365-business-basic: " in result.stdout
    assert "Apply complete: 9 purchased (+298 seats), 0 failed, 0 pending." in result.stdout
    assert "Demo complete" in result.stdout
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- bugs found


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
    assert_bought_exactly_once(h)
    assert link.is_symlink()


# --------------------------------------------------------------------------- apply --json

EVENTS_SCHEMA = json.loads(
    (ROOT / "schemas" / "apply-events.schema.json").read_text(encoding="utf-8")
)


def events(result: Result) -> list[dict[str, Any]]:
    """stdout of ``apply --json``: every line one event valid against the schema."""
    validator = jsonschema.Draft202012Validator(EVENTS_SCHEMA)
    found = []
    for line in result.stdout.splitlines():
        event = json.loads(line)
        validator.validate(event)
        found.append(event)
    return found


def test_apply_json_prints_only_events_in_order(h: Harness) -> None:
    result = h.apply("--json")

    assert result.exit_code == 0, result.stderr
    found = events(result)
    types = [e["type"] for e in found]
    assert types == ["version", "apply_start", *["change_start", "change_complete"] * 10,
                     "apply_complete"]  # fmt: skip
    assert found[0]["reconciler"] == reconciler.__version__
    assert (found[1]["changes"], found[1]["seats"]) == (10, 333)
    completes = [e for e in found if e["type"] == "change_complete"]
    assert [e["address"] for e in completes] == sorted(declared(h.decl))
    assert {e["outcome"] for e in completes} == {"purchased"}
    orders = {e["external_order_id"] for e in completes}
    assert orders == {c.external_order_id for c in h.sim.checkouts}
    end = found[-1]
    assert (end["outcome"], end["purchased"], end["failed"], end["pending"], end["seats"]) == (
        "applied",
        10,
        0,
        0,
        333,
    )
    # The plan and the human summary went to stderr.
    assert "Plan: 10 to purchase (+333 seats)" in result.stderr
    assert "Apply complete: 10 purchased (+333 seats), 0 failed, 0 pending." in result.stderr
    assert_bought_exactly_once(h)


def test_apply_json_reports_a_refused_order_and_fails(h: Harness) -> None:
    edit_purchase(h.decl, TEAMS, quantity=25)

    result = h.apply("--json")

    assert result.exit_code == 1
    found = events(result)
    (failed,) = [e for e in found if e["type"] == "change_failed"]
    assert (failed["address"], failed["outcome"], failed["seats"]) == (TEAMS, "failed", 25)
    assert any("QuantityOutOfRange" in error for error in failed["errors"])
    assert found[-1]["outcome"] == "failed"
    assert (found[-1]["purchased"], found[-1]["failed"]) == (9, 1)


def test_apply_json_reports_a_checkout_of_unknown_outcome(h: Harness) -> None:
    h.sim.drop_after_checkout(1)

    result = h.apply("--json")

    assert result.exit_code == 1
    found = events(result)
    (pending,) = [e for e in found if e["type"] == "change_pending"]
    (taken,) = h.sim.checkouts
    assert pending["external_order_id"] == taken.external_order_id
    assert pending["outcome"] == "pending"
    assert (found[-1]["outcome"], found[-1]["pending"], found[-1]["skipped"]) == ("failed", 1, 9)
    assert "reconciler state resolve contoso/m365-business-basic --purchased" in result.stderr


def test_apply_json_refused_before_it_starts_ends_with_the_error(h: Harness) -> None:
    h.sim.drop_after_checkout(1)
    assert h.apply().exit_code == 1  # leaves a pending checkout

    result = h.apply("--json")

    assert result.exit_code == 1
    found = events(result)
    assert [e["type"] for e in found] == ["version", "apply_complete"]
    assert found[-1]["outcome"] == "error"
    assert any("pending checkout" in error for error in found[-1]["errors"])
    assert "error: the state has 1 pending checkout whose outcome is unknown" in result.stderr


def test_apply_json_of_invalid_declarations_ends_with_the_located_errors(h: Harness) -> None:
    (h.decl / "customers" / "broken.yaml").write_text(
        "version: 1\npurchases: 3\n", encoding="utf-8"
    )

    result = h.apply("--json")

    assert result.exit_code == 1
    found = events(result)
    assert [e["type"] for e in found] == ["version", "apply_complete"]
    assert found[-1]["errors"] == [
        f"{h.decl / 'customers' / 'broken.yaml'}:2:12: purchases: 3 is not of type 'array'"
    ]
    assert h.sim.calls == []


def test_apply_json_needs_auto_approve_or_a_saved_plan(h: Harness) -> None:
    result = h.run("apply", str(h.decl), "--state", str(h.state), "--json")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert "--json needs --auto-approve or --plan" in result.stderr
    assert h.sim.calls == []


def test_apply_json_reports_moves(h: Harness) -> None:
    assert h.apply().exit_code == 0
    file, data, purchase = _file_declaring(h.decl, TEAMS)
    purchase["name"] = "northwind/teams"
    purchase["quantity"] += 2
    data["moved"] = [{"from": TEAMS, "to": "northwind/teams"}]
    file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

    result = h.apply("--json")

    assert result.exit_code == 0, result.stderr
    found = events(result)
    assert [e["type"] for e in found] == [
        "version", "apply_start", "change_complete", "change_start", "change_complete",
        "apply_complete",
    ]  # fmt: skip
    moved, _, bought = found[2], found[3], found[4]
    assert (moved["address"], moved["from"], moved["outcome"], moved["seats"]) == (
        "northwind/teams",
        TEAMS,
        "moved",
        0,
    )
    assert (bought["address"], bought["outcome"], bought["seats"]) == (
        "northwind/teams",
        "purchased",
        2,
    )
    assert (found[-1]["moved"], found[-1]["purchased"]) == (1, 1)


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
    assert_bought_exactly_once(h)


def test_a_saved_plan_is_still_refused_when_the_state_moved_on(h: Harness) -> None:
    plan_file = h.tmp / "tfplan.json"
    assert (
        h.run("plan", str(h.decl), "--state", str(h.state), "--out", str(plan_file)).exit_code == 0
    )
    northwind = h.decl / "customers" / "northwind.yaml"
    assert h.apply_path(northwind).exit_code == 0

    result = h.run("apply", "--plan", str(plan_file), "--state", str(h.state), "--json")

    assert result.exit_code == 1
    assert "is stale" in result.stderr
    found = events(result)
    assert found[-1]["outcome"] == "error"
    assert any("is stale" in error for error in found[-1]["errors"])


def test_plan_verify_says_how_many_changes_it_verified(h: Harness) -> None:
    result = h.run("plan", str(h.decl), "--state", str(h.state), "--verify")

    assert result.exit_code == 0, result.stderr
    assert (
        "Verified 10 changes with the API's verify endpoint: no errors (nothing was bought)."
        in result.stderr
    )
    assert h.sim.count("checkout") == 0


@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
def test_plan_verify_shows_a_refused_order_in_every_format(
    h: Harness, fmt: str, status: int
) -> None:
    """A definitive refusal of verify (an HTTP 4xx) is shown with its change, never a crash."""
    h.sim.fail_next("verify", status)

    result = h.run("plan", str(h.decl), "--state", str(h.state), "--verify", "--format", fmt)

    assert result.exit_code == 1
    assert "verify refused 1 order:" in result.stderr
    assert h.sim.count("checkout") == 0
    if fmt == "json":
        refused = [c for c in json.loads(result.stdout)["changes"] if c["verify_errors"]]
        assert len(refused) == 1
        assert refused[0]["verify_errors"][0]["code"]
    elif fmt == "markdown":
        assert "cannot be applied: 1 order refused by verify" in result.stdout
    else:
        assert result.stdout.count("verify:") == 1


def test_plan_verify_of_an_unknown_tenant_shows_the_api_message(h: Harness) -> None:
    edit_purchase(h.decl, "northwind/exchange-online-plan-1", customerTenantId=999999)

    result = h.run("plan", str(h.decl), "--state", str(h.state), "--verify", "--format", "markdown")

    assert result.exit_code == 1
    assert "Customer tenant 999999 was not found." in result.stdout
    assert h.sim.count("checkout") == 0
