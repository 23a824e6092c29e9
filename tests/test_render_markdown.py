"""The pull-request comment (``reconciler.render.markdown``): the marker, the verdict,
per-tenant tables, what blocks the plan, and truncation under the comment limit."""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal

import pytest

import reconciler
from reconciler import render
from reconciler.errors import ConfigProblem
from reconciler.model import Action, Change, Identity, Plan
from tests.support.fakes import FakeCatalogueEntry, FakeIssue
from tests.support.paths import README
from tests.support.records import EVERY_ACTION, change, make_plan

CONTOSO = Identity(100001, "CFQ7TTC0LF8R", "0010", "monthly", "P1M")
POWER_BI = Identity(100001, "CFQ7TTC0LCHC", "0002", "monthly", "P1M")
TEAMS = Identity(100001, "CFQ7TTC0LHSF", "0001", "monthly", "P1M")
VISIO = Identity(100001, "CFQ7TTC0MM8R", "0002", "monthly", "P1M")
PREMIUM = Identity(100002, "CFQ7TTC0LH18", "0001", "monthly", "P1Y")
E3 = Identity(100002, "CFQ7TTC0LFLZ", "0002", "annual", "P1Y")

E3_REFUSED = (
    "Cloud-iQ shows 10 seats (subscription 500004), 8 declared; none of the 2 seats to "
    "remove are inside Microsoft's 7-day cancellation window; the others can go at renewal "
    "(2027-01-25T19:00:00Z): set `autoRenew: false` to let a subscription end, or lower "
    "`quantity` once it has renewed"
)

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
                    reason="recorded but no longer declared; nothing is cancelled unless a "
                    "`removed:` entry says so",
                ),
                Change(
                    "fabrikam/e3", Action.CONFLICT, 10, 8, 0, E3,
                    reason=E3_REFUSED,
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
    CONTOSO: FakeCatalogueEntry("Microsoft 365 Business Basic", Decimal("5.60"), "EUR"),
    POWER_BI: FakeCatalogueEntry("Power BI Pro", Decimal("13.10"), "EUR"),
    TEAMS: FakeCatalogueEntry("Microsoft Teams Essentials", Decimal("3.75"), "EUR"),
    VISIO: FakeCatalogueEntry("Visio Plan 2", Decimal("14.10"), "EUR"),
    PREMIUM: FakeCatalogueEntry("Microsoft 365 Business Premium", Decimal("20.60"), "EUR"),
    E3: FakeCatalogueEntry("Microsoft 365 E3", None, None),
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
        "| subscription | P1M, monthly | 0 -> 20 seats (+20) | EUR 5.60 | +EUR 112.00 per month "
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
        "| +EUR 123.60 per month, EUR 1,483.20 for 12 months | increase |"
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
        "Each conflict says what stands in the way and how to settle it.",
        "`reconciler refresh` settles a pending operation once Cloud-iQ shows its outcome; "
        "when it cannot, check it in Crayon Cloud-iQ and run one of its "
        "`reconciler state resolve` commands.",
        "The API's verify endpoint refused these orders.",
        "",
        f"- `fabrikam/e3` conflict: {E3_REFUSED}",
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
        "100001. Nothing is cancelled: `removed: [{address: contoso/visio, cancel: false}]` "
        "forgets it, `cancel: true` cancels its subscriptions."
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
    catalogue = {odd: FakeCatalogueEntry("Bold **name** <script>|", Decimal("1"), "EUR")}
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
    readme = README.read_text(encoding="utf-8")

    assert f"`````markdown\n{sample_comment()}`````\n" in readme
