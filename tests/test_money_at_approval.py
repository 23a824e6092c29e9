"""Money wherever a person approves: the text plan, ``show --plan``, the apply prompt, the
apply summary and its ``--json`` events, and ``apply --max-cost``.

Prices come from the simulator's catalogue (agreement products); an unknown price is
said to be unknown and is never counted as 0.
"""

from __future__ import annotations

from decimal import Decimal

from reconciler import render
from tests.support.fakes import FakeCatalogueEntry
from tests.support.records import ANNUAL, BASIC, EVERY_ACTION
from tests.support.simulator import Project

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
