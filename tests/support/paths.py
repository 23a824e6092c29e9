"""Where the tests find the repository's files: its root, the examples, the schemas and
the test data. Paths only; nothing here reads a file except ``schema``."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

#: The checkout: pyproject.toml, README.md, examples/, schemas/, tests/.
ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
#: Bad-input files with their expected messages, and other inputs of the tests.
DATA = TESTS / "data"
EXAMPLES = ROOT / "examples"
#: The example customers' declarations (``examples/ci`` holds CI templates, not declarations).
CUSTOMERS = EXAMPLES / "customers"
SCHEMAS = ROOT / "schemas"
README = ROOT / "README.md"


@functools.cache
def schema(name: str) -> dict[str, Any]:
    """A JSON Schema of the repository by file stem: ``plan``, ``state``, ``apply-events``."""
    loaded: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text("utf-8"))
    return loaded
