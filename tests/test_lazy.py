"""The lazy packages (``reconciler.lazy``): what they export on demand is exactly what
type checkers see."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import types
from pathlib import Path

import pytest

from reconciler import api, observe, render, state


@pytest.mark.parametrize("package", [api, observe, render, state])
def test_lazy_packages_export_exactly_what_they_import_for_type_checkers(
    package: types.ModuleType,
) -> None:
    # The names under TYPE_CHECKING (what mypy sees) and the names read on demand.
    tree = ast.parse(Path(str(package.__file__)).read_text(encoding="utf-8"))
    checked = {
        alias.asname or alias.name: f"{node.module}.{alias.name}"
        for block in tree.body
        if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert sorted(checked) == sorted(package.__all__)
    # A name that is also a module's would turn into the module once that is imported.
    modules = {info.name for info in pkgutil.iter_modules(package.__path__)}
    assert not modules & set(checked)
    for name, origin in checked.items():
        module, _, attribute = origin.rpartition(".")
        assert getattr(package, name) is getattr(importlib.import_module(module), attribute)
    assert set(package.__all__) <= set(dir(package))
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        package.nothing_here  # noqa: B018
