"""The command line, run in-process: ``reconciler ARGS`` through the real click tree.

``run`` fails the test on any traceback, whether an exception escaped the CLI's error
boundary or a traceback was printed; a test asserts on what a user sees instead.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Mapping
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from reconciler.cli import cli

#: An ANSI colour escape sequence.
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run(*args: str, env: Mapping[str, str | None] | None = None, color: bool = False) -> Result:
    """Run ``reconciler ARGS``; ``env`` adds to (None: removes from) the environment."""
    result = CliRunner().invoke(cli, list(args), env=env, color=color, prog_name="reconciler")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        trace = "".join(traceback.format_exception(result.exception))
        pytest.fail(f"reconciler {' '.join(args)} raised instead of exiting:\n{trace}")
    assert_no_traceback(result)
    return result


def assert_no_traceback(result: Result) -> None:
    assert "Traceback" not in result.stdout
    assert "Traceback" not in result.stderr


def init(state: Path) -> Path:
    """Create an empty state as a user does: ``reconciler init --state STATE``."""
    result = run("init", "--state", str(state))
    assert result.exit_code == 0, result.output
    return state


def last_line(text: str) -> str:
    return text.rstrip("\n").splitlines()[-1]
