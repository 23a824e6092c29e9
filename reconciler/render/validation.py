"""``reconciler validate``: its result as text, JSON and GitHub workflow commands.

Returns strings and dicts; never prints or decides exit codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reconciler.errors import ConfigProblem
from reconciler.render.words import count


def valid_line(purchases: int, files: int) -> str:
    """``OK: 10 purchases in 3 files``."""
    return f"OK: {count(purchases, 'purchase')} in {count(files, 'file')}"


def validation_dict(
    problems: Sequence[ConfigProblem], *, purchases: int = 0, files: int = 0
) -> dict[str, Any]:
    """``validate --format json``: whether the declarations are valid, what they hold and
    every problem with its place (line and column from 1; ``json_path`` may be '')."""
    return {
        "valid": not problems,
        "purchases": purchases,
        "files": files,
        "errors": [
            {
                "path": p.path,
                "line": p.line,
                "column": p.column,
                "json_path": p.json_path,
                "message": p.message,
            }
            for p in problems
        ],
    }


def _data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(value: str) -> str:
    return _data(value).replace(":", "%3A").replace(",", "%2C")


def annotation(problem: ConfigProblem) -> str:
    """``::error file=customers/acme.yaml,line=12,col=15::purchases[1].quantity: ...``: a
    GitHub workflow command that marks the line in the pull request's diff."""
    message = f"{problem.json_path}: {problem.message}" if problem.json_path else problem.message
    return (
        f"::error file={_property(problem.path)},line={problem.line},col={problem.column},"
        f"title={_property('reconciler validate')}::{_data(message)}"
    )


def annotation_lines(problems: Sequence[ConfigProblem]) -> str:
    """One workflow command per problem, then the count as a plain line."""
    lines = [annotation(p) for p in problems]
    noun = "error" if len(problems) == 1 else "errors"
    lines.append(f"{len(problems)} {noun} in declarations")
    return "\n".join(lines)
