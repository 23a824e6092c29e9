"""``python -m reconciler.forge``: the plan comment, the apply result, the drift issue, the
reviewed plan and the outputs, against loopback fakes of the GitHub and GitLab APIs.

The comment is found by its marker whoever posted it (the workflow's bot or a person's
token), updated in place, and a plan of invalid declarations after a good one replaces
that same comment, so no stale "ready to apply" stays standing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reconciler import forge
from reconciler.render import review
from tests.support.cli import run
from tests.support.forges import FakeGitHub, FakeGitLab, github, gitlab, zipped
from tests.support.simulator import Project

__all__ = ["github", "gitlab"]  # fixtures

READY = "<!-- crayon-reconciler:plan -->\n\n### ✅ Plan: **ready to apply**\n"
BLOCKED = "<!-- crayon-reconciler:plan -->\n\n### ❌ Plan: **cannot be applied: 1 conflict**\n"
OTHER = "<!-- crayon-reconciler:plan workspace=eu -->\n\nold\n"


def github_env(fake: FakeGitHub, tmp_path: Path, **extra: str) -> dict[str, str]:
    event = tmp_path / "event.json"
    event.write_text(
        json.dumps({"pull_request": {"number": 7, "head": {"sha": fake.HEAD_SHA}}}),
        encoding="utf-8",
    )
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_API_URL": f"{fake.url}/api/v3",
        "GITHUB_SERVER_URL": "https://github.example.com",
        "GITHUB_REPOSITORY": "acme/licences",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_SHA": fake.MERGE_SHA,
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_TOKEN": "ghs-test-token",
        **extra,
    }


def gitlab_env(fake: FakeGitLab, **extra: str) -> dict[str, str]:
    return {
        "GITLAB_CI": "true",
        "CI_API_V4_URL": f"{fake.url}/api/v4",
        "CI_PROJECT_ID": "group/licences",
        "CI_MERGE_REQUEST_IID": "7",
        "CI_PIPELINE_URL": "https://gitlab.example.com/group/licences/-/pipelines/99",
        "CI_COMMIT_SHA": "d" * 40,
        "GITLAB_TOKEN": "glpat-test-token",
        **extra,
    }


def post(body: str, tmp_path: Path, env: dict[str, str], *args: str) -> str:
    path = tmp_path / "plan.md"
    path.write_text(body, encoding="utf-8")
    return forge.run(["comment", "--body", str(path), *args], env)


def bodies(comments: list[dict[str, Any]]) -> list[str]:
    return [c["body"] for c in comments]


# --- the plan comment on GitHub -------------------------------------------------------


def test_github_adds_the_comment_once_then_updates_it_with_run_and_commit(
    github: FakeGitHub, tmp_path: Path
) -> None:
    env = github_env(github, tmp_path)
    github.comments += [
        {"id": 1, "user": {"type": "User"}, "body": "Looks good to me"},
        {"id": 2, "user": {"type": "Bot"}, "body": OTHER},
        {"id": 3, "user": {"type": "Bot"}, "body": None},
    ]

    assert post(READY, tmp_path, env) == "added a comment"
    assert post(BLOCKED, tmp_path, env) == "updated comment 1001"

    assert bodies(github.comments)[:2] == ["Looks good to me", OTHER]
    assert github.comments[3]["body"] == (
        BLOCKED + "\n<sub>Posted by [this run](https://github.example.com/acme/licences/"
        f"actions/runs/4242) for commit `{github.HEAD_SHA[:12]}`.</sub>\n"
    )
    assert len(github.comments) == 4
    assert {seen.token for seen in github.seen} == {"Bearer ghs-test-token"}


def test_github_finds_a_comment_a_person_posted_with_a_personal_token(
    github: FakeGitHub, tmp_path: Path
) -> None:
    # Posted by an earlier workflow that used a personal access token: a User, no Bot.
    github.comments.append({"id": 5, "user": {"type": "User"}, "body": READY})

    assert post(BLOCKED, tmp_path, github_env(github, tmp_path)) == "updated comment 5"
    assert len(github.comments) == 1
    assert github.comments[0]["body"].startswith(BLOCKED)


def test_github_adds_a_comment_when_the_marked_one_may_not_be_edited(
    github: FakeGitHub, tmp_path: Path
) -> None:
    github.comments.append({"id": 5, "user": {"type": "User"}, "body": READY})
    github.foreign.add(5)

    assert post(BLOCKED, tmp_path, github_env(github, tmp_path)) == "added a comment"
    assert github.comments[0]["body"] == READY


def test_github_reads_every_page_of_comments(github: FakeGitHub, tmp_path: Path) -> None:
    github.comments += [
        {"id": i, "user": {"type": "User"}, "body": f"comment {i}"} for i in range(1, 151)
    ]
    github.comments.append({"id": 151, "user": {"type": "Bot"}, "body": READY})

    assert post(BLOCKED, tmp_path, github_env(github, tmp_path)) == "updated comment 151"
    assert [s.path for s in github.seen if s.method == "GET"] == [
        "/api/v3/repos/acme/licences/issues/7/comments?per_page=100&page=1",
        "/api/v3/repos/acme/licences/issues/7/comments?per_page=100&page=2",
    ]


def test_invalid_declarations_after_a_good_plan_update_the_same_comment(
    project: Project, github: FakeGitHub, tmp_path: Path
) -> None:
    env = github_env(github, tmp_path)
    good = project.run("plan", str(project.decl), "--format", "markdown")
    assert good.exit_code == 0, good.stderr
    post(good.stdout, tmp_path, env)
    (project.decl / "acme.yaml").write_text("version: 1\npurchases: [\n", encoding="utf-8")

    bad = project.run("plan", str(project.decl), "--format", "markdown")
    post(bad.stdout, tmp_path, env)

    assert bad.exit_code == 1
    (comment,) = github.comments
    assert "ready to apply" not in comment["body"]
    assert "### ❌ Plan: **cannot be applied: 1 error in the declarations**" in comment["body"]


def test_no_pull_request_is_an_error(github: FakeGitHub, tmp_path: Path) -> None:
    env = github_env(github, tmp_path)
    (tmp_path / "event.json").write_text("{}", encoding="utf-8")

    with pytest.raises(forge.ForgeError, match=r"no pull request to comment on \(pass --number\)"):
        post(READY, tmp_path, env)


def test_a_refused_token_is_an_error_that_does_not_show_it(
    github: FakeGitHub, tmp_path: Path
) -> None:
    env = github_env(github, tmp_path, GITHUB_TOKEN="ghs-wrong-secret")
    path = tmp_path / "plan.md"
    path.write_text(READY, encoding="utf-8")

    done = subprocess.run(
        [sys.executable, "-m", "reconciler.forge", "comment", "--body", str(path)],
        env={**os.environ, **env, "NO_PROXY": "127.0.0.1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 1
    assert done.stderr.startswith("error: GET http://127.0.0.1:")
    assert done.stderr.rstrip().endswith(
        '/issues/7/comments -> 401: {"message": "Bad credentials"}'
    )
    assert "ghs-wrong-secret" not in done.stderr + done.stdout


def test_plain_http_is_refused_off_loopback() -> None:
    with pytest.raises(forge.ForgeError, match="is not https://"):
        forge.Http("http://github.example.com/api/v3", {})


# --- the plan note on GitLab ---------------------------------------------------------


def test_gitlab_adds_the_note_once_then_updates_it_skipping_system_notes(
    gitlab: FakeGitLab, tmp_path: Path
) -> None:
    env = gitlab_env(gitlab)
    gitlab.comments += [
        {"id": 1, "system": True, "body": READY},  # "changed the description" and the like
        {"id": 2, "system": False, "body": OTHER},
    ]

    assert post(READY, tmp_path, env) == "added a comment"
    assert post(BLOCKED, tmp_path, env) == "updated comment 1001"

    assert bodies(gitlab.comments)[:2] == [READY, OTHER]
    assert gitlab.comments[2]["body"] == (
        BLOCKED + "\n<sub>Posted by [this run](https://gitlab.example.com/group/licences/-/"
        f"pipelines/99) for commit `{'d' * 12}`.</sub>\n"
    )
    assert {seen.token for seen in gitlab.seen} == {"glpat-test-token"}


def test_gitlab_finds_a_note_a_person_posted(gitlab: FakeGitLab, tmp_path: Path) -> None:
    gitlab.comments.append({"id": 9, "system": False, "body": READY})

    assert post(BLOCKED, tmp_path, gitlab_env(gitlab)) == "updated comment 9"


# --- the apply result ------------------------------------------------------------------


def test_the_apply_result_goes_to_the_pull_request_the_commit_came_from(
    project: Project, github: FakeGitHub, tmp_path: Path
) -> None:
    applied = project.run("apply", str(project.decl), "--auto-approve", "--json")
    events = tmp_path / "apply-events.jsonl"
    events.write_text(applied.stdout, encoding="utf-8")
    env = github_env(github, tmp_path)
    (tmp_path / "event.json").write_text("{}", encoding="utf-8")  # a push has no pull request

    done = forge.run(["apply-result", "--events", str(events), "--exit-code", "0"], env)

    assert done == "added a comment"
    body = github.comments[0]["body"]
    lines = body.splitlines()
    assert lines[:7] == [
        review.APPLY_MARKER,
        "",
        "### ✅ Apply: **applied**",
        "",
        "3 purchased (+10 seats), 0 updated, 0 failed, 0 pending.",
        "",
        "**Bought: +10 seats, about EUR 157.30 per month**",
    ]
    assert any(line.startswith("| `acme/basic` | purchase | +5 | purchased | `") for line in lines)
    assert lines[-1] == (
        "<sub>Posted by [this run](https://github.example.com/acme/licences/actions/runs/4242) "
        f"for commit `{github.MERGE_SHA[:12]}`.</sub>"
    )


def test_a_refused_apply_posts_why(github: FakeGitHub, tmp_path: Path) -> None:
    events = tmp_path / "apply-events.jsonl"
    events.write_text(
        '{"format_version": 1, "reconciler": "0.1.0", "type": "version"}\n'
        '{"elapsed_seconds": 0.1, "errors": ["the plan buys 99 seats, more than --max-seats 10;'
        ' nothing was bought"], "failed": 0, "moved": 0, "outcome": "error", "pending": 0, '
        '"purchased": 0, "seats": 0, "skipped": 0, "type": "apply_complete"}\n',
        encoding="utf-8",
    )
    env = github_env(github, tmp_path)

    forge.run(["apply-result", "--events", str(events), "--exit-code", "1", "--number", "7"], env)

    body = github.comments[0]["body"]
    assert "### ❌ Apply: **refused or stopped; nothing more was done**" in body
    assert "- the plan buys 99 seats, more than --max-seats 10; nothing was bought" in body


def test_an_apply_that_did_not_run_quotes_why(
    project: Project, gitlab: FakeGitLab, tmp_path: Path
) -> None:
    reviewed = tmp_path / "reviewed.plan"
    project.ok("plan", str(project.decl), "--out", str(reviewed))
    acme = project.decl / "acme.yaml"
    acme.write_text(acme.read_text().replace("quantity: 5", "quantity: 50"), encoding="utf-8")
    refused = project.ok("plan", str(project.decl), "--expect", str(reviewed), code=1)
    log = tmp_path / "expect.log"
    log.write_text(refused.stderr, encoding="utf-8")
    env = gitlab_env(gitlab, CI_MERGE_REQUEST_IID="", CI_COMMIT_SHA=gitlab.MERGE_SHA)
    args = ["--events", str(tmp_path / "none.jsonl"), "--exit-code", "1", "--log", str(log)]

    forge.run(["apply-result", *args], env)

    lines = gitlab.comments[0]["body"].splitlines()
    assert lines[2] == "### ❌ Apply: **did not run**"
    assert lines[6:9] == [
        "```text",
        f"error: this plan is not the reviewed plan {reviewed}; nothing may be applied "
        "without a review of what would now be done:",
        "  acme/basic: reviewed purchase 0 -> 5 seats (+5); now purchase 0 -> 50 seats (+50)",
    ]


def test_an_apply_without_events_or_log_points_at_the_job(
    gitlab: FakeGitLab, tmp_path: Path
) -> None:
    env = gitlab_env(gitlab)

    forge.run(["apply-result", "--events", "none", "--log", "none", "--exit-code", "1"], env)

    assert "The job's log says why." in gitlab.comments[0]["body"]


def test_a_push_no_pull_request_made_posts_nothing(github: FakeGitHub, tmp_path: Path) -> None:
    env = github_env(github, tmp_path, GITHUB_SHA="e" * 40)
    (tmp_path / "event.json").write_text("{}", encoding="utf-8")

    done = forge.run(["apply-result", "--events", "x", "--exit-code", "0"], env)

    assert done == "no pull request merged this commit; nothing posted"
    assert github.comments == []


# --- the drift issue -------------------------------------------------------------------

DRIFT = (
    "<!-- crayon-reconciler:plan -->\n\n### ✅ Plan: **ready to apply**\n\nPlan: 1 to decrease\n"
)


def drift(body: str, code: int, tmp_path: Path, env: dict[str, str]) -> str:
    path = tmp_path / "drift.md"
    path.write_text(body, encoding="utf-8")
    return forge.run(["drift-issue", "--body", str(path), "--exit-code", str(code)], env)


def test_github_drift_opens_one_issue_updates_it_and_closes_it(
    github: FakeGitHub, tmp_path: Path
) -> None:
    env = github_env(github, tmp_path)
    github.issues.append({"number": 1, "state": "open", "body": "unrelated", "comments": []})
    github.issues.append(
        {"number": 2, "state": "open", "body": "<!-- crayon-reconciler:drift -->",
         "pull_request": {}, "comments": []}
    )  # fmt: skip

    assert drift(DRIFT, 2, tmp_path, env) == "opened an issue"
    assert drift(DRIFT.replace("decrease", "increase"), 2, tmp_path, env) == "updated issue #102"
    assert drift(DRIFT, 0, tmp_path, env) == "closed issue #102"
    assert drift(DRIFT, 0, tmp_path, env) == "no open issue"

    issue = github.issues[2]
    assert issue["title"] == review.DRIFT_TITLE
    assert issue["state"] == "closed"
    assert issue["body"].splitlines()[0] == "<!-- crayon-reconciler:drift -->"
    assert "Plan: 1 to increase" in issue["body"]
    assert issue["comments"] == [review.drift_resolved()]
    assert github.issues[0]["state"] == "open"


def test_gitlab_drift_issue_per_workspace(gitlab: FakeGitLab, tmp_path: Path) -> None:
    env = gitlab_env(gitlab)
    eu = DRIFT.replace("plan -->", "plan workspace=eu -->")

    drift(DRIFT, 2, tmp_path, env)
    drift(eu, 1, tmp_path, env)
    drift(DRIFT, 0, tmp_path, env)

    assert [(i["description"].splitlines()[0], i["state"]) for i in gitlab.issues] == [
        ("<!-- crayon-reconciler:drift -->", "closed"),
        ("<!-- crayon-reconciler:drift workspace=eu -->", "opened"),
    ]
    assert "could not be made, or cannot be applied" in gitlab.issues[1]["description"]


# --- the reviewed plan ------------------------------------------------------------------


def test_github_reviewed_plan_comes_from_the_latest_run_of_the_pull_request_head(
    github: FakeGitHub, tmp_path: Path
) -> None:
    github.runs += [
        {"id": 11, "run_number": 1, "head_sha": github.HEAD_SHA},
        {"id": 12, "run_number": 2, "head_sha": github.HEAD_SHA},
    ]
    github.artifacts[11] = {"reviewed-plan": zipped("reviewed.plan", b"old")}
    github.artifacts[12] = {"reviewed-plan": zipped("reviewed.plan", b"latest")}
    out = tmp_path / "reviewed.plan"
    env = github_env(github, tmp_path)
    (tmp_path / "event.json").write_text("{}", encoding="utf-8")

    done = forge.run(["reviewed", "--out", str(out)], env)

    assert done == f"saved the plan reviewed in #7 to {out}"
    assert out.read_bytes() == b"latest"
    storage = [s for s in github.seen if s.path.startswith("/storage/")]
    assert [(s.path, s.token) for s in storage] == [("/storage/12/reviewed_plan", "")]


def test_github_without_a_reviewed_plan_is_an_error(github: FakeGitHub, tmp_path: Path) -> None:
    env = github_env(github, tmp_path)

    with pytest.raises(forge.ForgeError, match="no artifact 'reviewed-plan'"):
        forge.run(["reviewed", "--out", str(tmp_path / "r.plan")], env)


def test_gitlab_reviewed_plan_comes_from_the_merge_request_pipelines(
    gitlab: FakeGitLab, tmp_path: Path
) -> None:
    gitlab.pipelines += [{"id": 31}, {"id": 30}]
    gitlab.jobs[31] = [{"id": 310, "name": "plan", "status": "success"}]
    gitlab.jobs[30] = [{"id": 300, "name": "plan", "status": "success"}]
    gitlab.files[(310, "reviewed.plan")] = b"latest"
    gitlab.files[(300, "reviewed.plan")] = b"old"
    out = tmp_path / "reviewed.plan"
    env = gitlab_env(gitlab, CI_MERGE_REQUEST_IID="", CI_COMMIT_SHA=gitlab.MERGE_SHA)

    forge.run(["reviewed", "--artifact", "plan", "--out", str(out)], env)

    assert out.read_bytes() == b"latest"


# --- outputs ---------------------------------------------------------------------------


def test_outputs_of_a_saved_plan_and_of_an_apply(project: Project, tmp_path: Path) -> None:
    saved = tmp_path / "reviewed.plan"
    project.ok("plan", str(project.decl), "--out", str(saved))
    applied = project.run("apply", "--plan", str(saved), "--json")
    events = tmp_path / "apply-events.jsonl"
    events.write_text(applied.stdout, encoding="utf-8")
    output = tmp_path / "github-output"

    forge.run(
        ["outputs", "--plan-file", str(saved), "--exit-code", "2"], {"GITHUB_OUTPUT": str(output)}
    )
    forge.run(
        ["outputs", "--events", str(events), "--exit-code", "0"], {"GITHUB_OUTPUT": str(output)}
    )
    forge.run(["outputs", "--plan-file", str(tmp_path / "none"), "--exit-code", "1"], {
        "GITHUB_OUTPUT": str(output)})  # fmt: skip

    assert output.read_text(encoding="utf-8").splitlines() == [
        "exit-code=2", "verdict=ready", "seats=10", "monthly-cost=EUR 157.30",
        "exit-code=0", "verdict=applied", "seats=10", "monthly-cost=EUR 157.30",
        "exit-code=1", "verdict=error", "seats=0", "monthly-cost=",
    ]  # fmt: skip


def test_the_plan_comment_of_the_cli_is_what_the_script_posts(
    project: Project, gitlab: FakeGitLab, tmp_path: Path
) -> None:
    made = run(
        "plan", str(project.decl), "--format", "markdown",
        env={**project.sim.env(), "RECONCILER_STATE": project.state},
    )  # fmt: skip

    post(made.stdout, tmp_path, gitlab_env(gitlab))

    assert gitlab.comments[0]["body"].startswith(made.stdout)


def test_help_lists_each_subcommand_on_its_own_line() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "reconciler.forge", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in ("comment", "apply-result", "drift-issue", "reviewed", "outputs"):
        assert any(line.strip().startswith(f"{name} ") for line in shown.splitlines()), name
    assert "``" not in shown
