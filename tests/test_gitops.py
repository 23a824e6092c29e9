"""The GitOps kit runs: the CI templates, the pre-commit hook and the plan comment.

The GitHub workflow passes actionlint and both templates pass check-jsonschema's
vendored GitHub and GitLab schemas; every ``reconciler`` command line in them
parses with the real command line; the scripts that find and update the plan
comment by its marker run against loopback fakes of the GitHub and GitLab APIs;
``pre-commit try-repo`` installs the hook from a local repository and runs it.
All offline: a proxy that refuses every connection is set, so a tool that tried
the network would fail instead of passing silently.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from reconciler.cli import cli
from tests.support.paths import ROOT

GITHUB = ROOT / "examples" / "ci" / "github-actions.yml"
GITLAB = ROOT / "examples" / "ci" / "gitlab-ci.yml"
HOOKS = ROOT / ".pre-commit-hooks.yaml"
#: Any connection attempt through these goes to a closed port on loopback.
OFFLINE = {
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
    "NO_PROXY": "",
    "no_proxy": "",
}


def tool(name: str) -> str:
    """A console script of the test environment (beside this Python, or on PATH)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is not installed; pip install -e '.[test]'"
    return found


def offline_env(**extra: str) -> dict[str, str]:
    return {**os.environ, **OFFLINE, **extra}


def run(args: list[str], cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=offline_env(**env), capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip


# --- the templates are valid -------------------------------------------------------


@pytest.mark.slow  # runs actionlint
def test_github_workflow_passes_actionlint() -> None:
    # Without shellcheck and pyflakes: their presence differs between machines.
    done = run([tool("actionlint"), "-shellcheck=", "-pyflakes=", str(GITHUB)])

    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow  # runs check-jsonschema
@pytest.mark.parametrize(
    ("template", "schema"),
    [(GITHUB, "vendor.github-workflows"), (GITLAB, "vendor.gitlab-ci")],
    ids=["github", "gitlab"],
)
def test_templates_pass_the_vendored_ci_schemas(template: Path, schema: str) -> None:
    done = run([tool("check-jsonschema"), "--builtin-schema", schema, str(template)])

    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok -- validation done" in done.stdout


def _scripts() -> list[str]:
    """Every shell script of both templates: GitHub steps' ``run``, GitLab ``script``."""
    scripts: list[str] = []
    github = yaml.safe_load(GITHUB.read_text(encoding="utf-8"))
    for job in github["jobs"].values():
        scripts += [step["run"] for step in job["steps"] if "run" in step]
    gitlab = yaml.safe_load(GITLAB.read_text(encoding="utf-8"))
    for job in gitlab.values():
        if isinstance(job, dict):
            scripts += list(job.get("script", ())) + list(job.get("before_script", ()))
    return scripts


_SHELL_ENDS = {">", ">>", "|", "||", "&&", ";", "&"}


def command_lines() -> list[list[str]]:
    """The arguments of every ``reconciler ...`` command in the templates."""
    found = []
    for script in _scripts():
        for line in script.splitlines():
            if not re.match(r"\s*reconciler\s", line):
                continue
            lexer = shlex.shlex(line.replace("$DECLARATIONS", "customers"), posix=True,
                                punctuation_chars=True)  # fmt: skip
            lexer.whitespace_split = True
            tokens = list(lexer)
            end = next((i for i, t in enumerate(tokens) if t in _SHELL_ENDS), len(tokens))
            found.append(tokens[1:end])
    return found


def parse(args: list[str]) -> click.Context:
    """Parse ``reconciler ARGS`` as the real command line would, without running it:
    unknown commands and options, bad values and missing arguments raise."""
    # With the group's context settings (-h), as cli.main makes it: a context without
    # them would leave each subcommand's cached help option without -h.
    ctx = click.Context(cli, info_name="reconciler", **cli.context_settings)
    command: click.Command = cli
    rest = list(args)
    while isinstance(command, click.Group):
        name, *rest = rest
        sub = command.get_command(ctx, name)
        assert sub is not None, f"no command {name!r} in reconciler {' '.join(args)}"
        if isinstance(sub, click.Group):
            ctx = click.Context(sub, info_name=name, parent=ctx)
        else:
            return sub.make_context(name, rest, parent=ctx)
        command = sub
    raise AssertionError(args)


def test_every_reconciler_command_line_in_the_templates_parses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As the templates set it from a secret (only parsed here; nothing connects).
    monkeypatch.setenv("RECONCILER_STATE", "postgresql://reconciler@db.example.com/licences")
    lines = command_lines()

    for args in lines:
        ctx = parse(args)
        assert ctx.params is not None
    assert sorted({args[0] for args in lines}) == ["apply", "init", "plan", "validate"]
    plans = [parse(a).params for a in lines if a[0] == "plan"]
    assert plans
    assert all(p["fmt"] == "markdown" and p["verify"] for p in plans)
    applies = [parse(a).params for a in lines if a[0] == "apply"]
    assert applies
    assert all(p["as_json"] and p["auto_approve"] for p in applies)


def test_the_command_line_parser_of_this_test_refuses_what_the_cli_refuses() -> None:
    with pytest.raises(click.NoSuchOption):
        parse(["plan", "customers", "--formt", "markdown"])
    with pytest.raises(click.BadParameter):
        parse(["plan", "customers", "--format", "html"])
    with pytest.raises(AssertionError):
        parse(["aply", "customers"])


def test_apply_jobs_run_one_at_a_time() -> None:
    github = yaml.safe_load(GITHUB.read_text(encoding="utf-8"))
    gitlab = yaml.safe_load(GITLAB.read_text(encoding="utf-8"))

    assert github["jobs"]["apply"]["concurrency"] == {
        "group": "licences-apply",
        "cancel-in-progress": False,
    }
    assert gitlab["apply"]["resource_group"] == "licences-apply"
    # Credentials and the state come from secrets, never from the file.
    assert github["env"]["RECONCILER_STATE"] == "${{ secrets.RECONCILER_STATE }}"
    assert github["env"]["PGPASSWORD"] == "${{ secrets.PGPASSWORD }}"
    assert "RECONCILER_STATE" not in gitlab.get("variables", {})


# --- the scripts that post the comment --------------------------------------------------


class _NotesApi(ThreadingHTTPServer):
    """Just enough of GitLab's merge-request notes API: list, create, update."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _NotesHandler)
        self.notes: list[dict[str, Any]] = [
            {"id": 1, "body": "Looks good to me"},
            {"id": 2, "body": "<!-- crayon-reconciler:plan workspace=other -->\nold"},
        ]
        self.tokens: set[str] = set()


class _NotesHandler(BaseHTTPRequestHandler):
    server: _NotesApi
    PREFIX = "/api/v4/projects/group%2Flicences/merge_requests/7/notes"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _answer(self, status: int, data: Any) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length", "0"))
        data: dict[str, Any] = json.loads(self.rfile.read(length))
        return data

    def do_GET(self) -> None:
        self.server.tokens.add(self.headers.get("PRIVATE-TOKEN", ""))
        assert self.path.startswith(self.PREFIX + "?")
        query = dict(pair.split("=", 1) for pair in self.path.split("?", 1)[1].split("&"))
        page = int(query["page"])
        self._answer(200, self.server.notes[(page - 1) * 100 : page * 100])

    def do_POST(self) -> None:
        assert self.path == self.PREFIX
        note = {"id": len(self.server.notes) + 1, "body": self._body()["body"]}
        self.server.notes.append(note)
        self._answer(201, note)

    def do_PUT(self) -> None:
        note_id = int(self.path.rsplit("/", 1)[1])
        note = next(n for n in self.server.notes if n["id"] == note_id)
        note["body"] = self._body()["body"]
        self._answer(200, note)


@pytest.fixture
def notes_api() -> Iterator[_NotesApi]:
    server = _NotesApi()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def _gitlab_note_script() -> str:
    gitlab = yaml.safe_load(GITLAB.read_text(encoding="utf-8"))
    (script,) = [s for s in gitlab["plan"]["script"] if "<<'PY'" in s]
    return str(script)


@pytest.mark.slow  # runs the job's script in a shell
def test_gitlab_plan_job_adds_its_note_once_then_updates_it(
    notes_api: _NotesApi, tmp_path: Path
) -> None:
    script = _gitlab_note_script()
    env = {
        # The note script talks to the fake on loopback; no proxy for it.
        "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1",
        "CI_API_V4_URL": f"http://127.0.0.1:{notes_api.server_port}/api/v4",
        "CI_PROJECT_ID": "group/licences",
        "CI_MERGE_REQUEST_IID": "7",
        "PLAN_NOTE_TOKEN": "glpat-test",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }  # fmt: skip
    first = "<!-- crayon-reconciler:plan -->\n\n### ✅ Plan: **ready to apply**\n"
    second = "<!-- crayon-reconciler:plan -->\n\n### ❌ Plan: **cannot be applied: 1 conflict**\n"

    for body in (first, second):
        (tmp_path / "plan.md").write_text(body, encoding="utf-8")
        done = run(["bash", "-c", script], cwd=tmp_path, **env)
        assert done.returncode == 0, done.stdout + done.stderr

    # One note of ours, updated in place; the other workspace's note untouched.
    assert [n["body"] for n in notes_api.notes] == [
        "Looks good to me",
        "<!-- crayon-reconciler:plan workspace=other -->\nold",
        second,
    ]
    assert notes_api.tokens == {"glpat-test"}


_GITHUB_SCRIPT_HARNESS = """
const fs = require('fs');
const calls = [];
const state = JSON.parse(fs.readFileSync('comments.json', 'utf8'));
const github = {
  paginate: async (fn, args) => { calls.push(['list', args.issue_number]); return state; },
  rest: { issues: {
    listComments: 'listComments',
    updateComment: async (a) => { calls.push(['update', a.comment_id, a.body]); },
    createComment: async (a) => { calls.push(['create', a.issue_number, a.body]); },
  } },
};
const context = { repo: { owner: 'acme', repo: 'licences' }, issue: { number: 7 } };
(async () => {
%s
  console.log(JSON.stringify(calls));
})().catch((e) => { console.error(e); process.exit(1); });
"""


@pytest.mark.slow  # runs the job's script under node
@pytest.mark.parametrize(
    ("comments", "expected"),
    [
        ([], ["create", 7]),
        ([{"id": 5, "user": {"type": "User"}, "body": "<!-- crayon-reconciler:plan -->\nx"}],
         ["create", 7]),
        ([{"id": 6, "user": {"type": "Bot"}, "body": "<!-- crayon-reconciler:plan -->\nold"},
          {"id": 8, "user": {"type": "Bot"}, "body": None}],
         ["update", 6]),
        ([{"id": 9, "user": {"type": "Bot"},
           "body": "<!-- crayon-reconciler:plan workspace=eu -->\nold"}],
         ["create", 7]),
    ],
    ids=["none", "a person's", "ours", "another workspace's"],
)  # fmt: skip
def test_github_plan_job_finds_its_comment_by_the_marker(
    tmp_path: Path, comments: list[dict[str, Any]], expected: list[Any]
) -> None:
    node = shutil.which("node")
    if node is None:
        reason = "node is not installed; the workflow's github-script step needs it"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)  # CI never passes by skipping
        pytest.skip(reason)
    github = yaml.safe_load(GITHUB.read_text(encoding="utf-8"))
    (step,) = [s for s in github["jobs"]["plan"]["steps"] if "github-script" in s.get("uses", "")]
    body = "<!-- crayon-reconciler:plan -->\n\n### ✅ Plan: **ready to apply**\n"
    (tmp_path / "plan.md").write_text(body, encoding="utf-8")
    (tmp_path / "comments.json").write_text(json.dumps(comments), encoding="utf-8")
    (tmp_path / "harness.js").write_text(
        _GITHUB_SCRIPT_HARNESS % step["with"]["script"], encoding="utf-8"
    )

    done = run([node, "harness.js"], cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    calls = json.loads(done.stdout)
    assert calls == [["list", 7], [*expected, body]]


# --- pre-commit ----------------------------------------------------------------------


def test_the_hook_manifest() -> None:
    (hook,) = yaml.safe_load(HOOKS.read_text(encoding="utf-8"))

    assert hook["id"] == "reconciler-validate"
    assert (hook["entry"], hook["language"], hook["pass_filenames"]) == (
        "reconciler validate",
        "python",
        True,
    )
    files, exclude = re.compile(hook["files"]), re.compile(hook["exclude"])
    for path in ("customers/acme.yaml", "a.yml"):
        assert files.search(path)
        assert not exclude.search(path)
    for path in (".pre-commit-config.yaml", ".github/workflows/licences.yml", "a/.b.yaml"):
        assert exclude.search(path)
    assert not files.search("README.md")


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=cwd, check=True, capture_output=True,
    )  # fmt: skip


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This project as a hook repository: its committed-to-be files, committed.

    Built from the working tree (not a clone of HEAD), so the test checks the
    hook and the code as they are now."""
    repo = tmp_path_factory.mktemp("hook-repo")
    for name in ("reconciler", "schemas", "examples"):
        shutil.copytree(
            ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml"):
        shutil.copy(ROOT / name, repo / name)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "hook")
    return repo


def _try_repo(hook_repo: Path, target: Path, *files: str) -> subprocess.CompletedProcess[str]:
    """``pre-commit try-repo`` offline: pip installs the hook repository with no index
    and no build isolation; its build backend (hatchling) and the runtime
    dependencies come from this test environment, put on PYTHONPATH."""
    paths = sysconfig.get_paths()
    site = os.pathsep.join(dict.fromkeys([paths["purelib"], paths["platlib"]]))
    return run(
        [tool("pre-commit"), "try-repo", str(hook_repo), "reconciler-validate",
         "--files", *files],
        cwd=target,
        PIP_NO_INDEX="1",
        # pip's inverted switch: 0 turns build isolation *off*.
        PIP_NO_BUILD_ISOLATION="0",
        PYTHONPATH=site,
        VIRTUALENV_NO_PERIODIC_UPDATE="1",
        PRE_COMMIT_HOME=str(target.parent / "pre-commit-home"),
    )  # fmt: skip


@pytest.mark.slow  # pre-commit installs the hook into a virtual environment
def test_pre_commit_try_repo_passes_valid_and_fails_invalid_declarations(
    hook_repo: Path, tmp_path: Path
) -> None:
    target = tmp_path / "declarations"
    shutil.copytree(ROOT / "examples" / "customers", target / "customers")
    (target / ".pre-commit-config.yaml").write_text("repos: []\n", encoding="utf-8")
    _git(target, "init", "-q")
    _git(target, "add", "-A")
    _git(target, "commit", "-q", "-m", "declarations")

    valid = _try_repo(hook_repo, target, "customers/contoso.yaml", "customers/fabrikam.yaml")

    assert valid.returncode == 0, valid.stdout + valid.stderr
    assert re.search(r"reconciler validate\.+Passed", valid.stdout), valid.stdout

    (target / "customers" / "acme.yaml").write_text(
        "version: 1\npurchases:\n  - name: acme/basic\n    quantity: -3\n", encoding="utf-8"
    )
    _git(target, "add", "-A")
    invalid = _try_repo(hook_repo, target, "customers/acme.yaml", "customers/contoso.yaml")

    assert invalid.returncode == 1, invalid.stdout + invalid.stderr
    assert re.search(r"reconciler validate\.+Failed", invalid.stdout), invalid.stdout
    assert (
        "customers/acme.yaml:4:15: purchases[0].quantity: -3 is less than the minimum of 1"
        in invalid.stdout
    )
