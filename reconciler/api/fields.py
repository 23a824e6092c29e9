"""The API's JSON, read with care: bounded parsing and typed, case-insensitive fields.

    load_json                 JSON with limits on nesting depth and number size
    ci_get, ci_key            a key of a JSON object, matched without regard to case
    Fields                    typed reads of one JSON object, errors naming the field
    shown, malformed          a value and a problem as an error message says them

The Crayon API answers in PascalCase on some endpoints and camelCase on others,
so every field is looked up without regard to case. ``Fields`` raises a
DEFINITIVE ``ApiError`` naming the field's path for a needed field that is
missing or any field of the wrong type; ``reads`` decides what that means for a
list. This module must not import ``requests``, must do no I/O, must not build
the records (``reads`` does) and must not decide how a failed call counts
(``failures`` does).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, Final

from reconciler.api.records import Price
from reconciler.errors import ApiError, FailureKind

#: How deep an answer's JSON may nest. Every documented answer stays under 10 levels.
MAX_JSON_DEPTH: Final = 64
#: How many characters one number in an answer may have (an int64 has at most 20).
MAX_NUMBER_TEXT: Final = 40


# --------------------------------------------------------------------------- JSON


class UnreadableJson(ValueError):
    """An answer that is not JSON, or JSON beyond the limits ``load_json`` keeps."""


def load_json(content: bytes | str) -> Any:
    """``content`` parsed as JSON, nested at most ``MAX_JSON_DEPTH`` levels, no number
    longer than ``MAX_NUMBER_TEXT`` characters, no NaN or Infinity.

    Raises ``UnreadableJson`` (never ``RecursionError`` or another ``ValueError``)
    for anything else. The parser itself stops at Python's recursion limit; the
    depth is then measured without recursing.
    """
    try:
        text = content.decode("utf-8") if isinstance(content, bytes) else content
    except UnicodeDecodeError:
        raise UnreadableJson("a body that is not UTF-8 text") from None
    try:
        data = json.loads(text, parse_int=_integer, parse_float=_float, parse_constant=_no_constant)
    except UnreadableJson:
        raise
    except RecursionError:
        raise UnreadableJson(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:
        raise UnreadableJson("a body that is not JSON") from None
    if _depth(data) > MAX_JSON_DEPTH:
        raise UnreadableJson(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return data


def _depth(data: Any) -> int:
    """How many arrays and objects nest in ``data``, counted without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Iterable[Any] = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        stack.extend((child, depth) for child in children if isinstance(child, dict | list))
    return deepest


def _integer(text: str) -> int:
    if len(text) > MAX_NUMBER_TEXT:
        raise UnreadableJson(f"a number of {len(text)} digits in JSON")
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_TEXT:
        raise UnreadableJson(f"a number of {len(text)} characters in JSON")
    value = float(text)
    if not math.isfinite(value):
        raise UnreadableJson(f"a number too large for a float ({text[:20]}) in JSON")
    return value


def _no_constant(text: str) -> Any:
    raise UnreadableJson(f"{text}, which is not a JSON number")


def ci_get(data: Mapping[str, Any], name: str) -> Any:
    """``data[name]`` matching the key case-insensitively; None when absent."""
    if name in data:
        return data[name]
    wanted = name.casefold()
    for key, value in data.items():
        if isinstance(key, str) and key.casefold() == wanted:
            return value
    return None


def ci_key(data: Mapping[str, Any], name: str) -> str | None:
    """The key of ``data`` that is ``name`` ignoring case; None when there is none."""
    if name in data:
        return name
    wanted = name.casefold()
    return next((k for k in data if isinstance(k, str) and k.casefold() == wanted), None)


def as_list(value: Any) -> list[Any]:
    """``value`` when it is a JSON array, else an empty list."""
    return value if isinstance(value, list) else []


def text_map(value: Any) -> Mapping[str, str]:
    """A read-only string-to-string copy of a JSON object; anything else reads as empty."""
    if not isinstance(value, dict):
        return MappingProxyType({})
    return MappingProxyType({str(k): "" if v is None else str(v) for k, v in value.items()})


# --------------------------------------------------------------------------- fields

# Names the API writes instead of the integers, casefolded, without separators.
_CYCLE_WORDS: Final = {
    "unknown": "unknown",
    "monthly": "monthly",
    "annual": "annual",
    "annually": "annual",
    "yearly": "annual",
    "none": "none",
    "onetime": "one-time",
    "biannually": "biannually",
    "twoyears": "two-years",
    "triennial": "triennial",
    "threeyears": "triennial",
    "quarterly": "quarterly",
}

INTEGER_TEXT: Final = re.compile(r"-?[0-9]{1,18}")


class Fields:
    """Typed, case-insensitive reads of one JSON object; errors name the field's path.

    ``need_*`` raise when the field is absent or null; the others return None
    (or "" for text). Every reader raises when the field has the wrong type.
    """

    def __init__(self, data: Mapping[str, Any], prefix: str = "") -> None:
        self._data = data
        self._prefix = prefix

    def raw(self, path: str) -> Any:
        """The value at a dotted ``path``; None when it or an object on the way is absent."""
        value: Any = self._data
        walked: list[str] = []
        for name in path.split("."):
            if value is None:
                return None
            if not isinstance(value, Mapping):
                raise self.wrong(".".join(walked), "an object", value)
            walked.append(name)
            value = ci_get(value, name)
        return value

    def missing(self, path: str) -> ApiError:
        return malformed(self._prefix + path, "missing")

    def wrong(self, path: str, expected: str, value: Any) -> ApiError:
        return malformed(self._prefix + path, f"expected {expected}, got {shown(value)}")

    def integer(self, path: str) -> int | None:
        value = self.raw(path)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and INTEGER_TEXT.fullmatch(value.strip()):
            return int(value)
        raise self.wrong(path, "a whole number", value)

    def need_integer(self, path: str) -> int:
        value = self.integer(path)
        if value is None:
            raise self.missing(path)
        return value

    def count(self, path: str) -> int | None:
        value = self.integer(path)
        if value is not None and value < 0:
            raise self.wrong(path, "a number of seats (0 or more)", value)
        return value

    def need_count(self, path: str) -> int:
        value = self.count(path)
        if value is None:
            raise self.missing(path)
        return value

    def text(self, path: str) -> str:
        """A string, stripped; "" when absent or null."""
        value = self.raw(path)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self.wrong(path, "a string", value)
        return value.strip()

    def need_text(self, path: str) -> str:
        value = self.text(path)
        if not value:
            raise self.missing(path)
        return value

    def reference(self, path: str) -> str | None:
        """An id the API writes as a number or as a string, as text."""
        value = self.raw(path)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, str):
            return value.strip() or None
        if value is None:
            return None
        raise self.wrong(path, "an id (a number or a string)", value)

    def need_reference(self, path: str) -> str:
        value = self.reference(path)
        if value is None:
            raise self.missing(path)
        return value

    def flag(self, path: str) -> bool | None:
        value = self.raw(path)
        if value is None or isinstance(value, bool):
            return value
        raise self.wrong(path, "true or false", value)

    def term(self, path: str) -> str | None:
        return self.text(path).upper() or None

    def cycle(self, path: str, codes: Mapping[int, str]) -> str | None:
        """A billing cycle given as its integer or its name, in our names."""
        value = self.raw(path)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return codes.get(value, f"billing-cycle-{value}")
        if isinstance(value, str) and value.strip():
            word = enum_word(value)
            return _CYCLE_WORDS.get(word, word)
        raise self.wrong(path, "a billing cycle", value)

    def time(self, path: str) -> datetime | None:
        value = self.raw(path)
        if value is None or value == "":
            return None
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.strip())
            except ValueError:
                pass
            else:
                # The API's examples write UTC without an offset.
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        raise self.wrong(path, "an ISO-8601 date and time", value)

    def array(self, path: str) -> list[Any]:
        value = self.raw(path)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.wrong(path, "a list", value)
        return value

    def price(self, path: str) -> Price | None:
        """``{value, currencyCode}``; None when absent, null or without a value."""
        container = self.raw(path)
        if container is not None and not isinstance(container, Mapping):
            raise self.wrong(path, "an object", container)
        value = self.raw(path + ".value")
        if value is None:
            return None
        amount = _amount(value)
        if amount is None:
            raise self.wrong(path + ".value", "an amount", value)
        return Price(amount, self.need_text(path + ".currencyCode").upper())


def _amount(value: Any) -> Decimal | None:
    """A JSON number (or numeric text) as a finite Decimal; None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        # repr is the shortest text that reads back as the same float: 5.6, not 5.5999...
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, str) and len(value) <= MAX_NUMBER_TEXT:
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:
            return None
        return amount if amount.is_finite() else None
    return None


def enum_word(text: str) -> str:
    """An enum name the API wrote, casefolded and without separators: "One Time" -> "onetime"."""
    return re.sub(r"[\s_-]", "", text).casefold()


def shown(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def malformed(field: str, problem: str) -> ApiError:
    return definitive(f"{field}: {problem}" if field else problem)


def definitive(message: str) -> ApiError:
    # Asking again gets the same answer: DEFINITIVE. The client adds the URL.
    return ApiError(message, kind=FailureKind.DEFINITIVE)
