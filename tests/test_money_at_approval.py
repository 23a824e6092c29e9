"""Money wherever a person approves: the text plan, ``show --plan``, the apply prompt, the
apply summary and its ``--json`` events, and ``apply --max-cost``.

Prices come from the simulator's catalogue (agreement products); an unknown price is
said to be unknown and is never counted as 0.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest

from reconciler import render, resources
from tests.support.fakes import FakeCatalogueEntry
from tests.support.records import ANNUAL, BASIC, EVERY_ACTION
from tests.support.simulator import PROJECT_DECLARATIONS, HarnessFactory, Project

PRICES = {BASIC: FakeCatalogueEntry("Microsoft 365 Business Basic", Decimal("5.60"), "EUR")}


# --- the text plan -------------------------------------------------------------------


def test_text_plan_with_money_gives_each_price_the_money_line_and_the_commitment() -> None:
    lines = render.plan_text(EVERY_ACTION, catalogue=PRICES, money=True).splitlines()

    assert lines[:3] == [
        "  + a/new  purchase, 0 -> 20 seats (+20)",
        "      tenant 111111, Microsoft 365 Business Basic (CFQ7TTC0LF8R:0010), "
        "monthly P1M subscription",
        "      EUR 5.60 a seat per month: +EUR 112.00 per month",
    ]
    # An unknown price is unknown, never 0; the annual software is a commitment.
    assert lines[5] == "      price unknown (a commitment)"
    assert lines[-3:] == [
        "Cost: +26 seats, about EUR 112.00 per month, price unknown for 1 of 2 changes.",
        "Commitment: 1 change buys a commitment (a P1Y or P3Y term, software or a "
        "reservation): it cannot be cancelled or reduced once Microsoft's cancellation "
        "window (7 days for new-commerce subscriptions) has passed.",
        render.plan_line(EVERY_ACTION),
    ]


def test_text_plan_of_a_committed_purchase_gives_the_whole_term() -> None:
    prices = {**PRICES, ANNUAL: FakeCatalogueEntry("Premium", Decimal("20.60"), "EUR")}

    lines = render.plan_text(EVERY_ACTION, catalogue=prices, money=True).splitlines()

    assert (
        "      EUR 20.60 a seat per month: +EUR 123.60 per month, EUR 1,483.20 for 12 months "
        "(a commitment)"
    ) in lines
    assert (
        "Cost: +26 seats, about EUR 235.60 per month, EUR 1,483.20 committed for 12 months."
    ) in lines


def test_text_plan_without_money_is_unchanged_by_prices() -> None:
    with_names = render.plan_text(EVERY_ACTION, catalogue=PRICES).splitlines()

    assert not [line for line in with_names if "EUR" in line or line.startswith("Cost:")]


# --- plan and show --plan against the simulator ---------------------------------------


def test_plan_and_show_plan_give_prices_from_the_catalogue(project: Project) -> None:
    saved = project.tmp / "reviewed.plan"

    planned = project.ok("plan", str(project.decl), "--out", str(saved))
    shown = project.ok("show", "--plan", str(saved))

    for text in (planned.stdout, shown.stdout):
        assert "      EUR 5.60 a seat per month: +EUR 28.00 per month" in text
        assert "Cost: +10 seats, about EUR 157.30 per month." in text


def test_show_plan_of_a_plan_made_offline_has_no_money(project: Project) -> None:
    saved = project.tmp / "offline.plan"

    project.ok("plan", str(project.decl), "--refresh=false", "--out", str(saved))
    shown = project.ok("show", "--plan", str(saved))

    assert "EUR" not in shown.stdout
    assert "Cost:" not in shown.stdout


# --- apply: the prompt, the summary, the events, --max-cost ---------------------------

ANNUAL_PREMIUM = """\
version: 1
purchases:
  - name: acme/premium-annual
    customerTenantId: 111111
    productId: CFQ7TTC0LH18
    skuId: "0001"
    billingCycle: monthly
    termDuration: P1Y
    quantity: 4
"""


@pytest.mark.slow  # apply asks on a pseudo-terminal, in a process of its own
def test_the_apply_prompt_gives_seats_cost_and_the_commitment(project: Project) -> None:
    (project.decl / "annual.yaml").write_text(ANNUAL_PREMIUM, encoding="utf-8")
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "apply", str(project.decl)],
            env=os.environ | project.sim.env() | {"RECONCILER_STATE": project.state},
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.write(controller, b"no\n")
        _, err = proc.communicate(timeout=60)
    finally:
        os.close(controller)
        os.close(terminal)

    assert proc.returncode == 1
    question = err[err.index("Cost:") :]
    assert question.startswith(
        "Cost: +14 seats, about EUR 239.70 per month, EUR 988.80 committed for 12 months.\n"
        "Commitment: 1 change buys a commitment (a P1Y or P3Y term, software or a "
        "reservation): it cannot be cancelled or reduced once Microsoft's cancellation "
        "window (7 days for new-commerce subscriptions) has passed.\n"
        "Do you want to buy these licences? Only 'yes' will be accepted"
    )
    assert project.buys() == (0, 0)


def test_apply_summary_and_events_give_the_cost_of_what_was_bought(project: Project) -> None:
    (project.decl / "annual.yaml").write_text(ANNUAL_PREMIUM, encoding="utf-8")

    text = project.ok("apply", str(project.decl), "--auto-approve", "--target", "acme/basic")
    events = project.ok("apply", str(project.decl), "--auto-approve", "--json")

    lines = text.stdout.splitlines()
    # Logged before anything is bought, when nobody was asked.
    assert lines.index("Cost: +5 seats, about EUR 28.00 per month.") < lines.index(
        "Apply complete: 1 purchased (+5 seats), 0 failed, 0 pending."
    )
    assert lines[-1] == "Cost of what was bought: +5 seats, about EUR 28.00 per month."
    parsed = [json.loads(line) for line in events.stdout.splitlines()]
    validator = jsonschema.Draft202012Validator(resources.schema("apply-events"))
    for event in parsed:
        validator.validate(event)
    start = next(e for e in parsed if e["type"] == "apply_start")
    complete = parsed[-1]
    expected = {
        "seats": 9,
        "per_month": [{"amount": "211.70", "currency": "EUR"}],
        "once": [],
        "committed": [{"amount": "988.8", "currency": "EUR", "months": 12}],
        "price_unknown": [],
        "removed": 0,
    }
    assert start["cost"] == expected
    assert complete["type"] == "apply_complete"
    assert complete["cost"] == expected


def test_max_cost_refuses_before_anything_is_sent(project: Project) -> None:
    refused = project.ok("apply", str(project.decl), "--auto-approve", "--max-cost", "150", code=1)

    assert refused.stderr.splitlines()[-1] == (
        "error: the plan's purchases add EUR 157.30 (per month; one-time purchases once) "
        "for 10 seats, more than --max-cost 150; nothing was bought"
    )
    assert project.buys() == (0, 0)

    allowed = project.ok("apply", str(project.decl), "--auto-approve", "--max-cost", "157.30")
    assert "Apply complete: 3 purchased (+10 seats)" in allowed.stdout


def test_max_cost_refuses_an_unknown_price_never_counting_it_as_0(
    make_harness: HarnessFactory, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(
        "tenants: [111111]\nproducts:\n"
        "  - {productId: CFQ7TTC0LF8R, skuId: '0010', availabilityId: A1, name: Basic}\n",
        encoding="utf-8",
    )
    declarations = tmp_path / "basic.yaml"
    declarations.write_text(PROJECT_DECLARATIONS.split("  - name: acme/premium")[0])
    h = make_harness(declarations)
    h.sim.load_catalog_file(catalog)

    refused = h.apply("--max-cost", "1000")

    assert refused.exit_code == 1
    assert refused.stderr.splitlines()[-1] == (
        "error: --max-cost 1000 needs the price of every purchase, and the price of "
        "acme/basic is unknown (Cloud-iQ's agreement products do not give it); an unknown "
        "price is never counted as 0. Check the price in Cloud-iQ, then apply without "
        "--max-cost or with --target for the others; nothing was bought"
    )
    assert h.sent() == 0
    bought = h.apply()
    assert bought.exit_code == 0, bought.stderr
    assert "Cost: +5 seats, price unknown." in bought.stdout.splitlines()
    assert "Cost of what was bought" not in bought.stdout


def test_max_cost_takes_a_plain_amount(project: Project) -> None:
    refused = project.ok(
        "apply", str(project.decl), "--auto-approve", "--max-cost", "EUR 5", code=1
    )

    assert "'EUR 5' is not an amount like 500 or 1250.50" in refused.stderr
