"""Loopback fakes of the GitHub and GitLab REST APIs, just as much as ``reconciler.forge``
uses: comments (notes), issues, the pull requests of a commit, workflow runs, pipelines
and artifacts. Each listens on 127.0.0.1, records every request (method, path, the
token header) and keeps its comments and issues in plain lists a test reads.
"""

from __future__ import annotations

import io
import json
import re
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import pytest


@dataclass
class Seen:
    method: str
    path: str
    token: str


Route = tuple[str, str, Callable[..., tuple[int, Any]]]


@dataclass
class FakeForge:
    """The state of a fake forge; ``routes`` map (method, path pattern) to a handler."""

    token_header: str
    token: str
    comments: list[dict[str, Any]] = field(default_factory=list)
    issues: list[dict[str, Any]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    #: Comment ids whose update is refused (another person's comment).
    foreign: set[int] = field(default_factory=set)
    port: int = 0

    def routes(self) -> list[Route]:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def next_id(self) -> int:
        return max([int(c["id"]) for c in self.comments] + [1000]) + 1

    def page(self, items: list[Any], query: dict[str, list[str]]) -> list[Any]:
        size = int(query.get("per_page", ["30"])[0])
        number = int(query.get("page", ["1"])[0])
        return items[(number - 1) * size : number * size]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        fake = self.server.fake
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length)) if length else None
        token = self.headers.get(fake.token_header, "")
        fake.seen.append(Seen(self.command, self.path, token))
        if parts.path.startswith("/storage/"):
            status, data = 200, fake.storage(parts.path)  # type: ignore[attr-defined]
        elif token != fake.token:
            status, data = 401, {"message": "Bad credentials"}
        else:
            status, data = 404, {"message": "Not Found"}
            for method, pattern, handler in fake.routes():
                found = re.fullmatch(pattern, parts.path)
                if method == self.command and found:
                    status, data = handler(*found.groups(), query=query, body=body)
                    break
        if status in (301, 302):
            self.send_response(status)
            self.send_header("Location", data)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        raw = data if isinstance(data, bytes) else json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    do_GET = do_POST = do_PATCH = do_PUT = _serve


class _Server(ThreadingHTTPServer):
    def __init__(self, fake: FakeForge) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


Fake = TypeVar("Fake", bound=FakeForge)


def serve(fake: Fake) -> Iterator[Fake]:
    server = _Server(fake)
    fake.port = server.server_port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def zipped(name: str, content: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, content)
    return buffer.getvalue()


@dataclass
class FakeGitHub(FakeForge):
    """``acme/licences`` on GitHub: pull request 7 (head ``HEAD_SHA``, merged as
    ``MERGE_SHA``), its workflow runs and their artifacts."""

    token_header: str = "Authorization"
    token: str = "Bearer ghs-test-token"
    #: Artifacts by run id: name -> zip bytes.
    artifacts: dict[int, dict[str, bytes]] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)

    HEAD_SHA = "a" * 40
    MERGE_SHA = "b" * 40

    def routes(self) -> list[Route]:
        repo = "/api/v3/repos/acme/licences"
        return [
            ("GET", rf"{repo}/issues/7/comments", self.list_comments),
            ("POST", rf"{repo}/issues/7/comments", self.add_comment),
            ("PATCH", rf"{repo}/issues/comments/(\d+)", self.edit_comment),
            ("GET", rf"{repo}/commits/(\w+)/pulls", self.pulls_of),
            ("GET", rf"{repo}/pulls/7", self.pull),
            ("GET", rf"{repo}/issues", self.list_issues),
            ("POST", rf"{repo}/issues", self.add_issue),
            ("PATCH", rf"{repo}/issues/(\d+)", self.edit_issue),
            ("POST", rf"{repo}/issues/(\d+)/comments", self.comment_issue),
            ("GET", rf"{repo}/actions/runs", self.list_runs),
            ("GET", rf"{repo}/actions/runs/(\d+)/artifacts", self.list_artifacts),
            ("GET", rf"{repo}/actions/artifacts/(\d+)/(\w+)/zip", self.download),
        ]

    def list_comments(self, *, query: Any, body: Any) -> tuple[int, Any]:
        return 200, self.page(self.comments, query)

    def add_comment(self, *, query: Any, body: Any) -> tuple[int, Any]:
        comment = {"id": self.next_id(), "user": {"type": "Bot"}, "body": body["body"]}
        self.comments.append(comment)
        return 201, comment

    def edit_comment(self, comment_id: str, *, query: Any, body: Any) -> tuple[int, Any]:
        if int(comment_id) in self.foreign:
            return 403, {"message": "Resource not accessible by integration"}
        comment = next(c for c in self.comments if c["id"] == int(comment_id))
        comment["body"] = body["body"]
        return 200, comment

    def pulls_of(self, sha: str, *, query: Any, body: Any) -> tuple[int, Any]:
        if sha != self.MERGE_SHA:
            return 200, []
        return 200, [{"number": 7, "merged_at": "2026-12-01T10:00:00Z"}]

    def pull(self, *, query: Any, body: Any) -> tuple[int, Any]:
        return 200, {"number": 7, "head": {"sha": self.HEAD_SHA}}

    def list_issues(self, *, query: Any, body: Any) -> tuple[int, Any]:
        state = query.get("state", ["open"])[0]
        return 200, self.page([i for i in self.issues if i["state"] == state], query)

    def add_issue(self, *, query: Any, body: Any) -> tuple[int, Any]:
        issue = {"number": 100 + len(self.issues), "state": "open", **body, "comments": []}
        self.issues.append(issue)
        return 201, issue

    def edit_issue(self, number: str, *, query: Any, body: Any) -> tuple[int, Any]:
        issue = next(i for i in self.issues if i["number"] == int(number))
        issue.update(body)
        return 200, issue

    def comment_issue(self, number: str, *, query: Any, body: Any) -> tuple[int, Any]:
        issue = next(i for i in self.issues if i["number"] == int(number))
        issue["comments"].append(body["body"])
        return 201, {}

    def list_runs(self, *, query: Any, body: Any) -> tuple[int, Any]:
        runs = [r for r in self.runs if r["head_sha"] == query["head_sha"][0]]
        return 200, {"total_count": len(runs), "workflow_runs": runs}

    def list_artifacts(self, run_id: str, *, query: Any, body: Any) -> tuple[int, Any]:
        found = self.artifacts.get(int(run_id), {})
        items = [
            {
                "name": name,
                "expired": False,
                "archive_download_url": f"{self.url}/api/v3/repos/acme/licences/actions/"
                f"artifacts/{run_id}/{name.replace('-', '_')}/zip",
            }
            for name in found
        ]
        return 200, {"total_count": len(items), "artifacts": items}

    def download(self, run_id: str, name: str, *, query: Any, body: Any) -> tuple[int, Any]:
        # As GitHub does: a redirect to signed storage elsewhere.
        return 302, f"{self.url}/storage/{run_id}/{name}"

    def storage(self, path: str) -> bytes:
        _, _, run_id, name = path.split("/")
        return self.artifacts[int(run_id)][name.replace("_", "-")]


@dataclass
class FakeGitLab(FakeForge):
    """Project ``group/licences`` on GitLab: merge request 7, its pipelines and jobs."""

    token_header: str = "PRIVATE-TOKEN"
    token: str = "glpat-test-token"
    pipelines: list[dict[str, Any]] = field(default_factory=list)
    #: Job artifacts: (job id, file) -> bytes.
    files: dict[tuple[int, str], bytes] = field(default_factory=dict)
    jobs: dict[int, list[dict[str, Any]]] = field(default_factory=dict)

    MERGE_SHA = "c" * 40

    def routes(self) -> list[Route]:
        project = "/api/v4/projects/group%2Flicences"
        return [
            ("GET", rf"{project}/merge_requests/7/notes", self.list_notes),
            ("POST", rf"{project}/merge_requests/7/notes", self.add_note),
            ("PUT", rf"{project}/merge_requests/7/notes/(\d+)", self.edit_note),
            ("GET", rf"{project}/repository/commits/(\w+)/merge_requests", self.requests_of),
            ("GET", rf"{project}/issues", self.list_issues),
            ("POST", rf"{project}/issues", self.add_issue),
            ("PUT", rf"{project}/issues/(\d+)", self.edit_issue),
            ("POST", rf"{project}/issues/(\d+)/notes", self.comment_issue),
            ("GET", rf"{project}/merge_requests/7/pipelines", self.list_pipelines),
            ("GET", rf"{project}/pipelines/(\d+)/jobs", self.list_jobs),
            ("GET", rf"{project}/jobs/(\d+)/artifacts/(.+)", self.artifact),
        ]

    def list_notes(self, *, query: Any, body: Any) -> tuple[int, Any]:
        return 200, self.page(self.comments, query)

    def add_note(self, *, query: Any, body: Any) -> tuple[int, Any]:
        note = {"id": self.next_id(), "system": False, "body": body["body"]}
        self.comments.append(note)
        return 201, note

    def edit_note(self, note_id: str, *, query: Any, body: Any) -> tuple[int, Any]:
        if int(note_id) in self.foreign:
            return 403, {"message": "403 Forbidden"}
        note = next(n for n in self.comments if n["id"] == int(note_id))
        note["body"] = body["body"]
        return 200, note

    def requests_of(self, sha: str, *, query: Any, body: Any) -> tuple[int, Any]:
        return 200, [{"iid": 7, "state": "merged"}] if sha == self.MERGE_SHA else []

    def list_issues(self, *, query: Any, body: Any) -> tuple[int, Any]:
        state = query.get("state", ["opened"])[0]
        return 200, self.page([i for i in self.issues if i["state"] == state], query)

    def add_issue(self, *, query: Any, body: Any) -> tuple[int, Any]:
        issue = {"iid": 1 + len(self.issues), "state": "opened", **body, "notes": []}
        self.issues.append(issue)
        return 201, issue

    def edit_issue(self, iid: str, *, query: Any, body: Any) -> tuple[int, Any]:
        issue = next(i for i in self.issues if i["iid"] == int(iid))
        if body.get("state_event") == "close":
            issue["state"] = "closed"
        else:
            issue.update(body)
        return 200, issue

    def comment_issue(self, iid: str, *, query: Any, body: Any) -> tuple[int, Any]:
        issue = next(i for i in self.issues if i["iid"] == int(iid))
        issue["notes"].append(body["body"])
        return 201, {}

    def list_pipelines(self, *, query: Any, body: Any) -> tuple[int, Any]:
        return 200, self.pipelines

    def list_jobs(self, pipeline: str, *, query: Any, body: Any) -> tuple[int, Any]:
        return 200, self.jobs.get(int(pipeline), [])

    def artifact(self, job: str, name: str, *, query: Any, body: Any) -> tuple[int, Any]:
        content = self.files.get((int(job), name))
        return (200, content) if content is not None else (404, {"message": "404 Not Found"})


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    yield from serve(FakeGitHub())


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    yield from serve(FakeGitLab())
