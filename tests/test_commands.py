"""`reconciler demo` and `reconciler simulator`, run as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

from click.testing import CliRunner

from reconciler.cli import cli


def test_demo_buys_every_example_seat_once_and_leaves_nothing_behind(tmp_path: Path) -> None:
    before = {t.name for t in threading.enumerate()}
    cwd = os.getcwd()
    result = CliRunner().invoke(cli, ["demo"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    for command in (
        "$ reconciler validate examples",
        "$ reconciler plan examples",
        "$ reconciler apply examples --auto-approve",
        "$ reconciler plan examples --detailed-exitcode",
    ):
        assert command in out
    assert (
        "Plan: 10 to purchase (+333 seats), 0 to increase (+0 seats), 0 conflicts, 0 pending."
        in out
    )
    assert "Apply complete: 10 purchased (+333 seats), 0 failed, 0 pending." in out
    assert "No changes. Declared purchases match the state." in out
    assert "sim-secret" not in out + result.stderr
    assert "sim-password" not in out + result.stderr
    assert os.getcwd() == cwd
    assert not os.environ.get("CRAYON_CLIENT_ID")
    leftover = {t.name for t in threading.enumerate() if t.is_alive()} - before
    assert leftover == set(), leftover


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
    result = CliRunner().invoke(cli, ["simulator", "--fail", "verify"])
    assert result.exit_code == 1
    assert "is not ENDPOINT:STATUS[:COUNT[:RETRY_AFTER]]" in result.stderr
