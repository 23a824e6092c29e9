"""Reading the API's JSON leniently: key names matched case-insensitively.

The Crayon API answers in PascalCase on some endpoints and camelCase on
others, so every field is looked up without regard to case, and a field of
the wrong shape reads as absent. This module must not import ``requests`` and
must not raise on any JSON value.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any


def ci_get(data: Mapping[str, Any], name: str) -> Any:
    """``data[name]`` matching the key case-insensitively; None when absent."""
    if name in data:
        return data[name]
    wanted = name.casefold()
    for key, value in data.items():
        if isinstance(key, str) and key.casefold() == wanted:
            return value
    return None


def as_list(value: Any) -> list[Any]:
    """``value`` when it is a JSON array, else an empty list."""
    return value if isinstance(value, list) else []


def text_map(value: Any) -> Mapping[str, str]:
    """A read-only string-to-string copy of a JSON object; anything else reads as empty."""
    if not isinstance(value, dict):
        return MappingProxyType({})
    return MappingProxyType({str(k): "" if v is None else str(v) for k, v in value.items()})
