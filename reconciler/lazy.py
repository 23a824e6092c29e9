"""Packages that re-export their modules' names without importing them up front.

A package's ``__init__`` lists, for each name it re-exports, the module that
defines it; the module is imported the first time the name is read. So
``import reconciler.api.orders`` or ``from reconciler import render`` costs only
what is used: ``reconciler --help``, ``validate`` and ``plan`` never load the
parts of a package they do not call. The names are imported for type
checkers under ``TYPE_CHECKING`` as well; a test keeps the two lists equal.

Standard library only; performs no I/O.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``.

    ``exports`` maps each re-exported name to ``module`` (the name defined there) or
    ``module:attribute`` (re-exported under another name).
    """

    def __getattr__(name: str) -> Any:
        where = exports.get(name)
        if where is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = where.partition(":")
        value = getattr(importlib.import_module(f"{package}.{module}"), attribute or name)
        setattr(sys.modules[package], name, value)  # read once, then a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
