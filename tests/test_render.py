"""Tests of reconciler.render: plans and states as text, JSON and Markdown."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest

import reconciler
from reconciler import render
from reconciler.errors import ConfigProblem
from reconciler.model import (
    Action,
    ApplyResult,
    Change,
    ChangeResult,
    CheckoutRecord,
    Identity,
    Outcome,
    PendingOperation,
    Plan,
    RecordedPurchase,
    State,
    Summary,
)
from reconciler.render.verdict import verdict

ROOT = Path(__file__).resolve().parents[1]
PLAN_SCHEMA = json.loads((ROOT / "schemas" / "plan.schema.json").read_text(encoding="utf-8"))
EVENTS_SCHEMA = json.loads(
    (ROOT / "schemas" / "apply-events.schema.json").read_text(encoding="utf-8")
)
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
        digest_source=DIGEST,
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


@dataclass(frozen=True)
class Entry:
    """A catalogue entry as the renderers take one (``render.CatalogueEntry``)."""

    name: str | None
    unit_price: Decimal | None
    currency: str | None


# --- seats and summary_line -----------------------------------------------------


@pytest.mark.parametrize(("n", "text"), [(0, "0 seats"), (1, "1 seat"), (2, "2 seats")])
def test_seats_singular_and_plural(n: int, text: str) -> None:
    assert render.seats(n) == text


def test_summary_line_matches_the_contract_example() -> None:
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
    catalogue = {BASIC: Entry("Microsoft 365 Business Basic", Decimal("5.60"), "EUR")}

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

CONTOSO = Identity(100001, "CFQ7TTC0LF8R", "0010", "monthly", "P1M")
POWER_BI = Identity(100001, "CFQ7TTC0LCHC", "0002", "monthly", "P1M")
TEAMS = Identity(100001, "CFQ7TTC0LHSF", "0001", "monthly", "P1M")
VISIO = Identity(100001, "CFQ7TTC0MM8R", "0002", "monthly", "P1M")
PREMIUM = Identity(100002, "CFQ7TTC0LH18", "0001", "monthly", "P1Y")
E3 = Identity(100002, "CFQ7TTC0LFLZ", "0002", "annual", "P1Y")
#: The README's sample: a purchase, an increase, a move, a conflict, an orphan, a pending.
SAMPLE = Plan(
    changes=tuple(
        sorted(
            [
                Change("contoso/m365-basic", Action.PURCHASE, 0, 20, 20, CONTOSO),
                Change(
                    "contoso/power-bi", Action.MOVE, 12, 12, 0, POWER_BI,
                    moved_from="contoso/powerbi-pro",
                ),
                Change(
                    "contoso/teams", Action.PENDING, 0, 5, 0, TEAMS,
                    reason="checkout 7d3c9a1e of 5 seats (2026-11-26T19:00:00Z) has an "
                    "unknown outcome",
                ),
                Change(
                    "contoso/visio", Action.ORPHAN, 4, None, 0, VISIO,
                    reason="recorded but no longer declared; the reconciler never cancels "
                    "licences",
                ),
                Change(
                    "fabrikam/e3", Action.CONFLICT, 10, 8, 0, E3,
                    reason="decrease from 10 to 8 seats; a purchase cannot be undone through "
                    "checkout",
                ),
                Change("fabrikam/premium", Action.INCREASE, 10, 16, 6, PREMIUM),
                Change("contoso/exchange", Action.NOOP, 7, 7, 0, CONTOSO),
            ],
            key=lambda c: c.address,
        )
    ),
    lineage="6b1f4c2e-0d7a-4a7e-9a55-2f0c1d3e4b5a",
    serial=42,
    digest_source="sha256:" + "3f1e" * 16,
)  # fmt: skip
SAMPLE_CATALOGUE = {
    CONTOSO: Entry("Microsoft 365 Business Basic", Decimal("5.60"), "EUR"),
    POWER_BI: Entry("Power BI Pro", Decimal("13.10"), "EUR"),
    TEAMS: Entry("Microsoft Teams Essentials", Decimal("3.75"), "EUR"),
    VISIO: Entry("Visio Plan 2", Decimal("14.10"), "EUR"),
    PREMIUM: Entry("Microsoft 365 Business Premium", Decimal("20.60"), "EUR"),
    E3: Entry("Microsoft 365 E3", None, None),
}


def sample_comment() -> str:
    return render.plan_markdown(SAMPLE, catalogue=SAMPLE_CATALOGUE, tool_version="0.1.0")


def _rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("| ") and "`" in line]


def _address(row: str) -> str:
    found = re.search(r"`([^`]+)`", row)
    assert found is not None
    return found.group(1)


@pytest.mark.parametrize(
    ("workspace", "targets", "line"),
    [
        ("default", (), "<!-- crayon-reconciler:plan -->"),
        ("prod", (), "<!-- crayon-reconciler:plan workspace=prod -->"),
        ("default", ("acme/",), "<!-- crayon-reconciler:plan target=acme/ -->"),
        (
            "eu",
            ("acme/a", "beta/"),
            "<!-- crayon-reconciler:plan workspace=eu target=acme/a,beta/ -->",
        ),
    ],
)
def test_plan_markdown_first_line_is_the_marker(
    workspace: str, targets: tuple[str, ...], line: str
) -> None:
    plan = replace(EVERY_ACTION, targets=targets, addresses=9)

    assert render.plan_markdown(plan, workspace=workspace).splitlines()[0] == line
    assert render.marker(workspace, targets) == line


def test_plan_markdown_verdict_money_and_plan_line_come_first() -> None:
    lines = sample_comment().splitlines()

    assert lines[:9] == [
        "<!-- crayon-reconciler:plan -->",
        "",
        "### ❌ Plan: **cannot be applied: 1 conflict, 1 pending**",
        "",
        "**+26 seats, about EUR 235.60 per month, EUR 1,483.20 committed for 12 months**",
        "",
        "Plan: 1 to move, 1 to purchase (+20 seats), 1 to increase (+6 seats), 1 conflict, "
        "1 pending, 1 orphan.",
        "",
        "⚠️ **1 change buys a commitment** (a P1Y or P3Y term, software or a reservation, "
        "marked ⚠️ below): it cannot be cancelled or reduced once Microsoft's cancellation "
        "window (7 days for new-commerce subscriptions) has passed.",
    ]


@pytest.mark.parametrize(
    ("plan", "errors", "heading"),
    [
        (make_plan(change("a/new", Action.PURCHASE, 0, 2, 2)), None, "✅ Plan: **ready to apply**"),
        (make_plan(change("g/same", Action.NOOP, 7, 7)), None, "✅ Plan: **no changes**"),
        (
            make_plan(change("a/new", Action.PURCHASE, 0, 2, 2)),
            {"a/new": [FakeIssue("E1", "no")]},
            "❌ Plan: **cannot be applied: 1 order refused by verify**",
        ),
        (
            make_plan(
                change("c/a", Action.CONFLICT, 3, 1, reason="r"),
                change("c/b", Action.CONFLICT, 3, 1, reason="r"),
                change("e/p", Action.PENDING, 0, 1, reason="r"),
            ),
            None,
            "❌ Plan: **cannot be applied: 2 conflicts, 1 pending**",
        ),
    ],
)
def test_plan_markdown_heading_is_the_verdict(
    plan: Plan, errors: dict[str, list[FakeIssue]] | None, heading: str
) -> None:
    assert render.plan_markdown(plan, verify_errors=errors).splitlines()[2] == f"### {heading}"


def test_plan_markdown_per_tenant_tables_with_names_prices_and_commitments() -> None:
    markdown = sample_comment()
    lines = markdown.splitlines()

    contoso = lines.index("#### Customer tenant 100001")
    fabrikam = lines.index("#### Customer tenant 100002")
    assert contoso < fabrikam
    rows = _rows(markdown)
    # Attention first within each tenant, then by address; orphans are not in tables.
    assert [_address(r) for r in rows] == [
        "contoso/teams",
        "contoso/m365-basic",
        "contoso/power-bi",
        "fabrikam/e3",
        "fabrikam/premium",
    ]
    assert rows[1] == (
        "| + | `contoso/m365-basic` | Microsoft 365 Business Basic `CFQ7TTC0LF8R:0010` "
        "| subscription | P1M, monthly | 0 -> 20 seats (+20) | EUR 5.60 | EUR 112.00 per month "
        "| purchase |"
    )
    assert rows[2] == (
        "| > | `contoso/power-bi` | Power BI Pro `CFQ7TTC0LCHC:0002` | subscription "
        "| P1M, monthly | 12 -> 12 seats | EUR 13.10 | nothing bought "
        "| move from `contoso/powerbi-pro` |"
    )
    # An unknown price is said to be unknown, never 0; a commitment is flagged.
    assert rows[3] == (
        "| ! | `fabrikam/e3` | Microsoft 365 E3 `CFQ7TTC0LFLZ:0002` | subscription "
        "| P1Y, annual ⚠️ | 10 -> 8 seats | price unknown | nothing bought "
        "| conflict (see above) |"
    )
    assert rows[4] == (
        "| ~ | `fabrikam/premium` | Microsoft 365 Business Premium `CFQ7TTC0LH18:0001` "
        "| subscription | P1Y, monthly ⚠️ | 10 -> 16 seats (+6) | EUR 20.60 "
        "| EUR 123.60 per month, EUR 1,483.20 for 12 months | increase |"
    )


def test_plan_markdown_without_a_catalogue_shows_codes_and_unknown_prices() -> None:
    markdown = render.plan_markdown(SAMPLE)

    assert "**+26 seats" not in markdown  # no money line without any price
    row = next(r for r in _rows(markdown) if "contoso/m365-basic" in r)
    assert row == (
        "| + | `contoso/m365-basic` | `CFQ7TTC0LF8R:0010` | subscription | P1M, monthly "
        "| 0 -> 20 seats (+20) | price unknown | price unknown | purchase |"
    )
    assert "0.00" not in markdown


def test_plan_markdown_lists_what_blocks_it_with_the_commands_that_settle_it() -> None:
    errors = {
        "contoso/m365-basic": [FakeIssue("InvalidSku", "not sold | here"), FakeIssue("E2", "x")]
    }

    lines = render.plan_markdown(
        SAMPLE, verify_errors=errors, state_flags=" --state prod.json"
    ).splitlines()

    at = lines.index("#### Cannot be applied")
    assert lines[at + 1 : at + 16] == [
        "",
        "Fix the declarations: a purchase cannot be undone or changed in place.",
        "Check each pending order in Crayon Cloud-iQ by its externalOrderId, then run one of "
        "its `reconciler state resolve` commands.",
        "The API's verify endpoint refused these orders.",
        "",
        "- `fabrikam/e3` conflict: decrease from 10 to 8 seats; a purchase cannot be undone "
        "through checkout",
        "- `contoso/teams` pending: checkout 7d3c9a1e of 5 seats (2026-11-26T19:00:00Z) has an "
        "unknown outcome",
        "  - `reconciler state resolve contoso/teams --purchased --state prod.json`",
        "  - `reconciler state resolve contoso/teams --not-purchased --state prod.json`",
        "- `contoso/m365-basic` refused by verify:",
        "  - `InvalidSku`: not sold \\| here",
        "  - `E2`: x",
        "",
        "#### Customer tenant 100001",
        "",
    ]
    row = next(r for r in _rows("\n".join(lines)) if "contoso/m365-basic" in r)
    assert row.endswith("| purchase, **refused by verify** (see above) |")


def test_plan_markdown_says_verify_accepted_every_order() -> None:
    plan = make_plan(
        change("a/new", Action.PURCHASE, 0, 2, 2), change("b/x", Action.PURCHASE, 0, 1, 1)
    )

    lines = render.plan_markdown(plan, verify_errors={"a/new": [], "b/x": []}).splitlines()

    assert lines[2] == "### ✅ Plan: **ready to apply**"
    assert (
        "Verified: the API's verify endpoint accepted all 2 orders (nothing was bought)." in lines
    )


def test_plan_markdown_orphans_are_no_longer_declared_not_cancelled() -> None:
    lines = sample_comment().splitlines()

    at = lines.index("#### No longer declared (not cancelled)")
    assert lines[at + 2] == (
        "- `contoso/visio`: 4 seats of Visio Plan 2 `CFQ7TTC0MM8R:0002` for customer tenant "
        "100001. The licences stay bought; `reconciler state rm contoso/visio` forgets them."
    )
    assert "1 unchanged." in lines


def test_plan_markdown_folds_the_text_plan_and_ends_with_what_ties_an_approval() -> None:
    markdown = sample_comment()
    lines = markdown.splitlines()

    start = lines.index("<details><summary>Full plan (text)</summary>")
    end = lines.index("</details>")
    assert lines[start + 2] == "```text"
    assert (
        lines[start + 3 : end - 2]
        == render.plan_text(SAMPLE, catalogue=SAMPLE_CATALOGUE).splitlines()
    )
    assert lines[-2:] == [
        "---",
        f"<sub>declarations `{SAMPLE.declarations_digest}` · state lineage "
        "`6b1f4c2e-0d7a-4a7e-9a55-2f0c1d3e4b5a` serial 42 · crayon-reconciler 0.1.0</sub>",
    ]
    assert (
        render.plan_markdown(SAMPLE)
        .splitlines()[-1]
        .endswith(f"crayon-reconciler {reconciler.__version__}</sub>")
    )


def test_plan_markdown_escapes_what_markdown_would_interpret() -> None:
    odd = Identity(111111, "CFQ7|TTC`0", "00<b>", "monthly", "P1M")
    catalogue = {odd: Entry("Bold **name** <script>|", Decimal("1"), "EUR")}
    plan = make_plan(Change("a/odd", Action.CONFLICT, 2, 1, 0, odd, reason="a|b\nc <i>*x*</i>"))

    markdown = render.plan_markdown(plan, catalogue=catalogue)

    (row,) = _rows(markdown)
    assert "Bold \\*\\*name\\*\\* &lt;script>\\| `` CFQ7\\|TTC`0:00<b> ``" in row
    assert len(re.findall(r"(?<!\\)\|", row)) == 10  # 9 cells
    assert "- `a/odd` conflict: a\\|b c &lt;i>\\*x\\*&lt;/i>" in markdown.splitlines()


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
    assert "<details>" not in markdown
    lines = markdown.splitlines()
    assert lines[0] == "<!-- crayon-reconciler:plan -->"
    assert lines[2] == "### ❌ Plan: **cannot be applied: 1 conflict**"
    assert lines[-1].startswith("<sub>declarations ")


@pytest.mark.parametrize("limit", [1_500, 5_000, 20_000])
def test_plan_markdown_respects_a_smaller_limit(limit: int) -> None:
    markdown = render.plan_markdown(_bulk_plan(500), limit=limit)

    assert len(markdown) < limit
    assert "Truncated:" in markdown


def test_plan_markdown_cuts_the_folded_text_plan_before_any_change() -> None:
    plan = _bulk_plan(120)
    whole = render.plan_markdown(plan)
    limit = len(whole) - 2_000

    markdown = render.plan_markdown(plan, limit=limit)

    assert len(markdown) < limit
    assert len(_rows(markdown)) == 121
    assert "Truncated:" not in markdown
    assert re.search(
        r"\[\.\.\. \d+ more lines: run `reconciler plan` for the whole plan\]", markdown
    )


def test_plan_markdown_not_truncated_when_it_fits() -> None:
    markdown = render.plan_markdown(_bulk_plan(50))

    assert len(_rows(markdown)) == 51
    assert "runcated" not in markdown
    assert "more lines" not in markdown


def test_plan_markdown_without_changes() -> None:
    markdown = render.plan_markdown(make_plan(change("g/same", Action.NOOP, 7, 7)))

    assert any(line.startswith("Plan: 0 to purchase") for line in markdown.splitlines())
    assert "No changes. Declared purchases match the state." in markdown
    assert "| " not in markdown
    assert "<details>" not in markdown


def test_config_errors_markdown_lists_each_located_error() -> None:
    problems = [
        ConfigProblem(
            "c/a.yaml", 3, 7, "purchases[0].quantity", "-3 is less than the minimum of 1"
        ),
        ConfigProblem("c/b.yaml", 1, 1, "", "not valid YAML: <tab>"),
    ]

    markdown = render.config_errors_markdown(problems, targets=("a/",))

    assert markdown.splitlines() == [
        "<!-- crayon-reconciler:plan target=a/ -->",
        "",
        "### ❌ Plan: **cannot be applied: 2 errors in the declarations**",
        "",
        "Nothing was planned. Fix these and push again (`reconciler validate` checks them "
        "locally):",
        "",
        "- `c/a.yaml:3:7`: `purchases[0].quantity`: -3 is less than the minimum of 1",
        "- `c/b.yaml:1:1`: not valid YAML: &lt;tab>",
    ]


def test_config_errors_markdown_stays_under_the_limit() -> None:
    problems = [ConfigProblem(f"f{i}.yaml", 1, 1, "", "x" * 80) for i in range(5_000)]

    markdown = render.config_errors_markdown(problems)

    assert len(markdown) < render.MARKDOWN_LIMIT
    assert re.search(r"Truncated: \d+ of 5000 errors not shown", markdown)


def test_readme_shows_the_sample_comment() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")

    assert f"`````markdown\n{sample_comment()}`````\n" in readme


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


# --- verdict ----------------------------------------------------------------------------


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


# --- money ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "shown", "unit"),
    [
        ("1250", "EUR 1,250.00", "EUR 1,250.00"),
        ("412.805", "EUR 412.81", "EUR 412.805"),
        ("0.0035", "EUR 0.00", "EUR 0.0035"),
        ("5.6", "EUR 5.60", "EUR 5.60"),
    ],
)
def test_money_is_rounded_for_totals_and_exact_for_unit_prices(
    amount: str, shown: str, unit: str
) -> None:
    money = render.Money("EUR", Decimal(amount))

    assert (str(money), money.unit()) == (shown, unit)


@pytest.mark.parametrize(
    ("identity", "commitment"),
    [
        (BASIC, False),
        (replace(BASIC, term_duration="P1Y"), True),
        (replace(BASIC, term_duration="P3Y"), True),
        (replace(BASIC, type="software"), True),
        (replace(BASIC, type="reservation"), True),
    ],
)
def test_commitments(identity: Identity, commitment: bool) -> None:
    assert render.is_commitment(identity) is commitment


def test_money_line_adds_monthly_committed_and_one_time_costs_per_currency() -> None:
    p3y = replace(BASIC, product_id="P3Y", term_duration="P3Y")
    once = replace(BASIC, product_id="SW", billing_cycle="one-time", type="software")
    usd = replace(BASIC, product_id="USD")
    unknown = replace(BASIC, product_id="UNKNOWN")
    catalogue = {
        BASIC: Entry("Basic", Decimal("5.60"), "EUR"),
        ANNUAL: Entry("Premium", Decimal("20.60"), "EUR"),
        p3y: Entry(None, Decimal("10"), "eur"),
        once: Entry("Software", Decimal("99.99"), "EUR"),
        usd: Entry("Dollar", Decimal("2.50"), "USD"),
        unknown: Entry("No price", None, None),
    }
    plan = make_plan(
        change("a/basic", Action.PURCHASE, 0, 20, 20, BASIC),  # 112.00 per month
        change("b/annual", Action.INCREASE, 10, 16, 6, ANNUAL),  # 123.60, 1,483.20 for 12
        change("c/p3y", Action.PURCHASE, 0, 1, 1, p3y),  # 10.00, 360.00 for 36
        change("d/once", Action.PURCHASE, 0, 2, 2, once),  # 199.98 once
        change("e/usd", Action.PURCHASE, 0, 4, 4, usd),  # USD 10.00 per month
        change("f/unknown", Action.PURCHASE, 0, 3, 3, unknown),
        change("g/nocatalogue", Action.PURCHASE, 0, 1, 1, replace(BASIC, product_id="X")),
        change("h/conflict", Action.CONFLICT, 9, 1, 0, BASIC, reason="r"),
    )

    line = render.plan_markdown(plan, catalogue=catalogue).splitlines()[4]

    assert line == (
        "**+37 seats, about EUR 245.60 + USD 10.00 per month, EUR 1,483.20 committed for "
        "12 months, EUR 360.00 committed for 36 months, EUR 199.98 once, price unknown for "
        "2 of 7 changes**"
    )
    data = render.plan_dict(plan, catalogue=catalogue)
    jsonschema.Draft202012Validator(PLAN_SCHEMA).validate(data)
    assert data["cost"] == {
        "seats": 37,
        "per_month": [
            {"amount": "245.60", "currency": "EUR"},
            {"amount": "10.00", "currency": "USD"},
        ],
        "once": [{"amount": "199.98", "currency": "EUR"}],
        "committed": [
            {"amount": "1483.20", "currency": "EUR", "months": 12},
            {"amount": "360", "currency": "EUR", "months": 36},
        ],
        "price_unknown": ["f/unknown", "g/nocatalogue"],
    }


# --- plan_dict: verdict, names and prices ----------------------------------------------


def test_plan_dict_says_the_verdict() -> None:
    data = render.plan_dict(EVERY_ACTION, {"a/new": [FakeIssue("E1", "no")]})

    jsonschema.Draft202012Validator(PLAN_SCHEMA).validate(data)
    assert data["format_version"] == 1  # the additions are optional keys, not a new format
    assert data["verdict"] == {
        "status": "blocked",
        "applicable": False,
        "text": "cannot be applied: 1 conflict, 1 pending, 1 order refused by verify",
        "conflicts": 1,
        "pending": 1,
        "verify_refused": 1,
    }
    ready = render.plan_dict(make_plan(change("a/new", Action.PURCHASE, 0, 1, 1)))["verdict"]
    assert (ready["status"], ready["applicable"], ready["text"]) == (
        "ready",
        True,
        "ready to apply",
    )


def test_plan_dict_names_and_prices_only_with_a_catalogue() -> None:
    catalogue = {BASIC: Entry("Microsoft 365 Business Basic", Decimal("5.60"), "EUR")}

    plain = render.plan_dict(EVERY_ACTION)
    priced = render.plan_dict(EVERY_ACTION, catalogue=catalogue)

    jsonschema.Draft202012Validator(PLAN_SCHEMA).validate(priced)
    assert "cost" not in plain
    assert all("unit_price" not in c and "product_name" not in c for c in plain["changes"])
    by_address = {c["address"]: c for c in priced["changes"]}
    assert by_address["a/new"]["product_name"] == "Microsoft 365 Business Basic"
    assert by_address["a/new"]["unit_price"] == {"amount": "5.60", "currency": "EUR"}
    # Unknown is null, never 0.
    assert (by_address["b/grow"]["product_name"], by_address["b/grow"]["unit_price"]) == (
        None,
        None,
    )
    assert priced["cost"]["price_unknown"] == ["b/grow"]


# --- apply results ----------------------------------------------------------------------


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
        "the state has 1 pending checkout whose outcome is unknown; nothing will be bought "
        "until each is resolved."
    )
    assert lines[2:] == [
        "  a/b: 1 seat, externalOrderId o-1",
        "    reconciler state resolve a/b --purchased --state s.json",
        "    reconciler state resolve a/b --not-purchased --state s.json",
    ]


# --- apply --json events ----------------------------------------------------------------


def test_every_apply_event_matches_the_schema() -> None:
    validator = jsonschema.Draft202012Validator(EVENTS_SCHEMA)
    moved = Change("a/new", Action.MOVE, 5, 8, 3, BASIC, moved_from="a/old")
    bought = change("b/buy", Action.PURCHASE, 0, 2, 2)
    failed = ChangeResult("b/buy", 2, Outcome.FAILED, 0.25, "o-2", ("verify: E: no",))
    events = [
        render.version_event(),
        render.apply_start_event(make_plan(moved, bought)),
        render.move_event(moved),
        render.change_start_event(moved),
        render.change_result_event(moved, ChangeResult("a/new", 3, Outcome.PURCHASED, 1.5, "o-1")),
        render.change_start_event(bought),
        render.change_result_event(bought, failed),
        render.change_result_event(bought, ChangeResult("b/buy", 2, Outcome.PENDING, 9, "o-3")),
        render.change_result_event(bought, ChangeResult("b/buy", 2, Outcome.SKIPPED)),
        render.apply_complete_event("failed", result=_result(Outcome.PURCHASED, Outcome.FAILED)),
        render.apply_complete_event("error", errors=["no state at s.json"]),
    ]

    for event in events:
        validator.validate(event)
        assert json.loads(render.event_line(event)) == event
        assert "\n" not in render.event_line(event)
    assert [e["type"] for e in events] == [
        "version",
        "apply_start",
        "change_complete",
        "change_start",
        "change_complete",
        "change_start",
        "change_failed",
        "change_pending",
        "change_failed",
        "apply_complete",
        "apply_complete",
    ]
    assert events[1] == {
        "type": "apply_start",
        "changes": 2,
        "seats": 5,
        "lineage": "lineage-1",
        "serial": 7,
        "targets": [],
    }
    assert events[2] == {
        "type": "change_complete",
        "address": "a/new",
        "action": "move",
        "from": "a/old",
        "seats": 0,
        "external_order_id": None,
        "elapsed_seconds": 0.0,
        "outcome": "moved",
    }
    assert events[6]["errors"] == ["verify: E: no"]
    assert events[8]["outcome"] == "skipped"
    assert events[8]["errors"][0].startswith("not checked out: apply stopped")
