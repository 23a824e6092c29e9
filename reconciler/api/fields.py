"""Typed, case-insensitive reads of the fields of one JSON item, for ``reads``.

A field of the wrong type, or a needed one that is missing, raises a DEFINITIVE
``ApiError`` naming the field's path. This module must not import
``requests``, must do no I/O and must not know what an item means (``reads``
does).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from reconciler.api.jsonread import ci_get
from reconciler.api.records import Price
from reconciler.errors import ApiError, FailureKind

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
    if isinstance(value, str):
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
