"""Plans and states as JSON (``reconciler.render.jsonplan``): ``plan --json``, saved
plans and back, ``show --json``; every plan valid against its schema."""

from __future__ import annotations

import json
from decimal import Decimal

import jsonschema

from reconciler import render
from reconciler.model import Action, CheckoutRecord, PendingOperation, RecordedPurchase, State
from tests.support.fakes import FakeCatalogueEntry, FakeIssue
from tests.support.paths import schema
from tests.support.records import ANNUAL, BASIC, DIGEST, EVERY_ACTION, change, make_plan
from tests.support.times import T0

PLAN_SCHEMA = schema("plan")


# --- plan_dict / plan_json / plan_from_dict -------------------------------------------


def test_plan_dict_matches_the_schema_and_the_documented_format() -> None:
    data = render.plan_dict(EVERY_ACTION)

    jsonschema.Draft202012Validator(PLAN_SCHEMA).validate(data)
    assert data["format_version"] == 2
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


def test_plan_json_is_one_sorted_line_of_parseable_json() -> None:
    text = render.plan_json(EVERY_ACTION)

    assert json.loads(text) == render.plan_dict(EVERY_ACTION)
    assert "\n" not in text
    assert text == json.dumps(json.loads(text), sort_keys=True)


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


# --- state_dict ------------------------------------------------------------------------


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


# --- plan_dict: verdict, names and prices ----------------------------------------------


def test_plan_dict_says_the_verdict() -> None:
    data = render.plan_dict(EVERY_ACTION, {"a/new": [FakeIssue("E1", "no")]})

    jsonschema.Draft202012Validator(PLAN_SCHEMA).validate(data)
    assert data["format_version"] == 2
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
    catalogue = {BASIC: FakeCatalogueEntry("Microsoft 365 Business Basic", Decimal("5.60"), "EUR")}

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
