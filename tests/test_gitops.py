"""The GitOps kit holds: action.yml, the CI templates and the pre-commit hooks.

action.yml and the GitHub workflows pass actionlint (the workflows against the action's
own inputs), check-jsonschema's vendored schemas and zizmor with no finding; the GitLab
template passes its schema. Every ``reconciler`` and ``python -m reconciler.forge``
command line in them parses with the real command line. Their shape keeps the promises:
actions pinned by commit, a timeout on every job, credentials only where a step needs
them, apply in a protected environment and never on a schedule, the plan job one per
pull request, the tool installed from a pinned commit with its constraints, no separate
validate step. ``pre-commit try-repo`` installs the hooks from a local repository and
runs them. All offline: a proxy that refuses every connection is set, so a tool that
tried the network would fail instead of passing silently. (The comment and issue
scripts are tested against fakes of the GitHub and GitLab APIs in test_forge.py.)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from reconciler import forge
from reconciler.cli import cli
from tests.support.paths import ROOT

ACTION = ROOT / "action.yml"
GITHUB = ROOT / "examples" / "ci" / "github-actions.yml"
DRIFT = ROOT / "examples" / "ci" / "github-drift.yml"
GITLAB = ROOT / "examples" / "ci" / "gitlab-ci.yml"
HOOKS = ROOT / ".pre-commit-hooks.yaml"
#: The action as the templates use it: this repository, pinned to a commit.
OUR_ACTION = re.compile(r"^example-org/crayon-reconciler@[0-9a-f]{40}$")
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


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def github_jobs() -> dict[str, dict[str, Any]]:
    """Every job of both GitHub workflows, by name."""
    return {**load(GITHUB)["jobs"], **load(DRIFT)["jobs"]}


def gitlab_jobs() -> dict[str, dict[str, Any]]:
    return {k: v for k, v in load(GITLAB).items() if isinstance(v, dict) and "script" in v}


# --- the files pass the linters ---------------------------------------------------------


@pytest.fixture(scope="module")
def workflows_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository of declarations with both GitHub workflows, whose uses of this
    repository's action point at a copy of action.yml at its root (``uses: ./``), so
    actionlint checks every ``with:`` against the action's inputs."""
    repo = tmp_path_factory.mktemp("workflows")
    workflows = repo / ".github" / "workflows"
    workflows.mkdir(parents=True)
    shutil.copy(ACTION, repo / "action.yml")
    for template in (GITHUB, DRIFT):
        text = template.read_text(encoding="utf-8")
        local = re.sub(r"example-org/crayon-reconciler@[0-9a-f]{40}[^\n]*", "./", text)
        assert local != text
        (workflows / template.name).write_text(local, encoding="utf-8")
    _git(repo, "init", "-q")
    return repo


@pytest.mark.slow  # runs actionlint
def test_github_workflows_pass_actionlint_against_the_action_inputs(workflows_repo: Path) -> None:
    # Without shellcheck and pyflakes: their presence differs between machines.
    done = run([tool("actionlint"), "-shellcheck=", "-pyflakes="], cwd=workflows_repo)

    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow  # runs actionlint
def test_actionlint_here_refuses_an_input_the_action_does_not_have(
    workflows_repo: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "repo"
    shutil.copytree(workflows_repo, broken)
    workflow = broken / ".github" / "workflows" / GITHUB.name
    workflow.write_text(
        workflow.read_text(encoding="utf-8").replace("max-seats:", "max-seat:"), encoding="utf-8"
    )

    done = run([tool("actionlint"), "-shellcheck=", "-pyflakes="], cwd=broken)

    assert done.returncode == 1
    assert 'input "max-seat" is not defined in action' in done.stdout


@pytest.mark.slow  # runs check-jsonschema
@pytest.mark.parametrize(
    ("template", "schema"),
    [
        (GITHUB, "vendor.github-workflows"),
        (DRIFT, "vendor.github-workflows"),
        (ACTION, "vendor.github-actions"),
        (GITLAB, "vendor.gitlab-ci"),
    ],
    ids=["github", "github-drift", "action", "gitlab"],
)
def test_templates_pass_the_vendored_ci_schemas(template: Path, schema: str) -> None:
    done = run([tool("check-jsonschema"), "--builtin-schema", schema, str(template)])

    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok -- validation done" in done.stdout


@pytest.mark.slow  # runs zizmor
@pytest.mark.parametrize("persona", ["regular", "auditor"])
def test_zizmor_finds_nothing_in_the_action_and_the_workflows(persona: str) -> None:
    done = run(
        [tool("zizmor"), "--offline", "--no-progress", "--format", "json", "--persona", persona,
         str(ACTION), str(GITHUB), str(DRIFT)],
    )  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout) == []


@pytest.mark.slow  # runs zizmor
def test_zizmor_here_reports_an_action_pinned_by_tag(tmp_path: Path) -> None:
    unpinned = tmp_path / "licences.yml"
    unpinned.write_text(
        re.sub(r"actions/checkout@[0-9a-f]{40}", "actions/checkout@v5", GITHUB.read_text()),
        encoding="utf-8",
    )

    done = run([tool("zizmor"), "--offline", "--no-progress", "--format", "json", str(unpinned)])

    found = json.loads(done.stdout)
    assert {f["ident"] for f in found} == {"unpinned-uses"}
    assert {f["determinations"]["severity"] for f in found} == {"High"}


# --- every command line parses --------------------------------------------------------


def _scripts() -> list[str]:
    """Every shell script: action.yml's steps, GitLab's script, before_ and after_script."""
    scripts = [step["run"] for step in load(ACTION)["runs"]["steps"] if "run" in step]
    for job in [load(GITLAB)[".reconciler"], *gitlab_jobs().values()]:
        for key in ("before_script", "script", "after_script"):
            scripts += list(job.get(key, ()))
    return scripts


#: What the templates' variables hold when a command line is parsed.
SAMPLE_VALUES = {
    "DECLARATIONS": "customers",
    "INPUT_PATH": "customers",
    "INPUT_LOCK_TIMEOUT": "10m",
    "INPUT_ARTIFACT": "reviewed-plan",
    "PLAN_EXIT_CODE": "2",
    "APPLY_EXIT_CODE": "0",
    "code": "0",
}
_SHELL_ENDS = {">", ">>", "|", "||", "&&", ";", "&", "2>"}
_ARRAY = re.compile(r"^\$\{\w+\[@\]\}$")
_VARIABLE = re.compile(r"^\$\{?(\w+)\}?$")


def _logical_lines(script: str) -> Iterator[str]:
    yield from script.replace("\\\n", " ").splitlines()


def _arguments(line: str, start: str) -> list[str]:
    """The arguments after ``start`` on a shell line, variables given sample values,
    array expansions (optional flags) left out, up to a redirection or operator."""
    lexer = shlex.shlex(line[line.index(start) + len(start) :], posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    args: list[str] = []
    for token in lexer:
        if token in _SHELL_ENDS:
            break
        if _ARRAY.match(token):
            continue
        variable = _VARIABLE.match(token)
        if variable:
            assert variable.group(1) in SAMPLE_VALUES, f"no sample value for {token} in {line}"
            token = SAMPLE_VALUES[variable.group(1)]
        args.append(token)
    # ``2>file`` reads as the argument 2 and a redirection.
    if args and args[-1] == "2" and "2>" in line:
        args.pop()
    return args


def command_lines(start: str) -> list[list[str]]:
    """The arguments of every ``START ...`` command in the templates and action.yml."""
    found = []
    for script in _scripts():
        for line in _logical_lines(script):
            if re.match(rf"\s*{re.escape(start)}\s", line):
                found.append(_arguments(line, start))
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


def parse_forge(args: list[str]) -> argparse.Namespace:
    """Parse ``python -m reconciler.forge ARGS`` with the script's own parser."""
    try:
        return forge._parser().parse_args(args)
    except SystemExit as exc:
        raise AssertionError(f"python -m reconciler.forge {' '.join(args)}") from exc


def test_every_reconciler_command_line_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    # As the templates set it from a secret (only parsed here; nothing connects).
    monkeypatch.setenv("RECONCILER_STATE", "postgresql://reconciler@db.example.com/licences")
    lines = command_lines("reconciler")

    parsed = [(args[0], parse(args).params) for args in lines]

    assert sorted({name for name, _ in parsed}) == ["apply", "init", "plan", "version"]
    plans = [p for name, p in parsed if name == "plan"]
    comments = [p for p in plans if p["fmt"] == "markdown"]
    assert comments
    assert all(p["detailed_exitcode"] for p in comments)
    merges = [p for p in plans if p["expect"]]
    assert len(merges) == 2  # action.yml and GitLab
    assert all(p["expect"] == "reviewed.plan" and p["out"] == "merge.plan" for p in merges)
    applies = [p for name, p in parsed if name == "apply"]
    assert len(applies) == 2
    assert all(p["as_json"] and p["plan_path"] == "merge.plan" for p in applies)


def test_every_forge_command_line_parses() -> None:
    lines = command_lines("python -m reconciler.forge")

    commands = sorted({parse_forge(args).command for args in lines})

    assert commands == ["apply-result", "comment", "drift-issue", "outputs", "reviewed"]


def test_the_parsers_of_this_test_refuse_what_the_command_lines_refuse() -> None:
    with pytest.raises(click.NoSuchOption):
        parse(["plan", "customers", "--formt", "markdown"])
    with pytest.raises(click.BadParameter):
        parse(["plan", "customers", "--format", "html"])
    with pytest.raises(click.BadParameter):
        parse(["apply", "--max-cost", "EUR 5"])
    with pytest.raises(AssertionError):
        parse(["aply", "customers"])
    with pytest.raises(AssertionError):
        parse_forge(["comment", "--bdy", "plan.md"])
    assert _arguments('reconciler plan "$DECLARATIONS" "${targets[@]}" 2>x.log', "reconciler") == [
        "plan",
        "customers",
    ]


def test_no_separate_validate_step_can_leave_an_old_comment_standing() -> None:
    lines = command_lines("reconciler")

    assert not [args for args in lines if args[0] == "validate"]
    # The comment is posted whatever plan exited with.
    (step,) = [s for s in load(ACTION)["runs"]["steps"] if "forge comment" in s.get("run", "")]
    assert "always()" in step["if"]
    plan = load(GITLAB)["plan"]["script"]
    assert any("|| code=$?" in line and line.startswith("reconciler plan") for line in plan)
    assert plan.index("python -m reconciler.forge comment --body plan.md") < plan.index(
        'test "$code" != 1'
    )


# --- the shape of the templates ------------------------------------------------------


def _uses() -> list[str]:
    found = [s["uses"] for s in load(ACTION)["runs"]["steps"] if "uses" in s]
    for job in github_jobs().values():
        found += [s["uses"] for s in job["steps"] if "uses" in s]
    return found


def test_every_action_is_pinned_by_commit() -> None:
    uses = _uses()

    assert uses
    for used in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", used), used
    assert [u for u in uses if OUR_ACTION.match(u)]


def test_every_job_has_a_timeout() -> None:
    for name, job in github_jobs().items():
        assert 0 < job["timeout-minutes"] <= 60, name
    for name, job in gitlab_jobs().items():
        assert re.fullmatch(r"\d+m", job["timeout"]), name


def test_the_plan_job_runs_once_per_pull_request() -> None:
    plan = load(GITHUB)["jobs"]["plan"]

    assert plan["concurrency"] == {
        "group": "licences-plan-${{ github.event.pull_request.number }}",
        "cancel-in-progress": True,
    }
    assert load(GITLAB)["plan"]["interruptible"] is True


def test_apply_runs_in_a_protected_environment_one_at_a_time() -> None:
    github = load(GITHUB)["jobs"]["apply"]
    gitlab = load(GITLAB)["apply"]

    assert github["environment"] == "licences"
    assert github["concurrency"] == {"group": "licences-apply", "cancel-in-progress": False}
    assert gitlab["environment"]["name"] == "licences"
    assert gitlab["resource_group"] == "licences-apply"
    # Plan and drift never see the environment of the credentials that buy.
    for name in ("plan", "drift"):
        assert github_jobs()[name]["environment"] == "licences-plan"
        assert gitlab_jobs()[name]["environment"]["name"] == "licences-plan"


def test_credentials_reach_only_the_steps_that_need_them() -> None:
    for workflow in (load(GITHUB), load(DRIFT)):
        assert "env" not in workflow
        assert workflow["permissions"] == {}
        for job in workflow["jobs"].values():
            assert "env" not in job
            for step in job["steps"]:
                assert "env" not in step
                secrets = [v for v in step.get("with", {}).values() if "secrets." in str(v)]
                assert not secrets or OUR_ACTION.match(step["uses"]), step
    secret = re.compile(r"^(CRAYON_(?!API_URL)\w+|PGPASSWORD|RECONCILER_STATE)$")
    steps = load(ACTION)["runs"]["steps"]
    holders = [s["name"] for s in steps if any(secret.match(k) for k in s.get("env", {}))]
    assert holders == ["Plan", "Apply what was reviewed"]
    tokens = [s["name"] for s in steps if "GITHUB_TOKEN" in s.get("env", {})]
    assert not set(tokens) & set(holders)
    assert not [s for s in steps if "inputs." in s.get("run", "") or "secrets." in s.get("run", "")]


def _gitlab_rule_matches(condition: str, context: dict[str, str]) -> bool:
    """A GitLab ``rules: if:`` of ``$A == "x"``, ``$A == $B`` and ``&&``."""
    for part in condition.split("&&"):
        left, right = (side.strip() for side in part.split("=="))
        value = {side: context.get(side[1:], "") if side.startswith("$") else side.strip('"')
                 for side in (left, right)}  # fmt: skip
        if value[left] != value[right]:
            return False
    return True


def _gitlab_runs(job: dict[str, Any], context: dict[str, str]) -> bool:
    for rule in job["rules"]:
        if _gitlab_rule_matches(rule["if"], context):
            return bool(rule.get("when", "on_success") != "never")
    return False


PIPELINES = {
    "merge request": {"CI_PIPELINE_SOURCE": "merge_request_event", "CI_DEFAULT_BRANCH": "main"},
    "push to main": {"CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": "main",
                     "CI_DEFAULT_BRANCH": "main"},
    "push to a branch": {"CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": "feature",
                         "CI_DEFAULT_BRANCH": "main"},
    "schedule on main": {"CI_PIPELINE_SOURCE": "schedule", "CI_COMMIT_BRANCH": "main",
                         "CI_DEFAULT_BRANCH": "main"},
}  # fmt: skip


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_gitlab_applies_only_on_a_push_to_the_default_branch(pipeline: str) -> None:
    jobs = gitlab_jobs()
    context = PIPELINES[pipeline]

    running = {name for name, job in jobs.items() if _gitlab_runs(job, context)}

    assert (
        running
        == {
            "merge request": {"plan"},
            "push to main": {"apply"},
            "push to a branch": set(),
            "schedule on main": {"drift"},
        }[pipeline]
    )


def test_the_gitlab_note_keeps_plan_credentials_unprotected_and_apply_ones_protected() -> None:
    header = GITLAB.read_text(encoding="utf-8").split("\nworkflow:", 1)[0]
    text = " ".join(line.lstrip("# ") for line in header.splitlines())

    assert "masked, protected and with the environment scope `licences`" in text
    assert "the environment scope `licences-plan`, masked but NOT protected" in text
    assert "Merge-request pipelines run on unprotected source branches" in text


def test_the_tool_is_installed_from_a_pinned_commit_with_its_constraints() -> None:
    (install,) = [
        s for s in load(ACTION)["runs"]["steps"] if s.get("name", "").startswith("Install")
    ]
    assert (
        '--constraint "$GITHUB_ACTION_PATH/constraints.txt" "$GITHUB_ACTION_PATH[postgres]"'
        in (install["run"])
    )
    gitlab = load(GITLAB)
    assert re.fullmatch(r"v\d+\.\d+\.\d+", gitlab["variables"]["RECONCILER_VERSION"])
    assert re.fullmatch(r"[0-9a-f]{40}", gitlab["variables"]["RECONCILER_COMMIT"])
    before = gitlab[".reconciler"]["before_script"]
    assert 'test "$(git -C /tmp/crayon-reconciler rev-parse HEAD)" = "$RECONCILER_COMMIT"' in before
    assert any("--constraint /tmp/crayon-reconciler/constraints.txt" in line for line in before)
    for script in _scripts():
        assert not re.search(r"pip install[^\n]*[\"' ]crayon-reconciler", script), script


def test_drift_runs_on_a_schedule_and_reports_to_one_issue() -> None:
    drift: dict[Any, Any] = yaml.safe_load(DRIFT.read_text(encoding="utf-8"))
    (step,) = [s for s in drift["jobs"]["drift"]["steps"] if OUR_ACTION.match(s.get("uses", ""))]

    assert "schedule" in drift[True]  # YAML 1.1 reads the key `on` as True
    assert step["with"]["command"] == "drift"
    assert drift["jobs"]["drift"]["permissions"]["issues"] == "write"
    gitlab = gitlab_jobs()["drift"]
    assert any("--detailed-exitcode" in line for line in gitlab["script"])
    assert (
        'python -m reconciler.forge drift-issue --body drift.md --exit-code "$code"'
        in (gitlab["script"])
    )


# --- pre-commit ----------------------------------------------------------------------


def test_the_hook_manifest() -> None:
    hook, every = yaml.safe_load(HOOKS.read_text(encoding="utf-8"))

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
    assert every["id"] == "reconciler-validate-all"
    assert (every["entry"], every["language"]) == ("reconciler validate", "python")
    assert (every["pass_filenames"], every["always_run"]) == (False, True)


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
    for name in ("pyproject.toml", "README.md", "LICENSE", ".pre-commit-hooks.yaml"):
        shutil.copy(ROOT / name, repo / name)
    shutil.copytree(ROOT / "build_backend", repo / "build_backend",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "hook")
    return repo


def _try_repo(
    hook_repo: Path, target: Path, *files: str, hook: str = "reconciler-validate"
) -> subprocess.CompletedProcess[str]:
    """``pre-commit try-repo`` offline: pip installs the hook repository with no index,
    building it in isolation as a user's pip does: its build backend is in the
    repository and needs nothing from an index. The runtime dependencies come from
    this test environment, put on PYTHONPATH."""
    paths = sysconfig.get_paths()
    site = os.pathsep.join(dict.fromkeys([paths["purelib"], paths["platlib"]]))
    return run(
        [tool("pre-commit"), "try-repo", str(hook_repo), hook, "--files", *files],
        cwd=target,
        PIP_NO_INDEX="1",
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


DUPLICATE = """\
version: 1
purchases:
  - name: contoso/m365-business-basic
    customerTenantId: 100001
    productId: CFQ7TTC0LF8R
    skuId: "0010"
    quantity: 1
    billingCycle: monthly
    termDuration: P1M
"""


@pytest.mark.slow  # pre-commit installs the hook into a virtual environment
def test_validate_all_catches_a_duplicate_in_a_file_the_commit_did_not_touch(
    hook_repo: Path, tmp_path: Path
) -> None:
    target = tmp_path / "declarations"
    shutil.copytree(ROOT / "examples" / "customers", target / "customers")
    (target / ".pre-commit-config.yaml").write_text("repos: []\n", encoding="utf-8")
    _git(target, "init", "-q")
    _git(target, "add", "-A")
    _git(target, "commit", "-q", "-m", "declarations")
    # The commit adds extra.yaml only; the name it repeats is in contoso.yaml, unchanged.
    (target / "customers" / "extra.yaml").write_text(DUPLICATE, encoding="utf-8")
    _git(target, "add", "-A")

    changed_only = _try_repo(hook_repo, target, "customers/extra.yaml")
    every = _try_repo(hook_repo, target, "customers/extra.yaml", hook="reconciler-validate-all")

    assert changed_only.returncode == 0, changed_only.stdout + changed_only.stderr
    assert every.returncode == 1, every.stdout + every.stderr
    assert re.search(r"reconciler validate \(all declarations\)\.+Failed", every.stdout)
    assert (
        "customers/extra.yaml:3:11: purchases[0].name: duplicate name "
        "'contoso/m365-business-basic': declared in customers/extra.yaml:3 and in "
        "customers/contoso.yaml:19"
    ) in every.stdout
    # A commit of anything else runs it too (always_run), and passes once it is fixed.
    (target / "customers" / "extra.yaml").unlink()
    (target / "README.md").write_text("licences\n", encoding="utf-8")
    _git(target, "add", "-A")
    unrelated = _try_repo(hook_repo, target, "README.md", hook="reconciler-validate-all")
    assert unrelated.returncode == 0, unrelated.stdout + unrelated.stderr
    assert re.search(r"reconciler validate \(all declarations\)\.+Passed", unrelated.stdout)
