"""``reconciler version``: the tool, its Python, its dependencies and its formats.

Builds the record's JSON form and its text; never prints and reads nothing itself
(the CLI gathers the versions).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class About:
    """What ``reconciler version`` reports."""

    tool: str
    python: str
    #: Each dependency's installed version, None when it is not installed.
    dependencies: Mapping[str, str | None] = field(default_factory=dict)
    #: Format versions: the state file, the plan JSON (saved plans), the apply events,
    #: the PostgreSQL schema (its migrations).
    formats: Mapping[str, int] = field(default_factory=dict)


def about_dict(about: About) -> dict[str, Any]:
    return {
        "reconciler": about.tool,
        "python": about.python,
        "dependencies": dict(sorted(about.dependencies.items())),
        "formats": dict(about.formats),
    }


_FORMAT_NAMES = {
    "state": "state format",
    "plan": "plan format",
    "apply_events": "apply events format",
    "postgres_schema": "PostgreSQL schema",
}


def about_text(about: About) -> str:
    """``reconciler 0.1.0 (Python 3.12.3)``, then one line per dependency and format."""
    lines = [f"reconciler {about.tool} (Python {about.python})"]
    width = max((len(name) for name in about.dependencies), default=0)
    for name, version in sorted(about.dependencies.items()):
        lines.append(f"  {name:<{width}}  {version or 'not installed'}")
    for key, number in about.formats.items():
        lines.append(f"  {_FORMAT_NAMES.get(key, key)} {number}")
    return "\n".join(lines)
