"""Whether a plan can be applied (``reconciler.render.verdict``), in words."""

from __future__ import annotations

import pytest

from reconciler import render
from reconciler.model import Action
from reconciler.render.verdict import verdict
from tests.support.fakes import FakeIssue
from tests.support.records import EVERY_ACTION


@pytest.mark.parametrize(
    ("found", "status", "text"),
    [
        (render.Verdict({}, 0, has_changes=True), "ready", "ready to apply"),
        (render.Verdict({}, 0, has_changes=False), "no_changes", "no changes"),
        (
            render.Verdict({Action.CONFLICT: 1}, 0, has_changes=True),
            "blocked",
            "cannot be applied: 1 conflict",
        ),
        (
            render.Verdict({Action.CONFLICT: 2, Action.PENDING: 3}, 1, has_changes=True),
            "blocked",
            "cannot be applied: 2 conflicts, 3 pending, 1 order refused by verify",
        ),
        (
            render.Verdict({}, 2, has_changes=True),
            "blocked",
            "cannot be applied: 2 orders refused by verify",
        ),
    ],
)
def test_verdict_in_words(found: render.Verdict, status: str, text: str) -> None:
    assert (found.status, found.describe()) == (status, text)
    assert found.applicable is (status != "blocked")


def test_verdict_of_a_plan_counts_refused_orders_not_empty_answers() -> None:
    found = verdict(EVERY_ACTION, {"a/new": [FakeIssue("E", "x")], "b/grow": []})

    assert (found.conflicts, found.pending, found.refused, found.verified) == (1, 1, 1, True)
