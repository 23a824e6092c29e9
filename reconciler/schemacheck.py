"""A fast yes/no check of a document against one of our JSON Schemas.

jsonschema explains every error well but costs several times a YAML parse on
large inputs. Valid documents are the common case, so ``compile_schema`` turns
a schema into nested closures that answer only "valid or not"; the caller runs
jsonschema for the messages when the answer is no. The schema stays the single
source of truth: a keyword this compiler does not know is refused at compile
time, so a schema edit can never be skipped silently. Tests check that both
agree on generated documents.

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Check = Callable[[Any], bool]

#: Keywords that only annotate and never change validity.
_ANNOTATIONS = frozenset({"$schema", "$id", "title", "description", "$defs", "$comment"})
_VALUE_KEYWORDS = ("const", "enum", "minimum", "maximum", "minLength", "maxLength", "pattern")
_OBJECT_KEYWORDS = frozenset({"required", "properties", "additionalProperties"})
_ARRAY_KEYWORDS = frozenset({"items", "minItems", "uniqueItems"})
_KEYWORDS = frozenset({"$ref", "type", *_ARRAY_KEYWORDS, *_VALUE_KEYWORDS, *_OBJECT_KEYWORDS})

_TYPES: Mapping[str, Check] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}


class UnsupportedSchemaError(Exception):
    """The schema uses a keyword this compiler does not implement."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON Schema means it: 1 == 1.0, but True != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _unique(values: list[Any]) -> bool:
    """No two items equal as JSON Schema means it (lists here are short)."""
    return not any(_json_equal(a, b) for i, a in enumerate(values) for b in values[i + 1 :])


def _always(value: Any) -> bool:
    return True


def _never(value: Any) -> bool:
    return False


def _all_of(checks: list[Check]) -> Check:
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]

    def check(value: Any) -> bool:
        # A plain loop: all() over a generator costs several times more on this hot path.
        for one in checks:  # noqa: SIM110
            if not one(value):
                return False
        return True

    return check


def _type_check(arg: Any) -> Check:
    tests = [_TYPES[name] for name in ([arg] if isinstance(arg, str) else arg)]
    if len(tests) == 1:
        return tests[0]
    return lambda v: any(t(v) for t in tests)


def _value_check(keyword: str, arg: Any) -> Check:
    if keyword == "const":
        return lambda v: _json_equal(v, arg)
    if keyword == "enum":
        if all(isinstance(option, str) for option in arg):
            options = frozenset(arg)  # only a string can equal a string
            return lambda v: isinstance(v, str) and v in options
        return lambda v: any(_json_equal(v, option) for option in arg)
    if keyword == "minimum":
        return lambda v: not _is_number(v) or v >= arg
    if keyword == "maximum":
        return lambda v: not _is_number(v) or v <= arg
    if keyword == "minLength":
        return lambda v: not isinstance(v, str) or len(v) >= arg
    if keyword == "maxLength":
        return lambda v: not isinstance(v, str) or len(v) <= arg
    # pattern: searched, not matched whole, exactly as jsonschema does, or the two
    # would disagree. A pattern must anchor itself, and in Python '$' also matches
    # before a final newline: end it with '$(?!\n)' to refuse one.
    search = re.compile(arg).search
    return lambda v: not isinstance(v, str) or search(v) is not None


def _object_check(schema: Mapping[str, Any], build: Callable[[Any], Check]) -> Check:
    """required, properties and additionalProperties in one pass over the object;
    ``build`` compiles the subschemas."""
    required = tuple(schema.get("required", ()))
    props = {name: build(sub) for name, sub in schema.get("properties", {}).items()}
    other = build(schema["additionalProperties"]) if "additionalProperties" in schema else None

    def check(value: Any) -> bool:
        if not isinstance(value, dict):
            return True
        for name in required:
            if name not in value:
                return False
        for key, item in value.items():
            prop = props.get(key)
            if prop is not None:
                if not prop(item):
                    return False
            elif other is not None and not other(item):
                return False
        return True

    return check


def compile_schema(root: Mapping[str, Any]) -> Check:
    """A function telling whether a document is valid against ``root``."""
    compiled: dict[str, Check] = {}
    resolving: set[str] = set()

    def resolve(ref: str) -> Check:
        if ref in compiled:
            return compiled[ref]
        if not ref.startswith("#/"):
            raise UnsupportedSchemaError(f"only local $ref is supported, not {ref!r}")
        if ref in resolving:  # a recursive schema: look the check up when it runs
            return lambda v: compiled[ref](v)
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        resolving.add(ref)
        compiled[ref] = build(target)
        resolving.discard(ref)
        return compiled[ref]

    def build(schema: Any) -> Check:
        if schema is True:
            return _always
        if schema is False:
            return _never
        unknown = set(schema) - _ANNOTATIONS - _KEYWORDS
        if unknown:
            raise UnsupportedSchemaError(f"schema keyword {sorted(unknown)[0]!r} is not supported")
        checks: list[Check] = []
        if "$ref" in schema:
            checks.append(resolve(schema["$ref"]))
        if "type" in schema:
            checks.append(_type_check(schema["type"]))
        keywords = [k for k in _VALUE_KEYWORDS if k in schema]
        if "minimum" in schema and "maximum" in schema:  # one call, not two, per number
            low, high = schema["minimum"], schema["maximum"]
            checks.append(lambda v: not _is_number(v) or low <= v <= high)
            keywords = [k for k in keywords if k not in ("minimum", "maximum")]
        checks.extend(_value_check(k, schema[k]) for k in keywords)
        if "items" in schema:
            item = build(schema["items"])
            checks.append(lambda v: not isinstance(v, list) or all(map(item, v)))
        if "minItems" in schema:
            least = schema["minItems"]
            checks.append(lambda v: not isinstance(v, list) or len(v) >= least)
        if schema.get("uniqueItems") is True:
            checks.append(lambda v: not isinstance(v, list) or _unique(v))
        if _OBJECT_KEYWORDS & schema.keys():
            checks.append(_object_check(schema, build))
        return _all_of(checks)

    return build(root)
