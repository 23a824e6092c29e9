"""Post what a pipeline found where people review it, on GitHub or GitLab.

``python -m reconciler.forge SUBCOMMAND``, run by the CI templates and ``action.yml``:

    comment       create or update the plan comment of a pull (merge) request, found by
                  the marker on its first line, whoever posted it (the workflow's token or
                  a person's), with a link to the run and the commit
    apply-result  the same for the apply result (``apply --json`` events), on the pull
                  request the pushed commit came from
    drift-issue   open or update the one drift issue (found by its marker), or close it
                  when the scheduled plan found nothing to do
    reviewed      download the plan saved by the review of the pull request a commit
                  came from (its ``plan --out`` artifact), for ``plan --expect``
    outputs       write a plan's or an apply's outputs (exit code, verdict, seats,
                  monthly cost) to ``$GITHUB_OUTPUT`` (or stdout)

Where it runs is read from the environment each CI sets (``GITHUB_*``, ``CI_*``); the
token from ``GITHUB_TOKEN`` or ``GITLAB_TOKEN``, which is never printed. Talks HTTP with
the standard library only, to the forge's API; nothing else. Words come from
``render.review``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from reconciler.render import review

#: Seconds for one call to the forge's API.
TIMEOUT = 30
#: Pages read at most when listing (100 items a page): a bound, not a limit in practice.
MAX_PAGES = 200
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class ForgeError(Exception):
    """A call to the forge failed (``status`` None: it was not answered)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Note:
    """A comment (GitHub) or note (GitLab), or an issue: its id and its text."""

    id: int
    body: str


def first_line(body: str | None) -> str:
    return (body or "").split("\n", 1)[0].strip()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are followed by hand, without the token (artifact downloads go to
    storage on another host)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass(frozen=True)
class Http:
    """JSON over HTTPS to one API root, with a token in ``headers``."""

    root: str
    headers: Mapping[str, str]

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.root)
        if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in _LOOPBACK):
            raise ForgeError(
                f"the API URL {self.root} is not https:// (plain http only on loopback)"
            )

    def call(
        self, method: str, path: str, data: Any = None, *, raw: bool = False
    ) -> tuple[Any, Mapping[str, str]]:
        url = path if path.startswith(("http://", "https://")) else self.root.rstrip("/") + path
        body = json.dumps(data).encode() if data is not None else None
        headers = {**self.headers, "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(request, timeout=TIMEOUT) as answer:
                content = answer.read()
                found = dict(answer.headers.items())
        except urllib.error.HTTPError as exc:
            if exc.code in (301, 302, 303, 307, 308) and raw and exc.headers.get("Location"):
                # Storage behind a redirect gets no token: the link is signed.
                with urllib.request.urlopen(exc.headers["Location"], timeout=TIMEOUT) as moved:
                    return moved.read(), dict(moved.headers.items())
            detail = exc.read().decode("utf-8", "replace")[:300]
            raise ForgeError(f"{method} {_shown(url)} -> {exc.code}: {detail}", exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ForgeError(f"{method} {_shown(url)} failed: {reason}") from None
        if raw:
            return content, found
        return (json.loads(content) if content.strip() else None), found


def _shown(url: str) -> str:
    """A URL as errors show it: without its query (which holds nothing secret, but
    keeps messages short)."""
    return url.split("?", 1)[0]


class Forge(Protocol):
    """What the subcommands need of GitHub or GitLab."""

    def notes(self, number: int) -> Iterator[Note]: ...
    def create_note(self, number: int, body: str) -> None: ...
    def update_note(self, number: int, note: Note, body: str) -> None: ...
    def requests_of(self, commit: str) -> list[int]: ...
    def issues(self) -> Iterator[Note]: ...
    def create_issue(self, title: str, body: str) -> None: ...
    def update_issue(self, issue: Note, body: str) -> None: ...
    def close_issue(self, issue: Note, comment: str) -> None: ...
    def reviewed_plan(self, number: int, artifact: str, name: str) -> bytes: ...


def _pages(http: Http, path: str) -> Iterator[Any]:
    """Every item of a listing, 100 a page, until a page is short or empty."""
    sep = "&" if "?" in path else "?"
    for page in range(1, MAX_PAGES + 1):
        items, _ = http.call("GET", f"{path}{sep}per_page=100&page={page}")
        yield from items or ()
        if not items or len(items) < 100:
            return


@dataclass(frozen=True)
class GitHub:
    """GitHub's REST API for one repository (``GITHUB_REPOSITORY``)."""

    http: Http
    repository: str

    @property
    def _repo(self) -> str:
        return f"/repos/{self.repository}"

    def notes(self, number: int) -> Iterator[Note]:
        for item in _pages(self.http, f"{self._repo}/issues/{number}/comments"):
            yield Note(int(item["id"]), item.get("body") or "")

    def create_note(self, number: int, body: str) -> None:
        self.http.call("POST", f"{self._repo}/issues/{number}/comments", {"body": body})

    def update_note(self, number: int, note: Note, body: str) -> None:
        self.http.call("PATCH", f"{self._repo}/issues/comments/{note.id}", {"body": body})

    def requests_of(self, commit: str) -> list[int]:
        pulls, _ = self.http.call("GET", f"{self._repo}/commits/{commit}/pulls")
        return [int(p["number"]) for p in pulls or () if p.get("merged_at")] or [
            int(p["number"]) for p in pulls or ()
        ]

    def issues(self) -> Iterator[Note]:
        for item in _pages(self.http, f"{self._repo}/issues?state=open"):
            if "pull_request" not in item:
                yield Note(int(item["number"]), item.get("body") or "")

    def create_issue(self, title: str, body: str) -> None:
        self.http.call("POST", f"{self._repo}/issues", {"title": title, "body": body})

    def update_issue(self, issue: Note, body: str) -> None:
        self.http.call("PATCH", f"{self._repo}/issues/{issue.id}", {"body": body})

    def close_issue(self, issue: Note, comment: str) -> None:
        self.http.call("POST", f"{self._repo}/issues/{issue.id}/comments", {"body": comment})
        self.http.call("PATCH", f"{self._repo}/issues/{issue.id}", {"state": "closed"})

    def reviewed_plan(self, number: int, artifact: str, name: str) -> bytes:
        pull, _ = self.http.call("GET", f"{self._repo}/pulls/{number}")
        head = pull["head"]["sha"]
        runs, _ = self.http.call(
            "GET", f"{self._repo}/actions/runs?head_sha={head}&event=pull_request&per_page=100"
        )
        for run in sorted(runs["workflow_runs"], key=lambda r: r["run_number"], reverse=True):
            found, _ = self.http.call("GET", f"{self._repo}/actions/runs/{run['id']}/artifacts")
            for item in found["artifacts"]:
                if item["name"] == artifact and not item.get("expired"):
                    archive, _ = self.http.call("GET", item["archive_download_url"], raw=True)
                    try:
                        with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
                            return zipped.read(name)
                    except (zipfile.BadZipFile, KeyError):
                        raise ForgeError(f"artifact {artifact!r} holds no {name}") from None
        raise ForgeError(
            f"no artifact {artifact!r} in the pull-request runs of pull request #{number} "
            f"(head {head[:12]})"
        )


@dataclass(frozen=True)
class GitLab:
    """GitLab's REST API (v4) for one project (``CI_PROJECT_ID``)."""

    http: Http
    project: str

    @property
    def _project(self) -> str:
        return f"/projects/{urllib.parse.quote(self.project, safe='')}"

    def notes(self, number: int) -> Iterator[Note]:
        for item in _pages(self.http, f"{self._project}/merge_requests/{number}/notes"):
            if not item.get("system"):
                yield Note(int(item["id"]), item.get("body") or "")

    def create_note(self, number: int, body: str) -> None:
        self.http.call("POST", f"{self._project}/merge_requests/{number}/notes", {"body": body})

    def update_note(self, number: int, note: Note, body: str) -> None:
        path = f"{self._project}/merge_requests/{number}/notes/{note.id}"
        self.http.call("PUT", path, {"body": body})

    def requests_of(self, commit: str) -> list[int]:
        found, _ = self.http.call(
            "GET", f"{self._project}/repository/commits/{commit}/merge_requests"
        )
        return [int(m["iid"]) for m in found or () if m.get("state") == "merged"] or [
            int(m["iid"]) for m in found or ()
        ]

    def issues(self) -> Iterator[Note]:
        for item in _pages(self.http, f"{self._project}/issues?state=opened"):
            yield Note(int(item["iid"]), item.get("description") or "")

    def create_issue(self, title: str, body: str) -> None:
        self.http.call("POST", f"{self._project}/issues", {"title": title, "description": body})

    def update_issue(self, issue: Note, body: str) -> None:
        self.http.call("PUT", f"{self._project}/issues/{issue.id}", {"description": body})

    def close_issue(self, issue: Note, comment: str) -> None:
        self.http.call("POST", f"{self._project}/issues/{issue.id}/notes", {"body": comment})
        self.http.call("PUT", f"{self._project}/issues/{issue.id}", {"state_event": "close"})

    def reviewed_plan(self, number: int, artifact: str, name: str) -> bytes:
        pipelines, _ = self.http.call(
            "GET", f"{self._project}/merge_requests/{number}/pipelines?per_page=100"
        )
        for pipeline in sorted(pipelines or (), key=lambda p: int(p["id"]), reverse=True):
            jobs, _ = self.http.call(
                "GET", f"{self._project}/pipelines/{pipeline['id']}/jobs?per_page=100"
            )
            for job in jobs or ():
                if job["name"] == artifact and job.get("status") in ("success", "failed"):
                    path = f"{self._project}/jobs/{job['id']}/artifacts/{name}"
                    try:
                        content, _ = self.http.call("GET", path, raw=True)
                    except ForgeError as exc:
                        if exc.status == 404:
                            continue
                        raise
                    return bytes(content)
        raise ForgeError(f"no job {artifact!r} with {name} in the pipelines of !{number}")


@dataclass(frozen=True)
class Place:
    """Where a pipeline runs: its forge, the run's URL, the commit, the request number."""

    forge: Forge
    run_url: str | None
    commit: str | None
    number: int | None


def locate(env: Mapping[str, str], kind: str | None = None) -> Place:
    """The forge and run of the environment (``GITHUB_ACTIONS`` or ``GITLAB_CI``)."""
    kind = kind or ("github" if env.get("GITHUB_ACTIONS") == "true" else None)
    kind = kind or ("gitlab" if env.get("GITLAB_CI") == "true" else None)
    if kind == "github":
        return _github(env)
    if kind == "gitlab":
        return _gitlab(env)
    raise ForgeError("not on GitHub Actions or GitLab CI; name the forge with --forge")


def _needed(env: Mapping[str, str], *names: str) -> str:
    for name in names:
        if env.get(name):
            return env[name]
    raise ForgeError(f"{' or '.join(names)} is not set")


def _github(env: Mapping[str, str]) -> Place:
    token = _needed(env, "GITHUB_TOKEN", "GH_TOKEN")
    http = Http(
        env.get("GITHUB_API_URL", "https://api.github.com"),
        {"Authorization": f"Bearer {token}", "X-GitHub-Api-Version": "2022-11-28"},
    )
    event: dict[str, Any] = {}
    if env.get("GITHUB_EVENT_PATH") and Path(env["GITHUB_EVENT_PATH"]).is_file():
        event = json.loads(Path(env["GITHUB_EVENT_PATH"]).read_text(encoding="utf-8"))
    pull = event.get("pull_request") or {}
    run_url = None
    if env.get("GITHUB_RUN_ID"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        run_url = f"{server}/{env.get('GITHUB_REPOSITORY', '')}/actions/runs/{env['GITHUB_RUN_ID']}"
    return Place(
        GitHub(http, _needed(env, "GITHUB_REPOSITORY")),
        run_url,
        (pull.get("head") or {}).get("sha") or env.get("GITHUB_SHA"),
        int(pull["number"]) if pull.get("number") else None,
    )


def _gitlab(env: Mapping[str, str]) -> Place:
    http = Http(_needed(env, "CI_API_V4_URL"), {"PRIVATE-TOKEN": _needed(env, "GITLAB_TOKEN")})
    iid = env.get("CI_MERGE_REQUEST_IID")
    return Place(
        GitLab(http, _needed(env, "CI_PROJECT_ID")),
        env.get("CI_PIPELINE_URL") or env.get("CI_JOB_URL"),
        env.get("CI_COMMIT_SHA"),
        int(iid) if iid else None,
    )


def upsert_note(forge: Forge, number: int, body: str) -> str:
    """Update the note whose first line is ``body``'s (its marker), whoever posted it;
    add one when there is none, or none this token may edit. Says which it did."""
    marker = first_line(body)
    for note in forge.notes(number):
        if first_line(note.body) != marker:
            continue
        try:
            forge.update_note(number, note, body)
        except ForgeError as exc:
            if exc.status in (403, 404):
                continue  # someone else's, and this token may not edit it
            raise
        return f"updated comment {note.id}"
    forge.create_note(number, body)
    return "added a comment"


def upsert_issue(forge: Forge, title: str, body: str) -> str:
    marker = first_line(body)
    for issue in forge.issues():
        if first_line(issue.body) == marker:
            forge.update_issue(issue, body)
            return f"updated issue #{issue.id}"
    forge.create_issue(title, body)
    return "opened an issue"


def close_issues(forge: Forge, marker: str, comment: str) -> str:
    closed = [issue for issue in forge.issues() if first_line(issue.body) == marker]
    for issue in closed:
        forge.close_issue(issue, comment)
    shown = ", ".join(f"#{i.id}" for i in closed)
    return f"closed issue {shown}" if closed else "no open issue"


def _number(place: Place, given: int | None, *, from_commit: bool) -> int | None:
    if given is not None:
        return given
    if place.number is not None:
        return place.number
    if from_commit and place.commit:
        found = place.forge.requests_of(place.commit)
        return found[0] if found else None
    return None


def _events(path: str) -> list[dict[str, Any]]:
    if not Path(path).is_file():
        return []
    return [
        json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line
    ]


def _saved(path: str) -> dict[str, Any] | None:
    if not Path(path).is_file():
        return None
    data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return data


def _write_outputs(values: Mapping[str, str], target: str | None) -> None:
    lines = "".join(f"{name}={value}\n" for name, value in values.items())
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(lines)
    else:
        sys.stdout.write(lines)


def run(args: Sequence[str], env: Mapping[str, str]) -> str:
    """Carry out one subcommand; returns what it did (a line for the log)."""
    parsed = _parser().parse_args(args)
    if parsed.command == "outputs":
        if parsed.events:
            values = review.apply_outputs(_events(parsed.events), parsed.exit_code)
        else:
            values = review.plan_outputs(_saved(parsed.plan_file), parsed.exit_code)
        _write_outputs(values, parsed.output or env.get("GITHUB_OUTPUT"))
        return f"verdict {values['verdict']}"
    place = locate(env, parsed.forge)
    commit = parsed.commit or place.commit
    if parsed.command == "comment":
        number = _number(place, parsed.number, from_commit=False)
        if number is None:
            raise ForgeError("no pull request to comment on (pass --number)")
        body = Path(parsed.body).read_text(encoding="utf-8")
        return upsert_note(place.forge, number, review.with_provenance(body, place.run_url, commit))
    if parsed.command == "apply-result":
        number = _number(place, parsed.number, from_commit=True)
        if number is None:
            return "no pull request merged this commit; nothing posted"
        log = None
        if parsed.log and Path(parsed.log).is_file():
            log = Path(parsed.log).read_text("utf-8", "replace")
        body = review.apply_markdown(_events(parsed.events), exit_code=parsed.exit_code, log=log)
        return upsert_note(place.forge, number, review.with_provenance(body, place.run_url, commit))
    if parsed.command == "drift-issue":
        found = Path(parsed.body).read_text(encoding="utf-8")
        if parsed.exit_code == 0:
            marker = review.drift_marker(found)
            return close_issues(place.forge, marker, review.drift_resolved())
        body = review.drift_markdown(found, exit_code=parsed.exit_code)
        return upsert_issue(
            place.forge, parsed.title, review.with_provenance(body, place.run_url, commit)
        )
    number = _number(place, parsed.number, from_commit=True)
    if number is None:
        raise ForgeError(f"no pull request merged commit {commit}: nothing was reviewed")
    content = place.forge.reviewed_plan(number, parsed.artifact, parsed.name)
    Path(parsed.out).write_bytes(content)
    return f"saved the plan reviewed in #{number} to {parsed.out}"


def _parser() -> argparse.ArgumentParser:
    raw, words = argparse.RawDescriptionHelpFormatter, (__doc__ or "").replace("``", "")
    parser = argparse.ArgumentParser("python -m reconciler.forge", None, words, formatter_class=raw)
    parser.add_argument("--forge", choices=["github", "gitlab"], default=None)
    sub = parser.add_subparsers(dest="command", required=True)
    comment = sub.add_parser("comment", help="create or update the plan comment")
    comment.add_argument("--body", required=True, help="the comment (plan --format markdown)")
    apply = sub.add_parser("apply-result", help="post the apply result to its pull request")
    apply.add_argument("--events", required=True, help="apply --json output")
    apply.add_argument("--exit-code", type=int, required=True)
    apply.add_argument("--log", default=None, help="what to quote when apply did not run")
    drift = sub.add_parser("drift-issue", help="open, update or close the drift issue")
    drift.add_argument("--body", required=True, help="plan --format markdown output")
    drift.add_argument("--exit-code", type=int, required=True, help="plan --detailed-exitcode")
    drift.add_argument("--title", default=review.DRIFT_TITLE)
    reviewed = sub.add_parser("reviewed", help="download the reviewed plan of a commit")
    reviewed.add_argument("--out", required=True)
    reviewed.add_argument("--artifact", default="reviewed-plan", help="artifact or job name")
    reviewed.add_argument("--name", default="reviewed.plan", help="file in the artifact")
    for each in (comment, apply, reviewed):
        each.add_argument("--number", type=int, default=None, help="pull (merge) request")
    for each in (comment, apply, drift, reviewed):
        each.add_argument("--commit", default=None, help="the commit to name")
    outputs = sub.add_parser("outputs", help="write outputs for the workflow")
    group = outputs.add_mutually_exclusive_group(required=True)
    group.add_argument("--plan-file")
    group.add_argument("--events")
    outputs.add_argument("--exit-code", type=int, required=True)
    outputs.add_argument("--output", default=None, help="default: $GITHUB_OUTPUT, or stdout")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        done = run(sys.argv[1:] if argv is None else argv, os.environ)
    except ForgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(done, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
