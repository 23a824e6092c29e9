"""The build backend of crayon-reconciler (PEP 517 and 660), in this repository.

It needs nothing but the standard library, so ``pip install .`` and
``pre-commit try-repo`` build the package with no build dependency from an index
(pip's build isolation has nothing to install). It reads ``[project]`` and
``[tool.crayon-build]`` of pyproject.toml and writes:

- a wheel: the packages, the data directories copied into the package (the JSON
  Schemas and the example declarations), METADATA, entry_points.txt, WHEEL, the
  licence file and RECORD; file dates fixed, so the same tree builds the same wheel;
- an editable wheel: a .pth file naming the project directory;
- an sdist: the listed files and PKG-INFO.

It must not import anything outside the standard library, nor the package it builds.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import tarfile
import tomllib
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: Every file of a wheel and an sdist carries this date (zip's earliest).
FIXED_DATE = (1980, 1, 1, 0, 0, 0)
_SKIPPED = re.compile(r"(^|/)(__pycache__|\.[^/]*)(/|$)|\.py[co]$")


def _project() -> dict[str, Any]:
    data: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return data


def _settings() -> dict[str, Any]:
    settings: dict[str, Any] = _project()["tool"]["crayon-build"]
    return settings


def _version() -> str:
    source = (ROOT / _settings()["version-from"]).read_text(encoding="utf-8")
    found = re.search(r"^__version__\s*=\s*[\"']([^\"']+)[\"']", source, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no __version__ in {_settings()['version-from']}")
    return found.group(1)


def _dist_name() -> str:
    """The distribution name as file names spell it (``crayon_reconciler``)."""
    return re.sub(r"[-_.]+", "_", _project()["project"]["name"]).lower()


def metadata() -> str:
    """The core metadata (PKG-INFO and METADATA), version 2.1."""
    project = _project()["project"]
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {project['name']}",
        f"Version: {_version()}",
        f"Summary: {project['description']}",
    ]
    lines += [f"Project-URL: {label}, {url}" for label, url in project.get("urls", {}).items()]
    licence = project.get("license", {})
    if "text" in licence:
        lines.append(f"License: {licence['text']}")
    lines += [f"Classifier: {c}" for c in project.get("classifiers", ())]
    lines.append(f"Requires-Python: {project['requires-python']}")
    lines += [f"Requires-Dist: {r}" for r in project.get("dependencies", ())]
    for extra, requirements in project.get("optional-dependencies", {}).items():
        lines.append(f"Provides-Extra: {extra}")
        lines += [f'Requires-Dist: {r}; extra == "{extra}"' for r in requirements]
    readme = project.get("readme")
    if readme:
        lines.append("Description-Content-Type: text/markdown")
        lines += ["", (ROOT / readme).read_text(encoding="utf-8")]
    return "\n".join(lines) + "\n"


def _entry_points() -> str:
    scripts = _project()["project"].get("scripts", {})
    lines = ["[console_scripts]", *(f"{name} = {target}" for name, target in scripts.items())]
    return "\n".join(lines) + "\n"


def _files(source: Path) -> Iterator[Path]:
    """Every file under ``source`` (or ``source`` itself), sorted; caches and hidden
    files left out."""
    if source.is_file():
        yield source
        return
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(ROOT).as_posix()
        if path.is_file() and not _SKIPPED.search(relative):
            yield path


def _package_files() -> Iterator[tuple[str, Path]]:
    """(name in the wheel, file) of the packages and the data copied into them."""
    settings = _settings()
    for package in settings["packages"]:
        for path in _files(ROOT / package):
            yield path.relative_to(ROOT).as_posix(), path
    data: Mapping[str, str] = settings.get("data", {})
    for source, target in data.items():
        for path in _files(ROOT / source):
            yield f"{target}/{path.relative_to(ROOT / source).as_posix()}", path


class _Wheel:
    """A wheel being written: each file recorded with its hash for RECORD."""

    def __init__(self, path: Path) -> None:
        self.archive = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED)
        self.records: list[str] = []

    def add(self, name: str, content: bytes) -> None:
        info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        self.archive.writestr(info, content)
        digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=")
        self.records.append(f"{name},sha256={digest.decode()},{len(content)}")

    def close(self, dist_info: str) -> None:
        record = f"{dist_info}/RECORD"
        text = "\n".join([*self.records, f"{record},,"]) + "\n"
        info = zipfile.ZipInfo(record, date_time=FIXED_DATE)
        info.external_attr = 0o644 << 16
        self.archive.writestr(info, text.encode())
        self.archive.close()


def _dist_info_files() -> dict[str, bytes]:
    files = {
        "METADATA": metadata().encode(),
        "WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: crayon_build\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
        "entry_points.txt": _entry_points().encode(),
    }
    for name in _settings().get("license-files", ()):
        files[f"licenses/{name}"] = (ROOT / name).read_bytes()
    return files


def _write_wheel(wheel_directory: str, content: Iterator[tuple[str, bytes]]) -> str:
    name = f"{_dist_name()}-{_version()}"
    filename = f"{name}-py3-none-any.whl"
    wheel = _Wheel(Path(wheel_directory) / filename)
    try:
        for member, data in content:
            wheel.add(member, data)
        for member, data in _dist_info_files().items():
            wheel.add(f"{name}.dist-info/{member}", data)
    finally:
        wheel.close(f"{name}.dist-info")
    return filename


def build_wheel(
    wheel_directory: str,
    config_settings: Mapping[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    return _write_wheel(
        wheel_directory, ((name, path.read_bytes()) for name, path in _package_files())
    )


def build_editable(
    wheel_directory: str,
    config_settings: Mapping[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    """A wheel whose one module is a .pth file putting this directory on ``sys.path``:
    the packages are imported from the working tree, and the package finds its data
    directories at the top of the repository."""
    pth = f"{_dist_name()}_editable.pth"
    return _write_wheel(wheel_directory, iter([(pth, f"{ROOT}\n".encode())]))


def build_sdist(sdist_directory: str, config_settings: Mapping[str, Any] | None = None) -> str:
    name = f"{_dist_name()}-{_version()}"
    filename = f"{name}.tar.gz"
    members: list[tuple[str, bytes]] = [("PKG-INFO", metadata().encode())]
    for entry in _settings()["sdist"]:
        for path in _files(ROOT / entry):
            members.append((path.relative_to(ROOT).as_posix(), path.read_bytes()))
    with tarfile.open(Path(sdist_directory) / filename, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for member, data in sorted(members):
            info = tarfile.TarInfo(f"{name}/{member}")
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 315532800  # 1980-01-01, as the wheel's dates
            tar.addfile(info, io.BytesIO(data))
    return filename


def _prepare_metadata(metadata_directory: str) -> str:
    dist_info = f"{_dist_name()}-{_version()}.dist-info"
    target = Path(metadata_directory) / dist_info
    target.mkdir(parents=True, exist_ok=True)
    for member, data in _dist_info_files().items():
        (target / member).parent.mkdir(parents=True, exist_ok=True)
        (target / member).write_bytes(data)
    return dist_info


def prepare_metadata_for_build_wheel(
    metadata_directory: str, config_settings: Mapping[str, Any] | None = None
) -> str:
    return _prepare_metadata(metadata_directory)


def prepare_metadata_for_build_editable(
    metadata_directory: str, config_settings: Mapping[str, Any] | None = None
) -> str:
    return _prepare_metadata(metadata_directory)


def get_requires_for_build_wheel(config_settings: Mapping[str, Any] | None = None) -> list[str]:
    return []


def get_requires_for_build_editable(
    config_settings: Mapping[str, Any] | None = None,
) -> list[str]:
    return []


def get_requires_for_build_sdist(config_settings: Mapping[str, Any] | None = None) -> list[str]:
    return []


__all__ = [
    "build_editable",
    "build_sdist",
    "build_wheel",
    "get_requires_for_build_editable",
    "get_requires_for_build_sdist",
    "get_requires_for_build_wheel",
    "prepare_metadata_for_build_editable",
    "prepare_metadata_for_build_wheel",
]
