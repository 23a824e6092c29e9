"""``reconciler demo`` and ``reconciler simulator`` (``reconciler.cli.tools``), run as a
user runs them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from tests.support.cli import run
from tests.support.paths import README


def test_demo_buys_every_example_seat_once_and_leaves_nothing_behind(tmp_path: Path) -> None:
    before = {t.name for t in threading.enumerate()}
    cwd = os.getcwd()
    result = run("demo")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for command in (
        "$ reconciler validate examples/customers",
        "$ reconciler plan examples/customers",
        "$ reconciler apply examples/customers --auto-approve",
        "$ reconciler plan examples/customers --detailed-exitcode",
        "$ reconciler show",
    ):
        assert f"\n{command}\n" in out
    assert (
        "Plan: 10 to purchase (+333 seats), 0 to increase (+0 seats), 0 conflicts, 0 pending."
        in out
    )
    # The apply killed while the API held its first checkout: the next apply alone
    # settles that checkout from Cloud-iQ and buys the other nine (35 + 298 seats, once).
    assert "\nKilled\n" in out
    assert "Settled contoso/m365-business-basic: reconciler-" in out
    assert "recorded as purchased (+35)." in out
    assert "Apply complete: 9 purchased (+298 seats), 0 failed, 0 pending." in out
    assert "No changes. Declared purchases match the state." in out
    # Seats added in the portal are planned back down, until the declaration keeps them.
    assert "  v contoso/m365-business-premium  decrease, 90 -> 85 seats (-5)" in out
    assert "raise `quantity` to 90 to keep them" in out
    assert "Adjusted contoso/m365-business-premium: +5 seats (85 -> 90)" in out
    # Two seats go back inside the window; a decrease after it is a conflict.
    assert "Apply complete: 0 purchased (+0 seats), 1 updated (-2 seats)" in out
    assert "  ! contoso/m365-business-basic  conflict, 35 -> 30 seats" in out
    assert "none of the 5 seats to remove are inside" in out
    assert "10 purchases recorded (336 seats), 0 pending." in out
    assert "sim-secret" not in out + result.stderr
    assert "sim-password" not in out + result.stderr
    assert os.getcwd() == cwd
    assert not os.environ.get("CRAYON_CLIENT_ID")
    leftover = {t.name for t in threading.enumerate() if t.is_alive()} - before
    assert leftover == set(), leftover


@pytest.mark.slow  # the simulator runs as a process
def test_simulator_command_serves_until_interrupted(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "simulator", "--port", "0", "--fail", "verify:503:1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("Crayon API simulator listening on http://127.0.0.1:")
        url = first.rsplit(" ", 1)[1].strip()
        exports = [proc.stdout.readline() for _ in range(6)]
        assert any(f"export CRAYON_API_URL={url}" in line for line in exports)
        request = urllib.request.Request(
            url + "/api/v1/connect/token",
            data=b"grant_type=password&username=sim-user&password=sim-password&scope=CustomerApi",
            headers={
                "Authorization": "Basic c2ltLWNsaWVudDpzaW0tc2VjcmV0"
            },  # sim-client:sim-secret
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert "AccessToken" in json.loads(answer.read())
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "Simulator stopped." in out
    assert "Traceback" not in err


def test_simulator_command_rejects_a_malformed_fault() -> None:
    result = run("simulator", "--fail", "verify")
    assert result.exit_code == 1
    assert "is not ENDPOINT:STATUS[:COUNT[:RETRY_AFTER]]" in result.stderr


def _built_in() -> tuple[list[tuple[str, str, str]], list[int]]:
    from reconciler.simulator.catalog import default_catalog

    catalog, tenants = default_catalog()
    products = [(item.key, item.name, f"{item.currency} {item.price}") for item in catalog]
    return products, sorted(tenants)


def test_simulator_help_lists_the_built_in_tenants_and_catalogue() -> None:
    result = run("simulator", "--help")
    products, tenants = _built_in()

    assert result.exit_code == 0
    help_text = " ".join(result.stdout.split())
    assert ", ".join(str(t) for t in tenants) in help_text
    for key, name, price in products:
        assert re.search(
            rf"^ +{re.escape(key)} +{re.escape(name)} +{re.escape(price).replace(' ', ' +')}",
            result.stdout,
            re.MULTILINE,
        ), (key, name, price)


def test_readme_documents_the_built_in_simulator_catalogue() -> None:
    readme = README.read_text(encoding="utf-8")
    products, tenants = _built_in()

    assert ", ".join(str(t) for t in tenants[:-1]) + f" and {tenants[-1]}" in " ".join(
        readme.split()
    )
    for key, name, price in products:
        assert re.search(
            rf"^\| `{re.escape(key)}` \| {re.escape(name)}( \([^)]*\))? \| {re.escape(price)} \|$",
            readme,
            re.MULTILINE,
        ), (key, name, price)


def test_demo_runs_the_whole_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    result = run("demo")

    assert result.exit_code == 0, result.output
    # The killed apply's checkout is settled by the next apply: 35 + 298 seats, once.
    assert "Settled contoso/m365-business-basic: " in result.stdout
    assert "Apply complete: 9 purchased (+298 seats), 0 failed, 0 pending." in result.stdout
    assert "Demo complete" in result.stdout
    assert list(tmp_path.iterdir()) == []
