"""A world for one reliability scenario: a simulator, a state, declarations, the commands.

``World`` drives the real CLI against its own simulator (on a loopback socket) and
its own state (a file in its own directory, or a PostgreSQL workspace): commands
in-process through ``CliRunner`` (``cli``), the command under test as a real
``python -m reconciler`` process (``spawn``), optionally with the crash hook of
``crashhook/sitecustomize.py``. After a kill it does what an operator does
(``honest_resolve``: wait until the API handled every request, then settle each
pending checkout by whether the API took its externalOrderId) and checks the
invariants (``verify``, see ``invariants``).

``Outputs`` keeps everything the commands printed and the secrets they were given,
for the scan at the end of each test (tests/reliability/conftest.py). ``TALLY``
counts what the suite did, for the summary.

Nothing here may talk to anything but the world's simulator and database.
"""

from __future__ import annotations

import base64
import collections
import json
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import invariants
import jsonschema
import yaml
from click.testing import CliRunner, Result
from invariants import Declared, Violation, check

from reconciler.api.transport import secret_forms
from reconciler.cli import cli
from reconciler.errors import StateError
from reconciler.model import State
from reconciler.simulator import Simulator, default_catalog
from reconciler.state import backend_for, open_store
from reconciler.state.backends import FILE

ROOT = Path(__file__).resolve().parents[2]
HOOK_DIR = Path(__file__).resolve().with_name("crashhook")
STATE_SCHEMA = jsonschema.Draft202012Validator(
    json.loads((ROOT / "schemas" / "state.schema.json").read_text(encoding="utf-8"))
)
TIMEOUT = 90
#: The exit status of a kill by the crash hook (crashhook/sitecustomize.py).
HOOK_KILLED = 137
#: Bearer tokens the simulator issues.
TOKEN = re.compile(r"sim-[0-9a-f]{32}")
#: How often a killer looks at the simulator's counts.
KILL_POLL = 0.002


class Tally:
    """Counts of what the suite did (kills, crash points, faults...), for the summary."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self._mutex = threading.Lock()

    def add(self, name: str, amount: float = 1) -> None:
        with self._mutex:
            self.counts[name] += amount  # type: ignore[assignment]


TALLY = Tally()


# -- secrets -----------------------------------------------------------------------


def encoded_forms(secret: str, *, client_id: str | None = None) -> set[str]:
    """Every form of ``secret`` a leak could take: raw, URL-encoded, JSON-escaped,
    whitespace-collapsed (``secret_forms``), and with ``client_id`` the base64 of
    ``client_id:secret`` (the Basic header), padded or not."""
    forms = set(secret_forms(secret))
    if client_id is not None:
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        forms |= {basic, basic.rstrip("=")}
    return {form for form in forms if len(form) >= 6}


class Outputs:
    """The texts a test's commands printed and the secrets they used."""

    def __init__(self) -> None:
        self._forms: dict[str, str] = {}
        self._texts: list[tuple[str, str]] = []
        self._mutex = threading.Lock()
        self.texts_scanned = 0

    def use_secret(self, name: str, secret: str, *, client_id: str | None = None) -> None:
        with self._mutex:
            for form in encoded_forms(secret, client_id=client_id):
                self._forms[form] = name

    def record(self, label: str, *texts: str | bytes | None) -> None:
        with self._mutex:
            for text in texts:
                if text:
                    shown = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
                    self._texts.append((label, shown))

    def add_tree(self, root: Path) -> None:
        """Every regular file under ``root`` (states, journals, locks, logs, plans)."""
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                self.record(str(path), path.read_bytes())

    def leaks(self) -> list[str]:
        found = []
        with self._mutex:
            for label, text in self._texts:
                self.texts_scanned += 1
                for form, name in self._forms.items():
                    if form in text:
                        found.append(f"{name} (as {form!r}) in {label}")
                if TOKEN.search(text):
                    found.append(f"a bearer token in {label}")
        return found


# -- declarations ------------------------------------------------------------------

#: The default catalogue's products that take any quantity the tests buy.
PRODUCTS = [item for item in default_catalog()[0] if item.max_quantity >= 100]


def purchases(
    count: int, *, tenants: Sequence[int], prefix: str = "c", quantity: Any = None
) -> list[Declared]:
    """``count`` purchases of distinct identities: each tenant buys each product once."""
    assert len(tenants) * len(PRODUCTS) >= count, "not enough tenants for distinct identities"
    made = []
    for index in range(count):
        tenant = tenants[index // len(PRODUCTS)]
        item = PRODUCTS[index % len(PRODUCTS)]
        seats = quantity(index) if callable(quantity) else (quantity or 1 + index % 7)
        made.append(
            Declared(
                f"{prefix}{tenant}/{item.product_id.lower()}-{item.sku_id}",
                tenant,
                item.product_id,
                item.sku_id,
                seats,
            )
        )
    return made


def write_declarations(
    directory: Path,
    declared: Iterable[Declared],
    per_file: int = 100,
    removed: Mapping[str, bool] | None = None,
) -> None:
    """The declarations as YAML files (``NNN.yaml``), replacing any written before;
    ``removed`` (address -> cancel) becomes the first file's ``removed:`` entries."""
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.yaml"):
        old.unlink()
    entries: list[dict[str, Any]] = []
    for d in declared:
        entry: dict[str, Any] = {
            "name": d.address,
            "customerTenantId": d.tenant,
            "productId": d.product_id,
            "skuId": d.sku_id,
            "quantity": d.quantity,
            "billingCycle": d.billing_cycle,
            "termDuration": d.term_duration,
        }
        if d.auto_renew is not None:
            entry["autoRenew"] = d.auto_renew
        if d.seat_changes is not None:
            entry["seatChanges"] = d.seat_changes
        entries.append(entry)
    for number, start in enumerate(range(0, max(len(entries), 1), per_file)):
        document: dict[str, Any] = {"version": 1, "purchases": entries[start : start + per_file]}
        if number == 0 and removed:
            document["removed"] = [
                {"address": address, "cancel": cancel}
                for address, cancel in sorted(removed.items())
            ]
        (directory / f"{number:03}.yaml").write_text(
            yaml.safe_dump(document, sort_keys=False), encoding="utf-8"
        )


# -- the world ---------------------------------------------------------------------


def new_simulator(outputs: Outputs, **kwargs: Any) -> Simulator:
    """A started simulator whose credentials are new secrets with characters that every
    encoding changes (space, '+', '/', '=', '%', '&', non-ASCII), registered for the scan."""
    tag = secrets.token_hex(6)
    sim = Simulator(
        client_id=f"rel-client-{tag[:4]}",
        client_secret=f"cs {tag}+/=%&é-secret",
        username="rel-user",
        password=f"pw {tag}?#&+ü-password",
        **kwargs,
    )
    sim.start()
    outputs.use_secret("client secret", sim.client_secret, client_id=sim.client_id)
    outputs.use_secret("password", sim.password)
    return sim


@dataclass
class World:
    """One scenario's simulator, state, declarations and what the operator did."""

    sim: Simulator
    root: Path
    state: str
    outputs: Outputs
    base_env: Mapping[str, str]
    workspace: str | None = None
    declared: dict[str, Declared] = field(default_factory=dict)
    #: externalOrderIds whose records the operator removed on purpose (``state rm``).
    forgotten: set[str] = field(default_factory=set)
    #: Addresses the operator renamed (old -> new, ``state mv``).
    renamed: dict[str, str] = field(default_factory=dict)
    #: The most seats checkouts may have bought per address, where not its declaration.
    limits: dict[str, int] = field(default_factory=dict)
    #: Addresses a ``removed:`` entry cancels.
    cancelled: set[str] = field(default_factory=set)
    #: Per address, the fewest and most active seats it may hold in Cloud-iQ meanwhile.
    bounds: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: Subscriptions no declaration asked to change: (seats, status, renewal) to keep.
    frozen: dict[int, tuple[int, int, bool]] = field(default_factory=dict)
    #: Addresses recorded by hand (``state import``) with no subscription in Cloud-iQ.
    blind: set[str] = field(default_factory=set)
    #: The ``removed:`` entries declared (address -> cancel).
    removed: dict[str, bool] = field(default_factory=dict)

    @property
    def decl(self) -> Path:
        return self.root / "declarations"

    @property
    def is_file(self) -> bool:
        return backend_for(self.state) is FILE

    @property
    def state_args(self) -> list[str]:
        extra = ["--workspace", self.workspace] if self.workspace else []
        return ["--state", self.state, *extra]

    def declare(
        self, declared: Iterable[Declared], removed: Mapping[str, bool] | None = None
    ) -> None:
        """Write these declarations; ``removed`` replaces the ``removed:`` entries."""
        self.declared = {d.address: d for d in declared}
        if removed is not None:
            self.removed = dict(removed)
        write_declarations(self.decl, self.declared.values(), removed=self.removed)

    # -- commands --

    def cli(self, *args: str, expect: int | None = 0, env: Mapping[str, str] = {}) -> Result:
        """A command in-process (main thread only: CliRunner swaps stdio and environ)."""
        result = CliRunner().invoke(cli, list(args), env={**self.sim.env(), **env})
        self.outputs.record(f"reconciler {' '.join(args)}", result.stdout, result.stderr)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"reconciler {' '.join(args)} crashed") from result.exception
        if expect is not None:
            assert result.exit_code == expect, (
                f"reconciler {' '.join(args)} exited {result.exit_code}, not {expect}:\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    def child_env(self, **extra: str) -> dict[str, str]:
        return {**self.base_env, **self.sim.env(), **extra}

    def spawn(
        self, *args: str, hook: Mapping[str, str] | None = None, env: Mapping[str, str] = {}
    ) -> subprocess.Popen[str]:
        """``python -m reconciler ARGS`` as a process; with ``hook``, the crash hook's
        variables (``RECONCILER_TEST_CRASH_*``) and its directory on PYTHONPATH."""
        child = self.child_env(**env)
        if hook is not None:
            path = [str(HOOK_DIR), *filter(None, [child.get("PYTHONPATH")])]
            child |= {"PYTHONPATH": os.pathsep.join(path), **hook}
        return subprocess.Popen(
            [sys.executable, "-m", "reconciler", *args],
            cwd=self.root,
            env=child,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish(self, proc: subprocess.Popen[str], label: str) -> tuple[int, str, str]:
        try:
            out, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"{label} hung:\n{out}\n{err}") from None
        self.outputs.record(label, out, err)
        if "Traceback" in err:
            raise AssertionError(f"{label} crashed:\n{err}")
        return proc.returncode, out, err

    def apply_args(self, parallelism: int) -> list[str]:
        """The arguments of a plain apply of this world, for ``spawn``."""
        return [
            "apply", str(self.decl), *self.state_args, "--auto-approve",
            "--parallelism", str(parallelism), "--lock-timeout", "30s",
        ]  # fmt: skip

    def apply(self, *flags: str, expect: int | None = 0, env: Mapping[str, str] = {}) -> Result:
        return self.cli(
            "apply", str(self.decl), *self.state_args, "--auto-approve", "--lock-timeout", "30s",
            *flags, expect=expect, env=env,
        )  # fmt: skip

    # -- the state --

    def store_load(self) -> State:
        store = open_store(self.state, workspace=self.workspace or "default")
        return store.load()

    def load(self) -> State:
        """The state through the real store, checked against the schema (raw file and
        ``state pull``); an AssertionError says why it cannot be loaded."""
        try:
            state = self.store_load()
        except StateError as exc:
            raise AssertionError(f"the state does not load: {exc}") from exc
        if self.is_file:
            raw = json.loads(Path(self.state).read_text(encoding="utf-8"))
            STATE_SCHEMA.validate(raw)
        pulled = self.cli("state", "pull", *self.state_args)
        STATE_SCHEMA.validate(json.loads(pulled.stdout))
        return state

    def honest_resolve(self) -> int:
        """Settle every pending checkout by what the simulator recorded, as an operator
        who looked the externalOrderId up in Cloud-iQ would; returns how many."""
        assert self.sim.wait_idle(30), "the simulator is still handling a request"
        state = self.store_load()
        taken = {c.external_order_id for c in self.sim.checkouts}
        for address, op in state.pending.items():
            outcome = "--purchased" if op.external_order_id in taken else "--not-purchased"
            self.cli("state", "resolve", address, outcome, *self.state_args,
                     "--lock-timeout", "30s")  # fmt: skip
            TALLY.add("pending resolved honestly")
        return len(state.pending)

    def violations(self, *, converged: bool = False, linked: bool = False) -> list[Violation]:
        assert self.sim.wait_idle(30), "the simulator is still handling a request"
        state = self.load()
        accepted = self.sim.checkouts
        found = check(
            accepted,
            self.declared,
            state,
            forgotten=self.forgotten,
            renamed=self.renamed,
            limits=self.limits,
            cancelled=self.cancelled,
            converged=converged,
        )
        found += invariants.check_updates(self.sim.updates, state)
        if not self.renamed:  # a renamed address's subscriptions move with it
            found += invariants.check_cloud(
                self.sim.subscriptions,
                accepted,
                self.declared,
                state,
                bounds=self.bounds,
                frozen=self.frozen,
                cancelled=self.cancelled,
                blind=self.blind,
                converged=converged,
                linked=linked,
            )
        return found

    def verify(self, where: str, *, converged: bool = False, linked: bool = False) -> None:
        """Assert the invariants; duplicates and losses are counted for the summary.
        ``linked``: after ``converge``, every subscription is recorded at its address."""
        found = self.violations(converged=converged, linked=linked)
        TALLY.add("invariant checks")
        for kind in invariants.KINDS:
            TALLY.add(f"violations found: {kind}", sum(v.kind == kind for v in found))
        assert not found, f"{where}:\n" + "\n".join(str(v) for v in found)

    # -- no person --

    def pending_now(self) -> dict[str, str]:
        """The pending entries, address -> externalOrderId (an update's operation id)."""
        return {a: op.external_order_id for a, op in self.store_load().pending.items()}

    def judge(self, before: Mapping[str, str], where: str) -> int:
        """After a run that finished (not killed): every pending entry it found and left
        is a human step. None may be an update, nor a checkout the API took: the run
        reads Cloud-iQ and must settle those itself. A checkout the API never took is
        settled as the operator would (``state resolve --not-purchased``) and counted
        apart. Returns the human steps taken."""
        assert self.sim.wait_idle(30), "the simulator is still handling a request"
        state = self.store_load()
        taken = {c.external_order_id for c in self.sim.checkouts}
        steps = 0
        # Shown in the summary even when none happened: these must stay 0.
        TALLY.add("human steps: updates (must be 0)", 0)
        TALLY.add("human steps: checkouts the API took (must be 0)", 0)
        TALLY.add("runs judged for human steps (whole applies, not killed)")
        for address, operation in sorted(before.items()):
            left = state.pending.get(address)
            if left is None or left.external_order_id != operation:
                kind = (
                    "an update"
                    if operation.startswith("update:")
                    else (
                        "a checkout the API took"
                        if operation in taken
                        else "a checkout never taken"
                    )
                )
                TALLY.add(f"pending entries a plain apply settled: {kind}")
                continue
            if left.is_update:
                TALLY.add("human steps: updates (must be 0)")
                raise AssertionError(f"{where}: apply left update {operation} pending")
            if operation in taken:
                TALLY.add("human steps: checkouts the API took (must be 0)")
                raise AssertionError(
                    f"{where}: the API took checkout {operation} of {address}, but a whole "
                    "apply left it pending for a person"
                )
            TALLY.add("human steps: checkouts the API never took (resolved --not-purchased)")
            self.cli("state", "resolve", address, "--not-purchased", *self.state_args,
                     "--lock-timeout", "30s")  # fmt: skip
            steps += 1
        return steps

    def planned_nothing(self) -> bool:
        """Whether a plan (reading Cloud-iQ) has nothing left to do: a subscription bought
        for an address that declares ``autoRenew: false`` gets its renewal turned off by
        the apply after the one that bought it, once Cloud-iQ lists it."""
        done = self.cli("plan", str(self.decl), *self.state_args, "--detailed-exitcode",
                        expect=None)  # fmt: skip
        assert done.exit_code in (0, 2), f"plan:\n{done.stdout}\n{done.stderr}"
        return done.exit_code == 0 and "No changes." in done.stdout

    def converge(self, where: str, *flags: str, rounds: int = 12, lag: float = 0.0) -> int:
        """Plain applies (in-process) until one finishes with nothing left, checking
        the invariants and judging human steps after each; ``lag``: the seconds the
        subscriptions list lags, let pass on the simulated clock when a run could not
        finish for it. Returns the human steps taken."""
        steps = 0
        for number in range(1, rounds + 1):
            before = self.pending_now()
            done = self.apply(*flags, expect=None)
            assert done.exit_code in (0, 1), (
                f"{where}, round {number}:\n{done.stdout}\n{done.stderr}"
            )
            self.verify(f"{where}, round {number}")
            steps += self.judge(before, f"{where}, round {number}")
            if done.exit_code == 0 and not self.store_load().pending and self.planned_nothing():
                if any(p.unseen for p in self.store_load().purchases.values()):
                    # Bought by the last run: record the subscriptions Cloud-iQ now lists.
                    self.sim.advance_clock(seconds=lag)
                    self.cli("refresh", str(self.decl), *self.state_args, "--auto-approve",
                             "--lock-timeout", "30s")  # fmt: skip
                return steps
            if lag:
                self.sim.advance_clock(seconds=lag)
        raise AssertionError(f"{where}: not converged after {rounds} applies")

    def stop(self) -> None:
        self.sim.stop()


def kill_at_random(
    world: World,
    chance: random.Random,
    args: Sequence[str],
    where: str,
    *,
    work: Callable[[], int],
    steps: int,
) -> tuple[bool, int]:
    """Start ``reconciler ARGS`` and SIGKILL it at a random instant: anywhere in its
    life, or once ``work()`` (the simulator's count of checkouts or updates) went up
    by a random number below ``steps``. Returns whether it was killed (False: it
    finished first) and its exit status."""
    proc = world.spawn(*args)
    started = time.monotonic()
    before = work()
    if chance.random() < 0.35:
        # Anywhere in the run's life: start-up, the Cloud-iQ read and planning included.
        deadline = started + chance.uniform(0.0, 0.7)
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(KILL_POLL)
    else:
        # Around the API's work: after some of it, within one change's steps.
        wanted = before + chance.randrange(steps)
        timeout = started + TIMEOUT
        while work() < wanted and proc.poll() is None:
            assert time.monotonic() < timeout, f"{where}: the apply made no progress"
            time.sleep(KILL_POLL)
        time.sleep(chance.uniform(0.0, 0.03))
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)  # it may still finish first
    code, out, err = world.finish(proc, where)
    # A run that finished exits 1 while a pending entry it cannot settle waits.
    assert code in (0, 1, -signal.SIGKILL), f"{where}: exited {code}:\n{out}\n{err}"
    return code == -signal.SIGKILL, code


def apply_args(world: World, parallelism: int) -> list[str]:
    return [
        "apply", str(world.decl), *world.state_args, "--auto-approve",
        "--parallelism", str(parallelism), "--lock-timeout", "30s",
    ]  # fmt: skip


def file_world(root: Path, outputs: Outputs, base_env: Mapping[str, str], **sim: Any) -> World:
    """A world whose state is ``root/state/reconciler.state.json`` (not yet created)."""
    (root / "state").mkdir(parents=True)
    return World(
        new_simulator(outputs, **sim),
        root,
        str(root / "state" / "reconciler.state.json"),
        outputs,
        base_env,
    )


def pg_world(
    root: Path, outputs: Outputs, base_env: Mapping[str, str], url: str, workspace: str, **sim: Any
) -> World:
    """A world whose state is ``workspace`` of the database at ``url`` (not yet created)."""
    root.mkdir(parents=True)
    return World(new_simulator(outputs, **sim), root, url, outputs, base_env, workspace)
