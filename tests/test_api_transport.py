"""The one HTTP seam (``reconciler.api.transport``) and secrets: credentials outside
Latin-1 work end to end, and no encoded form of a secret an API echoes is shown."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from urllib.parse import quote, quote_plus, urlencode

import pytest

from reconciler.api.settings import ApiSettings
from reconciler.errors import ApiError
from reconciler.state import JsonFileStateStore
from tests.support.cli import run
from tests.support.declarations import declare, purchase
from tests.support.records import BASIC
from tests.support.simulator import SimulatorFactory

CLIENT_ID = "clïent-ü"
SECRET = "sécret-ü€-ключ"
PASSWORD = "pässwörd-€-密码"


def _non_ascii(*secrets: str) -> set[str]:
    return {ch for secret in secrets for ch in secret if not ch.isascii()}


def test_credentials_outside_latin_1_work_end_to_end_and_show_no_character(
    simulator_factory: SimulatorFactory, tmp_path: Path
) -> None:
    sim = simulator_factory(
        client_id=CLIENT_ID, client_secret=SECRET, username="üser", password=PASSWORD
    )
    decl = declare(tmp_path / "decl", purchase("acme/a", 3))
    state = tmp_path / "reconciler.state.json"
    assert run("init", "--state", str(state)).exit_code == 0
    verified = run("plan", str(decl), "--state", str(state), "--verify", env=sim.env())
    applied = run("apply", str(decl), "--state", str(state), "--auto-approve", env=sim.env())
    assert verified.exit_code == 0, verified.output
    assert applied.exit_code == 0, applied.output
    assert sim.seats(BASIC.customer_tenant_id, BASIC.product) == 3
    assert JsonFileStateStore(state).load().purchases["acme/a"].quantity == 3

    # A refused secret: an error, not a traceback, and not a character of it.
    env = sim.env()
    sim.client_secret = "something-else"
    more = declare(tmp_path / "more", purchase("acme/a", 3), purchase("acme/b", 1))
    refused = run("plan", str(more), "--state", str(state), "--verify", env=env)
    assert refused.exit_code == 1
    assert "refused the credentials" in refused.stderr
    for result in (verified, applied, refused):
        shown = result.stdout + result.stderr
        assert not _non_ascii(SECRET, PASSWORD) & set(shown), shown
        assert SECRET not in shown
        assert PASSWORD not in shown


ECHO_SECRET = "sec  ret/+é&=key"
ECHO_PASSWORD = "pa  ss wörd+/?%"


def _forms(client_id: str, secret: str, password: str) -> dict[str, str]:
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    forms = {"basic": basic, "basic unpadded": basic.rstrip("=")}
    for name, value in (("secret", secret), ("password", password)):
        forms |= {
            f"{name}": value,
            f"{name} collapsed": " ".join(value.split()),
            f"{name} quote": quote(value, safe=""),
            f"{name} quote /": quote(value),
            f"{name} quote_plus": quote_plus(value),
            f"{name} lower hex": re.sub(
                "%[0-9A-F]{2}", lambda m: m.group().lower(), quote(value, safe="")
            ),
            f"{name} json": json.dumps(value)[1:-1],
        }
    return forms


def test_a_server_echoing_the_token_request_shows_no_form_of_a_secret(
    simulator_factory: SimulatorFactory, tmp_path: Path
) -> None:
    sim = simulator_factory(client_secret=ECHO_SECRET, password=ECHO_PASSWORD)
    forms = _forms(sim.client_id, ECHO_SECRET, ECHO_PASSWORD)
    form_body = urlencode(
        {"grant_type": "password", "username": sim.username, "password": ECHO_PASSWORD}
    )
    echo = f"Authorization: Basic {forms['basic']} body: {form_body} " + " | ".join(forms.values())
    sim.fail_next(
        "token",
        400,
        body={
            "error": f"invalid_client {echo}",
            "error_description": echo,
            "ObjectErrors": [{"ErrorCode": forms["basic"], "Message": echo}],
        },
    )
    decl = declare(tmp_path / "decl", purchase("acme/a", 3))
    state = tmp_path / "reconciler.state.json"
    assert run("init", "--state", str(state)).exit_code == 0
    result = run("plan", str(decl), "--state", str(state), "--verify", env=sim.env())
    assert result.exit_code == 1
    assert "refused the credentials" in result.stderr
    shown = result.stdout + result.stderr
    for name, form in forms.items():
        assert form not in shown, name
    assert "***" in shown


def test_a_secret_is_redacted_before_its_whitespace_is_collapsed_or_it_is_clipped(
    simulator_factory: SimulatorFactory, tmp_path: Path
) -> None:
    from reconciler.api.client import CrayonClient

    sim = simulator_factory(client_secret=ECHO_SECRET, password=ECHO_PASSWORD)
    # The secret straddles the 300-character clip of error texts.
    sim.fail_next("token", 400, body={"error_description": "x" * 290 + ECHO_PASSWORD})
    client = CrayonClient(ApiSettings.from_env(sim.env()))
    try:
        with pytest.raises(ApiError) as caught:
            client.list_orders(BASIC.customer_tenant_id)
    finally:
        client.close()
    text = caught.value.describe()
    assert "x" * 290 + "***" in text
    assert ECHO_PASSWORD[:3] not in text.replace("x" * 290, "")
