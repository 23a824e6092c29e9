"""Saved plans (``plan --out``): write, read back, and check they still apply.

A saved plan records the state's lineage and serial, a hash of the
declarations, the product names and unit prices the plan was shown with (when
they were known), and where the declarations are (relative to the plan file, or
absolute when they share no directory but the root), so ``apply --plan`` reads
the same declarations from any working directory; it refuses the plan when the
state or the declarations changed. Reads and writes only the plan file; never
the state.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from reconciler import render, resources
from reconciler.errors import PlanError
from reconciler.model import Identity, Plan
from reconciler.render.money import Catalogue


@dataclass(frozen=True)
class SavedProduct:
    """A product's name and unit price as the saved plan recorded them (either may be
    unknown: None, never 0)."""

    name: str | None
    unit_price: Decimal | None
    currency: str | None


@dataclass(frozen=True)
class SavedPlan:
    plan: Plan
    #: The declarations the plan was made from, as a path usable from the current
    #: directory; None for a plan file that does not record it.
    declarations_path: str | None = None
    #: The same as the file records it (relative to the plan file, or absolute).
    recorded_path: str | None = None
    #: Names and unit prices by identity, when the plan was made with them.
    catalogue: Mapping[Identity, SavedProduct] | None = None

    def json(self) -> str:
        """The plan file's content: the plan's JSON and where its declarations are."""
        return to_json(self.plan, self.recorded_path, self.catalogue)


def to_json(plan: Plan, recorded_path: str | None, catalogue: Catalogue | None = None) -> str:
    data = render.plan_dict(plan, catalogue=catalogue)
    if recorded_path is not None:
        data["declarations_path"] = recorded_path
    return json.dumps(data, indent=2, sort_keys=True)


def recorded_path(declarations: str | os.PathLike[str], plan_file: str | os.PathLike[str]) -> str:
    """``declarations`` as a saved plan records it: relative to the plan file's
    directory, or absolute when the two share nothing but the filesystem root."""
    where = os.path.abspath(declarations)
    base = os.path.dirname(os.path.abspath(plan_file))
    common = os.path.commonpath([where, base])
    if common == os.path.dirname(common):  # only the root (or a drive) in common
        return where
    return os.path.relpath(where, base)


def save(
    path: str | os.PathLike[str],
    plan: Plan,
    declarations: str | os.PathLike[str] | None = None,
    catalogue: Catalogue | None = None,
) -> None:
    """Write the plan atomically (a reader never sees half a plan), with where
    ``declarations`` are and the names and prices of ``catalogue`` when given."""
    target = Path(path)
    recorded = recorded_path(declarations, path) if declarations is not None else None
    text = to_json(plan, recorded, catalogue) + "\n"
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
    except OSError as exc:
        raise PlanError(f"cannot write plan file {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise PlanError(f"cannot write plan file {path}: {exc.strerror}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read(path: str | os.PathLike[str]) -> Plan:
    """A saved plan, or ``PlanError`` naming the file."""
    return read_saved(path).plan


def read_saved(path: str | os.PathLike[str]) -> SavedPlan:
    """A saved plan and where its declarations are, or ``PlanError`` naming the file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanError(f"plan file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PlanError(f"plan file {path} cannot be read: {exc}") from None
    import jsonschema  # deferred: slow to import; only saved plans need it

    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(resources.schema("plan")).iter_errors(data)
    )
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "top level"
        raise PlanError(f"plan file {path} is not a reconciler plan ({where}: {error.message})")
    recorded = data.get("declarations_path")
    usable = None
    if recorded is not None:
        # Relative to the plan file, whatever the current directory is.
        usable = os.path.normpath(os.path.join(os.path.dirname(os.fspath(path)), recorded))
    return SavedPlan(render.plan_from_dict(data), usable, recorded, _catalogue(data))


def _catalogue(data: Mapping[str, Any]) -> dict[Identity, SavedProduct] | None:
    """The names and prices a plan file recorded (a plan saved with them has
    ``product_name`` on every change), or None."""
    changes = data["changes"]
    if not changes or any("product_name" not in c for c in changes):
        return None
    found = {}
    for change in changes:
        price = change.get("unit_price")
        found[Identity.from_dict(change["identity"])] = SavedProduct(
            change["product_name"],
            Decimal(price["amount"]) if price is not None else None,
            price["currency"] if price is not None else None,
        )
    return found
