"""`reconciler apply` as a real process: killed or interrupted mid-checkout, run twice
at once, asking on a terminal.

The apply under test runs as ``python -m reconciler`` in a subprocess against the
simulator on a loopback socket; the commands around it (seeding, `show`, `state
resolve`, the second apply) run in-process. Each test judges the outcome by exit
codes and output, the state (file and journal, as `reconciler show --json` reads
them) and the checkouts the simulator recorded: every declared seat must be
bought exactly once."""

from __future__ import annotations

import collections
import json
import os
import pty
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner, Result

from reconciler.cli import cli
from reconciler.simulator import Simulator

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "customers"
STATE_SCHEMA = json.loads((ROOT / "schemas" / "state.schema.json").read_text(encoding="utf-8"))
TIMEOUT = 30


def reconciler(sim: Simulator, *args: str) -> Result:
    """Any other command runs in-process: only the apply under test needs a process."""
    result = CliRunner().invoke(cli, list(args), env=sim.env())
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"reconciler {' '.join(args)} crashed") from result.exception
    return result


def init(sim: Simulator, state: Path) -> Path:
    """Create the empty state as a user does, with ``reconciler init``."""
    created = reconciler(sim, "init", "--state", str(state))
    assert created.exit_code == 0, created.output
    return state


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


def wait_until(condition: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"apply exited {proc.returncode} before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.002)


def declared(decl: Path) -> dict[str, tuple[int, str, int]]:
    """address -> (tenant, "productId:skuId", quantity), read without the reconciler."""
    found = {}
    for file in sorted(decl.rglob("*.yaml")):
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
        for raw in data["purchases"]:
            entry = data.get("defaults", {}) | raw
            product = f"{entry['productId']}:{entry['skuId']}"
            found[entry["name"]] = (entry["customerTenantId"], product, entry["quantity"])
    return found


def read_state_file(state: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(state.read_text(encoding="utf-8"))
    jsonschema.validate(data, STATE_SCHEMA)
    return data


def shown(sim: Simulator, state: Path) -> dict[str, Any]:
    result = reconciler(sim, "show", "--state", str(state), "--json")
    assert result.exit_code == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def assert_bought_exactly_once(sim: Simulator, decl: Path, state: Path) -> None:
    wanted = declared(decl)
    data = read_state_file(state)
    assert data["pending"] == {}
    taken = {c.external_order_id: c for c in sim.checkouts}
    assert len(taken) == len(sim.checkouts), "one externalOrderId checked out twice"
    recorded = set()
    for address, (tenant, product, quantity) in wanted.items():
        purchase = data["purchases"][address]
        assert purchase["quantity"] == quantity, address
        for record in purchase["checkouts"]:
            checkout = taken[record["externalOrderId"]]
            assert (checkout.tenant, checkout.product) == (tenant, product)
            assert checkout.quantity == record["quantity"]
            recorded.add(record["externalOrderId"])
        assert sum(r["quantity"] for r in purchase["checkouts"]) == quantity
    assert recorded == set(taken)
    seats: collections.Counter[tuple[int, str]] = collections.Counter()
    for tenant, product, quantity in wanted.values():
        seats[tenant, product] += quantity
    for (tenant, product), total in seats.items():
        assert sim.seats(tenant, product) == total, (tenant, product)


def assert_no_secrets(sim: Simulator, *texts: str) -> None:
    for text in texts:
        assert sim.client_secret not in text
        assert sim.password not in text
        assert not re.search(r"sim-[0-9a-f]{32}", text)


@pytest.fixture
def sim(simulator_factory: Callable[..., Simulator]) -> Simulator:
    return simulator_factory(client_secret="cs-d1e5b0c9-secret", password="pw-7a1f44e0-secret")


def test_killed_during_a_checkout_leaves_it_pending_and_loses_nothing(
    sim: Simulator, tmp_path: Path
) -> None:
    decl, state = tmp_path / "declarations", tmp_path / "reconciler.state.json"
    init(sim, state)
    decl.mkdir()
    shutil.copy(EXAMPLES / "northwind.yaml", decl)
    seeded = reconciler(sim, "apply", str(decl), "--state", str(state), "--auto-approve")
    assert seeded.exit_code == 0, seeded.stderr
    before = read_state_file(state)
    shutil.copy(EXAMPLES / "contoso.yaml", decl)
    shutil.copy(EXAMPLES / "fabrikam.yaml", decl)
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
    assert (held.tenant, held.product, held.quantity) == (100001, "CFQ7TTC0LCHC:0002", 12)

    # The state file is whole (the old or a newer one); with its journal it has
    # both 204s recorded and the held checkout pending under the id the server took.
    on_disk = read_state_file(state)
    assert on_disk["lineage"] == before["lineage"]
    assert on_disk["serial"] >= before["serial"]
    recovered = shown(sim, state)
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

    # The dead run's lock does not block; its pending checkout does, before any API call.
    calls, tokens = len(sim.calls), sim.tokens_issued
    refused = reconciler(sim, "apply", str(decl), "--state", str(state), "--auto-approve")
    assert refused.exit_code == 1
    assert "locked" not in refused.stderr
    assert "contoso/power-bi-pro" in refused.stderr
    assert held.external_order_id in refused.stderr
    assert "reconciler state resolve contoso/power-bi-pro --purchased" in refused.stderr
    assert "reconciler state resolve contoso/power-bi-pro --not-purchased" in refused.stderr
    assert (len(sim.calls), sim.tokens_issued, len(sim.checkouts)) == (calls, tokens, 6)

    resolved = reconciler(
        sim, "state", "resolve", "contoso/power-bi-pro", "--purchased", "--state", str(state)
    )
    assert resolved.exit_code == 0, resolved.stderr
    rest = reconciler(sim, "apply", str(decl), "--state", str(state), "--auto-approve")
    assert rest.exit_code == 0, rest.stderr
    assert "Apply complete: 4 purchased (+172 seats), 0 failed, 0 pending." in rest.stdout
    assert len(sim.checkouts) == 10
    assert_bought_exactly_once(sim, decl, state)
    assert_no_secrets(sim, out, err, refused.stderr, rest.stdout, rest.stderr)
    assert_no_secrets(sim, *(p.read_text() for p in tmp_path.iterdir() if p.is_file()))


def test_a_second_apply_fails_at_once_while_the_first_holds_the_lock(
    sim: Simulator, tmp_path: Path
) -> None:
    decl, state = tmp_path / "declarations", tmp_path / "reconciler.state.json"
    init(sim, state)
    shutil.copytree(EXAMPLES, decl)
    sim.hold_checkouts(1.5)

    first = start_apply(sim, decl, state)
    wait_until(lambda: len(sim.checkouts) >= 1, first, "the first checkout")
    started = time.monotonic()
    second = reconciler(sim, "apply", str(decl), "--state", str(state), "--auto-approve")
    rm = reconciler(sim, "state", "rm", "contoso/m365-business-basic", "--state", str(state), "-y")
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


@pytest.mark.parametrize(("answer", "bought"), [("yes", True), ("y", False)])
def test_apply_on_a_terminal_buys_only_after_yes(
    sim: Simulator, tmp_path: Path, answer: str, bought: bool
) -> None:
    decl, state = tmp_path / "declarations", tmp_path / "reconciler.state.json"
    init(sim, state)
    decl.mkdir()
    shutil.copy(EXAMPLES / "northwind.yaml", decl)
    created = state.read_bytes()
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
        assert sim.calls == []
        assert state.read_bytes() == created  # as init left it


def test_ctrl_c_during_a_checkout_reports_it_pending(sim: Simulator, tmp_path: Path) -> None:
    decl, state = tmp_path / "declarations", tmp_path / "reconciler.state.json"
    init(sim, state)
    shutil.copytree(EXAMPLES, decl)
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
    pending = shown(sim, state)["pending"]
    assert list(pending) == ["contoso/power-bi-pro"]
    assert pending["contoso/power-bi-pro"]["externalOrderId"] == held.external_order_id
    assert re.search(r"contoso/power-bi-pro +\+12 +pending", out), out
    assert "2 purchased (+120 seats), 0 failed, 1 pending. 7 not started. Interrupted." in out
    assert held.external_order_id in err
    assert "reconciler state resolve contoso/power-bi-pro --purchased" in err
    assert len(sim.checkouts) == 3
    assert sim.count("verify") == 3

    assert reconciler(sim, "state", "resolve", "contoso/power-bi-pro", "--purchased",
                      "--state", str(state)).exit_code == 0  # fmt: skip
    rest = reconciler(sim, "apply", str(decl), "--state", str(state), "--auto-approve")
    assert rest.exit_code == 0, rest.stderr
    assert_bought_exactly_once(sim, decl, state)


def test_state_file_kept_without_its_journal_after_a_kill_refuses_to_plan(
    sim: Simulator, tmp_path: Path
) -> None:
    decl, state = tmp_path / "declarations", tmp_path / "reconciler.state.json"
    init(sim, state)
    decl.mkdir()
    shutil.copy(EXAMPLES / "northwind.yaml", decl)
    seeded = reconciler(sim, "apply", str(decl), "--state", str(state), "--auto-approve")
    assert seeded.exit_code == 0, seeded.stderr
    shutil.copy(EXAMPLES / "contoso.yaml", decl)
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
        refused = reconciler(sim, *args, str(decl), "--state", str(kept))
        assert refused.exit_code == 1
        assert "journal" in refused.stderr
        assert "is missing" in refused.stderr
    assert len(sim.calls) == calls
    # With the journal put back beside it, the kept file plans exactly as the original.
    shutil.copy(state.with_name(state.name + ".journal"), kept.with_name(kept.name + ".journal"))
    again = reconciler(sim, "plan", str(decl), "--state", str(kept), "--json")
    actions = {c["address"]: c["action"] for c in json.loads(again.stdout)["changes"]}
    assert actions["contoso/m365-business-basic"] == "noop"
    assert actions["contoso/m365-business-premium"] == "noop"
    assert actions["contoso/power-bi-pro"] == "pending"


@pytest.mark.parametrize("seed", range(6))
def test_killed_at_a_random_instant_then_resolved_buys_every_seat_once(
    simulator_factory: Callable[..., Simulator], tmp_path: Path, seed: int
) -> None:
    """SIGKILL at an arbitrary instant of a run, then what an operator does: settle each
    pending checkout by whether the API took its externalOrderId, and apply again."""
    import random

    sim = simulator_factory(latency=0.004)
    decl, state = tmp_path / "declarations", tmp_path / "reconciler.state.json"
    init(sim, state)
    shutil.copytree(EXAMPLES, decl)
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
    pending = shown(sim, state)["pending"]
    for address, op in pending.items():
        outcome = "--purchased" if op["externalOrderId"] in taken else "--not-purchased"
        resolved = reconciler(sim, "state", "resolve", address, outcome, "--state", str(state))
        assert resolved.exit_code == 0, resolved.stderr
    finish = reconciler(sim, "apply", str(decl), "--state", str(state), "--auto-approve")
    assert finish.exit_code == 0, finish.stderr
    assert_bought_exactly_once(sim, decl, state)
