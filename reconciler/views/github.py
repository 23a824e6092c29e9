"""``validate --format github``: GitHub Actions workflow commands on stdout, which mark
each problem on its line of the pull request's diff. Words from ``render.validation``.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.errors import ConfigProblem
from reconciler.render.validation import annotation_lines, valid_line
from reconciler.views.base import Console


class GitHubValidateView:
    def __init__(self, console: Console) -> None:
        self.console = console

    def valid(self, purchases: int, files: int) -> None:
        self.console.out(valid_line(purchases, files))

    def invalid(self, problems: Sequence[ConfigProblem]) -> None:
        self.console.out(annotation_lines(problems))


def validate_view(console: Console) -> GitHubValidateView:
    return GitHubValidateView(console)
