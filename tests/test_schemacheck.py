"""The fast schema check agrees with jsonschema, on our schemas and on generated documents."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler import resources, schemacheck

SCHEMAS = ["purchases", "plan"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([2**31 - 1, 2**31]),
    st.floats(allow_nan=False, allow_infinity=False, width=16),
    st.sampled_from(
        ["", "a", "0010", "monthly", "P1M", "Acme/X", "acme/x", "acme/x\n", "acme/\x00", "x" * 201]
    ),
)
keys = st.sampled_from(
    [
        "version",
        "defaults",
        "purchases",
        "name",
        "quantity",
        "skuId",
        "productId",
        "tags",
        "billingCycle",
        "customerTenantId",
        "costCenter",
        "provisioningContext",
        "typo",
        "type",
    ]
)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=25,
)


@pytest.mark.parametrize("name", SCHEMAS)
def test_every_keyword_of_our_schemas_is_understood(name: str) -> None:
    schemacheck.compile_schema(resources.schema(name))


def test_unknown_keywords_are_refused_at_compile_time() -> None:
    with pytest.raises(schemacheck.UnsupportedSchemaError, match="oneOf"):
        schemacheck.compile_schema({"oneOf": [{"type": "string"}]})


@pytest.mark.parametrize("name", SCHEMAS)
@settings(max_examples=300)
@given(document=documents)
def test_agrees_with_jsonschema(name: str, document: Any) -> None:
    schema = resources.schema(name)
    assert schemacheck.compile_schema(schema)(document) == jsonschema.Draft202012Validator(
        schema
    ).is_valid(document)


@given(
    quantity=st.one_of(st.integers(-2, 5), st.floats(-2, 5), st.booleans(), st.text(max_size=2)),
    sku=st.one_of(st.text(max_size=3), st.integers(0, 20)),
)
def test_agrees_on_near_valid_declarations(quantity: Any, sku: Any) -> None:
    schema = resources.schema("purchases")
    document = {
        "version": 1,
        "purchases": [{"name": "a/b", "quantity": quantity, "skuId": sku, "productId": "P"}],
    }
    expected = jsonschema.Draft202012Validator(schema).is_valid(document)
    assert schemacheck.compile_schema(schema)(document) == expected


@pytest.mark.parametrize(
    ("name", "valid"),
    [("acme/x", True), ("acme/x\n", False), ("acme/x\r", False), ("\nacme/x", False)],
)
def test_a_name_is_matched_whole_by_both(name: str, valid: bool) -> None:
    schema = resources.schema("purchases")
    document = {"version": 1, "purchases": [{"name": name, "quantity": 1}]}

    assert jsonschema.Draft202012Validator(schema).is_valid(document) is valid
    assert schemacheck.compile_schema(schema)(document) is valid


@pytest.mark.parametrize(("quantity", "valid"), [(2**31 - 1, True), (2**31, False)])
def test_integers_are_bounded_by_both(quantity: int, valid: bool) -> None:
    schema = resources.schema("purchases")
    document = {"version": 1, "purchases": [{"name": "a", "quantity": quantity}]}

    assert jsonschema.Draft202012Validator(schema).is_valid(document) is valid
    assert schemacheck.compile_schema(schema)(document) is valid
