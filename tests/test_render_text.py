"""The terminal forms (``reconciler.render.text``): plans, states, the summary line and
apply's summary, in words a user reads."""

from __future__ import annotations

from decimal import Decimal

import pytest

from reconciler import render
from reconciler.model import (
    Action,
    ApplyResult,
    ChangeResult,
    CheckoutRecord,
    Outcome,
    PendingOperation,
    RecordedPurchase,
    State,
    Summary,
)
from tests.support.cli import ANSI
from tests.support.fakes import FakeCatalogueEntry, FakeIssue
from tests.support.records import ANNUAL, BASIC, EVERY_ACTION, change, make_plan
from tests.support.times import T0

# --- summary_line ------------------------------------------------------------------------


def test_summary_line_matches_the_documented_example() -> None:
    summary = Summary(
        {Action.PURCHASE: 2, Action.INCREASE: 1}, {Action.PURCHASE: 32, Action.INCREASE: 6}
    )

    assert render.summary_line(summary) == (
        "Plan: 2 to purchase (+32 seats), 1 to increase (+6 seats), 0 conflicts, 0 pending."
    )


@pytest.mark.parametrize(
    ("conflicts", "pending", "tail"),
    [
        (0, 0, "0 conflicts, 0 pending."),
        (1, 0, "1 conflict, 0 pending."),
        (2, 1, "2 conflicts, 1 pending."),
        (1, 3, "1 conflict, 3 pending."),
    ],
)
def test_summary_line_conflict_singular_and_plural(conflicts: int, pending: int, tail: str) -> None:
    line = render.summary_line(Summary({Action.CONFLICT: conflicts, Action.PENDING: pending}))

    assert line == f"Plan: 0 to purchase (+0 seats), 0 to increase (+0 seats), {tail}"


def test_summary_line_says_one_seat() -> None:
    summary = Summary(
        {Action.PURCHASE: 1, Action.INCREASE: 1}, {Action.PURCHASE: 1, Action.INCREASE: 1}
    )

    assert render.summary_line(summary) == (
        "Plan: 1 to purchase (+1 seat), 1 to increase (+1 seat), 0 conflicts, 0 pending."
    )


@pytest.mark.parametrize(("orphans", "tail"), [(1, ", 1 orphan."), (3, ", 3 orphans.")])
def test_summary_line_counts_orphans_when_there_are_some(orphans: int, tail: str) -> None:
    line = render.summary_line(Summary({Action.ORPHAN: orphans}))

    assert (
        line
        == f"Plan: 0 to purchase (+0 seats), 0 to increase (+0 seats), 0 conflicts, 0 pending{tail}"
    )


def test_summary_line_of_a_plan_counts_seats_by_action() -> None:
    assert render.summary_line(EVERY_ACTION.summary) == (
        "Plan: 1 to purchase (+20 seats), 1 to increase (+6 seats), 1 conflict, 1 pending, "
        "1 orphan."
    )


# --- plan_text ------------------------------------------------------------------------


def test_plan_text_blocks_and_last_line() -> None:
    text = render.plan_text(EVERY_ACTION)
    lines = text.splitlines()

    assert "  + a/new  purchase, 0 -> 20 seats (+20)" in lines
    assert "      tenant 111111, CFQ7TTC0LF8R:0010, monthly P1M subscription" in lines
    assert "  ~ b/grow  increase, 10 -> 16 seats (+6)" in lines
    assert "      tenant 222222, CFQ7TTC0LH18:0001, annual P1Y software" in lines
    assert "  ! c/shrink  conflict, 10 -> 4 seats" in lines
    assert "      decrease from 10 to 4 seats" in lines
    assert "  ? e/pending  pending, 0 -> 5 seats" in lines
    assert "  - f/gone  orphan, 3 seats, no longer declared (not cancelled)" in lines
    assert "g/same" not in text
    assert "1 unchanged." in lines
    assert lines[-1] == render.summary_line(EVERY_ACTION.summary)


def test_plan_text_without_changes() -> None:
    text = render.plan_text(make_plan(change("g/same", Action.NOOP, 7, 7)))

    assert text.splitlines() == [
        "No changes. Declared purchases match the state.",
        "1 unchanged.",
        "Plan: 0 to purchase (+0 seats), 0 to increase (+0 seats), 0 conflicts, 0 pending.",
    ]


def test_plan_text_says_one_seat() -> None:
    text = render.plan_text(make_plan(change("a/one", Action.PURCHASE, 0, 1, 1)))

    assert text.splitlines()[0] == "  + a/one  purchase, 0 -> 1 seat (+1)"


def test_plan_text_names_products_from_a_catalogue() -> None:
    catalogue = {BASIC: FakeCatalogueEntry("Microsoft 365 Business Basic", Decimal("5.60"), "EUR")}

    lines = render.plan_text(EVERY_ACTION, catalogue=catalogue).splitlines()

    assert (
        "      tenant 111111, Microsoft 365 Business Basic (CFQ7TTC0LF8R:0010), "
        "monthly P1M subscription"
    ) in lines
    assert "      tenant 222222, CFQ7TTC0LH18:0001, annual P1Y software" in lines


def test_plan_text_colour_only_when_asked() -> None:
    plain = render.plan_text(EVERY_ACTION)
    coloured = render.plan_text(EVERY_ACTION, color=True)

    assert not ANSI.search(plain)
    assert "\x1b[32m  + a/new\x1b[0m" in coloured
    assert "\x1b[31;1m  ! c/shrink\x1b[0m" in coloured
    assert ANSI.sub("", coloured) == plain


def test_plan_text_shows_verify_errors_under_their_change() -> None:
    errors = {"a/new": [FakeIssue("InvalidSku", "the sku is not sold to this tenant")]}

    lines = render.plan_text(EVERY_ACTION, verify_errors=errors).splitlines()

    at = lines.index("  + a/new  purchase, 0 -> 20 seats (+20)")
    assert lines[at + 2] == "      verify: InvalidSku: the sku is not sold to this tenant"


# --- state_text ------------------------------------------------------------------------


def _state() -> State:
    return State(
        lineage="lineage-1",
        serial=5,
        purchases={
            "acme/basic": RecordedPurchase(
                "acme/basic",
                BASIC,
                15,
                (CheckoutRecord("order-1", 10, T0), CheckoutRecord("order-2", 5, T0)),
            ),
            "acme/imported": RecordedPurchase("acme/imported", ANNUAL, 3),
        },
        pending={"acme/next": PendingOperation("acme/next", BASIC, "order-3", 2, T0)},
    )


def test_state_text_of_an_empty_state() -> None:
    assert render.state_text(State(lineage="")) == (
        "The state is empty: nothing recorded, nothing pending."
    )


def test_state_text_lists_purchases_checkouts_and_pending() -> None:
    lines = render.state_text(_state()).splitlines()

    assert lines[0] == (
        "acme/basic  15 seats  tenant 111111, CFQ7TTC0LF8R:0010, monthly P1M subscription"
    )
    assert lines[1] == f"    {T0}  +10  order-1"
    assert lines[2] == f"    {T0}  +5  order-2"
    assert (
        lines[3] == "acme/imported  3 seats  tenant 222222, CFQ7TTC0LH18:0001, annual P1Y software"
    )
    pending_at = next(i for i, line in enumerate(lines) if line.startswith("Pending"))
    assert "`reconciler refresh` settles" in lines[pending_at]
    assert lines[pending_at + 1] == f"  ? acme/next  2 seats  order-3  since {T0}"
    assert lines[-1] == "2 purchases recorded (18 seats), 1 pending. Serial 5."


def test_state_text_with_pending_only() -> None:
    state = State(
        lineage="l", serial=1, pending={"a/b": PendingOperation("a/b", BASIC, "o", 1, T0)}
    )

    text = render.state_text(state)

    assert "? a/b  1 seat  o" in text
    assert text.splitlines()[-1].endswith("1 pending. Serial 1.")


def test_state_text_singular_purchase() -> None:
    state = State(lineage="l", serial=1, purchases={"a/b": RecordedPurchase("a/b", BASIC, 1)})

    assert render.state_text(state).splitlines()[-1] == (
        "1 purchase recorded (1 seat), 0 pending. Serial 1."
    )


# --- apply_summary, pending_message --------------------------------------------------------


def _result(*outcomes: Outcome, interrupted: bool = False) -> ApplyResult:
    return ApplyResult(
        tuple(ChangeResult(f"a/{i}", 1, o, 0.5, f"order-{i}") for i, o in enumerate(outcomes)),
        interrupted,
    )


def test_apply_summary_complete_only_when_the_run_succeeds() -> None:
    assert render.apply_summary(_result(Outcome.PURCHASED)) == (
        "Apply complete: 1 purchased (+1 seat), 0 failed, 0 pending."
    )
    assert render.apply_summary(_result(Outcome.PURCHASED, Outcome.FAILED)) == (
        "Apply failed: 1 purchased (+1 seat), 1 failed, 0 pending."
    )
    assert render.apply_summary(_result(Outcome.PENDING, Outcome.SKIPPED)) == (
        "Apply failed: 0 purchased (+0 seats), 0 failed, 1 pending. 1 not started."
    )
    assert render.apply_summary(_result(Outcome.PURCHASED, interrupted=True)) == (
        "Apply failed: 1 purchased (+1 seat), 0 failed, 0 pending. Interrupted."
    )


def test_pending_message_speaks_of_one_checkout() -> None:
    state = State(lineage="l", pending={"a/b": PendingOperation("a/b", BASIC, "o-1", 1, T0)})

    lines = render.pending_message(list(state.pending.values()), " --state s.json").splitlines()

    assert lines[0] == (
        "the state has 1 pending operation whose outcome is unknown; nothing is done at "
        "its address until each is settled."
    )
    assert lines[1:] == [
        f"  a/b: 1 seat, externalOrderId o-1 (since {T0})",
        "    Cloud-iQ was not read",
        "    `reconciler refresh --state s.json` settles it once the API shows its outcome; "
        "if it cannot, check it in Crayon Cloud-iQ, then run one of:",
        "    reconciler state resolve a/b --purchased --state s.json",
        "    reconciler state resolve a/b --not-purchased --state s.json",
    ]


def test_pending_message_leads_with_what_cloud_iq_shows() -> None:
    op = PendingOperation("a/b", BASIC, "o-1", 1, T0)

    lines = render.pending_message(
        [op], "", {"a/b": "processed order 7 is Processing"}
    ).splitlines()

    assert lines[2] == "    Cloud-iQ shows: processed order 7 is Processing"
    assert lines[3].startswith("    `reconciler refresh` settles it")
