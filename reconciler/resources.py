"""Files that ship with the package: JSON Schemas and the example declarations.

In a wheel they live in ``reconciler/_data``; in a source checkout (editable
install, tests) at the top of the repository. Reads files; writes nothing.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

_PACKAGE_DIR = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"reconciler is installed without its {name}/ directory")


@functools.cache
def schema(name: str) -> dict[str, Any]:
    """A JSON Schema by file stem: ``purchases``, ``plan`` or ``state``."""
    path = _data_dir("schemas") / f"{name}.schema.json"
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def examples_dir() -> Path:
    """The example GitOps repository of declarations."""
    return _data_dir("examples")
