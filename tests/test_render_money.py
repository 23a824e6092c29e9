"""Money and commitments (``reconciler.render.money``): rounded totals, exact unit
prices, and what a plan costs per currency."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import jsonschema
import pytest

from reconciler import render
from reconciler.model import Action, Identity
from tests.support.fakes import FakeCatalogueEntry
from tests.support.paths import schema
from tests.support.records import ANNUAL, BASIC, change, make_plan

PLAN_SCHEMA = schema("plan")


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
        BASIC: FakeCatalogueEntry("Basic", Decimal("5.60"), "EUR"),
        ANNUAL: FakeCatalogueEntry("Premium", Decimal("20.60"), "EUR"),
        p3y: FakeCatalogueEntry(None, Decimal("10"), "eur"),
        once: FakeCatalogueEntry("Software", Decimal("99.99"), "EUR"),
        usd: FakeCatalogueEntry("Dollar", Decimal("2.50"), "USD"),
        unknown: FakeCatalogueEntry("No price", None, None),
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
        "removed": 0,
    }
