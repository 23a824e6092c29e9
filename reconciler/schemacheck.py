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


def compile_schema(root: Mapping[str, Any]) -> Check:
    """A function telling whether a document is valid against ``root``."""
    cache: dict[str, Check] = {}

    def resolve(ref: str) -> Check:
        if ref not in cache:
            if not ref.startswith("#/"):
                raise UnsupportedSchemaError(f"only local $ref is supported, not {ref!r}")
            target: Any = root
            for part in ref[2:].split("/"):
                target = target[part]
            cache[ref] = lambda v: True  # placeholder for recursive references
            compiled = build(target)
            cache[ref] = compiled
        return lambda v: cache[ref](v)

    def build(schema: Any) -> Check:
        if schema is True:
            return lambda v: True
        if schema is False:
            return lambda v: False
        checks: list[Check] = []
        for keyword, arg in schema.items():
            if keyword in _ANNOTATIONS:
                continue
            checks.append(keyword_check(keyword, arg, schema))
        if len(checks) == 1:
            return checks[0]
        return lambda v: all(check(v) for check in checks)

    def keyword_check(keyword: str, arg: Any, schema: Mapping[str, Any]) -> Check:
        if keyword == "$ref":
            return resolve(arg)
        if keyword == "type":
            names = [arg] if isinstance(arg, str) else list(arg)
            tests = [_TYPES[n] for n in names]
            return lambda v: any(t(v) for t in tests)
        if keyword == "const":
            return lambda v: _json_equal(v, arg)
        if keyword == "enum":
            return lambda v: any(_json_equal(v, option) for option in arg)
        if keyword == "minimum":
            return lambda v: not _is_number(v) or v >= arg
        if keyword == "maximum":
            return lambda v: not _is_number(v) or v <= arg
        if keyword == "minLength":
            return lambda v: not isinstance(v, str) or len(v) >= arg
        if keyword == "maxLength":
            return lambda v: not isinstance(v, str) or len(v) <= arg
        if keyword == "pattern":
            search = re.compile(arg).search
            return lambda v: not isinstance(v, str) or search(v) is not None
        if keyword == "required":
            required = tuple(arg)
            return lambda v: not isinstance(v, dict) or all(n in v for n in required)
        if keyword == "items":
            item = build(arg)
            return lambda v: not isinstance(v, list) or all(item(x) for x in v)
        if keyword == "properties":
            props = {name: build(sub) for name, sub in arg.items()}
            return lambda v: (
                not isinstance(v, dict) or all(props[k](x) for k, x in v.items() if k in props)
            )
        if keyword == "additionalProperties":
            known = frozenset(schema.get("properties", {}))
            other = build(arg)
            return lambda v: (
                not isinstance(v, dict) or all(other(x) for k, x in v.items() if k not in known)
            )
        raise UnsupportedSchemaError(f"schema keyword {keyword!r} is not supported")

    return build(root)
