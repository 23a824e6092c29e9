"""Tests of reconciler.render: plans and states as text, JSON and Markdown."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest

from reconciler import render
from reconciler.model import (
    Action,
    Change,
    CheckoutRecord,
    Identity,
    PendingOperation,
    Plan,
    RecordedPurchase,
    State,
    Summary,
)

ROOT = Path(__file__).resolve().parents[1]
PLAN_SCHEMA = json.loads((ROOT / "schemas" / "plan.schema.json").read_text(encoding="utf-8"))
ANSI = re.compile(r"\x1b\[[0-9;]*m")
T0 = "2026-11-26T19:00:00Z"
DIGEST = "sha256:" + "ab" * 32
BASIC = Identity(
    customer_tenant_id=111111,
    product_id="CFQ7TTC0LF8R",
    sku_id="0010",
    billing_cycle="monthly",
    term_duration="P1M",
)
ANNUAL = Identity(
    customer_tenant_id=222222,
    product_id="CFQ7TTC0LH18",
    sku_id="0001",
    billing_cycle="annual",
    term_duration="P1Y",
    type="software",
)


def change(
    address: str,
    action: Action,
    before: int,
    after: int | None,
    delta: int = 0,
    identity: Identity = BASIC,
    reason: str | None = None,
) -> Change:
    return Change(address, action, before, after, delta, identity, reason=reason)


def make_plan(*changes: Change, lineage: str = "lineage-1", serial: int = 7) -> Plan:
    return Plan(
        changes=tuple(sorted(changes, key=lambda c: c.address)),
        lineage=lineage,
        serial=serial,
        declarations_digest=DIGEST,
    )


EVERY_ACTION = make_plan(
    change("a/new", Action.PURCHASE, 0, 20, 20),
    change("b/grow", Action.INCREASE, 10, 16, 6, ANNUAL),
    change("c/shrink", Action.CONFLICT, 10, 4, reason="decrease from 10 to 4 seats"),
    change("e/pending", Action.PENDING, 0, 5, reason="checkout order-e has an unknown outcome"),
    change("f/gone", Action.ORPHAN, 3, None, reason="recorded but no longer declared"),
    change("g/same", Action.NOOP, 7, 7),
)


@dataclass(frozen=True)
class FakeIssue:
    code: str
    description: str


# --- seats and summary_line -----------------------------------------------------


@pytest.mark.parametrize(("n", "text"), [(0, "0 seats"), (1, "1 seat"), (2, "2 seats")])
def test_seats_singular_and_plural(n: int, text: str) -> None:
    assert render.seats(n) == text


def test_summary_line_matches_the_contract_example() -> None:
    summary = Summary(to_purchase=2, purchase_seats=32, to_increase=1, increase_seats=6)

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
    line = render.summary_line(Summary(conflicts=conflicts, pending=pending))

    assert line == f"Plan: 0 to purchase (+0 seats), 0 to increase (+0 seats), {tail}"


def test_summary_line_of_a_plan_counts_seats_by_action() -> None:
    assert render.summary_line(EVERY_ACTION.summary) == (
        "Plan: 1 to purchase (+20 seats), 1 to increase (+6 seats), 1 conflict, 1 pending."
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
    assert "  - f/gone  orphan, 3 -> - seats" in lines
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


# --- plan_dict / plan_json / plan_from_dict -------------------------------------------


def test_plan_dict_matches_the_schema_and_contract() -> None:
    data = render.plan_dict(EVERY_ACTION)

    jsonschema.Draft202012Validator(PLAN_SCHEMA).validate(data)
    assert data["format_version"] == 1
    assert (data["lineage"], data["serial"], data["declarations_digest"]) == (
        "lineage-1",
        7,
        DIGEST,
    )
    assert [c["address"] for c in data["changes"]] == sorted(c["address"] for c in data["changes"])
    orphan = next(c for c in data["changes"] if c["action"] == "orphan")
    assert (orphan["before"], orphan["after"], orphan["delta"]) == (3, None, 0)
    assert data["summary"]["seats"] == 26
    assert "verify_errors" not in data["changes"][0]


def test_plan_dict_with_verify_errors_matches_the_schema() -> None:
    data = render.plan_dict(EVERY_ACTION, {"a/new": [FakeIssue("E1", "no")]})

    jsonschema.Draft202012Validator(PLAN_SCHEMA).validate(data)
    by_address = {c["address"]: c for c in data["changes"]}
    assert by_address["a/new"]["verify_errors"] == [{"code": "E1", "description": "no"}]
    assert by_address["b/grow"]["verify_errors"] == []


def test_plan_json_is_sorted_parseable_json() -> None:
    text = render.plan_json(EVERY_ACTION)

    assert json.loads(text) == render.plan_dict(EVERY_ACTION)
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True)


def test_plan_from_dict_round_trips() -> None:
    data = render.plan_dict(EVERY_ACTION)

    back = render.plan_from_dict(json.loads(json.dumps(data)))

    assert render.plan_dict(back) == data
    assert back.changes == EVERY_ACTION.changes  # no declared Purchase attached in either
    assert (back.lineage, back.serial, back.declarations_digest) == ("lineage-1", 7, DIGEST)
    assert back.summary == EVERY_ACTION.summary
    assert render.plan_text(back) == render.plan_text(EVERY_ACTION)


def test_plan_from_dict_of_a_plan_without_state() -> None:
    plan = make_plan(change("a/new", Action.PURCHASE, 0, 1, 1), lineage="", serial=0)

    back = render.plan_from_dict(render.plan_dict(plan))

    assert (back.lineage, back.serial) == ("", 0)
    assert back.changes[0].identity == BASIC


# --- plan_markdown ----------------------------------------------------------------------


def _rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("| ") and "`" in line]


def _address(row: str) -> str:
    found = re.search(r"`([^`]+)`", row)
    assert found is not None
    return found.group(1)


def test_plan_markdown_summary_first_attention_rows_first() -> None:
    markdown = render.plan_markdown(EVERY_ACTION)
    lines = markdown.splitlines()

    assert lines[0] == f"**{render.summary_line(EVERY_ACTION.summary)}**"
    assert [_address(r) for r in _rows(markdown)] == [
        "c/shrink",
        "e/pending",
        "a/new",
        "b/grow",
        "f/gone",
    ]
    assert "1 unchanged." in lines
    assert "runcated" not in markdown
    assert markdown.endswith("\n")


def test_plan_markdown_escapes_pipes_in_cells() -> None:
    plan = make_plan(change("a/odd", Action.CONFLICT, 2, 1, reason="a|b\nc"))

    (row,) = _rows(render.plan_markdown(plan))

    assert "a\\|b c" in row
    assert len(re.findall(r"(?<!\\)\|", row)) == 8  # 7 cells


def _bulk_plan(count: int) -> Plan:
    changes = [
        change(f"bulk/p{i:05d}", Action.PURCHASE, 0, 1 + i % 7, 1 + i % 7) for i in range(count)
    ]
    changes.append(change("zz/conflict", Action.CONFLICT, 9, 1, reason="decrease"))
    return make_plan(*changes)


def test_plan_markdown_truncates_under_the_comment_limit() -> None:
    plan = _bulk_plan(3000)

    markdown = render.plan_markdown(plan)

    assert len(markdown) < render.MARKDOWN_LIMIT == 60_000
    rows = _rows(markdown)
    assert 0 < len(rows) < 3001
    assert _address(rows[0]) == "zz/conflict"  # attention first, even when truncated
    note = re.search(r"Truncated: (\d+) of (\d+) changes not shown", markdown)
    assert note is not None
    assert int(note.group(2)) == 3001
    assert int(note.group(1)) == 3001 - len(rows)
    assert markdown.splitlines()[0].startswith("**Plan: 3000 to purchase")


@pytest.mark.parametrize("limit", [1_000, 5_000, 20_000])
def test_plan_markdown_respects_a_smaller_limit(limit: int) -> None:
    markdown = render.plan_markdown(_bulk_plan(500), limit=limit)

    assert len(markdown) < limit
    assert "Truncated:" in markdown


def test_plan_markdown_not_truncated_when_it_fits() -> None:
    markdown = render.plan_markdown(_bulk_plan(50))

    assert len(_rows(markdown)) == 51
    assert "runcated" not in markdown


def test_plan_markdown_without_changes() -> None:
    markdown = render.plan_markdown(make_plan(change("g/same", Action.NOOP, 7, 7)))

    assert markdown.splitlines()[0].startswith("**Plan: 0 to purchase")
    assert "No changes. Declared purchases match the state." in markdown
    assert "|" not in markdown


# --- state_text / state_dict ------------------------------------------------------------


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
    assert "state resolve" in lines[pending_at]
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


def test_state_dict() -> None:
    data = render.state_dict(_state())

    assert (data["lineage"], data["serial"]) == ("lineage-1", 5)
    assert list(data["purchases"]) == ["acme/basic", "acme/imported"]
    assert data["purchases"]["acme/basic"] == {
        **BASIC.as_dict(),
        "quantity": 15,
        "checkouts": [
            {"externalOrderId": "order-1", "quantity": 10, "time": T0},
            {"externalOrderId": "order-2", "quantity": 5, "time": T0},
        ],
    }
    assert data["purchases"]["acme/imported"]["checkouts"] == []
    assert data["pending"] == {
        "acme/next": {**BASIC.as_dict(), "externalOrderId": "order-3", "quantity": 2, "time": T0}
    }
