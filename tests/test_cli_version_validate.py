"""``reconciler version [--json]`` and ``reconciler validate --format text|json|github``."""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path

from reconciler import __version__
from reconciler.errors import ConfigProblem
from reconciler.model import STATE_VERSION
from reconciler.render.validation import annotation
from tests.support.cli import run
from tests.support.paths import ROOT

INVALID = "version: 1\npurchases:\n  - name: acme/basic\n    quantity: -3\n"


def test_version_json_names_the_tool_python_dependencies_and_formats() -> None:
    result = run("version", "--json")

    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["reconciler"] == __version__
    assert data["python"] == platform.python_version()
    assert data["dependencies"]["click"] == metadata.version("click")
    assert data["dependencies"]["PyYAML"] == metadata.version("PyYAML")
    assert set(data["dependencies"]) == {"PyYAML", "click", "jsonschema", "psycopg", "requests"}
    assert data["formats"] == {
        "state": STATE_VERSION,
        "plan": 2,
        "apply_events": 1,
        "postgres_schema": data["formats"]["postgres_schema"],
    }
    assert data["formats"]["postgres_schema"] >= 3


def test_version_text_starts_with_the_tool_and_python() -> None:
    lines = run("version").stdout.splitlines()

    assert lines[0] == f"reconciler {__version__} (Python {platform.python_version()})"
    assert f"  click       {metadata.version('click')}" in lines
    assert "  state format 1" in lines
    assert "  plan format 2" in lines


def _invalid(tmp_path: Path) -> Path:
    decl = tmp_path / "customers"
    decl.mkdir()
    (decl / "acme.yaml").write_text(INVALID, encoding="utf-8")
    return decl


def test_validate_github_annotates_each_problem_on_its_line(tmp_path: Path) -> None:
    decl = _invalid(tmp_path)

    result = run("validate", str(decl), "--format", "github")

    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[-2] == (
        f"::error file={decl}/acme.yaml,line=4,col=15,title=reconciler validate::"
        "purchases[0].quantity: -3 is less than the minimum of 1"
    )
    assert lines[-1] == "6 errors in declarations"
    assert all(line.startswith("::error file=") for line in lines[:-1])
    assert result.stderr == ""


def test_validate_json_is_one_document_valid_or_not(tmp_path: Path) -> None:
    decl = _invalid(tmp_path)

    bad = run("validate", str(decl), "--format", "json")
    (decl / "acme.yaml").unlink()
    good = run("validate", str(ROOT / "examples" / "customers"), "--format", "json")

    assert bad.exit_code == 1
    data = json.loads(bad.stdout)
    assert data["valid"] is False
    assert data["errors"][-1] == {
        "path": f"{decl}/acme.yaml",
        "line": 4,
        "column": 15,
        "json_path": "purchases[0].quantity",
        "message": "-3 is less than the minimum of 1",
    }
    assert good.exit_code == 0
    assert json.loads(good.stdout) == {"valid": True, "purchases": 10, "files": 3, "errors": []}


def test_validate_text_is_unchanged(tmp_path: Path) -> None:
    decl = _invalid(tmp_path)

    bad = run("validate", str(decl))
    good = run("validate", str(ROOT / "examples" / "customers"), "--format", "text")

    assert bad.exit_code == 1
    assert bad.stdout == ""
    assert bad.stderr.splitlines()[-1] == "6 errors in declarations"
    assert good.stdout == "OK: 10 purchases in 3 files\n"


def test_annotations_escape_what_workflow_commands_would_misread() -> None:
    problem = ConfigProblem("a,b:c%.yaml", 1, 2, "", "line one\nline two 100%\r")

    assert annotation(problem) == (
        "::error file=a%2Cb%3Ac%25.yaml,line=1,col=2,title=reconciler validate::"
        "line one%0Aline two 100%25%0D"
    )


def test_shell_completion_completes_commands_and_options() -> None:
    commands = run(env={"_RECONCILER_COMPLETE": "bash_complete", "COMP_WORDS": "reconciler pl",
                        "COMP_CWORD": "1"})  # fmt: skip
    options = run(env={"_RECONCILER_COMPLETE": "bash_complete",
                       "COMP_WORDS": "reconciler apply --max-c", "COMP_CWORD": "2"})  # fmt: skip
    script = run(env={"_RECONCILER_COMPLETE": "zsh_source"})

    assert commands.stdout.splitlines() == ["plain,plan"]
    assert options.stdout.splitlines() == ["plain,--max-cost"]
    assert "#compdef reconciler" in script.stdout
