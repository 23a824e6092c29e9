"""The Crayon API simulator for the tests, and the end-to-end harnesses around it.

Simulators listen on 127.0.0.1 with a free port and are stopped after the test. A
``Harness`` drives the real CLI in-process against one, with a copy of the examples
and a state file under ``tmp_path``; ``Project`` does the same with the state named
by ``RECONCILER_STATE`` (a file or a PostgreSQL database). ``assert_bought_exactly_once``
is the oracle behind every end-to-end test: was every declared seat bought once?
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from reconciler.simulator import Simulator
from tests.support.cli import run
from tests.support.declarations import read_declared
from tests.support.paths import EXAMPLES
from tests.support.states import read_state_file

#: The access tokens the simulator issues ("sim-" and 32 hex digits).
TOKEN_PATTERN = re.compile(r"sim-[0-9a-f]{32}")
#: An address of the examples: CFQ7TTC0LHSF:0001, of which the catalogue sells at most 20.
TEAMS = "northwind/teams-essentials"

SimulatorFactory = Callable[..., Simulator]


@pytest.fixture
def simulator_factory() -> Iterator[SimulatorFactory]:
    """Start simulators with any ``Simulator`` arguments; all are stopped afterwards.

    RECONCILER_SIM_LIST_SHAPE (envelope or bare) is the list shape of every simulator
    a test does not give one, so the whole suite can run against bare lists.
    """
    started: list[Simulator] = []

    def start(**kwargs: Any) -> Simulator:
        kwargs.setdefault("list_shape", os.environ.get("RECONCILER_SIM_LIST_SHAPE", "envelope"))
        sim = Simulator(**kwargs)
        sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def simulator(simulator_factory: SimulatorFactory) -> Simulator:
    """A running Crayon API simulator on 127.0.0.1 with the default catalogue."""
    return simulator_factory()


def assert_bought_exactly_once(
    sim: Simulator, decl: Path, state: Path, *, also_bought: frozenset[str] = frozenset()
) -> None:
    """Every seat declared under ``decl`` is recorded in the state file ``state`` and was
    checked out exactly once, and the simulator took no other checkout.

    ``also_bought``: externalOrderIds the simulator took that the state rightly does
    not record (the user said --not-purchased about them).
    """
    wanted = read_declared(decl)
    data = read_state_file(state)
    assert data["pending"] == {}
    checkouts = sim.checkouts
    order_ids = [c.external_order_id for c in checkouts]
    assert len(order_ids) == len(set(order_ids)), "one externalOrderId checked out twice"
    by_id = {c.external_order_id: c for c in checkouts}
    recorded_ids = set()
    for address, want in wanted.items():
        purchase = data["purchases"][address]
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
        assert sim.seats(tenant, product) == total, (tenant, product)


def assert_no_secrets(sim: Simulator, *texts: str) -> None:
    """No text holds the simulator's client secret, its password or an access token."""
    for text in texts:
        assert sim.client_secret not in text
        assert sim.password not in text
        assert not TOKEN_PATTERN.search(text), TOKEN_PATTERN.search(text)


@dataclasses.dataclass
class Harness:
    """One simulator, one declarations directory, one state file under tmp_path."""

    sim: Simulator
    tmp: Path
    decl: Path
    state: Path

    def run(self, *args: str, env: dict[str, str | None] | None = None) -> Result:
        """Run the real CLI (with the simulator's settings unless ``env`` is given);
        no traceback and no secret may come out of it."""
        result = run(*args, env=self.sim.env() if env is None else env)
        self.assert_no_secrets(result.stdout + result.stderr)
        return result

    def apply(self, *extra: str) -> Result:
        return self.run(
            "apply", str(self.decl), "--state", str(self.state), "--auto-approve", *extra
        )

    def apply_path(self, path: Path, *extra: str) -> Result:
        return self.run("apply", str(path), "--state", str(self.state), "--auto-approve", *extra)

    def sent(self) -> int:
        """Calls that ask the API to buy or change anything (verify, checkout, update);
        reads (token, lists) are not counted: apply reads Cloud-iQ before it plans."""
        return sum(1 for c in self.sim.calls if c.endpoint in ("verify", "checkout", "update"))

    def resolve(self, address: str, flag: str) -> Result:
        return self.run("state", "resolve", address, flag, "--state", str(self.state))

    def state_file(self) -> dict[str, Any]:
        """The state file on disk: valid against the state schema, written canonically."""
        data = read_state_file(self.state)
        text = self.state.read_text(encoding="utf-8")
        assert text == json.dumps(data, indent=2, sort_keys=True) + "\n"
        return data

    def shown(self) -> dict[str, Any]:
        """The state as `reconciler show --json` reports it (journal included)."""
        result = self.run("show", "--state", str(self.state), "--json")
        assert result.exit_code == 0, result.stderr
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    def checkout_ids_by_address(self) -> dict[str, list[str]]:
        """The externalOrderIds the state file records, by address."""
        return {
            address: [r["externalOrderId"] for r in p["checkouts"]]
            for address, p in self.state_file()["purchases"].items()
        }

    def assert_bought_exactly_once(self, *, also_bought: frozenset[str] = frozenset()) -> None:
        self.state_file()
        assert_bought_exactly_once(self.sim, self.decl, self.state, also_bought=also_bought)

    def assert_no_secrets(self, text: str) -> None:
        """Neither ``text`` nor a state, journal, lock or plan file holds a secret."""
        assert_no_secrets(self.sim, text)
        for path in self.tmp.rglob("*"):
            if path.is_file() and path.suffix in (".json", ".journal", ".lock", ".plan"):
                assert_no_secrets(self.sim, path.read_text(encoding="utf-8", errors="replace"))


HarnessFactory = Callable[..., Harness]


@pytest.fixture
def make_harness(simulator_factory: SimulatorFactory, tmp_path: Path) -> HarnessFactory:
    """A harness on a fresh copy of examples/ (or ``source``, a directory or one file),
    with a simulator of unique secrets (and ``sim_kwargs``) and an empty state made by
    ``reconciler init``."""
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
    """A harness on a copy of examples/: ten purchases, 333 seats, three customers."""
    return make_harness()


#: Three purchases of tenant 111111: Business Basic, Business Premium and E3.
PROJECT_DECLARATIONS = """\
version: 1
defaults:
  customerTenantId: 111111
  billingCycle: monthly
  termDuration: P1M
purchases:
  - name: acme/basic
    productId: CFQ7TTC0LF8R
    skuId: "0010"
    quantity: 5
  - name: acme/premium
    productId: CFQ7TTC0LH18
    skuId: "0001"
    quantity: 3
  - name: acme/e3
    productId: CFQ7TTC0LFLZ
    skuId: "0002"
    quantity: 2
"""


@dataclasses.dataclass
class Project:
    """A simulator, a declarations directory and a state (a file or a database URL)
    that every command finds through ``RECONCILER_STATE``."""

    sim: Simulator
    tmp: Path
    decl: Path
    state: str

    def run(self, *args: str) -> Result:
        return run(*args, env={**self.sim.env(), "RECONCILER_STATE": self.state})

    def ok(self, *args: str, code: int = 0) -> Result:
        """Run a command that must exit with ``code``."""
        result = self.run(*args)
        assert result.exit_code == code, result.stdout + result.stderr
        return result

    def buys(self) -> tuple[int, int]:
        """(verify calls, checkout calls) so far."""
        return self.sim.count("verify"), self.sim.count("checkout")

    def subscription(self, product: str) -> int:
        """The id of the active subscription of ``product`` ("productId:skuId")."""
        return next(s.id for s in self.sim.subscriptions if s.product == product and s.active)

    def state_document(self) -> dict[str, Any]:
        """The state as ``reconciler state pull`` prints it."""
        data: dict[str, Any] = json.loads(self.ok("state", "pull").stdout)
        return data


def make_project(sim: Simulator, tmp: Path, state: str, *, declarations: bool = True) -> Project:
    """A project with an empty state made by ``reconciler init``, declaring
    ``PROJECT_DECLARATIONS`` in ``tmp/decl/acme.yaml`` (or nothing)."""
    decl = tmp / "decl"
    decl.mkdir()
    if declarations:
        (decl / "acme.yaml").write_text(PROJECT_DECLARATIONS, encoding="utf-8")
    project = Project(sim, tmp, decl, state)
    project.ok("init")
    return project


@pytest.fixture
def project(simulator: Simulator, tmp_path: Path) -> Project:
    """A project with ``PROJECT_DECLARATIONS`` and an empty state file."""
    return make_project(simulator, tmp_path, str(tmp_path / "reconciler.state.json"))
