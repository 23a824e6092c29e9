"""Every command that talks to the API, through every way a call can fail, against
the simulator over a socket: no traceback on a common path.

For each command and each endpoint it reaches, three failures: a definitive refusal
(400, 403 or 404), an ambiguous one (500 through every retry; for a checkout or an
update a dropped connection after the API acted) and an unreadable answer (a body
that is not JSON). Each must end the command with the exit code the contract gives
(1, except an update whose lost answer the read back proves made) and words that say
what failed, never a traceback (``tests.support.cli.run`` fails the test on one), and
never a checkout the state does not account for. The commands that never talk to
the API (``validate``, ``show``, ``state ...``) work with the API failing every call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import pytest

from reconciler.simulator import Simulator
from tests.support.records import BASIC, TENANT
from tests.support.simulator import Project

Setup = Callable[[Project], None]
Fault = Callable[[Simulator, str], None]


def _nothing(project: Project) -> None:
    """The declarations of ``PROJECT_DECLARATIONS`` and an empty state."""


def _a_lost_checkout(project: Project) -> None:
    """acme/basic's checkout taken but its answer lost: pending, so its orders are read."""
    project.sim.drop_after_checkout(1)
    project.ok("apply", str(project.decl), "--auto-approve", code=1)


def _a_decrease(project: Project) -> None:
    """Everything bought, then acme/basic declared with 3 of its 5 seats: a PUT."""
    project.ok("apply", str(project.decl), "--auto-approve")
    text = (project.decl / "acme.yaml").read_text(encoding="utf-8")
    (project.decl / "acme.yaml").write_text(text.replace("quantity: 5", "quantity: 3"))


def _command(name: str) -> Callable[[Project], list[str]]:
    def args(project: Project) -> list[str]:
        decl = str(project.decl)
        return {
            "plan": ["plan", decl],
            "plan --verify": ["plan", decl, "--verify"],
            "plan --verify markdown": ["plan", decl, "--verify", "--format", "markdown"],
            "apply": ["apply", decl, "--auto-approve"],
            "refresh": ["refresh", decl, "--auto-approve"],
            "import": ["import", decl, "--tenant", str(TENANT), "--auto-approve",
                       "--out", str(project.tmp / "imported.yaml")],
        }[name]  # fmt: skip

    return args


@dataclass(frozen=True)
class Case:
    command: str
    endpoint: str
    failure: str
    setup: Setup = _nothing

    @property
    def id(self) -> str:
        return f"{self.command} | {self.endpoint} {self.failure}"


READERS = ["plan", "plan --verify", "plan --verify markdown", "apply", "refresh", "import"]
#: The refusal status each case gets, in turn, so every one of them is met.
REFUSALS = [400, 403, 404]


def _cases() -> list[Case]:
    cases = []
    for endpoint in ("token", "subscriptions"):
        cases += [Case(c, endpoint, f) for c in READERS for f in ("refused", "500", "garbled")]
    verifying = ["plan --verify", "plan --verify markdown", "apply"]
    cases += [Case(c, "verify", f) for c in verifying for f in ("refused", "500", "garbled")]
    cases += [Case("apply", "checkout", f) for f in ("refused", "500", "drop", "garbled")]
    for endpoint in ("orders", "asset-orders"):
        cases += [
            Case(c, endpoint, f, _a_lost_checkout)
            for c in ("plan", "apply", "refresh")
            for f in ("refused", "500", "garbled")
        ]
    cases += [
        Case("apply", endpoint, f, _a_decrease)
        for endpoint in ("subscription", "update")
        for f in ("refused", "500", "garbled")
    ]
    cases += [Case("apply", "update", "drop", _a_decrease)]
    cases += [Case(c, "agreement-products", f) for c in ("plan", "plan --verify")
              for f in ("refused", "500", "garbled")]  # fmt: skip
    return cases


CASES = _cases()


def _inject(sim: Simulator, case: Case, status: int) -> None:
    endpoint = case.endpoint
    if case.failure == "refused":
        sim.fail_next(endpoint, status)
    elif case.failure == "500" and endpoint == "checkout":
        sim.fail_next(endpoint, 500)  # not taken: the outcome is unknown to the client
    elif case.failure == "500":
        sim.fail_next(endpoint, 500, count=6, retry_after="0")  # through every retry
    elif case.failure == "drop" and endpoint == "checkout":
        sim.drop_after_checkout(1)
    elif case.failure == "drop":
        sim.fail_updates("drop")
    elif endpoint in ("checkout", "update"):
        # A 2xx of a checkout is success whatever its body; an unreadable answer to
        # a purchase is a gateway's page instead of the API's error.
        sim.garble_next(endpoint, status=502 if endpoint == "checkout" else 200, count=6)
    else:
        sim.garble_next(endpoint, count=6)


def _words(case: Case, status: int) -> tuple[str, ...]:
    """What the output must say (any one of them)."""
    if case.failure == "refused":
        if case.endpoint == "subscriptions":
            return ("Cloud-iQ refused to list the subscriptions of customer tenant 111111",)
        return (f"refused: HTTP {status}", f"{status} {HTTPStatus(status).phrase.replace(' ', '')}")
    if case.failure == "500":
        return ("HTTP 500", "answers were lost")
    if case.failure == "drop" and case.endpoint == "update":
        return ("1 updated (-2 seats)",)  # the read back proved it made
    if case.failure == "drop":
        return ("outcome unknown",)
    return ("not JSON", "answers were lost", "HTTP 502")


def _expected_exit(case: Case) -> int:
    if case.endpoint == "agreement-products":
        return 0  # names and prices only decorate the plan: a warning
    if (case.endpoint, case.failure) == ("update", "drop"):
        return 0  # made: the read back proves it in the same run
    return 1


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_api_command_fails_cleanly_through_every_failure(
    project: Project, case: Case
) -> None:
    sim = project.sim
    case.setup(project)
    status = REFUSALS[CASES.index(case) % len(REFUSALS)]
    taken_before = len(sim.checkouts)
    before = sim.count(case.endpoint)
    _inject(sim, case, status)

    done = project.run(*_command(case.command)(project))

    output = done.stdout + done.stderr
    assert done.exit_code == _expected_exit(case), output
    assert sim.count(case.endpoint) > before, f"{case.endpoint} was never reached:\n{output}"
    assert any(word in output for word in _words(case, status)), output
    if done.exit_code:
        assert "error:" in done.stderr or "failed" in output or "pending" in output, output
    if case.endpoint == "agreement-products":
        assert "warning: product names and prices are unknown" in done.stderr
    if (case.endpoint, case.failure) == ("update", "drop"):
        (update,) = project.state_document()["purchases"]["acme/basic"]["updates"]
        assert update["evidence"].startswith("read back after a lost answer")
    # Whatever failed, no checkout happened that the state does not account for.
    document = project.state_document()
    recorded = {
        c["externalOrderId"] for p in document["purchases"].values() for c in p["checkouts"]
    }
    pending = {p["externalOrderId"] for p in document["pending"].values()}
    taken = {c.external_order_id for c in sim.checkouts}
    assert taken <= recorded | pending, (taken, recorded, pending)
    assert len(sim.checkouts) - taken_before <= 3


def test_a_refused_subscriptions_list_is_an_error_for_refresh_and_import(
    project: Project,
) -> None:
    """Nothing of the tenant was read: refresh may not say the state agrees, nor import
    that everything is declared (both exited 0 saying so)."""
    project.ok("apply", str(project.decl), "--auto-approve")
    project.sim.fail_next("subscriptions", 404)
    refreshed = project.ok("refresh", str(project.decl), "--auto-approve", code=1)
    assert "Cloud-iQ (0 customer tenants read, 1 refused)" in refreshed.stdout
    assert (
        "error: Cloud-iQ refused to list the subscriptions of customer tenant 111111: "
        "Injected failure; nothing was read or recorded for it"
    ) in refreshed.stderr
    project.sim.fail_next("subscriptions", 403)
    out = str(project.tmp / "imported.yaml")
    imported = project.ok(
        "import", str(project.decl), "--tenant", "111111", "--out", out, "--auto-approve", code=1
    )
    assert "Nothing to import" not in imported.stdout
    assert imported.stderr.startswith(
        "error: Cloud-iQ refused to list the subscriptions of customer tenant 111111"
    )
    assert "nothing was imported" in imported.stderr


@pytest.mark.parametrize("status", [403, 404])
def test_a_refused_token_is_no_refusal_of_the_tenant(project: Project, status: int) -> None:
    """A 403 or 404 of the token request (a wrong account or URL) refuses us: every
    command says the token was refused, not that a customer tenant could not be listed."""
    for command in (["plan", str(project.decl)], ["refresh", str(project.decl), "--auto-approve"]):
        project.sim.fail_next("token", status)
        done = project.ok(*command, code=1)
        assert f"error: token refused: HTTP {status}" in done.stderr
        assert "customer tenant" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["validate"],
        ["show"],
        ["show", "--json"],
        ["state", "list"],
        ["state", "show", "acme/basic"],
        ["state", "pull"],
    ],
    ids=" ".join,
)
def test_commands_that_never_call_the_api_work_while_it_fails_every_call(
    project: Project, command: list[str]
) -> None:
    project.ok("apply", str(project.decl), "--auto-approve")
    sim = project.sim
    sim.storm(1.0, seed=1, slow=0.01)
    calls = len(sim.calls)
    args: list[Any] = [*command, str(project.decl)] if command == ["validate"] else command
    done = project.ok(*args)
    assert done.stdout
    assert len(sim.calls) == calls
    assert sim.seats(TENANT, BASIC.product) == 5
