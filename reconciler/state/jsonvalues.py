"""The checks every value of the state's JSON format passes, and the JSON reader.

``parse_json`` turns text into values and refuses hostile text before it can cost
much: a number with more digits than any value may hold is refused before it is
converted, and nesting too deep to read is an ``Invalid`` like any other problem,
never a ``RecursionError``. The ``expect_*`` checks hold one value to its type and
bounds; every integer has the bounds the PostgreSQL store's columns have, so no
store accepts a record another one refuses. ``Invalid`` carries a message and the
path to the value, built while it travels up.
This module performs no I/O and knows no record: ``jsonrecords`` and ``jsonformat``
say which value goes where.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z")

#: The largest serial and tenant id (a PostgreSQL bigint), and the largest number of
#: seats one record holds (a PostgreSQL integer).
MAX_BIGINT = 2**63 - 1
MAX_SEATS = 2**31 - 1
#: Digits of the largest value a state holds: a longer number is refused unread.
_MAX_DIGITS = len(str(MAX_BIGINT))
#: Characters of a bad value shown in a message.
_SHOWN = 40


class Invalid(Exception):
    """A value in a state document is not what the format allows.

    The path is built while the exception travels up, so reading a valid state
    (the common case, 50,000 purchases and more) builds no path strings at all.
    """

    def __init__(self, message: str, path: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def within(self, *segments: str) -> Invalid:
        return Invalid(self.message, (*segments, *self.path))

    def __str__(self) -> str:
        where = ""
        for segment in self.path:
            where += segment if segment.startswith("[") or not where else "." + segment
        return f"{where}: {self.message}" if where else self.message


class TooLarge(Invalid):
    """Valid JSON that no state holds and that would be costly to read on: a number
    with too many digits, or nesting too deep."""


def show(value: Any) -> str:
    """A short JSON rendering of a bad value, for messages: its first 40 characters as
    ``json.dumps(value, sort_keys=True)`` gives them, computed without rendering (or
    recursing into) more of the value than is shown."""
    kind = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
    }.get(type(value))
    text = ""
    for token in _tokens(value):
        text += token
        if len(text) > _SHOWN:
            text = text[: _SHOWN - 3] + "..."
            break
    return f"{kind} {text}" if kind else text


def _tokens(value: Any) -> Iterator[str]:
    """``json.dumps(value, sort_keys=True)`` piece by piece, lazily."""
    if isinstance(value, dict):
        yield "{"
        for number, key in enumerate(sorted(value, key=str)):
            yield ("" if number == 0 else ", ") + _scalar(key) + ": "
            yield from _tokens(value[key])
        yield "}"
    elif isinstance(value, list):
        yield "["
        for number, item in enumerate(value):
            if number:
                yield ", "
            yield from _tokens(item)
        yield "]"
    else:
        yield _scalar(value)


def _scalar(value: Any) -> str:
    if type(value) is int and value.bit_length() > 64:
        # str() of a huge integer costs time quadratic in its digits (and Python
        # refuses more than 4,300 of them): say how large it is instead.
        return f"<an integer of about {int(value.bit_length() * 0.30103):,} digits>"
    if isinstance(value, str) and len(value) > _SHOWN:
        value = value[: _SHOWN + 1]  # enough to show, and to show that it goes on
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)[:_SHOWN]


def address_index(address: str) -> str:
    return f"[{quoted(address)}]"


def quoted(text: str) -> str:
    """``text`` as a JSON string for a message, cut after 60 characters."""
    if len(text) <= 60:
        return json.dumps(text)
    return json.dumps(text[:57])[:-1] + '..."'


def expect_object(value: Any, keys: tuple[str, ...], required: tuple[str, ...]) -> None:
    if not isinstance(value, dict):
        raise Invalid(f"expected an object, got {show(value)}")
    missing = [k for k in required if k not in value]
    if missing:
        raise Invalid(f"missing {', '.join(repr(k) for k in missing)}")
    if len(value) > len(required):
        unknown = sorted(k for k in value if k not in keys)
        if unknown:
            key = unknown[0]
            raise Invalid(
                f"unknown key {key!r}" if len(key) <= 60 else f"unknown key {quoted(key)}"
            )


def expect_integer(value: Any, name: str, minimum: int, maximum: int = MAX_SEATS) -> int:
    if type(value) is not int or value < minimum:
        raise Invalid(f"expected an integer >= {minimum}, got {show(value)}", (name,))
    if value > maximum:
        raise Invalid(f"expected an integer <= {maximum}, got {show(value)}", (name,))
    return value


def expect_string(value: Any, name: str) -> str:
    if type(value) is not str or not value:
        raise Invalid(f"expected a non-empty string, got {show(value)}", (name,))
    return value


def expect_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if type(value) is not str or value not in choices:
        raise Invalid(f"expected one of {', '.join(choices)}, got {show(value)}", (name,))
    return value


def expect_time(value: Any, name: str) -> str:
    if type(value) is not str or not _TIME.fullmatch(value):
        raise Invalid(f"expected a UTC time like 2026-11-26T19:00:00Z, got {show(value)}", (name,))
    return value


def expect_address(value: Any, name: str) -> str:
    if type(value) is not str or not value:
        raise Invalid(f"expected a non-empty address, got {show(value)}", (name,))
    return value


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise Invalid(f"duplicate key {quoted(key)}")
            seen.add(key)
    return result


def _no_constant(name: str) -> Any:
    raise Invalid(f"{name} is not a JSON value")


def _bounded_integer(text: str) -> int:
    """An integer of the JSON text, refused unconverted when it has more digits than
    any value of a state may have (converting is quadratic in the digits)."""
    if len(text) > _MAX_DIGITS + 1 or len(text.lstrip("-")) > _MAX_DIGITS:
        digits = len(text.lstrip("-"))
        raise TooLarge(
            f"it holds a number of {digits:,} digits; no value of a state has more than "
            f"{_MAX_DIGITS}"
        )
    return int(text)


def parse_json(text: str) -> Any:
    """JSON text as values; an ``Invalid`` for a duplicate key, NaN or Infinity, a
    number too long to be a value of a state, or nesting too deep to read."""
    try:
        return json.loads(
            text,
            object_pairs_hook=_strict_object,
            parse_constant=_no_constant,
            parse_int=_bounded_integer,
        )
    except RecursionError:
        # The decoder recurses once per level and stops at Python's recursion limit;
        # a state nests six levels.
        raise TooLarge("it nests arrays or objects too deeply to be read") from None
