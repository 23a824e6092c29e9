"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from reconciler.simulator import Simulator


@pytest.fixture
def simulator_factory() -> Iterator[Callable[..., Simulator]]:
    """Start simulators with any ``Simulator`` arguments; all are stopped afterwards."""
    started: list[Simulator] = []

    def start(**kwargs: Any) -> Simulator:
        sim = Simulator(**kwargs)
        sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def simulator(simulator_factory: Callable[..., Simulator]) -> Simulator:
    """A running Crayon API simulator on 127.0.0.1 with the default catalogue."""
    return simulator_factory()


@pytest.fixture(autouse=True)
def _no_default_endpoint_or_state(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No test may reach the real API or write a state file where it runs.

    The default API URL becomes one the client refuses outright (plain http to a
    non-loopback host), CRAYON_* variables from the developer's shell are removed,
    and the default state path is a directory, which every command rejects, so a
    test must name its own ``--state``.
    """
    import reconciler.api

    monkeypatch.setattr(reconciler.api, "DEFAULT_API_URL", "http://default-api-url.invalid")
    for name in ("CRAYON_API_URL", *reconciler.api.CREDENTIAL_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RECONCILER_STATE", str(tmp_path_factory.mktemp("no-default-state")))
