"""Options, seeds, the secrets scan and the counts report of tests/reliability.

``pytest tests/reliability`` is the CI run (every crash point, 80 kills of applies
followed only by plain applies, 30 kills of applies changing seats both ways and
applies through every kind of update fault, a 300-purchase fault storm, fuzzing).
The summary counts what was done and what was found: kills without a person, human
steps (a pending entry a whole apply left: for a checkout the API took and for an
update there must be none; for a checkout that never reached the API, resolved as
an operator would), PUT kills and faults, and every kind of violation (duplicates,
losses, wrong quantities, unasked changes...: all must be 0). ``--reliability-full[=FACTOR]`` (or
``RELIABILITY_FULL=FACTOR``) multiplies the random parts by FACTOR (default 10) for
long local runs; ``--reliability-seed N`` (or ``RELIABILITY_SEED=N``) replays a run,
whose seed every failure and the summary print. The options exist when pytest is
given this directory (``pytest tests/reliability ...``); from the repository root
use the environment variables.

Every test here is scanned for secrets when it ends (the autouse ``outputs``
fixture): each output it recorded (``harness.Outputs``) and every file under its
``tmp_path``, for every encoded form of every secret it used.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import harness
import pytest

_FULL_FACTOR = 10


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("reliability", "tests/reliability")
    group.addoption(
        "--reliability-full",
        nargs="?",
        const=_FULL_FACTOR,
        default=None,
        type=int,
        metavar="FACTOR",
        help=f"multiply kills, storm rounds and fuzz examples by FACTOR (default {_FULL_FACTOR})",
    )
    group.addoption(
        "--reliability-seed",
        default=None,
        type=int,
        metavar="N",
        help="the master seed of the random parts (printed by every run)",
    )


def _scale(config: pytest.Config) -> int:
    given = config.getoption("--reliability-full", default=None)
    if given is None and os.environ.get("RELIABILITY_FULL"):
        given = int(os.environ["RELIABILITY_FULL"])
    return max(1, int(given or 1))


def _seed(config: pytest.Config) -> int:
    given = config.getoption("--reliability-seed", default=None)
    if given is None and os.environ.get("RELIABILITY_SEED"):
        given = int(os.environ["RELIABILITY_SEED"])
    if given is None:
        # A pytest-xdist worker takes the seed the controller chose for all of them.
        given = getattr(config, "workerinput", {}).get("reliability_seed")
    if given is None:
        # Chosen once per session and kept on the config, so every test shares it.
        given = getattr(config, "_reliability_seed", None) or secrets.randbelow(2**31)
    config._reliability_seed = given  # type: ignore[attr-defined]
    return int(given)


@pytest.fixture(scope="session")
def scale(pytestconfig: pytest.Config) -> int:
    """1 in CI; FACTOR with ``--reliability-full``."""
    return _scale(pytestconfig)


@pytest.fixture(scope="session")
def master_seed(pytestconfig: pytest.Config) -> int:
    return _seed(pytestconfig)


@pytest.fixture(autouse=True)
def outputs(tmp_path: Path, master_seed: int) -> Iterator[harness.Outputs]:
    """What the test's commands printed and which secrets it used; scanned at the end."""
    recorded = harness.Outputs()
    started = time.monotonic()
    yield recorded
    harness.TALLY.add("wall seconds", time.monotonic() - started)
    recorded.add_tree(tmp_path)
    leaks = recorded.leaks()
    harness.TALLY.add("texts scanned for secrets", recorded.texts_scanned)
    assert not leaks, f"secrets leaked (seed {master_seed}): {leaks}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        seed = _seed(item.config)
        report.sections.append(
            (
                "reliability seed",
                f"master seed {seed}: replay with "
                f"pytest tests/reliability --reliability-seed {seed} (or RELIABILITY_SEED={seed})",
            )
        )
    return report


# Under pytest-xdist (-n): the controller hands its seed to every worker, and each
# worker hands its counts back, so the summary is one run's, as without workers.
@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    node.workerinput["reliability_seed"] = _seed(node.config)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    for name, value in getattr(node, "workeroutput", {}).get("reliability_tally", {}).items():
        harness.TALLY.add(name, value)


def pytest_sessionfinish(session: pytest.Session) -> None:
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["reliability_tally"] = dict(harness.TALLY.counts)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not harness.TALLY.counts:
        return
    config = terminalreporter.config
    terminalreporter.section("reliability")
    terminalreporter.write_line(
        f"master seed {_seed(config)}, scale {_scale(config)}"
        " (replay: --reliability-seed N, longer: --reliability-full)"
    )
    for name, value in sorted(harness.TALLY.counts.items()):
        shown = f"{value:.1f}" if isinstance(value, float) else str(value)
        terminalreporter.write_line(f"  {name}: {shown}")
